"""The sweep form on an adapter's page: prompt, seed and size like the composer, plus the weights or the
LoRAs to compare. Bad values (0 or 500 weights, "abc") are form errors; nothing is queued."""

from __future__ import annotations

from django import forms

from adapters.models import Adapter
from adapters.sanitize import StorableTextForm
from generation import backends, composer, sweeps


class SweepForm(StorableTextForm, forms.Form):
    mode = forms.ChoiceField(choices=[("weights", "Weights"), ("compare", "Compare LoRAs")], initial="weights")
    prompt = forms.CharField(max_length=composer.MAX_PROMPT, required=False, widget=forms.Textarea(attrs={"rows": 2}))
    negative = forms.CharField(
        max_length=composer.MAX_PROMPT,
        required=False,
        label="Negative prompt",
        widget=forms.Textarea(attrs={"rows": 1}),
    )
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
    weight = forms.FloatField(
        required=False, min_value=composer.WEIGHT[0], max_value=composer.WEIGHT[1], label="Weight (compare)"
    )
    seed = forms.IntegerField(min_value=composer.SEED[0], max_value=composer.SEED[1], initial=-1, label="Seed")
    steps = forms.IntegerField(min_value=composer.STEPS[0], max_value=composer.STEPS[1], initial=20)
    width = forms.IntegerField(min_value=composer.SIZE[0], max_value=composer.SIZE[1], initial=1024, step_size=8)
    height = forms.IntegerField(min_value=composer.SIZE[0], max_value=composer.SIZE[1], initial=1024, step_size=8)
    checkpoint = forms.CharField(max_length=255, required=False, help_text="Empty: the one SD.Next has loaded.")
    backend = forms.CharField(max_length=32, required=False)
    private = forms.BooleanField(required=False, label="Private (only I and admins see the results)")

    @staticmethod
    def initial_for(adapter: Adapter) -> dict:
        words = composer.inserted_text(adapter)
        return {"prompt": words or "", "weight": composer.default_weight(adapter)}

    def clean_backend(self) -> str:
        name = self.cleaned_data.get("backend") or "default"
        if name not in backends.names():
            raise forms.ValidationError(f"Unknown backend '{name}'.")
        return name

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

    def composition(self) -> composer.Composition:
        data = self.cleaned_data
        return composer.Composition(
            prompt=data.get("prompt") or "",
            negative=data.get("negative") or "",
            backend=data["backend"],
            checkpoint=data.get("checkpoint") or "",
            steps=data["steps"],
            width=data["width"],
            height=data["height"],
            seed=data["seed"],
        )
