"""Civitai STAND-IN: a small real HTTP server following the shapes of Civitai's public REST API. NOT Civitai.

Tests, the ``civitai`` benchmark and ``make demo`` talk to this instead of civitai.com. It answers
``GET /api/v1/model-versions/by-hash/{hash}`` (SHA256, AutoV2 or AutoV3, any case), ``/api/v1/model-versions/{id}``
and ``/api/v1/models/{id}`` (``modelVersions`` newest first), 404 ``{"error": "Model not found"}`` for the
unknown, and serves the example images it lists (real PNGs labelled "Civitai stand-in"). Every answer carries
``X-Stand-In: civitai`` and JSON answers a ``"standIn"`` note. Faults are injected with ``set_fault``.

    python -m tests.standins.civitai --port 7862 [--lora-dir DIR] [--delay 0.05]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import itertools
import json
import logging
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

LABEL = "Civitai STAND-IN (tests/standins/civitai.py), not civitai.com"
FAULTS = {"429", "500", "hang", "html", "huge", "not_image", "bomb"}
NOT_FOUND = {"error": "Model not found"}


@dataclass
class _Fault:
    name: str
    times: int | None = None
    path: str = ""  # only requests whose path starts with this
    retry_after: str = "1"
    seconds: float = 30.0


@dataclass
class StandInLora:
    """What the stand-in knows about one LoRA file (one model version)."""

    sha256: str
    tensor_sha256: str = ""
    name: str = "Stand-in LoRA"
    version_name: str = "v1.0"
    trained_words: list[str] = field(default_factory=lambda: ["standin style"])
    base_model: str = "SDXL 1.0"
    description: str = "<p>A LoRA described by the <b>Civitai stand-in</b>.</p>"
    tags: list[str] = field(default_factory=lambda: ["style", "stand-in"])
    image_nsfw: list[int] = field(default_factory=lambda: [1, 4])  # one image per level
    newer_version: bool = False  # the model also has a newer version (an update is available)
    model_id: int = 0
    version_id: int = 0
    newer_version_id: int | None = None


def png_bytes(text: str, size: tuple[int, int] = (256, 256), color: tuple[int, int, int] = (40, 90, 160)) -> bytes:
    """A real PNG labelled with ``text`` (Pillow is already a dependency of the app)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, color)
    draw = ImageDraw.Draw(image)
    draw.text((10, 10), "Civitai stand-in", fill=(255, 255, 255))
    draw.text((10, 30), text[:40], fill=(255, 255, 0))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def bomb_png(width: int = 40_000, height: int = 40_000) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels: a decompression bomb for a careless reader."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


