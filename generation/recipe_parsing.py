"""Generation parameters from an image into one plain shape (``ParsedRecipe``): pure, no database.

Readers (docs/recipes.md): A1111/SD.Next infotext (PNG ``parameters`` or EXIF UserComment), ComfyUI
graphs (``prompt`` API format, else ``workflow`` UI format; ``comfyui_graph``), and the ``meta`` dict
Civitai attaches to example images (``recipe_from_civitai_meta``). Matching the LoRAs against the
catalog is ``recipe_matching``'s job; here a LoRA is only a name, a weight and whatever hash it came with.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from generation.image_metadata import MAX_TEXT_BYTES, clean_text

MAX_PROMPT = 20_000
MAX_LORAS = 50


class RecipeError(Exception):
    """No usable generation parameters; the message says what was looked for and what was found."""


@dataclass
class ParsedLora:
    name: str
    weight: float | None = 1.0
    hash: str = ""  # as found (AutoV3 in A1111 infotext, any flavour from Civitai)
    file: str = ""  # a path relative to the loras folder (ComfyUI's lora_name)


@dataclass
class ParsedRecipe:
    source: str  # a1111, comfyui, civitai, job
    prompt: str = ""
    negative: str = ""
    steps: int | None = None
    sampler: str = ""
    cfg_scale: float | None = None
    seed: int | None = None
    width: int | None = None
    height: int | None = None
    checkpoint: str = ""
    checkpoint_hash: str = ""
    loras: list[ParsedLora] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)  # every other key, as found
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


# --- small value readers -------------------------------------------------------------------------------------


def as_int(value: Any, low: int = -(2**63), high: int = 2**63 - 1) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        number = int(float(value)) if isinstance(value, str) and "." in value else int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if low <= number <= high else None


def as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def as_text(value: Any, limit: int = MAX_PROMPT) -> str:
    return clean_text(value, limit).strip() if isinstance(value, str) else ""


def parse_size(value: Any) -> tuple[int | None, int | None]:
    match = re.fullmatch(r"\s*(\d{1,6})\s*[x×X]\s*(\d{1,6})\s*", str(value or ""))
    return (int(match.group(1)), int(match.group(2))) if match else (None, None)


# --- A1111 / SD.Next infotext --------------------------------------------------------------------------------

# A1111 modules/infotext_utils.py: key: value pairs, values with commas double-quoted (with \" escapes).
_PARAM = re.compile(r'\s*(\w[\w \-/+.()]*?):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')
_LORA_TOKEN = re.compile(r"<(lora|lyco):([^:<>]+)((?::[^<>]*)?)>", re.IGNORECASE)
_WEIGHT = re.compile(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?")


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            return json.loads(value)
        except ValueError:
            return value[1:-1]
    return value


def _parameter_line(line: str) -> dict[str, str] | None:
    pairs = _PARAM.findall(line)
    if len(pairs) < 3 or "Steps" not in {key.strip() for key, _ in pairs}:
        return None
    return {key.strip(): _unquote(value) for key, value in pairs}


def lora_tokens(prompt: str) -> list[ParsedLora]:
    """``<lora:name:weight>``, ``<lora:name>`` (weight 1), ``<lora:name:te=0.8:unet=0.6>`` (the unet/first)."""
    loras: list[ParsedLora] = []
    for _, name, rest in _LORA_TOKEN.findall(prompt):
        weight: float | None = 1.0
        positional = [part for part in rest.split(":")[1:] if part and "=" not in part]
        named = dict(part.split("=", 1) for part in rest.split(":")[1:] if "=" in part)
        raw = positional[0] if positional else named.get("unet", named.get("te"))
        if raw is not None:
            match = _WEIGHT.fullmatch(raw.strip())
            weight = as_float(match.group(0)) if match else None
        loras.append(ParsedLora(name=name.strip(), weight=weight))
    return loras


def strip_lora_tokens(prompt: str) -> str:
    lines = []
    for line in _LORA_TOKEN.sub("", prompt).split("\n"):
        line = re.sub(r"[ \t]*,([ \t]*,)+", ",", line)
        lines.append(re.sub(r"[ \t]{2,}", " ", line).strip(" \t,"))
    return "\n".join(lines).strip()


def _lora_hashes(value: str) -> dict[str, str]:
    """``"ink: 36ea8aeef318, neon: a1b2c3d4e5f6"`` -> {name: hash} (A1111 drops ':' and ',' from names)."""
    hashes: dict[str, str] = {}
    for item in value.split(","):
        name, sep, digest = item.rpartition(":")
        if sep and name.strip() and re.fullmatch(r"\s*(0x)?[0-9a-fA-F]{6,64}\s*", digest):
            hashes[name.strip()] = digest.strip()
    return hashes


def _hash_key(name: str) -> str:
    return name.replace(":", "").replace(",", "").strip().casefold()


def merge_lora_hashes(loras: list[ParsedLora], hashes: dict[str, str]) -> list[ParsedLora]:
    """Give each token its hash; a hash with no token (the token was edited out) still becomes a LoRA."""
    by_key = {_hash_key(name): digest for name, digest in hashes.items()}
    used: set[str] = set()
    for lora in loras:
        key = _hash_key(lora.name)
        if not lora.hash and key in by_key:
            lora.hash = by_key[key]
            used.add(key)
    for name, digest in hashes.items():
        if _hash_key(name) not in used and not any(_hash_key(lora.name) == _hash_key(name) for lora in loras):
            loras.append(ParsedLora(name=name, weight=None, hash=digest))
    return loras


def parse_infotext(text: str) -> ParsedRecipe:
    """A1111's three parts: prompt lines, ``Negative prompt:`` lines, the last ``key: value, ...`` line."""
    lines = clean_text(text, MAX_TEXT_BYTES).strip().split("\n")
    params: dict[str, str] = {}
    if lines and (found := _parameter_line(lines[-1])) is not None:
        params = found
        lines = lines[:-1]
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    target = prompt_lines
    for line in lines:
        if line.startswith("Negative prompt:"):
            target = negative_lines
            line = line[len("Negative prompt:") :].strip()
        target.append(line)
    recipe = ParsedRecipe(source="a1111")
    recipe.prompt = "\n".join(prompt_lines).strip()[:MAX_PROMPT]
    recipe.negative = "\n".join(negative_lines).strip()[:MAX_PROMPT]
    if not params and not recipe.prompt:
        raise RecipeError("the 'parameters' text is empty")
    if not params:
        recipe.warnings.append("no 'Steps: …' line: only the prompt could be read")
    _apply_params(recipe, params)
    # A1111 writes "Lora hashes" (12-digit AutoV3), SD.Next "LoRA hashes" (often 8 digits).
    hashes = next((value for key, value in params.items() if key.lower() == "lora hashes"), "")
    recipe.loras = merge_lora_hashes(lora_tokens(recipe.prompt), _lora_hashes(hashes))
    _cap_loras(recipe)
    return recipe


