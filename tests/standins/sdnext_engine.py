"""SD.Next STAND-IN engine (not a real SD.Next): request checks, LoRA folder, job state and fake images.

No model runs here. The engine only follows the contract in docs/sdnext-contract.md
closely enough that a client can be tested against it: a global queue lock, step-by-step progress,
interrupt/skip, LoRA name resolution and the `info` JSON. The HTTP layer is in `sdnext.py`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import math
import random
import re
import struct
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

SAMPLERS = [
    "Euler", "Euler a", "Euler FlowMatch", "DPM++", "DPM++ 2M", "DPM++ 3M", "DPM++ SDE", "DPM++ 2M SDE",
    "DPM SDE", "UniPC", "DDIM", "Heun", "LMSD", "KDPM2", "KDPM2 a", "DEIS", "LCM", "TCD",
]  # fmt: skip
LORA_SUFFIXES = {".safetensors", ".ckpt", ".pt"}
TAG_RE = re.compile(r"<(\w+):([^>]+)>")
MAX_SIDE = 2048  # the stand-in renders real pixels; keep a stray huge request from eating memory
OPTION_DEFAULTS: dict[str, Any] = {
    "sd_model_checkpoint": None,
    "samples_format": "jpg",
    "return_grid": True,
    "keep_incomplete": True,
    "extra_networks_default_multiplier": 1.0,
    "lora_add_hashes_to_infotext": False,
    "server_rate_limit": 300,
    "show_progress_type": "TAESD",
}


class ApiError(Exception):
    """An error SD.Next reports through its exception handler (§11) (HTTPException or an uncaught exception)."""

    def __init__(self, status: int, detail: str, error: str = "HTTPException", errors: str | None = None):
        super().__init__(detail)
        self.status, self.detail, self.error = status, detail, error
        self.errors = f"{status}: {detail}" if errors is None else errors  # str() of a starlette HTTPException

    def body(self) -> dict:
        return {"error": self.error, "code": self.status, "detail": self.detail, "body": "", "errors": self.errors}


class Stopped(Exception):
    """The stand-in is shutting down: drop the connection instead of answering."""


def read_safetensors_metadata(path: Path) -> dict:
    """`__metadata__` of a safetensors file (8-byte little-endian length, then a JSON header); {} if unreadable."""
    try:
        with path.open("rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(size)) if 2 <= size <= 100_000_000 else {}
    except (OSError, struct.error, ValueError):
        return {}
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict):
        return {}
    for key, value in metadata.items():  # SD.Next decodes values that are themselves JSON objects (§9)
        if isinstance(value, str) and value.startswith("{"):
            with contextlib.suppress(ValueError):
                metadata[key] = json.loads(value)
    return metadata


class LoraLibrary:
    """The LoRA folder as SD.Next sees it: name / fullname / alias per file (§9)."""

    def __init__(self, root: Path | None):
        self.root = root
        self.entries: list[dict] = []
        self.scan()

    def scan(self) -> None:
        self.entries = []
        if self.root is None or not self.root.is_dir():
            return
        for path in sorted(self.root.rglob("*")):
            if path.suffix.lower() not in LORA_SUFFIXES or not path.is_file():
                continue
            metadata = read_safetensors_metadata(path) if path.suffix.lower() == ".safetensors" else {}
            name = path.stem.replace(".", "_")
            alias = metadata.get("ss_output_name") or name
            fullname = path.relative_to(self.root).with_suffix("").as_posix()
            self.entries.append(
                {
                    "name": name,
                    "alias": alias,
                    "fullname": fullname,
                    "stem": path.stem,
                    "path": str(path),
                    "metadata": metadata,
                }
            )

    def find(self, tag_name: str) -> dict | None:
        for entry in self.entries:
            if tag_name in (entry["name"], entry["fullname"], entry["stem"]):
                return entry
        return None

    def resolve(self, tag_names: list[str]) -> list[str]:
        """Names of the LoRAs that would load; unknown names trigger one rescan and are then skipped."""
        if any(self.find(n) is None for n in tag_names):
            self.scan()
        names = [entry["name"] for n in tag_names if (entry := self.find(n))]
        return list(dict.fromkeys(names))


def requested_loras(prompt: str, default_multiplier: float = 1.0) -> list[str]:
    """Names from `<lora:...>` tags (§9), leaving out tags whose text-encoder and UNet weights are all 0."""
    names = []
    for kind, body in TAG_RE.findall(prompt):
        items = body.split(":")
        positional = [item for item in items if "=" not in item]
        if kind != "lora" or not positional:
            continue
        named = dict(item.split("=", 1) for item in items if "=" in item)
        multiplier = positional[1] if len(positional) > 1 else str(default_multiplier)
        unet = named.get("unet", multiplier)
        weights = [named.get("te", multiplier)] + [named.get(k, unet) for k in ("in", "mid", "out")]
        if not all(_is_zero(w) for w in weights):
            names.append(positional[0])
    return names


def _is_zero(weight: str) -> bool:
    try:
        return float(weight) == 0
    except ValueError:  # step-scheduled weights like "0@0,1@0.5"
        return False


def make_checkpoint(name: str) -> dict:
    sha256 = hashlib.sha256(name.encode()).hexdigest()
    return {
        "title": f"{name} [{sha256[:10]}]",
        "model_name": name,
        "type": "safetensors",
        "sha256": sha256,
        "filename": f"/models/Stable-diffusion/{name}.safetensors",
        "hash": sha256[:10],
        "config": None,
    }


def render(width: int, height: int, seed: int, lines: list[str], fmt: str = "jpg") -> bytes:
    """A real image file labelled "SD.Next stand-in": seed-coloured gradient plus the given text."""
    rng = random.Random(seed)
    top, bottom = (tuple(rng.randrange(40, 200) for _ in range(3)) for _ in range(2))
    mask = Image.linear_gradient("L").resize((width, height))
    image = Image.composite(Image.new("RGB", (width, height), bottom), Image.new("RGB", (width, height), top), mask)
    draw = ImageDraw.Draw(image)
    size = max(6, min(width, height) // 20)
    font = ImageFont.load_default(size=size)
    chars = max(8, int(width / (size * 0.55)))
    y = size // 2
    for line in ["SD.Next stand-in", *lines]:
        for start in range(0, max(len(line), 1), chars):
            draw.text((size // 2, y), line[start : start + chars], fill=(255, 255, 255), font=font)
            y += int(size * 1.3)
    return _encode(image, fmt)


def _encode(image: Image.Image, fmt: str) -> bytes:
    """Encode like SD.Next's `samples_format` option (jpg by default)."""
    buffer = io.BytesIO()
    image.save(buffer, {"png": "PNG", "webp": "WEBP"}.get(fmt.lower(), "JPEG"), quality=85)
    return buffer.getvalue()


