"""Write-back of curated values to A1111's <stem>.json (LORA_MANAGER_WRITE_SIDECARS=a1111): written through
the real edit views, foreign keys kept, unparseable files refused, and rescans that neither flip nor loop."""

from __future__ import annotations

import json
import os
import stat

import pytest

from adapters.models import USER_SOURCE, Adapter, AdapterFile
from adapters.scanning import scan
from tests.adapters.conftest import age, lora
from tests.factories.sidecars import write_a1111_json, write_sdnext_civitai_json, write_sidecar_raw


@pytest.fixture
def model(library, db):
    path = lora(library, "zelda.safetensors", "sd15", seed=4)
    scan([str(library)])
    return path


@pytest.fixture
def writing(settings):
    settings.WRITE_SIDECARS = "a1111"


def adapter() -> Adapter:
    return Adapter.objects.get()


def edit(client, section: str, data: dict, capture) -> None:
    with capture(execute=True):
        response = client.post(f"/library/{adapter().pk}/section/{section}/edit/", data, headers={"HX-Request": "true"})
    assert response.status_code == 200, response.content[:500]


def sidecar(model) -> dict:
    return json.loads(model.with_suffix(".json").read_text("utf-8"))


def test_off_by_default_nothing_is_written(editor_client, model, django_capture_on_commit_callbacks, settings):
    assert settings.WRITE_SIDECARS == ""
    edit(editor_client, "notes", {"notes": "curated here"}, django_capture_on_commit_callbacks)
    assert adapter().notes == "curated here"
    assert not model.with_suffix(".json").exists()


