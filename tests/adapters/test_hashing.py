import hashlib
import os
import threading

import pytest

from adapters import hashing
from adapters.hashing import FileChangedError, FileDigests, autov2, autov3, hash_file, hash_files, is_settled
from adapters.safetensors_header import read_header
from tests.factories.lora_files import kohya_metadata, write_lora


def expected_digests(path, data_offset):
    data = path.read_bytes()
    return FileDigests(hashlib.sha256(data).hexdigest(), hashlib.sha256(data[data_offset:]).hexdigest(), len(data))


def test_hash_file_matches_hashlib(tmp_path):
    path = write_lora(tmp_path / "x.safetensors", max_modules=3)
    offset = read_header(path).data_offset
    assert hash_file(path, offset) == expected_digests(path, offset)


@pytest.mark.parametrize("chunk_size", [1, 7, 4096, 1 << 20])
@pytest.mark.parametrize("data_offset", [0, 1, 4095, 4096, 4097, 9_999, 10_000, 20_000])
def test_hash_file_any_chunk_boundary(tmp_path, chunk_size, data_offset):
    path = tmp_path / "blob.bin"
    path.write_bytes(os.urandom(10_000))
    assert hash_file(path, data_offset, chunk_size=chunk_size) == expected_digests(path, data_offset)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.bin"
    path.write_bytes(b"")
    assert hash_file(path, 0) == expected_digests(path, 0)


def test_tensor_hash_survives_metadata_edits(tmp_path):
    a = write_lora(tmp_path / "a.safetensors", max_modules=2, seed=5)
    b = write_lora(tmp_path / "b.safetensors", max_modules=2, seed=5, metadata=kohya_metadata(ss_output_name="x"))
    digests_a = hash_file(a, read_header(a).data_offset)
    digests_b = hash_file(b, read_header(b).data_offset)
    assert digests_a.tensor_sha256 == digests_b.tensor_sha256
    assert digests_a.sha256 != digests_b.sha256


def test_expected_size_mismatch_raises(tmp_path):
    path = write_lora(tmp_path / "x.safetensors", max_modules=1)
    size = path.stat().st_size
    assert hash_file(path, 8, expected_size=size).size == size
    with pytest.raises(FileChangedError, match="may still be copying"):
        hash_file(path, 8, expected_size=size - 1)


def test_size_change_while_reading_raises(tmp_path, monkeypatch):
    """The file grew after we looked at its size: what a download in progress looks like."""
    path = write_lora(tmp_path / "x.safetensors", max_modules=1)
    real_fstat = os.fstat

    class Shrunk:
        def __init__(self, st):
            self.st_size = st.st_size - 10

    monkeypatch.setattr(hashing.os, "fstat", lambda fd: Shrunk(real_fstat(fd)))
    with pytest.raises(FileChangedError, match="changed size while hashing"):
        hash_file(path, 8)


def test_missing_file_raises_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        hash_file(tmp_path / "gone.safetensors", 8)


def test_hash_files_yields_every_file_and_errors(tmp_path):
    paths = [write_lora(tmp_path / f"{i}.safetensors", max_modules=2, seed=i) for i in range(6)]
    items = [(str(p), read_header(p).data_offset) for p in paths]
    items.append((str(tmp_path / "missing.safetensors"), 8))
    items.append((str(tmp_path), 8))  # a directory
    results = dict(hash_files(iter(items), workers=3))
    assert set(results) == {path for path, _ in items}
    for path, offset in items[:6]:
        assert results[path] == expected_digests(tmp_path / os.path.basename(path), offset)
    assert isinstance(results[str(tmp_path / "missing.safetensors")], FileNotFoundError)
    assert isinstance(results[str(tmp_path)], IsADirectoryError)
    assert len({results[path].sha256 for path, _ in items[:6]}) == 6


def test_hash_files_empty_and_single_worker(tmp_path):
    assert list(hash_files([])) == []
    path = write_lora(tmp_path / "x.safetensors", max_modules=1)
    assert list(hash_files([(str(path), 8)], workers=1)) == [(str(path), hash_file(path, 8))]


def test_hash_files_runs_in_parallel_threads(monkeypatch):
    seen = set()
    barrier = threading.Barrier(2, timeout=10)

    def fake_hash(path, data_offset):
        seen.add(threading.get_ident())
        barrier.wait()  # only passes when two files are being hashed at the same time
        return FileDigests("a" * 64, "b" * 64, data_offset)

    monkeypatch.setattr(hashing, "hash_file", fake_hash)
    results = list(hash_files([("a", 1), ("b", 2)], workers=2, batch_files=1))
    assert sorted(path for path, _ in results) == ["a", "b"]
    assert len(seen) == 2


def test_hash_files_stops_early_without_hashing_everything(monkeypatch):
    calls = []

    def fake_hash(path, data_offset):
        calls.append(path)
        return FileDigests("a" * 64, "b" * 64, data_offset)

    monkeypatch.setattr(hashing, "hash_file", fake_hash)
    results = hash_files(((str(i), i) for i in range(1000)), workers=2)
    next(results)
    results.close()
    assert len(calls) <= hashing.IN_FLIGHT_PER_WORKER * 2 * 16  # only the batches in flight were hashed


def test_short_hashes():
    digest = hashlib.sha256(b"lora").hexdigest()
    assert autov2(digest) == digest[:10]
    assert autov3(digest.upper()) == digest[:12]
    assert len(autov3(digest)) == 12


def test_is_settled():
    now = 1_700_000_000 * 10**9
    assert is_settled(now - 6 * 10**9, now)
    assert not is_settled(now - 1 * 10**9, now)
    assert not is_settled(now, now)
    assert is_settled(now - 2 * 10**9, now, settle_seconds=1.5)
    assert not is_settled(now + 2 * 10**9, now)  # slightly ahead: may be a download on a skewed share
    assert is_settled(now + 3600 * 10**9, now)  # an hour ahead: clock skew, not a download
    assert is_settled(0)
