"""A polite client for Civitai's public REST API (reference: docs/civitai.md).

Polite means: one request at a time per host from this process, at least ``min_interval`` seconds between
the starts of two requests to a host, a ``429`` waits for ``Retry-After`` and resumes, ``5xx`` answers and
timeouts are retried a bounded number of times with growing pauses. Every failure becomes a
``CivitaiError`` whose message can be shown to a person as is; ``CivitaiUnreachable`` means no answer at
all (a run stops there instead of failing every adapter the same way). Answers are read with a size cap.
"""

from __future__ import annotations

import email.utils
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from adapters.sanitize import storable_data

MAX_JSON_BYTES = 8 * 1024 * 1024
MAX_RETRY_AFTER = 15 * 60.0  # a longer wait is reported, not slept
MAX_RATE_LIMITED = 8  # 429s in a row for one request before giving up
USER_AGENT = "LoRA-Manager (self-hosted; lookups by file hash)"


class CivitaiError(Exception):
    """A lookup that failed; the message says why in words a person can act on."""


class CivitaiUnreachable(CivitaiError):
    """No answer at all from the host (refused, DNS, TLS): nothing more will work this run."""


class Cancelled(Exception):
    """The run was cancelled while waiting for its turn."""


@dataclass
class _HostTurn:
    lock: threading.Lock
    next_at: float = 0.0


_TURNS: dict[str, _HostTurn] = {}
_TURNS_LOCK = threading.Lock()


def _turn(host: str) -> _HostTurn:
    with _TURNS_LOCK:
        if host not in _TURNS:
            _TURNS[host] = _HostTurn(threading.Lock())
        return _TURNS[host]


def retry_after_seconds(value: str | None, default: float) -> float:
    """``Retry-After`` as seconds: a number, or an HTTP date; ``default`` when absent or unreadable."""
    if not value:
        return default
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, when.timestamp() - time.time())


