"""A realistic, cached LoRA library for the benchmarks: real kohya SDXL files, sidecars and previews.

Generating 10,000 files takes about a minute, so the library is kept on disk and reused while a
marker file records the same parameters. Every mtime is an hour in the past, because the hasher
postpones files modified in the last few seconds (they may still be downloading).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import sys
import time
from pathlib import Path

from tests.factories.lora_files import kohya_metadata, write_lora
from tests.factories.sidecars import write_a1111_json, write_preview

# Bump when the generated content changes, so cached libraries are rebuilt.
LAYOUT_VERSION = 1
MARKER = ".bench-library.json"
FOLDER_PATTERN = re.compile(r"folder_\d+")
# Rank 8, F16: the first four SDXL modules (the ones detection looks at: UNet cross-attention and
# both text encoders, plus a proj_in) and the kohya header make a file of about 130 KB (127 KiB).
MAX_MODULES = 4

# Word lists (also the gallery benchmark's) read better as text than as one-item-per-line literals.
STYLES = "pixel ink watercolor neon retro anime noir pastel gothic cyber oil clay lowpoly sketch".split()  # noqa: SIM905
SUBJECTS = "knight witch dragon city forest robot cat samurai castle portrait ship garden desert".split()  # noqa: SIM905
TAGS = (  # noqa: SIM905
    "1girl 1boy solo outdoors indoors sword armor hat smile long_hair short_hair blue_eyes red_eyes "
    "night sunset rain snow flowers water sky clouds building street car tree mountain ocean "
    "detailed_background simple_background monochrome colorful glowing magic fantasy scifi "
    "steampunk cyberpunk medieval modern futuristic horror cute chibi realistic painterly lineart"
).split()


def _metadata(index: int, name: str, rng: random.Random) -> dict[str, str]:
    """kohya metadata with a per-file name, trigger, caption tags and training parameters."""
    trigger = name.rsplit("_", 1)[0].replace("_", " ")
    tags = rng.sample(TAGS, rng.randint(4, 12))
    frequency = {tag: rng.randint(1, 120) for tag in tags}
    return kohya_metadata(
        "sdxl",
        output_name=name,
        ss_network_dim="8",
        ss_network_alpha="4.0",
        ss_seed=str(index),
        ss_session_id=str(1_000_000 + index),
        ss_training_comment=f"trigger: {trigger}",
        ss_tag_frequency=json.dumps({f"10_{trigger}": frequency}),
        ss_dataset_dirs=json.dumps({f"10_{trigger}": {"n_repeats": 10, "img_count": max(frequency.values())}}),
        **{
            "modelspec.title": trigger.title(),
            "modelspec.trigger_phrase": trigger,
            "modelspec.tags": ", ".join(rng.sample(tags, min(3, len(tags)))),
        },
    )


def _remove_stale(root: Path) -> None:
    """Delete a previous generation; refuse if the folder holds anything this module did not write."""
    foreign = [p.name for p in root.iterdir() if p.name != MARKER and not FOLDER_PATTERN.fullmatch(p.name)]
    if foreign:
        raise RuntimeError(f"{root} holds files the benchmark did not generate ({foreign[:3]}); use another folder")
    shutil.rmtree(root)


def ensure_library(root: Path, count: int = 10_000, folders: int = 50) -> Path:
    """The library folder ``root``, generated once for these parameters and reused afterwards."""
    root = Path(root)
    params = {"version": LAYOUT_VERSION, "count": count, "folders": folders}
    marker = root / MARKER
    if marker.is_file() and json.loads(marker.read_text()) == params:
        return root
    if root.exists():
        _remove_stale(root)
    started = time.monotonic()
    past = time.time() - 3600
    for index in range(count):
        rng = random.Random(index)
        name = f"{rng.choice(STYLES)}_{rng.choice(SUBJECTS)}_{index:05d}"
        path = root / f"folder_{index % folders:02d}" / f"{name}.safetensors"
        written = [write_lora(path, rank=8, metadata=_metadata(index, name, rng), max_modules=MAX_MODULES, seed=index)]
        if index % 3 == 0:
            trigger = name.rsplit("_", 1)[0].replace("_", ", ")
            written.append(
                write_a1111_json(
                    path,
                    description=f"{trigger.title()} style LoRA.",
                    sd_version="SDXL",
                    activation_text=trigger,
                    preferred_weight=round(rng.uniform(0.5, 1.0), 2),
                    notes=f"benchmark file {index}",
                )
            )
        if index % 6 < 2:  # a third have previews, half of those also a .json
            written.append(write_preview(path, "preview.png", size=(64, 96)))
        for file in written:
            os.utime(file, (past, past))
        if (index + 1) % 1000 == 0 or index + 1 == count:
            elapsed = time.monotonic() - started
            print(f"library: {index + 1}/{count} files written ({elapsed:.0f} s)", file=sys.stderr, flush=True)
    marker.write_text(json.dumps(params))
    return root


def default_library() -> Path:
    """The benchmarks' shared library under the data dir; LORA_MANAGER_BENCH_FILES shrinks it for a quick run."""
    from django.conf import settings

    count = int(os.environ.get("LORA_MANAGER_BENCH_FILES", "10000"))
    return ensure_library(settings.DATA_DIR / "library", count=count, folders=min(50, count))


def model_files(library: Path) -> list[Path]:
    """Every ``.safetensors`` file of the library, in a stable order."""
    return sorted(Path(library).rglob("*.safetensors"))


def warm_page_cache(library: Path) -> int:
    """Read every file once so timings measure the code, not the disk; returns the bytes read."""
    total = 0
    for path in Path(library).rglob("*"):
        if path.is_file():
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    total += len(chunk)
    return total
