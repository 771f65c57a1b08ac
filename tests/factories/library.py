"""A realistic LoRA library on disk: hundreds of real ``.safetensors`` files in nested folders, every
sidecar style other tools leave, several base models and network types, and a few broken files.

Browser journeys scan it with the real scanner (tests/e2e/conftest.py), so search, filters, folders and
paging run on a library shaped like a user's, not on two hand-made rows.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.factories import sidecars
from tests.factories.lora_files import kohya_metadata, write_lora, write_raw

STYLES = ("inkwash", "pixel", "neon", "retro", "noir", "pastel")
SUBJECTS = ("knight", "witch", "dragon", "city", "robot")

# (folder, factory kind, conv, Civitai baseModel written by sidecars or "" for none, ss tag)
FAMILIES = (
    ("sd15/characters", "sd15", False, "SD 1.5", "sd15"),
    ("sd15/styles", "sd15", True, "SD 1.5", "sd15"),  # conv layers: LoCon
    ("sd15/styles/loha", "loha", False, "SD 1.5", "sd15"),
    ("sdxl/characters", "sdxl", False, "SDXL 1.0", "sdxl"),
    ("sdxl/pony", "sdxl", False, "Pony", "pony"),
    ("sdxl/illustrious", "sdxl", False, "Illustrious", "illustrious"),
    ("sdxl/concepts/lokr", "lokr", False, "SDXL 1.0", "sdxl"),
    ("sdxl/concepts/dora", "dora", False, "SDXL 1.0", "sdxl"),
    ("flux", "flux", False, "Flux.1 D", "flux"),
    ("sd2", "sd2", False, "SD 2.1", "sd2"),
)
TOPIC_TAGS = ("character", "style", "concept", "clothing", "background")
GOOD_COUNT = 300


@dataclass
class Library:
    """What was written, for assertions: good files by folder, broken files and their kinds."""

    root: Path
    good: list[Path] = field(default_factory=list)
    broken: dict[str, Path] = field(default_factory=dict)  # kind -> path
    bad_preview: Path | None = None  # a good model whose only preview sidecar is not an image

    def count_under(self, folder: str) -> int:
        """Good models in ``folder`` (relative to the root) and its subfolders."""
        prefix = folder.strip("/") + "/"
        return sum(1 for p in self.good if p.relative_to(self.root).as_posix().startswith(prefix))


def _fake_addnet_hash(stem: str) -> str:
    return hashlib.sha256(f"addnet:{stem}".encode()).hexdigest()


def write_library(root: Path, count: int = GOOD_COUNT) -> Library:
    """Write ``count`` readable LoRAs (names ``<style>_<subject>_<nnn>``) plus the broken files under ``root``."""
    library = Library(root=root)
    for i in range(count):
        folder, kind, conv, civitai_base, family_tag = FAMILIES[i % len(FAMILIES)]
        style, subject = STYLES[i % len(STYLES)], SUBJECTS[(i // len(STYLES)) % len(SUBJECTS)]
        stem = f"{style}_{subject}_{i:03d}"
        path = root / folder / f"{stem}.safetensors"
        topic = TOPIC_TAGS[i % len(TOPIC_TAGS)]
        addnet = _fake_addnet_hash(stem)
        metadata = kohya_metadata(
            kind,
            output_name=stem,
            ss_network_dim="8",
            ss_network_alpha="4.0",
            sshs_model_hash=addnet,
            ss_training_comment=f"trigger: {style} style",
            ss_tag_frequency=json.dumps(
                {f"10_{style} {subject}": {f"{style} style": 60 + i % 40, subject: 40, "1girl": i % 30, topic: 12}}
            ),
            **{"modelspec.trigger_phrase": f"{style} style", "modelspec.title": stem},
        )
        if conv:
            metadata["ss_network_args"] = json.dumps({"conv_dim": "8", "conv_alpha": "4.0"})
        write_lora(path, kind=kind, rank=8, alpha=4.0, metadata=metadata, max_modules=6, seed=i, conv=conv)
        library.good.append(path)
        _write_sidecars(path, i, stem, style, subject, topic, family_tag, civitai_base, addnet)

    # A readable model whose preview sidecar is text with an image name: no preview, one issue.
    bad_preview = root / "sd15/characters/textpreview_knight.safetensors"
    write_lora(
        bad_preview,
        kind="sd15",
        rank=8,
        max_modules=6,
        seed=10_001,
        metadata=kohya_metadata("sd15", output_name="textpreview_knight", sshs_model_hash=_fake_addnet_hash("tp")),
    )
    sidecars.write_sidecar_raw(bad_preview, ".preview.png", "this is not an image, just text\n")
    library.good.append(bad_preview)
    library.bad_preview = bad_preview

    broken = root / "broken"
    library.broken["zero bytes"] = write_raw_bytes(broken / "zero.safetensors", b"")
    library.broken["truncated header"] = write_raw(
        broken / "truncated.safetensors", b'{"__metadata__":{"ss_output_name":"trunc', header_length=4096
    )
    library.broken["not safetensors"] = write_raw_bytes(
        broken / "notes_renamed.safetensors", b"PK\x03\x04 this is a zip archive renamed to .safetensors\n" * 4
    )
    # Files written moments ago look like unfinished downloads to the hasher: date everything back an hour.
    past = time.time() - 3600
    for path in root.rglob("*"):
        os.utime(path, (past, past))
    return library


def write_raw_bytes(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _write_sidecars(
    path: Path, i: int, stem: str, style: str, subject: str, topic: str, family_tag: str, base: str, addnet: str
) -> None:
    """Rotate through the sidecar styles of A1111, Civitai Helper, SD.Next and plain folders."""
    style_kind = i % 6
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    if style_kind == 0:  # Civitai Helper: .civitai.info + .preview.png (JPEG bytes, as it writes them)
        sidecars.write_preview(path, "preview.png", size=(64, 96), real_type="jpeg")
        sidecars.write_civitai_info(
            path,
            version_id=500_000 + i,
            model_id=400_000 + i,
            model_name=f"{style.title()} {subject.title()} {i:03d}",
            trained_words=[f"{style} style", subject],
            base_model=base,
            sha256=sha,
            addnet_hash=addnet,
            file_name=path.name,
            model={"name": f"{style.title()} {subject.title()} {i:03d}", "type": "LORA", "nsfw": False, "poi": False},
        )
    elif style_kind == 1:  # A1111 extra networks: <stem>.png + user metadata <stem>.json
        sidecars.write_preview(path, "png", size=(64, 96))
        sidecars.write_a1111_json(
            path,
            description=f"{style} {subject}, tags: {topic}",
            activation_text=f"{style} style, {subject}",
            preferred_weight=0.7,
            sd_version={"sd15": "SD1", "sd2": "SD2"}.get(family_tag, "SDXL" if family_tag != "flux" else "Unknown"),
        )
    elif style_kind == 2:  # SD.Next / A1111 description text + .thumb.webp
        sidecars.write_description_txt(path, f"{style.title()} {subject}.\nTrigger: {style} style")
        sidecars.write_preview(path, "thumb.webp", size=(48, 64))
    elif style_kind == 3:  # ComfyUI-Lora-Manager metadata with tags + .preview.webp
        sidecars.write_preview(path, "preview.webp", size=(64, 96))
        sidecars.write_lm_metadata(
            path,
            sha256=sha,
            civitai={},
            model_name=f"{style.title()} {subject.title()} {i:03d}",
            base_model=base,
            tags=[topic, family_tag, style],
            trainedWords=[f"{style} style"],
            preview_url=None,
            favorite=i % 12 == 3,
        )
    elif style_kind == 4:  # empty .civitai.info (not on Civitai), no preview
        sidecars.write_civitai_info(path, empty=True)
    # style_kind 5: the bare file, as many downloads are