class CivitaiClient:
    """Talks to one Civitai (or the stand-in). ``should_stop`` is asked while waiting; True raises Cancelled."""

    def __init__(
        self,
        base_url: str,
        api_key: str = "",
        min_interval: float = 1.0,
        timeout: float = 20.0,
        retries: int = 3,
        backoff: float = 2.0,
        max_image_bytes: int = 20 * 1024 * 1024,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        if not base_url:
            raise CivitaiError("Civitai lookups are switched off (LORA_MANAGER_CIVITAI_URL=off).")
        self.base_url = base_url.rstrip("/")
        self.min_interval, self.timeout, self.retries, self.backoff = min_interval, timeout, retries, backoff
        self.max_image_bytes = max_image_bytes
        self.should_stop = should_stop or (lambda: False)
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.api_key = api_key
        self.requests = 0  # sent, for run statistics
        self.sent_at: list[float] = []  # monotonic start times (the bench checks the rate with these)

    # --- the API ------------------------------------------------------------------------------------

    def version_by_hash(self, digest: str) -> dict | None:
        """The model version whose file has this hash (SHA256, AutoV2, AutoV3, ...); None when Civitai has none."""
        return self._json(f"/api/v1/model-versions/by-hash/{digest}")

    def model(self, model_id: int) -> dict | None:
        return self._json(f"/api/v1/models/{int(model_id)}")

    def image(self, url: str) -> bytes:
        """An image's bytes, refused beyond ``max_image_bytes``. Only http(s) URLs."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise CivitaiError(f"preview URL is not http(s): {url[:100]}")
        if not self.image_host_allowed(parts.hostname or ""):
            raise CivitaiError(f"preview URL is on a host that is not Civitai's: {parts.hostname}")
        response = self._send(url, api=False)
        if response.status_code != 200:
            response.close()
            raise CivitaiError(f"preview download answered HTTP {response.status_code}")
        return self._read(response, self.max_image_bytes, "preview image")

    def image_host_allowed(self, host: str) -> bool:
        """Images come from Civitai's own hosts (image.civitai.com) or the configured one: an answer cannot send
        this server to fetch from anywhere else (say, a service on the local network)."""
        host = host.lower().rstrip(".")
        own = (urlsplit(self.base_url).hostname or "").lower()
        return host == own or host == "civitai.com" or host.endswith(".civitai.com")

    # --- plumbing -----------------------------------------------------------------------------------

    def _json(self, path: str) -> dict | None:
        response = self._send(self.base_url + path, api=True)
        status = response.status_code
        body = self._read(response, MAX_JSON_BYTES, "answer")
        if status == 404:
            return None
        if status in (401, 403):
            raise CivitaiError(f"Civitai refused the request (HTTP {status}): check LORA_MANAGER_CIVITAI_API_KEY")
        if status != 200:
            raise CivitaiError(f"Civitai answered HTTP {status} for {path}")
        content_type = response.headers.get("Content-Type", "")
        if "html" in content_type or body.lstrip()[:1] == b"<":
            raise CivitaiError(
                f"Civitai answered with an HTML page instead of JSON (HTTP {status}, {content_type or 'no type'}): "
                "often an error page from its CDN; try again later"
            )
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise CivitaiError(f"Civitai's answer is not valid JSON ({str(exc)[:80]})") from None
        if not isinstance(data, dict):
            raise CivitaiError("Civitai's answer is not a JSON object")
        # Model authors write these texts: a lone surrogate (a valid JSON escape) or NUL would fail the whole
        # lookup run when stored. The one gate for untrusted text replaces them with U+FFFD, as for sidecars.
        return storable_data(data)

    def _read(self, response: requests.Response, limit: int, what: str) -> bytes:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            response.close()
            raise CivitaiError(f"{what} too large: {int(declared):,} bytes (limit {limit:,})")
        chunks, size = [], 0
        try:
            for chunk in response.iter_content(64 * 1024):
                size += len(chunk)
                if size > limit:
                    raise CivitaiError(f"{what} too large: over {limit:,} bytes")
                chunks.append(chunk)
        except requests.RequestException as exc:
            raise CivitaiError(f"{what} was cut off: {exc.__class__.__name__}") from None
        finally:
            response.close()
        return b"".join(chunks)

    def _wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            if self.should_stop():
                raise Cancelled()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.2))

    def _send(self, url: str, api: bool) -> requests.Response:
        """GET with the host's turn held, retrying 429 / 5xx / timeouts as described in the module docstring."""
        host = urlsplit(url).netloc
        turn = _turn(host)
        headers = {"Accept": "application/json"} if api else {}
        if api and self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        failures = rate_limited = 0
        while True:
            with turn.lock:
                self._wait(turn.next_at - time.monotonic())
                started = time.monotonic()
                turn.next_at = started + self.min_interval
                self.requests += 1
                self.sent_at.append(started)
                problem = ""
                try:
                    response = self.session.get(url, headers=headers, timeout=self.timeout, stream=True)
                except requests.ConnectionError as exc:
                    if isinstance(exc, requests.ConnectTimeout):
                        problem = f"no answer within {self.timeout:g} s"
                    else:
                        failures += 1
                        if failures > self.retries:
                            raise CivitaiUnreachable(
                                f"Civitai cannot be reached at {self.base_url}: {_reason(exc)}. "
                                "Check the network or LORA_MANAGER_CIVITAI_URL."
                            ) from None
                        problem = "connection failed"
                except requests.Timeout:
                    problem = f"no answer within {self.timeout:g} s"
                except requests.RequestException as exc:
                    raise CivitaiError(f"request failed: {exc.__class__.__name__}") from None
                else:
                    if response.status_code == 429:
                        rate_limited += 1
                        wait = retry_after_seconds(response.headers.get("Retry-After"), max(self.backoff, 5.0))
                        response.close()
                        if rate_limited > MAX_RATE_LIMITED or wait > MAX_RETRY_AFTER:
                            raise CivitaiError(f"Civitai keeps asking to slow down (429, wait {wait:.0f} s); try later")
                        turn.next_at = max(turn.next_at, time.monotonic() + wait)
                        continue
                    if response.status_code < 500:
                        return response
                    problem = f"HTTP {response.status_code}"
                    response.close()
            if not problem.startswith("connection"):
                failures += 1
            if failures > self.retries:
                raise CivitaiError(f"Civitai failed {failures} times ({problem}); try again later")
            self._wait(self.backoff * 2 ** (failures - 1))


def _reason(exc: Exception) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "No route to host", "certificate"):
        if marker.lower() in text.lower():
            return marker.lower()
    return exc.__class__.__name__
