"""Inline edit forms of the adapter detail page, one per section, plus the bulk and tag forms.

Each section form validates everything before anything is saved, so a bad value (weight "abc" or 99,
an empty name, a 10,000-character tag) changes nothing and comes back as an inline error. ``save``
marks every field it changed as a user edit, so rescans leave it alone.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.core.validators import MaxLengthValidator
from django.db import transaction
from django.urls import reverse

from adapters import bulk_edit, sanitize, sidecar_writing, thumbnails
from adapters.models import USER_SOURCE, Adapter, BaseModel, Tag
from adapters.previews import PreviewError

WEIGHT_LIMIT = 5.0  # LoRA strengths beyond ±5 are typos in practice
MAX_TRIGGER_WORDS = 50
MAX_TRIGGER_WORD_LENGTH = 200
MAX_TAGS = 50


def _weight(label: str) -> forms.FloatField:
    return forms.FloatField(
        label=label,
        required=False,
        min_value=-WEIGHT_LIMIT,
        max_value=WEIGHT_LIMIT,
        widget=forms.NumberInput(attrs={"step": "0.05"}),
        error_messages={"invalid": "Enter a number, like 0.8."},
    )


class SectionForm(sanitize.StorableTextForm, forms.ModelForm):
    """A ModelForm over a few Adapter fields that records changed fields in ``sources`` as user edits."""

    @transaction.atomic
    def save(self, commit: bool = True) -> Adapter:
        adapter = super().save(commit=False)
        for name in self.changed_data:
            adapter.sources[name] = USER_SOURCE
        adapter.save(update_fields=[*self.changed_data, "sources", "updated_at"])
        sidecar_writing.after_edit(adapter.pk, self.changed_data)  # opt-in: A1111's <stem>.json sees it too
        return adapter


class NameForm(SectionForm):
    class Meta:
        model = Adapter
        fields = ["name", "alias"]
        help_texts = {"alias": "The name used in prompts, as in <lora:alias:weight>."}

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        if not name:
            raise forms.ValidationError("A name cannot be empty.")
        return name

    def clean_alias(self) -> str:
        alias = self.cleaned_data["alias"].strip()
        if any(c in alias for c in "<>:"):
            raise forms.ValidationError("An alias cannot contain <, > or : (it goes inside <lora:alias:weight>).")
        return alias


class TriggerWordsForm(SectionForm):
    trigger_words = forms.CharField(
        label="Trigger words",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One per line.",
    )

    class Meta:
        model = Adapter
        fields = ["trigger_words"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._before = list(self.instance.trigger_words or [])
        if not self.is_bound:
            self.initial["trigger_words"] = "\n".join(str(w) for w in self._before)

    def clean_trigger_words(self) -> list[str]:
        words = list(dict.fromkeys(" ".join(line.split()) for line in self.cleaned_data["trigger_words"].splitlines()))
        words = [w for w in words if w]
        if len(words) > MAX_TRIGGER_WORDS:
            raise forms.ValidationError(f"At most {MAX_TRIGGER_WORDS} trigger words.")
        too_long = [w for w in words if len(w) > MAX_TRIGGER_WORD_LENGTH]
        if too_long:
            raise forms.ValidationError(
                f"“{too_long[0][:40]}…” is too long: at most {MAX_TRIGGER_WORD_LENGTH} characters per trigger word."
            )
        return words

    def has_changed(self) -> bool:
        return self.cleaned_data.get("trigger_words") != self._before

    @property
    def changed_data(self) -> list[str]:
        return ["trigger_words"] if self.is_bound and self.has_changed() else []


class WeightsForm(SectionForm):
    preferred_weight = _weight("Preferred weight")
    weight_min = _weight("Lowest useful weight")
    weight_max = _weight("Highest useful weight")

    class Meta:
        model = Adapter
        fields = ["preferred_weight", "weight_min", "weight_max"]

    def clean(self) -> dict:
        data = super().clean()
        low, high, preferred = data.get("weight_min"), data.get("weight_max"), data.get("preferred_weight")
        if low is not None and high is not None and low > high:
            self.add_error("weight_max", "The highest weight must not be below the lowest.")
        elif preferred is not None and (
            (low is not None and preferred < low) or (high is not None and preferred > high)
        ):
            self.add_error("preferred_weight", "The preferred weight must lie within the range.")
        return data


class TextsForm(SectionForm):
    class Meta:
        model = Adapter
        fields = ["activation_text", "negative_text"]
        widgets = {
            "activation_text": forms.Textarea(attrs={"rows": 3}),
            "negative_text": forms.Textarea(attrs={"rows": 3}),
        }
        labels = {"activation_text": "Activation text", "negative_text": "Negative text"}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.max_length = 5000
            field.widget.attrs["maxlength"] = 5000
            field.validators.append(MaxLengthValidator(5000))


class NotesForm(SectionForm):
    notes = forms.CharField(label="Notes", required=False, max_length=20_000, widget=forms.Textarea(attrs={"rows": 5}))

    class Meta:
        model = Adapter
        fields = ["notes"]


class DescriptionForm(SectionForm):
    description = forms.CharField(
        label="Description",
        required=False,
        max_length=100_000,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text="Plain text or simple HTML (shown sanitized).",
    )

    class Meta:
        model = Adapter
        fields = ["description"]


def split_tags(value: str) -> list[str]:
    """Comma-separated tag names, normalized; raises ValidationError naming the first bad one."""
    names = []
    for raw in value.split(","):
        if not raw.strip():
            continue
        try:
            names.append(bulk_edit.normalize_tag(raw))
        except ValueError as exc:
            raise forms.ValidationError(f"“{raw.strip()[:40]}…”: {exc}.") from exc
    return list(dict.fromkeys(names))


class TagsForm(sanitize.StorableTextForm, forms.Form):
    tags = forms.CharField(
        label="Tags",
        required=False,
        max_length=20_000,
        widget=forms.TextInput(attrs={"list": "tag-suggestions", "autocomplete": "off"}),
        help_text="Comma-separated.",
    )

    def __init__(self, *args, instance: Adapter, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.instance = instance
        if not self.is_bound:
            self.initial["tags"] = ", ".join(t.name for t in instance.tags.all())
        self.fields["tags"].widget.attrs.update(
            {
                "hx-get": reverse("adapters:tag_suggest"),
                "hx-trigger": "input changed delay:250ms",
                "hx-target": "#tag-suggestions",
                "hx-swap": "outerHTML",
                "hx-sync": "this:replace",
            }
        )

    def clean_tags(self) -> list[str]:
        names = split_tags(self.cleaned_data["tags"])
        if len(names) > MAX_TAGS:
            raise forms.ValidationError(f"At most {MAX_TAGS} tags.")
        return names

    @transaction.atomic
    def save(self) -> Adapter:
        names = self.cleaned_data["tags"]
        current = {t.name for t in self.instance.tags.all()}
        if set(names) != current:
            existing = dict(Tag.objects.filter(name__in=names).values_list("name", "pk"))
            Tag.objects.bulk_create([Tag(name=n) for n in names if n not in existing], ignore_conflicts=True)
            self.instance.tags.set(Tag.objects.filter(name__in=names))
            self.instance.sources["tags"] = USER_SOURCE
            self.instance.save(update_fields=["sources", "updated_at"])
        return self.instance


class PreviewForm(forms.Form):
    image = forms.FileField(label="Preview image", help_text="PNG, JPEG, WEBP, GIF or AVIF.")

    def __init__(self, *args, instance: Adapter, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.instance = instance
        self.fields["image"].widget.attrs["accept"] = "image/*"

    def clean_image(self) -> bytes:
        upload = self.cleaned_data["image"]
        limit = settings.MAX_PREVIEW_UPLOAD_BYTES
        if upload.size > limit:
            raise forms.ValidationError(f"The image is {upload.size:,} bytes; the limit is {limit:,}.")
        data = upload.read(limit + 1)
        if len(data) > limit:
            raise forms.ValidationError(f"The image is larger than the limit of {limit:,} bytes.")
        try:
            self.key = thumbnails.store_preview_bytes(self.instance, data, "upload")
        except PreviewError as exc:
            raise forms.ValidationError(f"Not a usable image: {exc}.") from exc
        return data

    def save(self) -> Adapter:
        self.instance.sources["preview"] = USER_SOURCE
        self.instance.issues = [i for i in self.instance.issues if not str(i).startswith("preview ")]
        self.instance.save(update_fields=["sources", "issues", "updated_at"])
        return self.instance


SECTION_FORMS: dict[str, type] = {
    "name": NameForm,
    "triggers": TriggerWordsForm,
    "tags": TagsForm,
    "weights": WeightsForm,
    "texts": TextsForm,
    "notes": NotesForm,
    "description": DescriptionForm,
    "image": PreviewForm,
}
SECTION_TITLES = {
    "name": "Name",
    "triggers": "Trigger words",
    "tags": "Tags",
    "weights": "Weights",
    "texts": "Activation and negative text",
    "notes": "Notes",
    "description": "Description",
    "image": "Preview",
}


def section_form(section: str, adapter: Adapter, data=None, files=None):
    return SECTION_FORMS[section](data, files, instance=adapter)


class BulkForm(sanitize.StorableTextForm, forms.Form):
    """What a bulk request asks for: an action (one of ``actions``, the ``bulk_actions.ACTIONS`` table) over
    explicit ids, or over every match of a gallery filter."""

    action = forms.ChoiceField(error_messages={"invalid_choice": "Unknown action."})
    scope = forms.ChoiceField(choices=[("selected", "selected"), ("filter", "filter")], required=False)
    filter = forms.CharField(required=False, max_length=4000)
    tags = forms.CharField(required=False, max_length=5000)
    base_model = forms.ChoiceField(choices=[("", "—"), *BaseModel.choices], required=False)
    confirm = forms.BooleanField(required=False)

    def __init__(self, *args, actions: dict, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.actions = actions
        self.fields["action"].choices = [(name, action.label) for name, action in actions.items()]

    def clean(self) -> dict:
        data = super().clean()
        action = self.actions.get(data.get("action"))
        raw = self.data.getlist("ids") if hasattr(self.data, "getlist") else []
        if not all(value.isdigit() and len(value) < 19 for value in raw):
            raise forms.ValidationError("The selection holds something that is not an adapter id; reload the page.")
        data["ids"] = list(dict.fromkeys(int(value) for value in raw))
        if data.get("scope") != "filter" and not data["ids"]:
            raise forms.ValidationError("Select at least one adapter first.")
        data["tag_names"] = []
        if action is not None and action.needs_tags:
            try:
                data["tag_names"] = split_tags(data.get("tags") or "")
            except forms.ValidationError as exc:
                self.add_error("tags", exc)
            else:
                if not data["tag_names"]:
                    self.add_error("tags", "Type at least one tag.")
        if action is not None and action.needs_base_model and not data.get("base_model"):
            self.add_error("base_model", "Choose a base model.")
        return data
