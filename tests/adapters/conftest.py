import os
import time
from pathlib import Path

import pytest

from tests.factories.lora_files import kohya_metadata, write_lora


def age(*paths: Path, seconds: int = 3600) -> None:
    """Files written just now look like unfinished downloads to the hasher: date them back."""
    past = time.time() - seconds
    for path in paths:
        os.utime(path, (past, past))


@pytest.fixture
def library(tmp_path, settings):
    root = tmp_path / "Lora"
    root.mkdir()
    settings.LIBRARY_DIRS = [root]
    settings.THUMBNAIL_DIR = tmp_path / "thumbs"
    return root


def lora(root: Path, relative: str, kind: str = "sdxl", seed: int = 0, **metadata: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = path.name.removesuffix(".safetensors")
    meta = kohya_metadata(kind if kind in ("sd15", "sd2", "sdxl", "flux") else "sdxl", output_name=stem, **metadata)
    write_lora(path, kind=kind, seed=seed, max_modules=6, metadata=None if kind == "peft_sdxl" else meta)
    age(path)
    return path


from tests.adapters.civitai_fixtures import civitai  # noqa: E402, F401 - the Civitai stand-in fixture