def _grid(images: list[bytes], fmt: str) -> bytes:
    tiles = [Image.open(io.BytesIO(data)) for data in images]
    cols = math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    width, height = tiles[0].size
    grid = Image.new("RGB", (cols * width, rows * height))
    for i, tile in enumerate(tiles):
        grid.paste(tile, ((i % cols) * width, (i // cols) * height))
    return _encode(grid, fmt)


def _timestamp() -> str:
    return time.strftime("%Y%m%d%H%M%S")


class JobState:
    """`shared.state`: what /progress and /status report; flags are reset by every begin() (§8)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.time()
        self.id: str | None = None
        self.job, self.job_timestamp, self.seed = "", _timestamp(), 0
        self.job_count = self.job_no = self.sampling_step = self.sampling_steps = 0
        self.skipped = self.interrupted = False
        self.time_start = time.time()
        # What /progress says while idle. Real SD.Next keeps the last job's sampling_step, so an idle
        # server can report 1.0 (docs/sdnext-contract.md §7); 0.0 by default, tests set 1.0 to see that case.
        self.idle_progress = 0.0

    def begin(self, job: str, job_count: int, job_no: int, steps: int, seed: int) -> None:
        with self._lock:
            self.id = uuid.uuid4().hex[:15]
            self.job, self.job_count, self.job_no, self.sampling_steps, self.seed = job, job_count, job_no, steps, seed
            self.sampling_step = 0
            self.skipped = self.interrupted = False
            self.time_start = time.time()
            if job_no == 0:
                self.job_timestamp = _timestamp()

    def step(self, step: int) -> None:
        with self._lock:
            self.sampling_step = step

    def end(self) -> None:
        with self._lock:
            self.job, self.job_count = "", 0

    def interrupt(self) -> None:
        with self._lock:
            self.interrupted = True

    def skip(self) -> None:
        with self._lock:
            self.skipped = True

    def _fraction(self) -> float:
        if not self.job:
            return self.idle_progress
        if not self.job_count or not self.sampling_steps:
            return 0.0
        done = self.sampling_steps * self.job_no + self.sampling_step
        return min(1.0, done / (self.sampling_steps * self.job_count))

    def progress(self, with_preview: bool) -> dict:
        with self._lock:
            fraction, elapsed = self._fraction(), time.time() - self.time_start
            preview = None
            if with_preview and self.job and self.sampling_step > 0:
                text = [f"preview step {self.sampling_step}/{self.sampling_steps}"]
                preview = base64.b64encode(render(64, 64, self.seed, text)).decode()
            return {
                "id": self.id, "progress": round(fraction, 2),
                "eta_relative": round(elapsed / fraction - elapsed, 2) if fraction else 0.0,
                "state": {"skipped": self.skipped, "interrupted": self.interrupted, "job": self.job,
                          "job_count": self.job_count, "job_timestamp": self.job_timestamp, "job_no": self.job_no,
                          "sampling_step": self.sampling_step, "sampling_steps": self.sampling_steps},
                "current_image": preview, "textinfo": None,
            }  # fmt: skip

    def status(self) -> dict:
        with self._lock:
            fraction, elapsed = self._fraction(), time.time() - self.time_start
            flag = "interrupted" if self.interrupted else "skipped" if self.skipped else "idle"
            return {
                "status": "running" if self.job else flag, "task": self.job, "timestamp": self.job_timestamp,
                "current": self.job, "id": self.id, "job": self.job_no, "jobs": self.job_count,
                "total": self.job_count, "step": self.sampling_steps * self.job_no + self.sampling_step,
                "steps": self.sampling_steps * self.job_count, "queued": 0,
                "uptime": round(time.time() - self.started), "elapsed": round(elapsed, 2) if self.job else 0,
                "eta": round(elapsed / fraction - elapsed, 2) if fraction else None, "progress": round(fraction, 2),
            }  # fmt: skip


class Engine:
    """The model side of the stand-in: one global queue lock, options, checkpoints and txt2img."""

    def __init__(self, lora_dir: Path | None, step_delay: float, checkpoints: list[str], stopping: threading.Event):
        self.queue_lock = threading.Lock()
        self.state = JobState()
        self.loras = LoraLibrary(lora_dir)
        self.step_delay = step_delay
        self.stopping = stopping
        self.checkpoints = [make_checkpoint(name) for name in checkpoints]
        self.options: dict[str, Any] = {"lora_dir": str(lora_dir or "")}
        if self.checkpoints:
            self.options["sd_model_checkpoint"] = self.checkpoints[0]["title"]
        self.loaded_loras: list[str] = []

    def option(self, key: str) -> Any:
        return self.options.get(key, OPTION_DEFAULTS.get(key))

    def model(self) -> dict | None:
        return self.find_checkpoint(self.option("sd_model_checkpoint") or "")

    def find_checkpoint(self, name: str) -> dict | None:
        return next((c for c in self.checkpoints if name in (c["title"], c["model_name"], c["filename"])), None)

    def locked(self) -> _QueueLock:
        return _QueueLock(self.queue_lock, self.stopping)

    def set_options(self, values: dict) -> list[dict]:
        """POST /options: a model switch waits for the queue lock like SD.Next's `wrap_queued_call`."""
        updated = []
        for key, value in values.items():
            if key == "sd_model_checkpoint":
                checkpoint = self.find_checkpoint(str(value))
                value = checkpoint["title"] if checkpoint else None
            ok = key in OPTION_DEFAULTS and value is not None and self.option(key) != value
            if ok and key == "sd_model_checkpoint":
                with self.locked():
                    self.options[key] = value
            elif ok:
                self.options[key] = value
            updated.append({key: ok})
        return updated

    def txt2img(self, params: dict, on_start: Callable[[], None]) -> dict:
        """Blocking generation under the queue lock; interrupt keeps partial images (keep_incomplete)."""
        sampler = params["sampler_name"] or "Default"
        if sampler.lower() != "default" and sampler.lower() not in {s.lower() for s in SAMPLERS}:
            raise ApiError(404, "Sampler not found")
        with self.locked():
            if params["sd_model_checkpoint"]:
                checkpoint = self.find_checkpoint(params["sd_model_checkpoint"])
                if checkpoint is None:  # SD.Next aborts the job silently
                    return {"images": [], "parameters": params, "info": ""}
                self.options["sd_model_checkpoint"] = checkpoint["title"]
            model = self.model()
            if model is None:  # no checkpoint loaded: a "soft" failure with 200 (§6)
                return {"images": [], "parameters": params, "info": ""}
            return self._generate(params, sampler, model, on_start)

    def _generate(self, params: dict, sampler: str, model: dict, on_start: Callable[[], None]) -> dict:
        job = _Job(params, sampler, model, self.option)
        job.loras = self.loaded_loras = self.loras.resolve(
            requested_loras(job.prompt, self.option("extra_networks_default_multiplier"))
        )
        on_start()
        images, infotexts = [], []
        for iteration in range(job.n_iter):
            batch_seeds = job.seeds[iteration * job.batch : (iteration + 1) * job.batch]
            self.state.begin("Inference", job.n_iter, iteration, job.steps, batch_seeds[0])
            done = 0
            while done < job.steps and not (self.state.interrupted or self.state.skipped or self.stopping.is_set()):
                time.sleep(self.step_delay)
                done += 1
                self.state.step(done)
            if self.stopping.is_set():
                raise Stopped
            if done == job.steps or (done and job.keep_incomplete):
                images += [job.image(seed, done) for seed in batch_seeds]
                infotexts += [job.infotext(seed) for seed in batch_seeds]
            if self.state.interrupted:
                break
        self.state.end()
        first = 1 if job.return_grid and len(images) > 1 else 0
        if first:
            images.insert(0, _grid(images, job.fmt))
            infotexts.insert(0, infotexts[0])
        info = job.info(first, infotexts, self.state.job_timestamp)
        encoded = [base64.b64encode(data).decode() for data in images] if params["send_images"] else []
        return {"images": encoded, "parameters": params, "info": json.dumps(info)}


class _Job:
    """One txt2img request with its defaults resolved: sizes, seeds, output options."""

    def __init__(self, params: dict, sampler: str, model: dict, option: Callable[[str], Any]):
        self.params, self.sampler, self.model = params, sampler, model
        self.prompt, self.negative = params["prompt"], params["negative_prompt"]
        self.width, self.height = (max(8, min(MAX_SIDE, params[k] // 8 * 8)) for k in ("width", "height"))
        self.batch, self.n_iter, self.steps = (max(1, params[k]) for k in ("batch_size", "n_iter", "steps"))
        self.seed = params["seed"] if params["seed"] != -1 else random.randrange(2**32)
        self.subseed = params["subseed"] if params["subseed"] != -1 else random.randrange(2**32)
        self.seeds = [self.seed + i for i in range(self.batch * self.n_iter)]
        self.keep_incomplete, self.return_grid = (
            option(k) if params[k] is None else params[k] for k in ("keep_incomplete", "return_grid")
        )
        self.fmt = option("samples_format")
        self.loras: list[str] = []

    def image(self, seed: int, done: int) -> bytes:
        lines = [self.prompt, f"seed {seed}", f"LoRAs: {', '.join(self.loras) or 'none'}"]
        if done < self.steps:
            lines.append(f"incomplete: step {done}/{self.steps}")
        return render(self.width, self.height, seed, lines, self.fmt)

    def infotext(self, seed: int) -> str:
        """A1111-style infotext; `LoRA networks:` lists only the LoRAs that loaded."""
        lines = [self.prompt] + ([f"Negative prompt: {self.negative}"] if self.negative else [])
        fields = [
            f"Steps: {self.steps}", f"Size: {self.width}x{self.height}", f"Sampler: {self.sampler}",
            f"Seed: {seed}", f"CFG scale: {self.params['cfg_scale']}", "App: SD.Next", "Version: stand-in",
            "Operations: txt2img", f"Model: {self.model['model_name']}", f"Model hash: {self.model['hash']}",
        ]  # fmt: skip
        if self.loras:
            fields.append(f"LoRA networks: {', '.join(self.loras)}")
        return "\n".join([*lines, ", ".join(fields)])

    def info(self, first: int, infotexts: list[str], job_timestamp: str) -> dict:
        p, count = self.params, len(self.seeds)
        return {
            "prompt": self.prompt, "all_prompts": [self.prompt] * count, "negative_prompt": self.negative,
            "all_negative_prompts": [self.negative] * count, "seed": self.seed, "all_seeds": self.seeds,
            "subseed": self.subseed, "all_subseeds": [self.subseed + i for i in range(count)],
            "subseed_strength": p["subseed_strength"], "width": self.width, "height": self.height,
            "sampler_name": self.sampler, "cfg_scale": p["cfg_scale"], "cfg_end": p["cfg_end"], "steps": self.steps,
            "batch_size": self.batch, "detailer": False, "detailer_model": None, "sd_model_hash": self.model["hash"],
            "seed_resize_from_w": -1, "seed_resize_from_h": -1, "denoising_strength": p["denoising_strength"],
            "extra_generation_params": {"LoRA networks": ", ".join(self.loras)} if self.loras else {},
            "index_of_first_image": first, "infotexts": infotexts, "styles": p["styles"] or [],
            "job_timestamp": job_timestamp, "clip_skip": p["clip_skip"],
        }  # fmt: skip


class _QueueLock:
    """`with engine.locked():` waits for the global queue lock but gives up when the stand-in stops."""

    def __init__(self, lock: threading.Lock, stopping: threading.Event):
        self.lock, self.stopping = lock, stopping

    def __enter__(self) -> None:
        while not self.lock.acquire(timeout=0.05):
            if self.stopping.is_set():
                raise Stopped

    def __exit__(self, *exc: object) -> None:
        self.lock.release()