class CivitaiStandIn:
    """The stand-in on a background thread (also a context manager). ``delay``: seconds before each answer."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, delay: float = 0.0):
        self.host, self.port, self.delay = host, port, delay
        self.models: dict[int, dict] = {}
        self.versions: dict[int, dict] = {}
        self.hashes: dict[str, int] = {}  # lower-case hash -> version id
        self.images: dict[str, bytes] = {}
        self.requests: list[dict] = []  # {"path", "at" (monotonic), "authorization"}
        self._ids = itertools.count(1000)
        self._fault: _Fault | None = None
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> CivitaiStandIn:
        self._httpd = _Server((self.host, self.port), _Handler)
        self._httpd.standin = self
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="civitai-standin", daemon=True
        )
        self._thread.start()
        logger.info("%s listening on %s", LABEL, self.url)
        return self

    def stop(self) -> None:
        self._release.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join()
            self._httpd = self._thread = None

    def __enter__(self) -> CivitaiStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_fault(self, fault: str | None, **options: Any) -> None:
        """Fault for the next requests (``times`` of them, or until cleared with None): "429" (``retry_after``),
        "500", "hang" (``seconds``), "html" (a CDN error page with status 200), "huge" (a 20 MB JSON body),
        "not_image" / "bomb" (image requests get text / a decompression bomb). ``path``: a path prefix."""
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}: use one of {sorted(FAULTS)}")
        with self._lock:
            self._release.set()  # let requests hanging under the previous fault go
            self._release = threading.Event()
            self._fault = _Fault(fault, **options) if fault else None

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            fault = self._fault
            if fault is None or not path.startswith(fault.path):
                return None
            if fault.name in ("not_image", "bomb") and not path.startswith("/images/"):
                return None
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self._fault = None
            return fault

    # --- catalog ------------------------------------------------------------------------------------

    def add_lora(self, lora: StandInLora) -> StandInLora:
        """Publish a model with this file as a version (and a newer version after it, if asked)."""
        lora.model_id = lora.model_id or next(self._ids)
        lora.version_id = next(self._ids)
        version = self._version(lora, lora.version_id, lora.version_name, with_file=True)
        versions = [version]
        if lora.newer_version:
            lora.newer_version_id = next(self._ids)
            newer = self._version(lora, lora.newer_version_id, "v2.0", with_file=False)
            versions.insert(0, newer)  # newest first, as Civitai lists them
        model = {
            "id": lora.model_id,
            "name": lora.name,
            "description": lora.description,
            "type": "LORA",
            "poi": False,
            "nsfw": any(level >= 4 for level in lora.image_nsfw),
            "nsfwLevel": sum(set(lora.image_nsfw)),
            "tags": lora.tags,
            "creator": {"username": "standin-creator", "image": None},
            "stats": {"downloadCount": 0, "thumbsUpCount": 0},
            "modelVersions": versions,
        }
        self.models[lora.model_id] = model
        for entry in versions:
            self.versions[entry["id"]] = entry
        keys = {lora.sha256.lower(), lora.sha256[:10].lower()}
        if lora.tensor_sha256:
            keys.add(lora.tensor_sha256[:12].lower())
        for key in keys:
            self.hashes[key] = lora.version_id
        return lora

    def _version(self, lora: StandInLora, version_id: int, name: str, with_file: bool) -> dict:
        images = []
        for index, level in enumerate(lora.image_nsfw):
            path = f"/images/{version_id}-{index}.png"
            color = (40, 90, 160) if level <= 2 else (160, 40, 60)
            self.images[path] = png_bytes(f"{lora.name} {name} #{index} nsfw {level}", color=color)
            meta = {
                "prompt": f"{lora.trained_words[0] if lora.trained_words else ''}, a lighthouse <lora:{lora.name}:0.8>",
                "negativePrompt": "blurry",
                "seed": 1234 + index,
                "steps": 28,
                "sampler": "DPM++ 2M Karras",
                "cfgScale": 6.5,
                "Size": "256x256",
                "Model": "sd_xl_base_1.0",
                "resources": [{"name": lora.name, "type": "lora", "weight": 0.8, "hash": lora.sha256[:10]}],
            }
            images.append(
                {
                    "url": self.url + path,
                    "nsfwLevel": level,
                    "width": 256,
                    "height": 256,
                    "hash": "U00000fQfQfQfQfQfQfQfQfQfQfQ",
                    "type": "image",
                    "meta": meta if index % 2 == 0 else None,
                }
            )
        files = []
        if with_file:
            hashes = {"SHA256": lora.sha256.upper(), "AutoV2": lora.sha256[:10].upper(), "CRC32": "0BADF00D"}
            if lora.tensor_sha256:
                hashes["AutoV3"] = lora.tensor_sha256[:12].upper()
            files.append(
                {
                    "id": next(self._ids),
                    "name": f"{lora.name.replace(' ', '_')}.safetensors",
                    "type": "Model",
                    "sizeKB": 1.0,
                    "primary": True,
                    "metadata": {"format": "SafeTensor", "fp": "fp16", "size": "pruned"},
                    "hashes": hashes,
                    "downloadUrl": f"{self.url}/api/download/models/{version_id}",
                }
            )
        return {
            "id": version_id,
            "modelId": lora.model_id,
            "name": name,
            "baseModel": lora.base_model,
            "baseModelType": "Standard",
            "trainedWords": lora.trained_words,
            "description": f"<p>{name} of {lora.name}</p>",
            "createdAt": "2026-01-01T00:00:00.000Z",
            "updatedAt": "2026-01-01T00:00:00.000Z",
            "publishedAt": "2026-01-01T00:00:00.000Z",
            "nsfwLevel": sum(set(lora.image_nsfw)),
            "status": "Published",
            "files": files,
            "images": images,
            "downloadUrl": f"{self.url}/api/download/models/{version_id}",
        }

    def add_lora_file(self, path: Path, **options: Any) -> StandInLora:
        """Publish a real ``.safetensors`` file by its hashes (``make demo``)."""
        raw = path.read_bytes()
        offset = 8 + int.from_bytes(raw[:8], "little")
        lora = StandInLora(hashlib.sha256(raw).hexdigest(), hashlib.sha256(raw[offset:]).hexdigest(), **options)
        return self.add_lora(lora)

    # --- answers ------------------------------------------------------------------------------------

    def handle(self, path: str) -> tuple[int, bytes, str, dict]:
        """(status, body, content type, extra headers) for one GET."""
        fault = self._take_fault(path)
        if fault is not None:
            answer = self._faulty(fault)
            if answer is not None:
                return answer
        if self.delay:
            time.sleep(self.delay)
        if path.startswith("/images/"):
            data = self.images.get(path)
            return (200, data, "image/png", {}) if data else (404, b"not found", "text/plain", {})
        parts = path.strip("/").split("/")
        found: dict | None = None
        if parts[:3] == ["api", "v1", "model-versions"] and len(parts) == 5 and parts[3] == "by-hash":
            version_id = self.hashes.get(parts[4].lower())
            found = self._with_model(self.versions[version_id]) if version_id else None
        elif parts[:3] == ["api", "v1", "model-versions"] and len(parts) == 4 and parts[3].isdigit():
            version = self.versions.get(int(parts[3]))
            found = self._with_model(version) if version else None
        elif parts[:3] == ["api", "v1", "models"] and len(parts) == 4 and parts[3].isdigit():
            found = self.models.get(int(parts[3]))
        else:
            return _json({"error": f"No route {path} (this is the {LABEL})"}, 404)
        if found is None:
            return _json({**NOT_FOUND, "standIn": LABEL}, 404)
        return _json({**found, "standIn": LABEL})

    def _with_model(self, version: dict) -> dict:
        model = self.models[version["modelId"]]
        return {**version, "model": {"name": model["name"], "type": model["type"], "nsfw": model["nsfw"], "poi": False}}

    def _faulty(self, fault: _Fault) -> tuple[int, bytes, str, dict] | None:
        if fault.name == "429":
            body = {"error": "Too many requests", "standIn": LABEL}
            return 429, json.dumps(body).encode(), "application/json", {"Retry-After": fault.retry_after}
        if fault.name == "500":
            return 500, b'{"error": "Internal server error (stand-in fault)"}', "application/json", {}
        if fault.name == "hang":
            self._release.wait(fault.seconds)
            return None
        if fault.name == "html":
            page = b"<!DOCTYPE html><html><head><title>civitai.com | 502: Bad gateway</title></head>"
            return 200, page + b"<body>Cloudflare (stand-in)</body></html>", "text/html; charset=UTF-8", {}
        if fault.name == "huge":
            return 200, b'{"padding": "' + b"x" * (20 * 1024 * 1024) + b'"}', "application/json", {}
        if fault.name == "not_image":
            return 200, b"<html>this is not an image</html>", "image/png", {}
        return 200, bomb_png(), "image/png", {}


def _json(payload: Any, status: int = 200) -> tuple[int, bytes, str, dict]:
    return status, json.dumps(payload).encode(), "application/json", {}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: CivitaiStandIn


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "Civitai-stand-in"

    def do_GET(self) -> None:
        standin = self.server.standin
        path = urlsplit(self.path).path
        standin.requests.append(
            {"path": path, "at": time.monotonic(), "authorization": self.headers.get("Authorization", "")}
        )
        try:
            status, body, content_type, headers = standin.handle(path)
        except Exception:  # a bug in the stand-in: answer like a server would
            logger.exception("civitai stand-in failed")
            status, body, content_type, headers = 500, b'{"error": "stand-in bug"}', "application/json", {}
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Stand-In", "civitai")
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up (timeout) meanwhile
            pass

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)


def main(argv: list[str] | None = None) -> None:
    """Run the stand-in in the foreground (``make demo``), publishing the LoRAs of ``--lora-dir``."""
    parser = argparse.ArgumentParser(description=f"{LABEL}: for tests and demos.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7862)
    parser.add_argument("--lora-dir", type=Path)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    standin = CivitaiStandIn(args.host, args.port, args.delay).start()
    if args.lora_dir:
        for index, path in enumerate(sorted(args.lora_dir.glob("*.safetensors"))):
            if index % 3 == 2:
                continue  # one in three is "not on Civitai"
            name = path.stem.replace("_", " ").title()
            standin.add_lora_file(
                path, name=name, trained_words=[path.stem.replace("_", " ")], newer_version=index == 0
            )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        standin.stop()


if __name__ == "__main__":
    main()
