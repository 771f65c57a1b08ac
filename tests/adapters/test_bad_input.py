"""Each bad file gets a per-file issue with a clear message, and the scan goes on."""

import os
import zlib

import pytest

from adapters import identity, scanning
from adapters.models import Adapter, AdapterStatus
from tests.adapters.conftest import lora
from tests.factories.lora_files import write_raw
from tests.factories.sidecars import write_preview, write_sidecar_raw

pytestmark = pytest.mark.django_db

TENSOR = {"w.lora_down.weight": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}}


def bad_files(root):
    (root / "zero.safetensors").write_bytes(b"")
    (root / "short.safetensors").write_bytes(b"\x01\x02\x03")
    write_raw(root / "liar.safetensors", TENSOR, b"\0" * 4, header_length=10_000_000)
    write_raw(root / "huge.safetensors", b"{}", header_length=200_000_000)
    write_raw(root / "notjson.safetensors", b"{not json at all", b"")
    write_raw(root / "array.safetensors", b"[1, 2, 3]", b"")
    write_raw(root / "latin1.safetensors", b'{"__metadata__": {"x": "\xe9"}}', b"")
    write_raw(root / "outside.safetensors", {"w": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]}}, b"\0" * 2)
    os.symlink(root / "loop_a.safetensors", root / "loop_b.safetensors")
    os.symlink(root / "loop_b.safetensors", root / "loop_a.safetensors")


EXPECTED = {
    "zero.safetensors": "empty",
    "short.safetensors": "too short",
    "liar.safetensors": "larger than the file",
    "huge.safetensors": "",
    "notjson.safetensors": "not valid JSON",
    "array.safetensors": "not an object",
    "latin1.safetensors": "UTF-8",
    "outside.safetensors": "",
    "loop_a.safetensors": "symlink loop",
}


def test_each_bad_file_is_reported_and_the_scan_goes_on(library):
    bad_files(library)
    lora(library, "good.safetensors")
    summary = scanning.scan()
    messages = {}
    for issue in summary.issues:
        messages.setdefault(os.path.basename(issue["path"]), []).append(issue["message"])
    for name, fragment in EXPECTED.items():
        assert name in messages, f"no issue for {name}: {messages}"
        assert any(fragment.lower() in m.lower() for m in messages[name]), (name, messages[name])
    assert Adapter.objects.get(name="good").status == AdapterStatus.OK
    broken = Adapter.objects.filter(status=AdapterStatus.ERROR)
    assert broken.count() == 8  # everything but the symlink loops, which cannot be opened at all
    assert all(a.issues for a in broken)


def test_non_string_metadata_is_kept_as_text_with_an_issue(library):
    write_raw(library / "m.safetensors", {"__metadata__": {"ss_epoch": 10, "ok": "yes"}, **TENSOR}, b"\0" * 4)
    summary = scanning.scan()
    adapter = Adapter.objects.get()
    assert adapter.status == AdapterStatus.OK
    assert adapter.header_metadata["ss_epoch"] == "10"
    assert any("ss_epoch" in issue["message"] for issue in summary.issues)


def test_broken_sidecars_and_fake_previews_are_issues_not_failures(library, settings):
    model = lora(library, "m.safetensors")
    write_sidecar_raw(model, ".civitai.info", "{broken json")
    write_sidecar_raw(model, ".json", '{"activation text": 42, "preferred weight": "abc"}')
    (library / "m.preview.png").write_text("this is not an image")
    summary = scanning.scan()
    adapter = Adapter.objects.get()
    assert adapter.status == AdapterStatus.OK
    text = " ".join(issue["message"] for issue in summary.issues)
    assert "m.civitai.info" in text and "preferred weight" in text
    from adapters.thumbnails import ensure_thumbnails

    assert ensure_thumbnails(adapter) == ""
    adapter.refresh_from_db()
    assert any("not an image" in issue for issue in adapter.issues)


def test_two_model_files_with_one_stem_are_flagged(library):
    model = lora(library, "style.safetensors")
    (library / "style.ckpt").write_bytes(b"pickle")
    summary = scanning.scan()
    assert any("same name (style.ckpt)" in issue["message"] for issue in summary.issues)
    assert Adapter.objects.get().status == AdapterStatus.OK
    assert model.exists()


def test_decompression_bomb_preview_is_refused(library):
    model = lora(library, "m.safetensors")
    write_preview(model, naming="png", size=(64, 64))
    # Rewrite the PNG header to claim 100000x100000 pixels.
    path = library / "m.png"
    data = bytearray(path.read_bytes())
    data[16:24] = (100_000).to_bytes(4, "big") * 2
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    path.write_bytes(bytes(data))
    scanning.scan()
    from adapters.thumbnails import ensure_thumbnails

    adapter = Adapter.objects.get()
    assert ensure_thumbnails(adapter) == ""
    adapter.refresh_from_db()
    assert any("too large" in issue or "pixels" in issue for issue in adapter.issues), adapter.issues


def test_unreadable_file_does_not_stop_hashing(library):
    lora(library, "good.safetensors")
    other = lora(library, "other.safetensors", seed=2)
    scanning.scan()
    other.unlink()
    counts = identity.hash_pending()
    assert counts["hashed"] == 1 and counts["errors"] == 1
