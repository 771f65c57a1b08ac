"""SD.Next STAND-IN: a small real HTTP server that follows the SD.Next API contract. It is NOT SD.Next.

SD.Next needs a GPU and cannot run here, so tests and `make demo` talk to this instead. It speaks the
contract in docs/sdnext-contract.md (routes, status codes, error bodies, blocking
one-at-a-time txt2img, progress, interrupt/skip, LoRA listing and naming) and renders real JPEG
images labelled "SD.Next stand-in". Faults can be injected with `set_fault` to test clients.

    python -m tests.standins.sdnext --port 7861 [--lora-dir DIR] [--auth user:pass] [--step-delay 0.1]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.standins.sdnext_engine import SAMPLERS, ApiError, Engine, Stopped

logger = logging.getLogger(__name__)

TXT2IMG = "/sdapi/v1/txt2img"
FAULTS = {"refuse", "500", "429", "hang", "no_images", "malformed"}
# Faults that only make sense for a generation apply to txt2img unless a path is given.
FAULT_DEFAULT_PATH = {"hang": TXT2IMG, "no_images": TXT2IMG}
FAULT_OPTIONS = {"path", "times", "seconds", "detail", "form", "body"}
VERSION = {
    "app": "sd.next (stand-in)",
    "updated": "2026-07-23",
    "commit": "stand-in",
    "branch": "stand-in",
    "url": "https://github.com/vladmandic/sdnext (this is a stand-in, not SD.Next)",
    "ui": "none",
    "kanvas": None,
}


class Invalid(Exception):
    """FastAPI request validation failure: becomes a 422 with `{"detail": [...]}`."""

    def __init__(self, errors: list[dict]):
        super().__init__(errors)
        self.errors = errors


class _FieldError(Exception):
    def __init__(self, kind: str, msg: str):
        super().__init__(msg)
        self.kind, self.msg = kind, msg


def _number(kind: type[int] | type[float], label: str, article: str) -> Callable[[Any], Any]:
    def convert(v: Any) -> Any:
        if isinstance(v, bool | int | float) and (kind is float or float(v).is_integer()):
            return kind(v)
        if isinstance(v, str):
            with contextlib.suppress(ValueError):
                return kind(v)
            msg = f"Input should be a valid {label}, unable to parse string as {article} {label}"
            raise _FieldError(f"{kind.__name__}_parsing", msg)
        raise _FieldError(f"{kind.__name__}_type", f"Input should be a valid {label}")

    return convert


def _as_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in {"1", "0", "true", "false", "yes", "no", "on", "off", "t", "f"}:
        return v.strip().lower() in {"1", "true", "yes", "on", "t"}
    raise _FieldError("bool_parsing", "Input should be a valid boolean, unable to interpret input")


def _typed(kind: type, code: str, msg: str) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if not isinstance(v, kind):
            raise _FieldError(code, msg)
        return v

    return check


_as_int, _as_float = _number(int, "integer", "an"), _number(float, "number", "a")
_STR = _typed(str, "string_type", "Input should be a valid string")
_DICT = _typed(dict, "dict_type", "Input should be a valid dictionary")
_LIST = _typed(list, "list_type", "Input should be a valid list")
# (converter, default) per txt2img field; everything is optional and unknown fields are ignored
# (docs/sdnext-contract.md §5).
TXT2IMG_FIELDS: dict[str, tuple[Callable[[Any], Any], Any]] = {
    "prompt": (_STR, ""), "negative_prompt": (_STR, ""), "styles": (_LIST, None),
    "seed": (_as_int, -1), "subseed": (_as_int, -1), "subseed_strength": (_as_float, 0.0),
    "seed_resize_from_h": (_as_int, -1), "seed_resize_from_w": (_as_int, -1),
    "sampler_name": (_STR, "Default"), "sampler_index": (lambda v: v, 0),
    "batch_size": (_as_int, 1), "n_iter": (_as_int, 1), "steps": (_as_int, 20),
    "cfg_scale": (_as_float, 6.0), "cfg_end": (_as_float, 1.0), "cfg_rescale": (_as_float, 0.0),
    "clip_skip": (_as_int, 1), "width": (_as_int, 1024), "height": (_as_int, 1024),
    "denoising_strength": (_as_float, 0.3), "enable_hr": (_as_bool, False), "tiling": (_as_bool, False),
    "override_settings": (_DICT, None), "override_settings_restore_afterwards": (_as_bool, True),
    "sd_model_checkpoint": (_STR, None), "send_images": (_as_bool, True), "save_images": (_as_bool, False),
    "return_grid": (_as_bool, None), "keep_incomplete": (_as_bool, None),
    "script_name": (_STR, ""), "script_args": (_LIST, []), "alwayson_scripts": (_DICT, {}), "extra": (_DICT, {}),
}  # fmt: skip


def validate_txt2img(body: Any) -> dict:
    """Coerce a request body the way pydantic v2 (lax mode) would, or raise Invalid with every field error."""
    if not isinstance(body, dict):
        msg = "Input should be a valid dictionary or object to extract fields from"
        raise Invalid([{"type": "model_attributes_type", "loc": ["body"], "msg": msg, "input": body}])
    params, errors = {}, []
    for name, (convert, default) in TXT2IMG_FIELDS.items():
        value = body.get(name)
        try:
            params[name] = json.loads(json.dumps(default)) if value is None else convert(value)
        except _FieldError as exc:
            errors.append({"type": exc.kind, "loc": ["body", name], "msg": exc.msg, "input": value})
    if errors:
        raise Invalid(errors)
    return params


class _Fault:
    def __init__(self, name: str, options: dict[str, Any]):
        unknown = set(options) - FAULT_OPTIONS
        if name not in FAULTS or unknown:
            raise ValueError(f"unknown fault {name!r} or options {sorted(unknown)}; faults: {sorted(FAULTS)}")
        if name == "refuse" and "times" in options:
            raise ValueError("a closed port cannot count refused connections: use refuse with seconds=...")
        self.name, self.options = name, options
        self.path = options.get("path", FAULT_DEFAULT_PATH.get(name))
        self.times: int | None = options.get("times")


class SDNextStandIn:
    """A stand-in SD.Next server on a background thread (also a context manager). Not a real SD.Next."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        lora_dir: Path | None = None,
        auth: tuple[str, str] | None = None,
        step_delay: float = 0.02,
        checkpoints: list[str] | None = None,
    ):
        self.host, self.port, self.auth = host, port, auth
        self._stopping = threading.Event()
        checkpoints = ["sd_xl_base_1.0"] if checkpoints is None else checkpoints
        self.engine = Engine(lora_dir, step_delay, checkpoints, self._stopping)
        self.requests: list[dict] = []
        self.txt2img_started = threading.Event()
        self._fault: _Fault | None = None
        self._fault_generation = 0  # bumped by set_fault: releases "hang" waiters
        self._fault_lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._listener_lock = threading.Lock()  # the refuse timer and the caller may both (re)open the port
        self._started = False
        self._routes = self._build_routes()

    @property
    def url(self) -> str:
        return f"http://{'127.0.0.1' if self.host in ('', '0.0.0.0') else self.host}:{self.port}"

    def start(self) -> SDNextStandIn:
        self._stopping.clear()
        self._started = True
        self._listen()
        logger.info("SD.Next STAND-IN (not a real SD.Next) listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop listening and release blocked handlers (hang, queue waits, running jobs) so nothing lingers."""
        self._stopping.set()
        self._started = False
        self._close()

    def __enter__(self) -> SDNextStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_fault(self, fault: str | None, **options: Any) -> None:
        """Inject one fault for subsequent requests until cleared (`None`) or `times` requests have had it.

        Options: `path` (only requests to that path), `times` (then it clears itself), `seconds` (refuse only:
        listen again after that long), `detail`/`form` for "500" (form "a11", "string" or "text"), `body` for
        "malformed". "refuse" really closes the listening socket, so clients see ECONNREFUSED.
        """
        new = _Fault(fault, options) if fault else None
        with self._fault_lock:
            self._fault, self._fault_generation = new, self._fault_generation + 1
            generation = self._fault_generation
        if not self._started:
            return
        if new and new.name == "refuse":
            self._close()
            if "seconds" in options:
                timer = threading.Timer(options["seconds"], self._end_refusal, args=(generation,))
                timer.daemon = True
                timer.start()
        else:
            self._listen()

    def _end_refusal(self, generation: int) -> None:
        with self._fault_lock:
            if generation != self._fault_generation:
                return
            self._fault, self._fault_generation = None, self._fault_generation + 1
        if self._started:
            self._listen()

    def _listen(self) -> None:
        with self._listener_lock:
            if self._httpd is not None:
                return
            self._httpd = _Server((self.host, self.port), _Handler)
            self._httpd.standin = self
            self.port = self._httpd.server_address[1]
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="sdnext-standin", daemon=True
            )
            self._thread.start()

    def _close(self) -> None:
        with self._listener_lock:
            if self._httpd is None or self._thread is None:
                return
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join()
            self._httpd = self._thread = None

    def _take_fault(self, path: str) -> tuple[_Fault | None, int]:
        with self._fault_lock:
            fault = self._fault
            if fault is None or fault.name == "refuse" or (fault.path and fault.path != path):
                return None, self._fault_generation
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self._fault = None
            return fault, self._fault_generation

    def handle(self, method: str, path: str, query: dict[str, str], raw: bytes, authorization: str) -> _Reply:
        """Answer one request; the order follows SD.Next: auth, handler, then the rate-limit middleware."""
        try:
            self._check_auth(authorization)
            fault, generation = self._take_fault(path)
            if fault and fault.name == "hang":
                while self._fault_generation == generation:
                    if self._stopping.wait(0.05):
                        raise Stopped
            if fault and fault.name == "500":
                return _fault_500(fault.options)
            if fault and fault.name == "malformed":
                return _Reply(200, fault.options.get("body", '{"images": ["/9j/4AAQ').encode(), "application/json")
            if fault and fault.name == "no_images":
                return _Reply.json({"images": [], "parameters": validate_txt2img(_body(raw)), "info": ""})
            reply = self._route(method, path, query, raw)
            if fault and fault.name == "429":  # SD.Next's limiter runs after the handler: the job still ran
                raise ApiError(429, f"127.0.0.1:{path}: rate limit exceeded")
            return reply
        except ApiError as exc:
            return _Reply.json(exc.body(), exc.status)
        except Invalid as exc:
            return _Reply.json({"detail": exc.errors}, 422)

    def _check_auth(self, authorization: str) -> None:
        if self.auth is None:
            return
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic" or not encoded:
            raise ApiError(401, "Not authenticated")
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise ApiError(401, "Invalid authentication credentials") from None
        if not (hmac.compare_digest(user, self.auth[0]) and hmac.compare_digest(password, self.auth[1])):
            raise ApiError(401, "Unauthorized")

    def _build_routes(self) -> dict[tuple[str, str], Callable[[dict[str, str], bytes], Any]]:
        engine, state, v1 = self.engine, self.engine.state, "/sdapi/v1"
        return {
            ("GET", f"{v1}/version"): lambda q, b: VERSION,
            ("GET", f"{v1}/status"): lambda q, b: state.status(),
            ("GET", f"{v1}/progress"): lambda q, b: state.progress(not _flag(q.get("skip_current_image", ""))),
            ("GET", f"{v1}/sd-models"): lambda q, b: engine.checkpoints,
            ("GET", f"{v1}/checkpoint"): lambda q, b: self._current_checkpoint(),
            ("GET", f"{v1}/options"): lambda q, b: engine.options,
            ("GET", f"{v1}/samplers"): lambda q, b: [{"name": name, "options": {}} for name in SAMPLERS],
            ("GET", f"{v1}/loras"): lambda q, b: [
                _public(e, "name", "alias", "path", "metadata") for e in engine.loras.entries
            ],
            ("GET", f"{v1}/loaded-loras"): lambda q, b: engine.loaded_loras,
            ("POST", TXT2IMG): lambda q, b: engine.txt2img(validate_txt2img(_body(b)), self.txt2img_started.set),
            ("POST", f"{v1}/interrupt"): lambda q, b: state.interrupt(),
            ("POST", f"{v1}/skip"): lambda q, b: state.skip(),
            ("POST", f"{v1}/refresh-loras"): lambda q, b: self._refresh_loras(),
            ("POST", f"{v1}/checkpoint"): lambda q, b: self._load_checkpoint(q.get("sd_model_checkpoint", "")),
            ("POST", f"{v1}/options"): lambda q, b: {"updated": engine.set_options(_body(b, dict))},
        }

    def _route(self, method: str, path: str, query: dict[str, str], raw: bytes) -> _Reply:
        route = self._routes.get((method, path))
        if route is None:  # Starlette's own 404/405 body, not SD.Next's error body (§2, §11)
            if any(p == path for _, p in self._routes):
                return _Reply.json({"detail": "Method Not Allowed"}, 405)
            return _Reply.json({"detail": "Not Found"}, 404)
        result = route(query, raw)
        return _Reply(204, b"", "") if result is None else _Reply.json(result)

    def _current_checkpoint(self) -> dict:
        model = self.engine.model() or dict.fromkeys(("filename", "title", "model_name", "hash"))
        loaded = model["title"] is not None
        return {
            "type": "sd" if loaded else None,
            "class": "StableDiffusionXLPipeline" if loaded else None,
            "checkpoint": model["filename"],
            "title": model["title"],
            "name": model["model_name"],
            "filename": model["filename"],
            "hash": model["hash"],
        }

    def _load_checkpoint(self, title: str) -> dict:
        """POST /checkpoint loads at once (no queue lock, unlike POST /options)."""
        checkpoint = self.engine.find_checkpoint(title)
        if checkpoint is not None:
            self.engine.options["sd_model_checkpoint"] = checkpoint["title"]
        return {"ok": checkpoint is not None}

    def _refresh_loras(self) -> dict:
        self.engine.loras.scan()
        return {e["name"]: _public(e, "name", "alias", "fullname", "path") for e in self.engine.loras.entries}


