"""Settling: new files are hashed as soon as they have stopped changing, never after a fixed delay."""

import os
import time

import pytest

from adapters import companions, identity, scanning, sidecars
from adapters.hashing import SETTLE_SECONDS
from adapters.models import AdapterFile
from tests.adapters.conftest import age, lora

pytestmark = pytest.mark.django_db


@pytest.fixture
def sleeps(monkeypatch):
    """The waits hash_pending asks for, really slept (they are short in these tests)."""
    asked: list[float] = []
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        asked.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(identity.time, "sleep", sleep)
    return asked


def test_files_with_old_mtimes_are_hashed_in_the_first_scan_without_waiting(library, sleeps):
    for index in range(3):
        lora(library, f"m{index}.safetensors", seed=index)  # dated an hour back
    scanning.scan()
    counts = identity.hash_pending(settle_wait=SETTLE_SECONDS + 0.5)
    assert (counts["hashed"], counts["postponed"]) == (3, 0)
    assert sleeps == []
    assert AdapterFile.objects.filter(sha256="").count() == 0


def just_scanned(path, seconds_ago: float) -> None:
    """Date ``path`` back by ``seconds_ago`` as the scan saw it (however long the scan itself took)."""
    age(path, seconds=seconds_ago)
    AdapterFile.objects.filter(path=str(path)).update(mtime_ns=path.stat().st_mtime_ns)


def test_a_new_file_is_hashed_as_soon_as_it_has_settled(library, sleeps):
    old = lora(library, "old.safetensors")
    new = lora(library, "new.safetensors", seed=1)
    scanning.scan()
    just_scanned(new, SETTLE_SECONDS - 0.3)  # settles 0.3 s from now
    counts = identity.hash_pending(settle_wait=SETTLE_SECONDS + 0.5)
    assert (counts["hashed"], counts["postponed"]) == (2, 0)
    assert len(sleeps) == 1 and sleeps[0] < 1.0  # only as long as the file needed, not a fixed settle delay
    assert AdapterFile.objects.get(path=str(new)).sha256
    assert AdapterFile.objects.get(path=str(old)).sha256


def test_a_file_still_being_written_is_not_hashed(library, monkeypatch):
    growing = lora(library, "growing.safetensors")
    scanning.scan()
    just_scanned(growing, 0)

    def still_writing(seconds: float) -> None:  # the download goes on while the hasher waits
        with open(growing, "ab") as fh:
            fh.write(b"\0" * 16)
        now = time.time()
        os.utime(growing, (now, now))

    monkeypatch.setattr(identity.time, "sleep", still_writing)
    counts = identity.hash_pending(settle_wait=SETTLE_SECONDS + 0.5)
    assert (counts["hashed"], counts["postponed"]) == (0, 1)
    assert AdapterFile.objects.get().sha256 == ""


def test_without_a_wait_a_fresh_file_is_postponed_and_nothing_sleeps(library, sleeps):
    fresh = lora(library, "fresh.safetensors")
    age(fresh, seconds=0)
    scanning.scan()
    counts = identity.hash_pending()
    assert (counts["hashed"], counts["postponed"]) == (0, 1)
    assert sleeps == []


def test_companions_are_found_in_any_case_and_with_dots_in_the_stem():
    names = {"a.b.safetensors", "A.B.JSON", "plain.safetensors", "other.safetensors", "other.preview.png"}
    assert companions.has_companions("a.b", names)
    assert sidecars.sidecar_names("a.b", names) == ["A.B.JSON"]
    assert not companions.has_companions("plain", names)
    assert companions.has_companions("other", names)
    assert sidecars.sidecar_names("a", names) == []  # "A.B.JSON" may belong to "a": looked for, not found
