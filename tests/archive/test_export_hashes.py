"""What the exporter writes: each file's manifest sha256 is the hash of the bytes in the archive, and the
ZIP layout is the one earlier versions wrote, so their archives still import."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import pytest

from adapters.models import AdapterFile
from archive import checking, exporting, importing
from tests.archive.conftest import build_library, file_hashes, snapshot, wipe


def _entry_hashes(archive: Path) -> dict[str, str]:
    with zipfile.ZipFile(archive) as zf:
        return {i.filename: hashlib.sha256(zf.read(i)).hexdigest() for i in zf.infolist()}


@pytest.mark.django_db
def test_a_file_changed_in_place_exports_the_hash_of_its_real_bytes(places, settings, tmp_path):
    build_library(places)
    weights = places / "characters" / "zelda.safetensors"
    row = AdapterFile.objects.get(path=str(weights))
    cached, st = row.sha256, weights.stat()
    with open(weights, "r+b") as fh:  # same size, different bytes, then the old mtime back
        fh.seek(st.st_size - 64)
        tail = fh.read(64)
        fh.seek(st.st_size - 64)
        fh.write(bytes(b ^ 0xFF for b in tail))
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    real = hashlib.sha256(weights.read_bytes()).hexdigest()
    row.refresh_from_db()
    assert real != cached and row.hash_is_current  # the catalog still believes its cached hash
    assert (weights.stat().st_size, weights.stat().st_mtime_ns) == (row.size, row.mtime_ns)

    archive = exporting.export_library(tmp_path / "edited.zip").path

    manifest = json.loads(zipfile.ZipFile(archive).read("manifest.json"))
    listed = {f["path"]: f["sha256"] for f in manifest["files"]}
    in_zip = _entry_hashes(archive)
    assert listed["library/r0/characters/zelda.safetensors"] == real
    assert all(in_zip[name] == sha for name, sha in listed.items())  # every file, not only the edited one
    checking.stage(checking.inspect(archive), {})  # verifies every size and sha256; raises if one differs
    before = file_hashes(places)
    wipe(places, settings)
    importing.import_archive(archive)
    assert file_hashes(places) == before


# How versions before the change to ZipFile.open(name, "w") wrote weights whose hash was cached: a kernel
# copy behind a hand-written local header, through zipfile's private internals. Frozen here (only to
# produce that layout) so the test proves archives written that way still import.
def _old_write_stored(zf: zipfile.ZipFile, info: zipfile.ZipInfo, data: bytes) -> None:
    info.compress_type, info.flag_bits = zipfile.ZIP_STORED, 0
    info.file_size = info.compress_size = len(data)
    info.CRC = 0
    zf.fp.seek(zf.start_dir)
    info.header_offset = zf.fp.tell()
    zf._writecheck(info)
    zf._didModify = True
    zf.fp.write(info.FileHeader(zip64=True))
    zf.fp.write(data)
    info.CRC = zipfile.crc32(data)
    end = zf.fp.seek(0, os.SEEK_END)
    zf.fp.seek(info.header_offset)
    zf.fp.write(info.FileHeader(zip64=True))
    zf.fp.seek(end)
    zf.start_dir = end
    zf.filelist.append(info)
    zf.NameToInfo[info.filename] = info


def _repack_the_old_way(src: Path, dst: Path) -> None:
    """The same entries in the same order, weights through the old writer, the rest as before."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", allowZip64=True, compresslevel=6) as zout:
        for old in zin.infolist():
            data = zin.read(old)
            info = zipfile.ZipInfo(old.filename, date_time=old.date_time)
            info.compress_type, info.external_attr = old.compress_type, old.external_attr
            if old.filename == "manifest.json":
                zout.writestr(info, data)
            elif old.filename.endswith(".safetensors"):
                _old_write_stored(zout, info, data)
            else:
                with zout.open(info, "w", force_zip64=True) as fh:
                    fh.write(data)


@pytest.mark.django_db
def test_archives_written_by_the_old_exporter_still_import(places, settings, tmp_path):
    build_library(places)
    before, files_before = snapshot(), file_hashes(places, Path(settings.THUMBNAIL_DIR))
    new = exporting.export_library(tmp_path / "new.zip").path
    old = tmp_path / "old.zip"
    _repack_the_old_way(new, old)
    with zipfile.ZipFile(old) as zf:
        assert zf.testzip() is None
        assert sum(n.endswith(".safetensors") for n in zf.namelist()) == 4
    assert old.read_bytes() == new.read_bytes()  # the public API writes exactly the old layout
    wipe(places, settings)
    imported = importing.import_archive(old)
    assert imported.plan.counts["new"] == 4
    assert snapshot() == before and file_hashes(places, Path(settings.THUMBNAIL_DIR)) == files_before
