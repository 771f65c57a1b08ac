"""Hostile and broken archives: each is refused with a clear message and nothing changes."""

from __future__ import annotations

import json
import resource
import signal
import zipfile
from pathlib import Path

import pytest

from archive import exporting, importing
from archive import manifest as mf
from archive.checking import ArchiveRefused
from tests.archive.conftest import build_library, file_hashes, snapshot


@pytest.fixture
def exported(places, settings, tmp_path):
    """A library and a valid archive of it; ``unchanged()`` proves the refusal left everything as it was."""
    build_library(places)
    archive = exporting.export_library(tmp_path / "good.zip").path
    before = (snapshot(), file_hashes(places, Path(settings.THUMBNAIL_DIR), Path(settings.MEDIA_ROOT)))

    def unchanged() -> bool:
        now = (snapshot(), file_hashes(places, Path(settings.THUMBNAIL_DIR), Path(settings.MEDIA_ROOT)))
        staging = [p for p in places.rglob(".lora-manager-import-*")]
        return now == before and not staging and not (tmp_path / "evil.txt").exists()

    return archive, unchanged


def rewrite(src: Path, dst: Path, manifest=None, drop=(), add=(), replace=None) -> Path:
    """A copy of ``src`` with the manifest changed, entries dropped, added (ZipInfo, bytes) or replaced."""
    replace = replace or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        document = json.loads(zin.read("manifest.json"))
        for info in zin.infolist():
            if info.filename in drop or info.filename == "manifest.json":
                continue
            zout.writestr(info, replace.get(info.filename, zin.read(info.filename)))
        for info, data in add:
            zout.writestr(info, data)
        body = manifest(document) if manifest else document
        zout.writestr("manifest.json", body if isinstance(body, bytes | str) else json.dumps(body))
    return dst


def refused(archive: Path, **kwargs) -> str:
    with pytest.raises(ArchiveRefused) as caught:
        importing.import_archive(archive, on_conflict="update", **kwargs)
    return str(caught.value)


def _wipe_db() -> None:
    from adapters.models import Adapter

    Adapter.objects.all().delete()


@pytest.mark.django_db
def test_zip_slip_names_are_refused_and_all_listed(exported, tmp_path):
    archive, unchanged = exported
    names = ["../evil.txt", "/etc/evil.txt", "C:/evil.txt", "library\\..\\evil.txt", "library/./x"]
    bad = rewrite(archive, tmp_path / "slip.zip", add=[(zipfile.ZipInfo(n), b"x") for n in names])
    message = refused(bad)
    assert "5 problems" in message
    for reason in ("'..'", "absolute path", "drive letter", "backslash"):
        assert reason in message
    assert unchanged()


@pytest.mark.django_db
def test_zip_bomb_is_refused_by_ratio_and_by_total_size(exported, tmp_path, settings):
    archive, unchanged = exported
    info = zipfile.ZipInfo("library/r0/bomb.txt")
    info.compress_type = zipfile.ZIP_DEFLATED
    bomb = rewrite(archive, tmp_path / "bomb.zip", add=[(info, b"\0" * (20 * 1024 * 1024))])
    assert "zip bomb" in refused(bomb) and unchanged()
    settings.ARCHIVE_MAX_UNCOMPRESSED_BYTES = 1024 * 1024
    assert "unpacks to" in refused(archive) and unchanged()


@pytest.mark.django_db
def test_symlink_entry_is_refused(exported, tmp_path):
    archive, unchanged = exported
    link = zipfile.ZipInfo("library/r0/link.safetensors")
    link.external_attr = 0o120777 << 16
    bad = rewrite(archive, tmp_path / "link.zip", add=[(link, b"/etc/passwd")])
    assert "symbolic link" in refused(bad) and unchanged()


@pytest.mark.django_db
def test_truncated_and_corrupt_archives_are_refused(exported, tmp_path):
    archive, unchanged = exported
    data = archive.read_bytes()
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(data[: len(data) // 2])
    assert "not a valid ZIP archive" in refused(truncated)
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("library/r0/misc/old_flux.safetensors")
    corrupt = bytearray(data)
    middle = info.header_offset + 100 + info.compress_size // 2
    corrupt[middle : middle + 64] = bytes(64)
    (tmp_path / "corrupt.zip").write_bytes(bytes(corrupt))
    message = refused(tmp_path / "corrupt.zip")
    assert "old_flux.safetensors" in message and ("corrupt data" in message or "sha256" in message)
    assert unchanged()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda m: b"{not json", "manifest.json is not valid JSON"),
        (lambda m: {**m, "format": "something-else"}, "not a LoRA Manager archive"),
        (lambda m: {**m, "adapters": {"a": 1}}, "manifest.adapters is missing or not a list"),
        (
            lambda m: {**m, "adapters": [{**m["adapters"][0], "fields": {**m["adapters"][0]["fields"], "rank": "x"}}]},
            "fields.rank must be a whole number",
        ),
        (lambda m: {**m, "format_version": 99, "app_version": "9.0"}, "newer LoRA Manager (format version 99"),
    ],
    ids=["not-json", "wrong-format", "wrong-schema", "wrong-field-type", "future-version"],
)
def test_bad_manifests_are_refused(exported, tmp_path, mutate, expected):
    archive, unchanged = exported
    bad = rewrite(archive, tmp_path / "bad.zip", manifest=mutate)
    assert expected in refused(bad) and unchanged()