def test_edits_are_written_under_a1111_keys(editor_client, model, writing, django_capture_on_commit_callbacks):
    edit(
        editor_client,
        "texts",
        {"activation_text": "zelda, blue tunic", "negative_text": "extra ears"},
        django_capture_on_commit_callbacks,
    )
    edit(
        editor_client,
        "weights",
        {"preferred_weight": "0.7", "weight_min": "", "weight_max": ""},
        django_capture_on_commit_callbacks,
    )
    edit(editor_client, "notes", {"notes": "Grüße — best at 0.7"}, django_capture_on_commit_callbacks)
    edit(editor_client, "description", {"description": "<p>Zelda</p>"}, django_capture_on_commit_callbacks)
    assert sidecar(model) == {
        "activation text": "zelda, blue tunic",
        "negative text": "extra ears",
        "preferred weight": 0.7,
        "notes": "Grüße — best at 0.7",
        "description": "<p>Zelda</p>",
    }
    assert "Grüße" in model.with_suffix(".json").read_text("utf-8")  # UTF-8 as A1111 writes it, not \\u escapes
    assert [p.name for p in model.parent.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_trigger_words_become_activation_text_and_only_edited_keys_are_written(
    editor_client, model, writing, django_capture_on_commit_callbacks
):
    edit(editor_client, "triggers", {"trigger_words": "zelda\npointy ears"}, django_capture_on_commit_callbacks)
    assert sidecar(model) == {"activation text": "zelda, pointy ears"}


def test_foreign_keys_and_order_are_kept(editor_client, model, writing, django_capture_on_commit_callbacks):
    write_a1111_json(model, **{"sd version": "SD1", "civitai": {"id": 7}, "notes": "old"})
    os.chmod(model.with_suffix(".json"), 0o640)
    age(model.with_suffix(".json"))
    scan([str(model.parent)])
    before = list(sidecar(model))
    edit(editor_client, "notes", {"notes": "new notes"}, django_capture_on_commit_callbacks)
    after = sidecar(model)
    assert list(after) == before  # same keys, same order
    assert after["notes"] == "new notes"
    assert after["sd version"] == "SD1" and after["civitai"] == {"id": 7}
    assert after["activation text"] == "zelda, pointy ears"  # not edited here: left as A1111 had it
    assert stat.S_IMODE(model.with_suffix(".json").stat().st_mode) == 0o640


@pytest.mark.parametrize(
    "content",
    [
        b'{"notes": "half a file',  # not JSON
        b"\xff\xfe\x00garbage",  # not UTF-8 JSON
        b"[1, 2, 3]",  # not an object
    ],
)
def test_an_unparseable_file_is_never_touched(
    editor_client, model, writing, django_capture_on_commit_callbacks, content
):
    path = model.with_suffix(".json")
    path.write_bytes(content)
    edit(editor_client, "notes", {"notes": "mine"}, django_capture_on_commit_callbacks)
    assert path.read_bytes() == content
    issues = adapter().issues
    assert any(i.startswith("write-back: zelda.json was not written back") and "left untouched" in i for i in issues)
    # The issue survives a rescan, and goes away once a write succeeds.
    scan([str(model.parent)])
    assert any(i.startswith("write-back:") for i in adapter().issues)
    path.write_text("{}")
    edit(editor_client, "notes", {"notes": "mine again"}, django_capture_on_commit_callbacks)
    assert not any(i.startswith("write-back:") for i in adapter().issues)
    assert sidecar(model) == {"notes": "mine again"}


def test_sdnext_civitai_model_json_is_not_mixed_with_a1111_keys(
    editor_client, model, writing, django_capture_on_commit_callbacks
):
    path = write_sdnext_civitai_json(model)
    content = path.read_bytes()
    edit(editor_client, "notes", {"notes": "mine"}, django_capture_on_commit_callbacks)
    assert path.read_bytes() == content
    assert any("SD.Next's copy of the Civitai model JSON" in i for i in adapter().issues)


def test_rescan_neither_flips_nor_loops(editor_client, model, writing, django_capture_on_commit_callbacks):
    edit(editor_client, "triggers", {"trigger_words": "zelda\npointy ears"}, django_capture_on_commit_callbacks)
    path = model.with_suffix(".json")
    written = path.stat().st_mtime_ns
    row = AdapterFile.objects.get()
    assert row.sidecar_written["values"] == {"activation text": "zelda, pointy ears"}

    summary = scan([str(model.parent)])  # our own write is recognised: the file is not even re-read
    assert (summary.unchanged, summary.updated) == (1, 0)
    assert adapter().activation_text == ""  # not flipped to the text we wrote

    write_sidecar_raw(model, ".txt", "A description from SD.Next")  # something else changes beside it
    summary = scan([str(model.parent)])
    assert summary.updated == 1
    current = adapter()
    assert current.activation_text == ""  # our "activation text" is recognised as already applied
    assert current.trigger_words == ["zelda", "pointy ears"] and current.sources["trigger_words"] == USER_SOURCE
    assert current.description == "A description from SD.Next"
    assert path.stat().st_mtime_ns == written  # a scan never writes

    assert scan([str(model.parent)]).unchanged == 1  # and the next one settles: no loop


def test_an_edit_made_in_a1111_afterwards(editor_client, model, writing, django_capture_on_commit_callbacks):
    edit(editor_client, "notes", {"notes": "curated here"}, django_capture_on_commit_callbacks)
    path = model.with_suffix(".json")
    data = sidecar(model)
    data.update({"notes": "changed in A1111", "negative text": "bad hands"})
    path.write_text(json.dumps(data, indent=4))
    scan([str(model.parent)])
    current = adapter()
    assert current.notes == "curated here"  # an edit made here wins over any sidecar (documented precedence)
    assert current.negative_text == "bad hands"  # a key we never wrote is read like any sidecar value
    assert sidecar(model)["notes"] == "changed in A1111"  # and the scan did not write anything back


def test_a_training_tag_clicked_into_trigger_words_is_written(
    editor_client, model, writing, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = editor_client.post(f"/library/{adapter().pk}/trigger-words/", {"word": "hylian"})
    assert response.status_code == 302
    words = adapter().trigger_words
    assert words[-1] == "hylian"
    assert sidecar(model) == {"activation text": ", ".join(words)}
