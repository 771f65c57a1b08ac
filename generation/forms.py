"""The generation forms: the composer, the sweep form on an adapter's page, and presets.

Both the composer and the sweep form take the parameters of ``ParametersForm`` (backend, prompts,
checkpoint, steps, size, seed), so their limits and checks are written once (the ones in ``composer``).

Reading the composer form: scalar parameters through a Django form, LoRA rows by their row keys.

LoRA rows are added and removed in the page, so each row posts ``lora=<key>`` plus
``lora-<key>-adapter``, ``-weight``, ``-triggers`` and ``-negative``; values are checked here and
never trusted as numbers before that (weight "abc" is an error, not a 500).
"""

from __future__ import annotations

import math
import re

from django import forms
from django.http import QueryDict

from adapters.models import Adapter
from adapters.sanitize import StorableTextForm
from generation import backends, composer, sweeps
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


def _size_field() -> forms.IntegerField:
    return forms.IntegerField(
        min_value=SIZE[0], max_value=SIZE[1], validators=[_multiple_of_8], widget=forms.NumberInput(attrs={"step": 8})
    )


class ParametersForm(StorableTextForm, forms.Form):
    """What every way of starting a generation asks for, checked against the composer's limits."""

    backend = forms.CharField(max_length=32, required=False)
    prompt = forms.CharField(max_length=MAX_PROMPT, required=False, strip=False)
    negative = forms.CharField(max_length=MAX_PROMPT, required=False, strip=False, label="Negative prompt")
    checkpoint = forms.CharField(max_length=255, required=False)
    steps = forms.IntegerField(min_value=STEPS[0], max_value=STEPS[1])
    width = _size_field()
    height = _size_field()
    seed = forms.IntegerField(min_value=SEED[0], max_value=SEED[1])

    def clean_backend(self) -> str:
        name = self.cleaned_data.get("backend") or "default"
        if name not in backends.names():
            raise forms.ValidationError(f"Unknown backend '{name}'.")
        return name


class ComposerForm(ParametersForm):
    sampler = forms.CharField(max_length=100, required=False)
    cfg_scale = forms.FloatField(min_value=CFG[0], max_value=CFG[1], label="CFG scale")
    batch_size = forms.IntegerField(min_value=BATCH[0], max_value=BATCH[1], label="Batch size")
    count = forms.IntegerField(min_value=COUNT[0], max_value=COUNT[1], label="Batch count")
    live_preview = forms.BooleanField(required=False)

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


class SweepForm(ParametersForm):
    """The sweep form on an adapter's page: the parameters above plus the weights or the LoRAs to compare.
    Bad values (0 or 500 weights, "abc") are form errors; nothing is queued."""

    field_order = (
        *("mode", "prompt", "negative", "weights", "compare_with", "weight"),
        *("seed", "steps", "width", "height", "checkpoint", "backend", "private"),
    )
    mode = forms.ChoiceField(choices=[("weights", "Weights"), ("compare", "Compare LoRAs")], initial="weights")
    weights = forms.CharField(
        max_length=10_000,  # long enough that "500 weights" gets the count error, not a length error
        required=False,
        initial=sweeps.format_weights(sweeps.DEFAULT_WEIGHTS),
        help_text=f"Numbers separated by commas; at most {sweeps.MAX_CELLS}.",
    )
    compare_with = forms.CharField(
        max_length=500,
        required=False,
        label="Compare with",
        help_text="One or two other LoRAs: names, aliases or ids, separated by commas.",
    )
    weight = forms.FloatField(required=False, min_value=WEIGHT[0], max_value=WEIGHT[1], label="Weight (compare)")
    private = forms.BooleanField(required=False, label="Private (only I and admins see the results)")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["prompt"].widget = forms.Textarea(attrs={"rows": 2})
        self.fields["negative"].widget = forms.Textarea(attrs={"rows": 1})
        self.fields["checkpoint"].help_text = "Empty: the one SD.Next has loaded."
        for name, value in (("seed", -1), ("steps", 20), ("width", 1024), ("height", 1024)):
            self.fields[name].initial = value

    @staticmethod
    def initial_for(adapter: Adapter) -> dict:
        words = composer.inserted_text(adapter)
        return {"prompt": words or "", "weight": composer.default_weight(adapter)}

    def clean(self) -> dict:
        data = super().clean()
        if data.get("mode") == "weights" and "weights" in data:
            try:
                data["weight_list"] = sweeps.parse_weights(data["weights"])
            except sweeps.SweepError as exc:
                self.add_error("weights", str(exc))
        if data.get("mode") == "compare":
            if data.get("weight") is None and "weight" not in self.errors:
                self.add_error("weight", "Give the weight to compare at.")
            labels = [p for p in (data.get("compare_with") or "").split(",") if p.strip()]
            if not 1 <= len(labels) <= 2:
                self.add_error("compare_with", "Name one or two other LoRAs to compare with.")
            else:
                try:
                    data["others"] = sweeps.resolve_adapters(labels)
                except sweeps.SweepError as exc:
                    self.add_error("compare_with", str(exc))
        return data

    def composition(self) -> Composition:
        data = self.cleaned_data
        return Composition(
            prompt=data.get("prompt") or "",
            negative=data.get("negative") or "",
            backend=data["backend"],
            checkpoint=data.get("checkpoint") or "",
            steps=data["steps"],
            width=data["width"],
            height=data["height"],
            seed=data["seed"],
        )
