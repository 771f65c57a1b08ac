"""The guarantee: export → empty database and library → import gives back every field and every file."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command

from adapters.models import Adapter, AdapterFile
from archive import exporting, importing
from tests.archive.conftest import build_library, file_hashes, snapshot, wipe


@pytest.mark.django_db
def test_export_wipe_import_gives_back_every_field_and_file(places, settings, tmp_path):
    build_library(places)
    before, files_before = snapshot(), file_hashes(places, Path(settings.THUMBNAIL_DIR))
    assert len(before["adapters"]) == 4 and before["presets"] and len(before["feedback"]) == 2
    out = tmp_path / "out" / "library.zip"
    out.parent.mkdir()
    result = exporting.export_library(out)
    assert result.counts["adapters"] == 4 and result.counts["presets"] == 2 and result.counts["feedback"] == 2
    with zipfile.ZipFile(out) as zf:
        kinds = {i.filename: i.compress_type for i in zf.infolist()}
        manifest = json.loads(zf.read("manifest.json"))
        assert zf.testzip() is None  # every entry's CRC-32 (weights are written by the kernel) is right
    assert all(kinds[n] == zipfile.ZIP_STORED for n in kinds if n.endswith(".safetensors"))
    assert manifest["format"] == "lora-manager-archive" and manifest["counts"]["adapters"] == 4
    assert not list(out.parent.glob(".*partial"))  # the temporary file was renamed
    wipe(places, settings)
    assert Adapter.objects.count() == 0 and not file_hashes(places)
    imported = importing.import_archive(out)
    assert imported.plan.counts == {"new": 4, "identical": 0, "updated": 0, "conflicting": 0}
    assert snapshot() == before
    assert file_hashes(places, Path(settings.THUMBNAIL_DIR)) == files_before
    assert not [p for p in places.iterdir() if p.name.startswith(".lora-manager-import-")]


@pytest.mark.django_db
def test_reimporting_the_same_archive_changes_nothing(places, settings, tmp_path):
    build_library(places)
    out = exporting.export_library(tmp_path / "a.zip").path
    before, files_before = snapshot(), file_hashes(places, Path(settings.THUMBNAIL_DIR))
    for option in ("skip", "update", "keep-both"):
        result = importing.import_archive(out, on_conflict=option)
        assert result.plan.counts == {"new": 0, "identical": 4, "updated": 0, "conflicting": 0}
        assert result.counts["files_written"] == 0
        assert snapshot() == before and file_hashes(places, Path(settings.THUMBNAIL_DIR)) == files_before


@pytest.mark.django_db
def test_commands_round_trip_with_progress_and_dry_run(places, settings, tmp_path, capsys):
    build_library(places)
    before = snapshot()
    out = tmp_path / "cmd.zip"
    call_command("export_library", str(out), "--tag", "character")
    captured = capsys.readouterr()
    assert "wrote" in captured.out and "2 adapters" in captured.out and "writing" in captured.err
    wipe(places, django_settings)
    call_command("import_library", str(out), "--dry-run")
    assert "2 new" in capsys.readouterr().out and Adapter.objects.count() == 0
    call_command("import_library", str(out))
    assert "imported: 2 created" in capsys.readouterr().out
    after = snapshot()["adapters"]
    assert set(after) == {sha for sha, a in before["adapters"].items() if "character" in a["tags"]}
    assert all(after[sha] == before["adapters"][sha] for sha in after)


@pytest.mark.django_db
def test_import_on_another_machine_moves_files_and_paths_to_its_library(places, settings, tmp_path):
    build_library(places)
    out = exporting.export_library(tmp_path / "move.zip").path
    wipe(places, settings)
    elsewhere = tmp_path / "new-machine" / "loras"
    call_command("import_library", str(out), "--library-dir", str(elsewhere), "--on-conflict", "keep-both")
    paths = sorted(AdapterFile.objects.values_list("path", flat=True))
    assert paths and all(p.startswith(str(elsewhere) + "/") for p in paths)
    assert all(Path(p).is_file() for p in paths)
    zelda = Adapter.objects.get(name="Zelda (Breath of the Wild)")
    assert zelda.preview_source == str(elsewhere / "characters" / "zelda.preview.png")
    assert Path(zelda.preview_source).is_file() and (elsewhere / "characters" / "zelda.civitai.info").is_file()
    assert not list(places.iterdir())  # nothing was written to the old location
