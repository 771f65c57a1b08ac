"""Reading the composer form: scalar parameters through a Django form, LoRA rows by their row keys.

LoRA rows are added and removed in the page, so each row posts ``lora=<key>`` plus
``lora-<key>-adapter``, ``-weight``, ``-triggers`` and ``-negative``; values are checked here and
never trusted as numbers before that (weight "abc" is an error, not a 500).
"""

from __future__ import annotations

import math
import re

from django import forms
from django.http import QueryDict

from adapters.sanitize import StorableTextForm
from generation import backends
from generation.composer import (
    BATCH,
    CFG,
    COUNT,
    MAX_LORAS,
    MAX_PROMPT,
    SEED,
    SIZE,
    STEPS,
    WEIGHT,
    Composition,
    LoraChoice,
)

ROW_KEY = re.compile(r"^[a-z0-9]{1,16}$")


def _multiple_of_8(value: int) -> None:
    if value % 8:
        raise forms.ValidationError(f"{value} is not a multiple of 8 (try {value // 8 * 8} or {value // 8 * 8 + 8}).")


class ComposerForm(StorableTextForm, forms.Form):
    backend = forms.CharField(max_length=32, required=False)
    prompt = forms.CharField(max_length=MAX_PROMPT, required=False, strip=False)
    negative = forms.CharField(max_length=MAX_PROMPT, required=False, strip=False)
    checkpoint = forms.CharField(max_length=255, required=False)
    sampler = forms.CharField(max_length=100, required=False)
    steps = forms.IntegerField(min_value=STEPS[0], max_value=STEPS[1])
    cfg_scale = forms.FloatField(min_value=CFG[0], max_value=CFG[1], label="CFG scale")
    width = forms.IntegerField(min_value=SIZE[0], max_value=SIZE[1], validators=[_multiple_of_8])
    height = forms.IntegerField(min_value=SIZE[0], max_value=SIZE[1], validators=[_multiple_of_8])
    seed = forms.IntegerField(min_value=SEED[0], max_value=SEED[1])
    batch_size = forms.IntegerField(min_value=BATCH[0], max_value=BATCH[1], label="Batch size")
    count = forms.IntegerField(min_value=COUNT[0], max_value=COUNT[1], label="Batch count")
    live_preview = forms.BooleanField(required=False)

    def clean_backend(self) -> str:
        name = self.cleaned_data.get("backend") or "default"
        if name not in backends.names():
            raise forms.ValidationError(f"Unknown backend '{name}'.")
        return name

    def clean_cfg_scale(self) -> float:
        value = self.cleaned_data["cfg_scale"]
        if not math.isfinite(value):
            raise forms.ValidationError("Enter a number.")
        return value


def parse(data: QueryDict) -> tuple[Composition, dict[str, str]]:
    """The composition the form describes, and errors by field ({} when valid).

    With errors the composition still carries every value that could be read, so the page can be
    re-rendered as the user left it.
    """
    form = ComposerForm(data)
    valid = form.is_valid()
    errors = {name: " ".join(str(e) for e in errs) for name, errs in form.errors.items()}
    clean = form.cleaned_data
    fallback = Composition()
    composition = Composition(
        prompt=clean.get("prompt", data.get("prompt", "")[:MAX_PROMPT]),
        negative=clean.get("negative", data.get("negative", "")[:MAX_PROMPT]),
        backend=clean.get("backend") or "default",
        checkpoint=clean.get("checkpoint", ""),
        sampler=clean.get("sampler") or "Default",
        steps=clean.get("steps", fallback.steps),
        cfg_scale=clean.get("cfg_scale", fallback.cfg_scale),
        width=clean.get("width", fallback.width),
        height=clean.get("height", fallback.height),
        seed=clean.get("seed", fallback.seed),
        batch_size=clean.get("batch_size", fallback.batch_size),
        n_iter=clean.get("count", fallback.n_iter),
        live_preview=bool(clean.get("live_preview", False)),
    )
    loras, lora_errors = parse_loras(data)
    composition.loras = loras
    errors.update(lora_errors)
    if not valid and not errors:  # pragma: no cover - Django always names the field
        errors["form"] = "Check the values."
    return composition, errors


def parse_loras(data: QueryDict) -> tuple[list[LoraChoice], dict[str, str]]:
    loras, errors = [], {}
    keys = list(dict.fromkeys(data.getlist("lora")))
    if len(keys) > MAX_LORAS:
        errors["loras"] = f"At most {MAX_LORAS} LoRAs per job."
        keys = keys[:MAX_LORAS]
    for key in keys:
        if not ROW_KEY.match(key):
            errors["loras"] = "A LoRA row is malformed: reload the composer."
            continue
        adapter_raw = data.get(f"lora-{key}-adapter", "")
        weight_raw = data.get(f"lora-{key}-weight", "")
        field = f"lora-{key}-weight"
        try:
            adapter_id = int(adapter_raw)
        except ValueError:
            errors[f"lora-{key}-adapter"] = f"LoRA row {key}: {adapter_raw!r} is not a catalog id."
            continue
        try:
            weight = float(weight_raw)
        except ValueError:
            errors[field] = f"Weight {weight_raw!r} is not a number."
            weight = 1.0
        else:
            if not math.isfinite(weight) or not WEIGHT[0] <= weight <= WEIGHT[1]:
                errors[field] = f"Weight {weight_raw} is outside {WEIGHT[0]:g} to {WEIGHT[1]:g}."
                weight = 1.0
        loras.append(
            LoraChoice(
                adapter_id=adapter_id,
                weight=weight,
                triggers=bool(data.get(f"lora-{key}-triggers")),
                negative=bool(data.get(f"lora-{key}-negative")),
                key=key,
            )
        )
    return loras, errors


def messages(errors: dict[str, str]) -> list[str]:
    """Errors as "Label: message" lines for the page."""
    fields = ComposerForm.base_fields.items()
    labels = {name: str(field.label or name.replace("_", " ").capitalize()) for name, field in fields}
    lines = []
    for name, message in errors.items():
        if name.startswith("lora-") or name in ("loras", "form"):
            lines.append(message)
        else:
            lines.append(f"{labels.get(name, name)}: {message}")
    return lines


class PresetForm(StorableTextForm, forms.Form):
    preset_name = forms.CharField(max_length=100, strip=True, label="Preset name")