_KNOWN = {"Steps", "Sampler", "CFG scale", "Seed", "Size", "Model", "Model hash", "Lora hashes"}


def _apply_params(recipe: ParsedRecipe, params: dict[str, Any]) -> None:
    recipe.steps = as_int(params.get("Steps"), 1, 10_000)
    recipe.sampler = as_text(params.get("Sampler"), 100)
    recipe.cfg_scale = as_float(params.get("CFG scale"))
    recipe.seed = as_int(params.get("Seed"))
    recipe.width, recipe.height = parse_size(params.get("Size"))
    recipe.checkpoint = as_text(params.get("Model"), 255)
    recipe.checkpoint_hash = as_text(params.get("Model hash"), 64)
    recipe.parameters = {
        as_text(k, 100): as_text(v, 2000) if isinstance(v, str) else v
        for k, v in params.items()
        if k not in _KNOWN and k.lower() != "lora hashes" and isinstance(v, str | int | float | bool)
    }


def _cap_loras(recipe: ParsedRecipe) -> None:
    if len(recipe.loras) > MAX_LORAS:
        recipe.warnings.append(f"{len(recipe.loras)} LoRAs: only the first {MAX_LORAS} are kept")
        recipe.loras = recipe.loras[:MAX_LORAS]


# --- Civitai example image meta ------------------------------------------------------------------------------


def recipe_from_civitai_meta(meta: dict) -> ParsedRecipe:
    """A Civitai image's ``meta`` (``prompt``, ``negativePrompt``, ``seed``, ``steps``, ``sampler``,
    ``cfgScale``, ``Size``, ``Model``, ``Model hash``, ``hashes``, ``resources``, ``Lora hashes``)."""
    if not isinstance(meta, dict) or not meta:
        raise RecipeError("the Civitai image has no generation parameters (its 'meta' is empty)")
    recipe = ParsedRecipe(source="civitai")
    recipe.prompt = as_text(meta.get("prompt"))
    recipe.negative = as_text(meta.get("negativePrompt"))
    renamed = {
        "Steps": meta.get("steps"),
        "Sampler": meta.get("sampler"),
        "CFG scale": meta.get("cfgScale"),
        "Seed": meta.get("seed"),
        "Size": meta.get("Size"),
        "Model": meta.get("Model"),
        "Model hash": meta.get("Model hash"),
    }
    _apply_params(recipe, {k: v for k, v in renamed.items() if v is not None})
    skip = {"prompt", "negativePrompt", "steps", "sampler", "cfgScale", "seed", "Size", "Model", "Model hash"}
    recipe.parameters = {
        as_text(k, 100): as_text(v, 2000) if isinstance(v, str) else v
        for k, v in meta.items()
        if k not in skip and isinstance(v, str | int | float | bool)
    }
    loras = lora_tokens(recipe.prompt)
    hashes = _lora_hashes(meta["Lora hashes"]) if isinstance(meta.get("Lora hashes"), str) else {}
    if isinstance(meta.get("hashes"), dict):  # {"model": "...", "lora:ink": "36ea8aeef318"}
        for key, digest in meta["hashes"].items():
            if isinstance(key, str) and key.lower().startswith(("lora:", "lyco:")) and isinstance(digest, str):
                hashes.setdefault(key.split(":", 1)[1], digest)
    loras = merge_lora_hashes(loras, hashes)
    for resource in meta.get("resources") or []:
        if not isinstance(resource, dict) or str(resource.get("type", "")).lower() not in ("lora", "lycoris", "locon"):
            continue
        name = as_text(resource.get("name"), 255)
        weight = as_float(resource.get("weight"))
        digest = as_text(resource.get("hash"), 64)
        existing = next((lora for lora in loras if name and _hash_key(lora.name) == _hash_key(name)), None)
        if existing is not None:
            existing.hash = existing.hash or digest
            existing.weight = weight if existing.weight is None else existing.weight
        elif name or digest:
            loras.append(ParsedLora(name=name or digest, weight=1.0 if weight is None else weight, hash=digest))
    recipe.loras = loras
    _cap_loras(recipe)
    if not recipe.prompt and not recipe.loras:
        raise RecipeError("the Civitai image's 'meta' has neither a prompt nor LoRAs")
    return recipe
