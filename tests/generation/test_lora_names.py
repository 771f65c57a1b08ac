"""Mapping catalog adapters to the names SD.Next knows them by."""

from __future__ import annotations

import pytest

from adapters.models import Adapter
from generation import lora_names
from generation.models import BackendLora, BackendSync
from generation.sdnext import SDNextUnreachable

pytestmark = pytest.mark.django_db


def test_refresh_reads_sdnexts_list_and_matches_by_path(catalog, sdnext):
    sync = lora_names.refresh("default")
    assert (sync.lora_count, sync.matched_count) == (3, 3)
    rows = {row.name: row for row in BackendLora.objects.filter(backend="default")}
    assert rows["ink_sd15"].adapter == catalog["ink_sd15"] and rows["ink_sd15"].matched_by == "path"
    assert any(r["path"] == "/sdapi/v1/refresh-loras" for r in sdnext.requests)  # asked SD.Next to rescan first
    assert lora_names.names_for([catalog["pixel_xl"].pk], "default") == {catalog["pixel_xl"].pk: "pixel_xl"}


def test_refresh_replaces_the_previous_list(catalog, sdnext):
    lora_names.refresh("default")
    (sdnext.engine.loras.root / "blur_xl.safetensors").unlink()
    assert lora_names.refresh("default").lora_count == 2
    assert not BackendLora.objects.filter(name="blur_xl").exists()


def test_match_by_hash_then_path_then_stem_then_alias(catalog):
    pixel, ink, blur = catalog["pixel_xl"], catalog["ink_sd15"], catalog["blur_xl"]
    Adapter.objects.filter(pk=pixel.pk).update(tensor_sha256="ab" * 32)
    Adapter.objects.filter(pk=blur.pk).update(alias="blurry-thing")
    ink_path = ink.files.get().path
    entries = [
        {"name": "renamed", "alias": "renamed", "path": "/sd/models/Lora/renamed.safetensors",
         "metadata": {"sshs_model_hash": "AB" * 32}},
        {"name": "ink_sd15", "alias": "ink_sd15", "path": ink_path, "metadata": {}},
        {"name": "ink_sd15_copy", "alias": "x", "path": "/other/box/ink_sd15.safetensors", "metadata": {}},
        {"name": "something", "alias": "blurry-thing", "path": "/other/something.safetensors", "metadata": {}},
        {"name": "stranger", "alias": "stranger", "path": "/other/stranger.safetensors", "metadata": {}},
    ]  # fmt: skip
    matched = [(entry["name"], adapter_id, how) for entry, adapter_id, how in lora_names.match_entries(entries)]
    assert matched == [
        ("renamed", pixel.pk, "hash"),
        ("ink_sd15", ink.pk, "path"),
        ("ink_sd15_copy", ink.pk, "file name"),
        ("something", blur.pk, "alias"),
        ("stranger", None, ""),
    ]


def test_same_stem_in_two_folders_is_settled_by_the_folder(lora_root, catalog, db):
    from adapters.scanning import scan
    from tests.adapters.conftest import lora

    lora(lora_root, "other/ink_sd15.safetensors", "sd15", seed=7)
    scan([str(lora_root)])
    copies = Adapter.objects.filter(files__path__endswith="/ink_sd15.safetensors").distinct()
    assert copies.count() == 2
    in_other = copies.get(files__path__contains="/other/")
    entry = {"name": "ink_sd15", "alias": "", "path": "/sdnext/Lora/other/ink_sd15.safetensors", "metadata": {}}
    assert lora_names.match_entries([entry])[0][1:] == (in_other.pk, "file path")


def test_known_names_accept_relative_paths_and_raw_stems(catalog, sdnext):
    (sdnext.engine.loras.root / "pixel.v2.safetensors").write_bytes(
        (sdnext.engine.loras.root / "pixel_xl.safetensors").read_bytes()
    )
    lora_names.refresh("default")
    known = lora_names.known_names("default", ["pixel_v2", "pixel.v2", "style/ink_sd15", "nope"])
    assert known == {"pixel_v2", "pixel.v2", "style/ink_sd15"}


def test_refresh_when_sdnext_is_down_keeps_the_old_list(catalog, sdnext):
    lora_names.refresh("default")
    sdnext.set_fault("refuse")
    with pytest.raises(SDNextUnreachable):
        lora_names.refresh("default")
    sdnext.set_fault(None)
    assert BackendLora.objects.filter(backend="default").count() == 3
    assert BackendSync.objects.get(backend="default").lora_count == 3


def test_the_list_is_read_on_first_use_only_and_a_failure_is_not_raised(catalog, sdnext):
    """The composer and the generate command both call read_on_first_use: one rule for both."""
    from generation import backends

    def list_reads() -> int:
        return sum(r["path"] == "/sdapi/v1/loras" for r in sdnext.requests)

    info = backends.server_info("default")
    sdnext.set_fault("refuse", path="/sdapi/v1/loras")
    lora_names.read_on_first_use("default", info)  # SD.Next refuses: nothing stored, nothing raised
    assert lora_names.sync_state("default") is None
    sdnext.set_fault(None)
    lora_names.read_on_first_use("default", info)
    assert lora_names.sync_state("default").lora_count == 3 and list_reads() == 1
    lora_names.read_on_first_use("default", info)  # read already: SD.Next is not asked again
    assert list_reads() == 1
    assert not any(r["path"] == "/sdapi/v1/refresh-loras" for r in sdnext.requests)  # no rescan asked for
