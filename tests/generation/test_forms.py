"""Composer form values are checked before anything is built: bad input is an error, never a 500."""

from __future__ import annotations

import pytest
from django.http import QueryDict

from generation import forms

VALID = "prompt=cat&steps=20&cfg_scale=6&width=512&height=768&seed=-1&batch_size=1&count=1&backend=default"


def parse(extra: str = ""):
    return forms.parse(QueryDict(f"{VALID}&{extra}" if extra else VALID))


def test_valid_form_with_two_lora_rows():
    composition, errors = parse(
        "lora=a1&lora-a1-adapter=3&lora-a1-weight=0.8&lora-a1-triggers=1&lora=b2&lora-b2-adapter=4&lora-b2-weight=-0.5"
    )
    assert errors == {}
    assert [(c.adapter_id, c.weight, c.triggers, c.negative) for c in composition.loras] == [
        (3, 0.8, True, False),
        (4, -0.5, False, False),
    ]
    assert (composition.width, composition.height, composition.n_iter) == (512, 768, 1)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ("steps=0", "steps", "greater than or equal to 1"),
        ("steps=10000", "steps", "less than or equal to 150"),
        ("steps=abc", "steps", "Enter a whole number"),
        ("width=500", "width", "500 is not a multiple of 8"),
        ("height=4096", "height", "less than or equal to 2048"),
        ("cfg_scale=nan", "cfg_scale", ""),
        ("seed=-2", "seed", "greater than or equal to -1"),
        ("backend=nope", "backend", "Unknown backend 'nope'"),
    ],
)
def test_invalid_values(change, field, message):
    data = QueryDict(VALID, mutable=True)
    key, value = change.split("=")
    data[key] = value
    _, errors = forms.parse(data)
    assert field in errors and message in errors[field]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change",
    ["steps=0", "steps=abc", "width=500", "height=4096", "seed=-2", "backend=nope", f"prompt={'x' * 20_001}"],
)
def test_the_sweep_form_refuses_what_the_composer_refuses(change):
    """The shared parameters are checked once (forms.ParametersForm): both forms give the same message."""
    key, value = change.split("=", 1)
    composer_data = QueryDict(VALID, mutable=True)
    composer_data[key] = value
    _, composer_errors = forms.parse(composer_data)
    sweep = forms.SweepForm({"mode": "weights", "weights": "0.5, 1", **dict(QueryDict(VALID).items()), key: value})
    assert not sweep.is_valid()
    assert " ".join(sweep.errors[key]) == composer_errors[key]


def test_lora_weight_abc_and_out_of_range():
    _, errors = parse("lora=a1&lora-a1-adapter=3&lora-a1-weight=abc&lora=b2&lora-b2-adapter=4&lora-b2-weight=9")
    assert errors["lora-a1-weight"] == "Weight 'abc' is not a number."
    assert errors["lora-b2-weight"] == "Weight 9 is outside -5 to 5."


def test_malformed_lora_rows():
    _, errors = parse("lora=../x&lora=ok&lora-ok-adapter=zz&lora-ok-weight=1")
    assert errors["loras"].startswith("A LoRA row is malformed")
    assert "is not a catalog id" in errors["lora-ok-adapter"]


def test_messages_are_labelled():
    _, errors = parse("steps=0&lora=a1&lora-a1-adapter=1&lora-a1-weight=x")
    lines = forms.messages(errors)
    assert "Steps: Ensure this value is greater than or equal to 1." in lines
    assert "Weight 'x' is not a number." in lines
