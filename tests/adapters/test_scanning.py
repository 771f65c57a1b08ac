"""Scanning real LoRA files and sidecars into the catalog: values, precedence, incremental behaviour."""

import hashlib
import shutil

import pytest

from adapters import bulk_edit, identity, scanning
from adapters.models import Adapter, AdapterFile, AdapterStatus, FileStatus
from tests.adapters.conftest import age, lora
from tests.factories.sidecars import (
    write_a1111_json,
    write_civitai_info,
    write_cm_info,
    write_description_txt,
    write_lm_metadata,
    write_preview,
    write_sdnext_civitai_json,
)

pytestmark = pytest.mark.django_db


def scan_and_hash():
    summary = scanning.scan()
    counts = identity.hash_pending(workers=2)
    return summary, counts


def test_mixed_library_is_catalogued_with_detected_architecture(library):
    lora(library, "sd15/zelda.safetensors", kind="sd15")
    lora(library, "xl/pixel.safetensors", kind="sdxl", seed=1)
    lora(library, "flux/ink.safetensors", kind="flux", seed=2)
    lora(library, "xl/peft_style.safetensors", kind="peft_sdxl", seed=3)
    lora(library, "sd15/hatched.safetensors", kind="loha", seed=4)
    summary, counts = scan_and_hash()
    assert (summary.found, summary.added, summary.errors) == (5, 5, 0)
    assert counts["hashed"] == 5
    by_name = {a.name: a for a in Adapter.objects.all()}
    assert by_name["zelda"].base_model == "SD1"
    assert by_name["pixel"].base_model == "SDXL" and by_name["pixel"].rank == 8
    assert by_name["ink"].base_model == "Flux"
    assert by_name["peft_style"].base_model == "SDXL" and by_name["peft_style"].network_type == "LoRA"
    assert by_name["hatched"].network_type == "LoHa"
    pixel = by_name["pixel"]
    assert pixel.alias == "pixel"
    assert pixel.training_tags and pixel.training_tags[0][1] >= pixel.training_tags[-1][1]
    assert pixel.sources["base_model"] in ("tensor shapes", "tensor keys")
    assert pixel.header_metadata["ss_output_name"] == "pixel"


def test_hashes_equal_hashlib_on_the_same_bytes(library):
    path = lora(library, "a.safetensors")
    scan_and_hash()
    adapter = Adapter.objects.get()
    data = path.read_bytes()
    header_length = int.from_bytes(data[:8], "little")
    assert adapter.sha256 == hashlib.sha256(data).hexdigest()
    assert adapter.tensor_sha256 == hashlib.sha256(data[8 + header_length :]).hexdigest()
    assert adapter.autov2 == adapter.sha256[:10] and adapter.autov3 == adapter.tensor_sha256[:12]


def test_sidecars_fill_fields_and_record_their_sources(library):
    model = lora(library, "chars/zelda.safetensors", kind="sd15")
    write_a1111_json(model, activation_text="zelda, pointy ears", preferred_weight=0.7, notes="blue tunic")
    write_civitai_info(model)
    write_preview(model, naming="preview.png", size=(64, 96))
    scanning.scan()
    adapter = Adapter.objects.get()
    assert adapter.activation_text == "zelda, pointy ears"
    assert adapter.preferred_weight == 0.7
    assert adapter.sources["preferred_weight"] == "a1111_json"
    assert adapter.notes == "blue tunic"
    assert adapter.civitai_model_id and adapter.sources["civitai_model_id"] == "civitai_info"
    assert adapter.preview_source.endswith("zelda.preview.png")


@pytest.mark.parametrize("writer", [write_sdnext_civitai_json, write_lm_metadata, write_cm_info, write_description_txt])
def test_every_sidecar_format_is_read(library, writer):
    model = lora(library, "m.safetensors")
    writer(model)
    scanning.scan()
    adapter = Adapter.objects.get()
    sidecar_sources = set(adapter.sources.values()) - {
        "file name",
        "header",
        "tensor shapes",
        "tensor keys",
        "ss_tag_frequency",
        "ss_network_alpha",
        "alpha tensor",
        "ss_base_model_version",
        "modelspec.architecture",
        "default",
    }
    assert sidecar_sources, adapter.sources


def test_rescan_never_overwrites_a_user_edit(library):
    model = lora(library, "m.safetensors")
    write_a1111_json(model, notes="from the sidecar")
    scanning.scan()
    adapter = Adapter.objects.get()
    adapter.notes = "my own notes"
    adapter.sources["notes"] = "user"
    adapter.save()
    write_a1111_json(model, notes="changed sidecar", activation_text="new words")
    age(model.with_suffix(".json"), seconds=10)
    summary = scanning.scan()
    assert summary.updated == 1  # the sidecar changed, so the file was re-read
    adapter.refresh_from_db()
    assert adapter.notes == "my own notes"
    assert adapter.activation_text == "new words"