def _flag(value: str) -> bool:
    return value.lower() in {"1", "true", "yes", "on"}


def _public(entry: dict, *keys: str) -> dict:
    return {key: entry[key] for key in keys}


class _Reply:
    def __init__(self, status: int, body: bytes, content_type: str):
        self.status, self.body, self.content_type = status, body, content_type

    @classmethod
    def json(cls, payload: Any, status: int = 200) -> _Reply:
        return cls(status, json.dumps(payload).encode(), "application/json")


def _fault_500(options: dict[str, Any]) -> _Reply:
    """An uncaught exception as SD.Next reports it: its error body (§11) with the message in `errors`, or the TypeError
    case (a bare JSON string), or a plain-text page such as a reverse proxy would send."""
    message = options.get("detail", "CUDA out of memory. Tried to allocate 2.00 GiB")
    form = options.get("form", "a11")
    if form == "string":
        return _Reply.json(message, 500)
    if form == "text":
        return _Reply(500, f"Internal Server Error: {message}".encode(), "text/plain")
    return _Reply.json(ApiError(500, "", error="OutOfMemoryError", errors=message).body(), 500)


def _body(raw: bytes, kind: type = object) -> Any:
    """The JSON body, or the 422 FastAPI returns for a missing / undecodable / wrongly typed one."""
    if not raw.strip():
        raise Invalid([{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}])
    try:
        body = json.loads(raw)
    except ValueError as exc:
        error = {"type": "json_invalid", "loc": ["body", 0], "msg": "JSON decode error", "ctx": {"error": str(exc)}}
        raise Invalid([error]) from None
    if not isinstance(body, kind):
        raise Invalid([{"type": "dict_type", "loc": ["body"], "msg": "Input should be a valid dictionary"}])
    return body


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: SDNextStandIn


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "SDNext-stand-in"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        started = time.perf_counter()
        url = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        standin = self.server.standin
        try:
            logged = json.loads(raw) if raw else None
        except ValueError:
            logged = None
        query = dict(parse_qsl(url.query))
        standin.requests.append({"method": method, "path": url.path, "query": query, "json": logged})
        try:
            reply = standin.handle(method, url.path, query, raw, self.headers.get("Authorization", ""))
        except Stopped:
            return  # shutting down: drop the connection unanswered
        except Exception as exc:  # what SD.Next's general exception handler does with a bug
            logger.exception("stand-in handler failed")
            reply = _Reply.json(ApiError(500, "", error=type(exc).__name__, errors=str(exc)).body(), 500)
        self.send_response(reply.status)
        if reply.content_type:
            self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("X-Process-Time", f"{time.perf_counter() - started:.4f}")
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)


def main(argv: list[str] | None = None) -> None:
    """Run the stand-in in the foreground (used by `make demo`)."""
    parser = argparse.ArgumentParser(description="SD.Next STAND-IN for tests and demos (not a real SD.Next).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7861)
    parser.add_argument("--lora-dir", type=Path)
    parser.add_argument("--auth", help="user:pass; enables HTTP Basic auth on every route")
    parser.add_argument("--step-delay", type=float, default=0.1, help="seconds per sampling step")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    user, colon, password = (args.auth or "").partition(":")
    if args.auth and not colon:
        parser.error("--auth must be user:pass")
    auth = (user, password) if args.auth else None
    standin = SDNextStandIn(args.host, args.port, args.lora_dir, auth, args.step_delay).start()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        standin.stop()


if __name__ == "__main__":
    main()