@pytest.mark.django_db
def test_bytes_not_matching_their_sha256_are_refused(exported, tmp_path):
    archive, _ = exported
    name = "library/r0/characters/zelda.civitai.info"
    with zipfile.ZipFile(archive) as zf:
        original = zf.read(name)
    altered = original.replace(b"zelda", b"ZELDA")
    bad = rewrite(archive, tmp_path / "sha.zip", replace={name: altered})
    _wipe_db()  # even into an empty catalog, where every file would be written
    message = refused(bad)
    assert f"{name}: sha256 does not match" in message
    assert not list(Path(tmp_path).rglob(".lora-manager-import-*"))
    from adapters.models import Adapter

    assert Adapter.objects.count() == 0


@pytest.mark.django_db
def test_missing_and_extra_entries_are_refused(exported, tmp_path):
    archive, unchanged = exported
    bad = rewrite(
        archive,
        tmp_path / "missing.zip",
        drop=["library/r0/styles/ink.safetensors"],
        add=[(zipfile.ZipInfo("library/r0/unlisted.txt"), b"?")],
    )
    message = refused(bad)
    assert "ink.safetensors: listed in the manifest but missing" in message
    assert "unlisted.txt: in the archive but not listed" in message and unchanged()


@pytest.mark.django_db
def test_archive_over_the_size_limit_is_refused(exported):
    archive, unchanged = exported
    assert "larger than the configured limit" in refused(archive, max_size=1000) and unchanged()


@pytest.mark.django_db
def test_too_little_free_space_is_refused_before_writing(exported, settings):
    archive, _ = exported
    _wipe_db()
    settings.ARCHIVE_MIN_FREE_BYTES = 10**18
    assert "not enough free disk space" in refused(archive)
    from adapters.models import Adapter

    assert Adapter.objects.count() == 0


@pytest.mark.django_db
def test_disk_filling_up_while_unpacking_leaves_nothing_behind(exported, places):
    """A file size limit makes writes past 1 MB fail like a full disk (EFBIG), mid-import."""
    archive, _ = exported
    _wipe_db()
    before = file_hashes(places)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024 * 1024, hard))
    try:
        with pytest.raises(ArchiveRefused) as caught:
            importing.import_archive(archive)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    assert "the disk filled up while unpacking library/r0/misc/old_flux.safetensors" in str(caught.value)
    assert file_hashes(places) == before and not list(places.rglob(".lora-manager-import-*"))
    from adapters.models import Adapter

    assert Adapter.objects.count() == 0


@pytest.mark.django_db
def test_manifest_paths_that_would_escape_the_library_are_refused(exported, tmp_path):
    archive, unchanged = exported

    def escape(manifest):
        manifest["adapters"][0]["files"][0]["rel_path"] = "../../evil.safetensors"
        return manifest

    message = refused(rewrite(archive, tmp_path / "relpath.zip", manifest=escape))
    assert "rel_path is unsafe" in message and "'..'" in message and unchanged()


# --- issue 14, defect 5: strict patterns for every path-like manifest field, the text gate for every string


def _with_preview_key(document: dict, key: str) -> dict:
    document["adapters"][0]["fields"]["preview_key"] = key
    return document


@pytest.mark.django_db
def test_defect5_preview_key_outside_the_thumbnails_folder_is_refused(exported, tmp_path, client, admin_user):
    """Before: "../../../../tmp/x" was accepted and /library/{id}/preview/card served any *-384.webp."""
    archive, unchanged = exported
    bad = rewrite(archive, tmp_path / "key.zip", manifest=lambda d: _with_preview_key(d, "../../../../tmp/x"))
    message = refused(bad)
    assert "preview_key" in message and "64 hexadecimal" in message
    assert unchanged()


@pytest.mark.parametrize(
    "change,expected",
    [
        (lambda d: d["adapters"][0]["files"][0].__setitem__("rel_path", "a/\x07bell.safetensors"), "rel_path"),
        (lambda d: d["adapters"][0]["files"][0].__setitem__("rel_path", "a/\ud800.safetensors"), "rel_path"),
        (lambda d: d["adapters"][0]["fields"].__setitem__("notes", "x\ud800"), "lone surrogate"),
        (lambda d: d["adapters"][0]["fields"].__setitem__("preview_key", "ABC"), "preview_key"),
    ],
)
@pytest.mark.django_db
def test_strict_patterns_and_the_text_gate(exported, tmp_path, change, expected):
    archive, unchanged = exported

    def edit(document):
        change(document)
        return json.dumps(document, ensure_ascii=True)  # surrogates as JSON escapes, as an attacker writes them

    message = refused(rewrite(archive, tmp_path / "bad.zip", manifest=edit))
    assert expected in message, message
    assert unchanged()


@pytest.mark.django_db
def test_entry_paths_must_match_their_kind(exported, tmp_path):
    archive, unchanged = exported

    def edit(document):
        thumb = next(f for f in document["files"] if f["kind"] == "thumbnail")
        thumb["kind"] = "thumbnail"
        weights = next(f for f in document["files"] if f["kind"] == "weights")
        weights["kind"] = "thumbnail"  # a .safetensors "thumbnail" would be moved into the thumbnails folder
        return document

    message = refused(rewrite(archive, tmp_path / "kind.zip", manifest=edit))
    assert "thumbnails/<64 hex>-<size>.webp" in message
    assert unchanged()


@pytest.mark.django_db
def test_validate_accepts_what_the_exporter_writes(exported):
    archive, _ = exported
    with zipfile.ZipFile(archive) as zf:
        assert mf.validate(json.loads(zf.read("manifest.json"))) == []
