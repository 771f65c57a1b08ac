import json
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.urls import reverse

from adapters.models import Adapter, ScanRun
from tests.adapters.conftest import lora
from tests.factories.lora_files import write_raw
from tests.factories.sidecars import write_a1111_json, write_preview

pytestmark = pytest.mark.django_db

LORA_INFO_KEYS = {
    "name",
    "alias",
    "path",
    "size",
    "sha256",
    "autov2",
    "tensor_sha256",
    "autov3",
    "base_model",
    "base_model_detail",
    "network_type",
    "rank",
    "alpha",
    "trigger_words",
    "training_tags",
    "preferred_weight",
    "weight_min",
    "weight_max",
    "activation_text",
    "negative_text",
    "description",
    "notes",
    "civitai_model_id",
    "civitai_version_id",
    "source_url",
    "has_preview",
    "active",
    "favorite",
    "status",
    "issues",
    "sources",
}


def test_scan_library_json_summary(library, capsys):
    lora(library, "a.safetensors")
    lora(library, "b.safetensors", seed=1)
    write_raw(library / "broken.safetensors", b"{oops", b"")
    call_command("scan_library", "--json")
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert {k: summary[k] for k in ("found", "added", "updated", "unchanged", "relinked", "missing", "errors")} == {
        "found": 3,
        "added": 3,
        "updated": 0,
        "unchanged": 0,
        "relinked": 0,
        "missing": 0,
        "errors": 1,
    }
    assert summary["hashed"] == 2
    assert summary["issues"][0]["path"].endswith("broken.safetensors")
    assert "reading" in err  # progress goes to stderr
    assert ScanRun.objects.get().status == ScanRun.Status.SUCCEEDED


def test_scan_library_paths_and_no_hash(tmp_path, capsys, settings):
    settings.THUMBNAIL_DIR = tmp_path / "thumbs"
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    lora(folder, "c.safetensors")
    call_command("scan_library", str(folder), "--no-hash", "--json")
    summary = json.loads(capsys.readouterr().out)
    assert (summary["added"], summary["hashed"]) == (1, 0)
    call_command("scan_library", str(folder), "--json")
    summary = json.loads(capsys.readouterr().out)
    assert (summary["unchanged"], summary["hashed"]) == (1, 1)


def test_scan_library_leaves_thumbnails_to_the_first_view(library, capsys, client, admin_user):
    write_preview(lora(library, "pic.safetensors"), "preview.png", size=(64, 96))
    call_command("scan_library")
    assert "1 preview thumbnails are made on first view" in capsys.readouterr().out
    adapter = Adapter.objects.get()
    assert adapter.preview_source.endswith("pic.preview.png") and adapter.preview_key == ""
    assert not list(Path(settings.THUMBNAIL_DIR).rglob("*.webp"))  # the scan decoded nothing
    client.force_login(admin_user)
    response = client.get(reverse("adapters:preview", args=[adapter.pk, "card"]))
    assert response.status_code == 200 and response["Content-Type"] == "image/webp"
    assert Adapter.objects.get().preview_key  # made on first view, and kept


def test_lora_info_by_path_and_hash_prefix(library, capsys):
    model = lora(library, "zelda.safetensors", kind="sd15")
    write_a1111_json(model, preferred_weight=0.65)
    call_command("scan_library", "--json")
    capsys.readouterr()
    call_command("lora_info", str(model), "--json")
    info = json.loads(capsys.readouterr().out)
    assert set(info) >= LORA_INFO_KEYS
    assert info["base_model"] == "SD1" and info["preferred_weight"] == 0.65
    assert info["sources"]["preferred_weight"] == "a1111_json"
    call_command("lora_info", info["sha256"][:12], "--json")
    assert json.loads(capsys.readouterr().out)["path"] == str(model)
    call_command("lora_info", str(model))
    assert "preferred_weight: 0.65  [a1111_json]" in capsys.readouterr().out


def test_lora_info_unknown(db):
    with pytest.raises(CommandError, match="no adapter in the catalog"):
        call_command("lora_info", "/nowhere.safetensors")
