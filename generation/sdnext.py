"""HTTP client for SD.Next's API: the subset written down in docs/sdnext-contract.md.

SD.Next runs one generation at a time and a txt2img call blocks until the job is done, so the client
uses a short connect timeout, a normal read timeout for small calls and a long one for txt2img. Only
failures that happened before the request left this machine (refused, DNS, connect timeout) are
retried for a txt2img: once SD.Next may have started a job, resending it would run it twice.

Every failure is an `SDNextError` whose message tells a user what to do next.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

import requests
from urllib3.exceptions import NameResolutionError, NewConnectionError

logger = logging.getLogger(__name__)

TXT2IMG = "/sdapi/v1/txt2img"
TAG_RE = re.compile(r"<(\w+):([^>]+)>")  # SD.Next's extra-network tag grammar (modules/extra_networks.py)
# "LoRA networks: a, b" ends where the next "Key: " begins (infotext values are comma separated).
LORA_NETWORKS_RE = re.compile(r'LoRA networks: ("[^"]*"|.*?)(?=, [A-Za-z][\w \-/()]*: |\n|$)')
BAD_URL_ERRORS = (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema)
IMAGE_MAGIC = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG"}


class SDNextError(Exception):
    """A failed SD.Next call. `str()` is a message a user can act on, with SD.Next's own detail in it.

    `retryable` says whether trying the same call again later makes sense (False when a generation may
    already have run, or when only a configuration change can help).
    """

    retryable = False

    def __init__(self, message: str, *, status: int | None = None, detail: str = "", retryable: bool | None = None):
        super().__init__(message)
        self.status, self.detail = status, detail
        if retryable is not None:
            self.retryable = retryable


class SDNextUnreachable(SDNextError):
    """No connection (refused, DNS, connect timeout) or the connection dropped before an answer."""

    retryable = True


class SDNextAuthError(SDNextError):
    """HTTP 401: SD.Next runs with --auth and our credentials are missing or wrong."""


class SDNextNotFound(SDNextError):
    """HTTP 404, e.g. an unknown sampler name."""


class SDNextRateLimited(SDNextError):
    """HTTP 429 from SD.Next's per-client limiter (a rate-limited txt2img still ran)."""

    retryable = True


class SDNextServerError(SDNextError):
    """HTTP 5xx: SD.Next (or a proxy in front of it) failed."""


class SDNextTimeout(SDNextError):
    """SD.Next accepted the connection but did not answer within the read timeout."""


class SDNextBadResponse(SDNextError):
    """The answer is not what the API promises: not JSON, wrong shape, or no images from a txt2img."""


class SDNextValidationError(SDNextError):
    """HTTP 422: SD.Next's request model rejected fields (wrong JSON types)."""


@dataclass
class Txt2ImgResult:
    """Decoded txt2img answer: image bytes (grid removed), `info` parsed, and the LoRAs that really loaded."""

    images: list[bytes]
    parameters: dict
    info: dict
    info_raw: str
    loras_applied: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    infotexts: list[str] = field(default_factory=list)


def parse_info(info: Any) -> dict:
    """The `info` JSON string of a txt2img answer as a dict; {} when empty or undecodable (SD.Next sends "")."""
    if isinstance(info, dict):
        return info
    if not isinstance(info, str) or not info.strip():
        return {}
    try:
        parsed = json.loads(info)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def loras_in_info(info: dict) -> list[str]:
    """LoRA names SD.Next reports as loaded ("LoRA networks"): the only proof a LoRA was applied."""
    extra = info.get("extra_generation_params")
    value = extra.get("LoRA networks") if isinstance(extra, dict) else None
    if not isinstance(value, str):  # older servers or a trimmed info: read the first infotext line that has it
        texts = [text for text in info.get("infotexts") or [] if isinstance(text, str)]
        matches = [match.group(1) for text in texts if (match := LORA_NETWORKS_RE.search(text))]
        value = matches[0] if matches else ""
    return [name.strip() for name in value.strip('"').split(",") if name.strip()]