def test_unchanged_files_are_skipped_and_changed_ones_reread(library):
    first = lora(library, "a.safetensors")
    lora(library, "b.safetensors", seed=1)
    scanning.scan()
    summary = scanning.scan()
    assert (summary.unchanged, summary.added, summary.updated) == (2, 0, 0)
    lora(library, "a.safetensors", seed=9, ss_output_name="renamed_alias")
    age(first, seconds=100)
    summary = scanning.scan()
    assert (summary.unchanged, summary.updated) == (1, 1)
    assert Adapter.objects.filter(alias="renamed_alias").count() == 1


def test_moved_file_is_relinked_keeping_edits(library):
    model = lora(library, "old/m.safetensors")
    scanning.scan()
    adapter = Adapter.objects.get()
    bulk_edit.add_tags([adapter.pk], ["keeper"])
    bulk_edit.set_favorite([adapter.pk], True)
    (library / "new").mkdir()
    shutil.move(model, library / "new" / "renamed.safetensors")
    summary = scanning.scan()
    assert (summary.relinked, summary.added, summary.missing) == (1, 0, 0)
    moved = Adapter.objects.get()
    assert moved.pk == adapter.pk and moved.favorite
    assert list(moved.tags.values_list("name", flat=True)) == ["keeper"]
    assert moved.files.get().path.endswith("new/renamed.safetensors")


def test_file_moved_while_missing_is_relinked_by_content_hash(library, tmp_path):
    model = lora(library, "m.safetensors")
    scan_and_hash()
    adapter = Adapter.objects.get()
    bulk_edit.set_active([adapter.pk], False)
    parked = tmp_path / "parked.safetensors"
    shutil.move(model, parked)
    assert scanning.scan().missing == 1
    assert Adapter.objects.get().status == AdapterStatus.MISSING
    other_root = tmp_path / "Other"
    other_root.mkdir()
    shutil.move(parked, other_root / "m2.safetensors")
    summary = scanning.scan([str(library), str(other_root)])
    counts = identity.hash_pending()
    assert summary.relinked + counts["relinked"] == 1
    adapter = Adapter.objects.get()
    assert adapter.status == AdapterStatus.OK and adapter.active is False
    assert adapter.files.get(status=FileStatus.PRESENT).path.endswith("Other/m2.safetensors")


def test_exact_copy_joins_the_same_adapter_and_edited_copy_is_a_duplicate(library):
    model = lora(library, "a/m.safetensors")
    (library / "b").mkdir()
    shutil.copy2(model, library / "b" / "m.safetensors")
    lora(library, "c/m_edited.safetensors", ss_output_name="edited header")  # same tensors (seed 0), new header
    scan_and_hash()
    assert Adapter.objects.count() == 2
    copied = Adapter.objects.get(alias="m")
    assert copied.files.count() == 2
    edited = Adapter.objects.get(alias="edited header")
    assert edited.tensor_sha256 == copied.tensor_sha256 and edited.sha256 != copied.sha256


def test_vanished_file_is_missing_not_deleted(library):
    model = lora(library, "m.safetensors")
    scanning.scan()
    model.unlink()
    summary = scanning.scan()
    assert summary.missing == 1
    adapter = Adapter.objects.get()
    assert adapter.status == AdapterStatus.MISSING
    assert adapter.files.get().status == FileStatus.MISSING


def test_unreachable_root_marks_files_offline_not_missing(library, tmp_path):
    lora(library, "m.safetensors")
    scanning.scan()
    library.rename(tmp_path / "unmounted")
    summary = scanning.scan()
    assert (summary.offline, summary.missing) == (1, 0)
    assert Adapter.objects.get().status == AdapterStatus.OFFLINE
    (tmp_path / "unmounted").rename(library)
    summary = scanning.scan()
    assert summary.unchanged == 1
    assert Adapter.objects.get().status == AdapterStatus.OK


def test_growing_file_is_postponed(library):
    model = lora(library, "m.safetensors")
    age(model, seconds=0)  # modified just now: maybe still downloading
    scanning.scan()
    counts = identity.hash_pending()
    assert (counts["hashed"], counts["postponed"]) == (0, 1)
    assert AdapterFile.objects.get().sha256 == ""


def test_mark_for_rescan_and_rehash(library):
    lora(library, "m.safetensors")
    scan_and_hash()
    ids = list(Adapter.objects.values_list("pk", flat=True))
    assert bulk_edit.mark_for_rescan(ids) == 1
    assert scanning.scan().updated == 1
    assert bulk_edit.mark_for_rehash(ids) == 1
    assert identity.hash_pending()["hashed"] == 1


def test_precedence_tensor_shapes_beat_sidecars_and_a1111_beats_civitai(library):
    model = lora(library, "m.safetensors", kind="sdxl", ss_base_model_version="sd_v1")  # metadata lies
    write_a1111_json(model, sd_version="SD1", preferred_weight=0.6, notes="mine")
    write_civitai_info(model)
    scanning.scan()
    adapter = Adapter.objects.get()
    assert adapter.base_model == "SDXL"  # shapes: cross-attention width 2048
    assert adapter.sources["base_model"] == "tensor shapes"
    assert any("SD1" in issue and "SDXL" in issue for issue in adapter.issues)
    assert adapter.sources["notes"] == "a1111_json" and adapter.notes == "mine"
    assert adapter.sources["civitai_version_id"] == "civitai_info"
