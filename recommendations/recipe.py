"""The text an adapter is embedded from (the "recipe"), versioned: changing it re-embeds the library.

all-MiniLM-L6-v2 reads about 128 word pieces well and truncates at 256, so the most telling parts
come first (what it is called, how people tagged it, the words that trigger it, what it was trained
on) and the free-form description, often long and generic, comes last and short. File-name noise
(``pixelArt_v2-000010``) is turned into words (``pixel Art``) because the model knows words.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from adapters.sanitize import to_text

RECIPE_VERSION = 1
TOP_TRAINING_TAGS = 12
DESCRIPTION_CHARS = 300

# Fields of Adapter the recipe reads: the pipeline fetches exactly these with .values().
FIELDS = (
    "id",
    "name",
    "alias",
    "description",
    "trigger_words",
    "training_tags",
    "base_model",
    "base_model_detail",
)

_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NOISE = re.compile(r"^(v\d+(\.\d+)*|\d+|e\d+|epoch\d*|ep\d+|step\d+|final|lora|locon|lycoris|xl|sdxl|sd15|sd1\.5)$")


def humanize_name(name: str) -> str:
    """``pixelArt_XL-v2.1-000010`` -> ``pixel Art``: words a language model knows, without version noise."""
    words = []
    for part in re.split(r"[\s_\-.,()\[\]]+", name or ""):
        for word in _CAMEL.split(part):
            if word and not _NOISE.match(word.lower()):
                words.append(word)
    return " ".join(words) or (name or "").strip()


def clean_list(values: Any) -> list[str]:
    """Trigger words may be stored as a list or, from some sidecars, as one comma-separated string."""
    if isinstance(values, str):
        values = values.split(",")
    out: list[str] = []
    for value in values or []:
        text = " ".join(str(value).split()).strip(" ,")
        if text and text.lower() not in {v.lower() for v in out}:
            out.append(text)
    return out


def top_training_tags(training_tags: Any, limit: int = TOP_TRAINING_TAGS) -> list[str]:
    """Most frequent training tags first; tolerant of [[tag, count], ...], [tag, ...] and {tag: count}."""
    pairs: list[tuple[str, float]] = []
    if isinstance(training_tags, Mapping):
        pairs = [(str(k), float(v or 0)) for k, v in training_tags.items()]
    else:
        for item in training_tags or []:
            if isinstance(item, (list, tuple)) and item:
                count = item[1] if len(item) > 1 and isinstance(item[1], (int, float)) else 0
                pairs.append((str(item[0]), float(count)))
            elif isinstance(item, str):
                pairs.append((item, 0.0))
    pairs.sort(key=lambda pair: -pair[1])  # stable: equal counts keep their stored order
    return clean_list([tag.replace("_", " ") for tag, _ in pairs])[:limit]


def build_text(fields: Mapping[str, Any], tags: Iterable[str]) -> str:
    """The recipe, from a mapping holding ``FIELDS`` (a ``.values()`` row or ``model_to_dict``) and tag names."""
    name = humanize_name(fields.get("name") or "")
    parts = [f"{name}."]
    alias = humanize_name(fields.get("alias") or "")
    if alias and alias.lower() != name.lower():
        parts.append(f"Also called {alias}.")
    tag_list = clean_list(sorted(tags))
    if tag_list:
        parts.append(f"Tags: {', '.join(tag_list)}.")
    triggers = clean_list(fields.get("trigger_words"))
    if triggers:
        parts.append(f"Trigger words: {', '.join(triggers)}.")
    seen = {t.lower() for t in triggers} | {t.lower() for t in tag_list}
    trained = [tag for tag in top_training_tags(fields.get("training_tags")) if tag.lower() not in seen]
    if trained:
        parts.append(f"Trained on: {', '.join(trained)}.")
    base = fields.get("base_model") or "Unknown"
    if base != "Unknown":
        detail = fields.get("base_model_detail") or ""
        parts.append(f"For {base}{f' ({detail})' if detail and detail != base else ''}.")
    description = " ".join(to_text(fields.get("description") or "").split())
    if description:
        if len(description) > DESCRIPTION_CHARS:
            description = description[:DESCRIPTION_CHARS].rsplit(" ", 1)[0] + "…"
        parts.append(description)
    return " ".join(parts)


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def adapter_text(adapter: Any) -> str:
    """The recipe for one Adapter instance (tests, the admin, debugging): same text as the pipeline's."""
    fields = {field: getattr(adapter, field if field != "id" else "pk") for field in FIELDS}
    return build_text(fields, adapter.tags.values_list("name", flat=True))