def lora_tags(prompt: str) -> list[tuple[str, str]]:
    """(name, weight) of each `<lora:name[:weight][:key=value...]>` tag; weight is "" when not given."""
    tags = []
    for kind, body in TAG_RE.findall(prompt):
        positional = [item for item in body.split(":") if "=" not in item]
        if kind == "lora" and positional:
            tags.append((positional[0], positional[1] if len(positional) > 1 else ""))
    return tags


def image_format(data: bytes) -> str | None:
    """JPEG/PNG/WEBP by magic bytes; SD.Next's encoding depends on its samples_format option."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((name for magic, name in IMAGE_MAGIC.items() if data.startswith(magic)), None)


class SDNextClient:
    """Talks to one SD.Next server.

    Use one client per thread (say one for the blocking txt2img and one polling progress):
    `requests.Session` is not documented as thread-safe.
    """

    def __init__(
        self,
        base_url: str,
        user: str = "",
        password: str = "",
        *,
        connect_timeout: float = 3.05,
        read_timeout: float = 30.0,
        generate_timeout: float = 900.0,
        retries: int = 3,
        backoff: float = 0.5,
        session: requests.Session | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        # requests sends Basic credentials pre-emptively; SD.Next does not reliably send a challenge.
        self.auth = (user, password) if user or password else None
        self.connect_timeout, self.read_timeout, self.generate_timeout = connect_timeout, read_timeout, generate_timeout
        self.retries, self.backoff = retries, backoff
        self.session = session or requests.Session()

    def version(self) -> dict:
        return self._call("GET", "/sdapi/v1/version", expect=dict)

    def status(self) -> dict:
        return self._call("GET", "/sdapi/v1/status", expect=dict)

    def checkpoints(self) -> list[dict]:
        return self._call("GET", "/sdapi/v1/sd-models", expect=list)

    def current_checkpoint(self) -> dict:
        """The loaded model; its `type` is None when nothing is loaded (txt2img would return no images)."""
        return self._call("GET", "/sdapi/v1/checkpoint", expect=dict)

    def samplers(self) -> list[str]:
        items = self._call("GET", "/sdapi/v1/samplers", expect=list)
        return [item["name"] if isinstance(item, dict) else str(item) for item in items]

    def loras(self) -> list[dict]:
        return self._call("GET", "/sdapi/v1/loras", expect=list)

    def refresh_loras(self) -> None:
        """Rescan SD.Next's LoRA folder; the answer is an internal dump, so read `loras()` afterwards."""
        self._call("POST", "/sdapi/v1/refresh-loras", expect=None)

    def options(self) -> dict:
        """Only options that differ from SD.Next's defaults (docs/sdnext-contract.md §10)."""
        return self._call("GET", "/sdapi/v1/options", expect=dict)

    def progress(self, with_preview: bool = False) -> dict:
        """Progress of the current phase; a preview costs GPU time on the server, so it is off by default."""
        params = {"skip_current_image": "false" if with_preview else "true"}
        return self._call("GET", "/sdapi/v1/progress", params=params, expect=dict)

    def interrupt(self) -> None:
        """Stop the running job; the pending txt2img still answers, possibly with partial images."""
        self._call("POST", "/sdapi/v1/interrupt", expect=None)

    def skip(self) -> None:
        """End the current n_iter pass and go on with the next one."""
        self._call("POST", "/sdapi/v1/skip", expect=None)

    def txt2img(self, payload: dict) -> Txt2ImgResult:
        """Run one generation and wait for it (SD.Next holds the request until the job ends).

        Raises SDNextBadResponse when SD.Next answers 200 without images (no checkpoint loaded) unless
        the payload asked for `send_images: false`. Check `loras_applied`: unknown LoRAs are skipped silently.
        """
        data = self._call("POST", TXT2IMG, json_body=payload, expect=dict, timeout=self.generate_timeout)
        raw_images, info_value = data.get("images") or [], data.get("info")
        info_raw = info_value if isinstance(info_value, str) else json.dumps(info_value) if info_value else ""
        info = parse_info(info_value)
        if not isinstance(raw_images, list) or not all(isinstance(item, str) for item in raw_images):
            raise SDNextBadResponse(f"SD.Next's txt2img answer has no list of base64 images: {_snippet(data)}")
        images = [self._decode_image(item, i) for i, item in enumerate(raw_images)]
        if not images and payload.get("send_images", True) is not False:
            hint = f" SD.Next's info: {info_raw[:300]}" if info_raw.strip() else ""
            raise SDNextBadResponse(f"SD.Next returned no images: is a checkpoint loaded?{hint}", status=200)
        infotexts = [str(text) for text in info.get("infotexts") or []]
        first = info.get("index_of_first_image", 0)
        if isinstance(first, int) and 0 < first < len(images):  # a grid image is prepended for batches
            if len(infotexts) == len(images):
                infotexts = infotexts[first:]
            images = images[first:]
        seeds = [s for s in info.get("all_seeds") or [info.get("seed")] if isinstance(s, int)][: len(images)]
        return Txt2ImgResult(
            images=images,
            parameters=data.get("parameters") if isinstance(data.get("parameters"), dict) else {},
            info=info,
            info_raw=info_raw,
            loras_applied=loras_in_info(info),
            seeds=seeds,
            infotexts=infotexts,
        )

    @staticmethod
    def _decode_image(item: str, index: int) -> bytes:
        _, _, encoded = item.rpartition("base64,")  # tolerate a data: URL prefix
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise SDNextBadResponse(f"Image {index + 1} from SD.Next is not valid base64.") from None
        if image_format(data) is None:
            raise SDNextBadResponse(
                f"Image {index + 1} from SD.Next is not a JPEG, PNG or WEBP file (starts with {data[:12]!r}); "
                "set SD.Next's samples_format option to jpg, png or webp."
            )
        return data

    def _call(
        self,
        method: str,
        path: str,
        *,
        expect: type | None,
        params: dict | None = None,
        json_body: dict | None = None,
        timeout: float | None = None,
    ) -> Any:
        response = self._send(method, path, params=params, json_body=json_body, timeout=timeout or self.read_timeout)
        if response.status_code >= 400:
            raise self._http_error(response, path)
        if expect is None:
            return None
        try:
            data = response.json()
        except ValueError:
            raise SDNextBadResponse(
                f"SD.Next's answer to {path} is not JSON (HTTP {response.status_code}, starts with "
                f"{response.text[:80]!r}). Does LORA_MANAGER_SDNEXT_URL point at SD.Next and not at another app?",
                status=response.status_code,
                retryable=path != TXT2IMG,
            ) from None
        if not isinstance(data, expect):
            raise SDNextBadResponse(
                f"SD.Next's answer to {path} is a {type(data).__name__}, not a {expect.__name__}: {_snippet(data)}",
                status=response.status_code,
            )
        return data

    def _send(
        self, method: str, path: str, *, params: dict | None, json_body: dict | None, timeout: float
    ) -> requests.Response:
        """One request, retried with exponential backoff only while resending cannot run anything twice."""
        attempt = 0
        while True:
            try:
                return self.session.request(
                    method,
                    f"{self.base_url}{path}",
                    params=params,
                    json=json_body,
                    auth=self.auth,
                    timeout=(self.connect_timeout, timeout),
                )
            except requests.RequestException as exc:
                error, resendable = self._transport_error(exc, method, path, timeout)
                if not resendable or attempt >= self.retries:
                    raise error from exc
                delay = self.backoff * 2**attempt
                attempt += 1
                logger.warning("%s; retry %d/%d of %s in %.2f s", error, attempt, self.retries, path, delay)
                time.sleep(delay)

    def _transport_error(
        self, exc: requests.RequestException, method: str, path: str, timeout: float
    ) -> tuple[SDNextError, bool]:
        """The error for a request that got no HTTP answer, and whether sending it again is safe."""
        server, generation = f"SD.Next at {self.base_url}", path == TXT2IMG
        if isinstance(exc, BAD_URL_ERRORS):
            hint = "set LORA_MANAGER_SDNEXT_URL to e.g. http://127.0.0.1:7860"
            return SDNextError(f"{self.base_url!r} is not a valid SD.Next URL: {hint}."), False
        if isinstance(exc, requests.exceptions.SSLError):
            message = f"TLS handshake with {server} failed: {exc}. Check its certificate or use http://."
            return SDNextUnreachable(message, retryable=False), False
        if isinstance(exc, requests.exceptions.ReadTimeout):
            tail = "; the request may have started; not resent." if generation else "."
            message = f"SD.Next did not answer {path} within {timeout:g} s{tail}"
            return SDNextTimeout(message, retryable=not generation), False
        reason = self._unsent_reason(exc)
        if reason is not None:  # the request never left: always safe to resend
            message = f"Cannot reach {server}: {reason}. Is it running, and is LORA_MANAGER_SDNEXT_URL right?"
            return SDNextUnreachable(message, detail=reason), True
        if isinstance(exc, requests.ConnectionError) and method == "GET":  # reading is safe to repeat
            return SDNextUnreachable(f"Lost the connection to {server} during {path}: {exc}"), True
        if isinstance(exc, requests.ConnectionError):
            message = f"Lost the connection to {server} during {path}; the request may have started; not resent."
            return SDNextUnreachable(message, retryable=not generation), False
        return SDNextBadResponse(f"SD.Next's answer to {path} was cut off ({exc}).", retryable=not generation), False

    def _unsent_reason(self, exc: requests.RequestException) -> str | None:
        """Why the connection failed if the request cannot have been sent; None if it may have been."""
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return f"no connection within {self.connect_timeout:g} s"
        cause = exc.args[0] if exc.args else None
        reason = getattr(cause, "reason", cause)
        if isinstance(reason, NameResolutionError):
            return "host name not found"
        if isinstance(reason, NewConnectionError):
            return "connection refused" if "refused" in str(reason).lower() else f"cannot connect ({reason})"
        return None

    def _http_error(self, response: requests.Response, path: str) -> SDNextError:
        """Map an error status to an exception, reading SD.Next's error body (§11), FastAPI's 422 or plain text."""
        status, detail = response.status_code, _error_detail(response)
        if status == 401:
            return SDNextAuthError(
                f"SD.Next at {self.base_url} refused the credentials (HTTP 401: {detail}). Set "
                "LORA_MANAGER_SDNEXT_USER and LORA_MANAGER_SDNEXT_PASSWORD to a user:password from SD.Next's --auth.",
                status=status,
                detail=detail,
            )
        if status == 404:
            hint = " Pick a sampler from SD.Next's list (/sdapi/v1/samplers)." if "sampler" in detail.lower() else ""
            return SDNextNotFound(f"SD.Next says: {detail} (HTTP 404 on {path}).{hint}", status=status, detail=detail)
        if status == 422:
            return SDNextValidationError(
                f"SD.Next rejected the request to {path} (HTTP 422): {detail}", status=status, detail=detail
            )
        if status == 429:
            ran = " The job still ran on the server." if path == TXT2IMG else ""
            return SDNextRateLimited(
                f"SD.Next's rate limit was hit: {detail}. Wait a minute or raise server_rate_limit in SD.Next.{ran}",
                status=status,
                detail=detail,
            )
        if status >= 500:
            return SDNextServerError(
                f"SD.Next failed with HTTP {status} on {path}: {detail}",
                status=status,
                detail=detail,
                retryable=status in (502, 503, 504) and path != TXT2IMG,
            )
        return SDNextError(f"SD.Next answered HTTP {status} on {path}: {detail}", status=status, detail=detail)


def _error_detail(response: requests.Response) -> str:
    """SD.Next's error text from its error body (§11), a 422 field list, a bare JSON string or a non-JSON body."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason or "no details"
    if isinstance(body, str):  # the TypeError handler returns a bare JSON string
        return body
    if not isinstance(body, dict):
        return _snippet(body)
    detail = body.get("detail")
    if isinstance(detail, list):  # FastAPI validation errors
        return "; ".join(_field_error(item) for item in detail) or "invalid request"
    parts = [str(detail) if detail else "", str(body.get("errors") or "")]
    text = next((p for p in parts if p), "") or str(body.get("error") or "") or _snippet(body)
    error = body.get("error")
    return f"{text} ({error})" if error and error != "HTTPException" and error not in text else text


def _field_error(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    loc = [str(part) for part in item.get("loc") or [] if part != "body"]
    return f"{'.'.join(loc) or 'body'}: {item.get('msg', 'invalid')}"


def _snippet(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 200 else f"{text[:200]}..."
