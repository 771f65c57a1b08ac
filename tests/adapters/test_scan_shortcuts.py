"""The scan's fast paths give the answers of the slow ones they skip."""

import pytest

from adapters import companions, detection, sidecars
from adapters.reading import FileRead, make_storable
from adapters.safetensors_header import loads_json


def test_header_copy_is_the_same_whether_or_not_anything_needs_cutting():
    plain = {"ss_network_dim": "8", "modelspec.title": "Pixel"}
    assert detection.metadata_for_storage(plain) == plain
    cut = detection.metadata_for_storage({**plain, "ss_long": "x" * 5000})
    assert cut["ss_long"].endswith("characters in the file]") and len(cut["ss_long"]) == 4000
    image = detection.metadata_for_storage({**plain, "modelspec.thumbnail": "data:image/png;base64,AAAA"})
    assert image["modelspec.thumbnail"].startswith("<embedded image")


def test_clean_reads_pass_unchanged_and_bad_text_is_still_replaced_and_named():
    clean = FileRead(values={"name": "ok", "header_metadata": {"k": "v"}}, sources={"name": "file name"})
    assert make_storable(clean).issues == []
    bad = FileRead(values={"header_metadata": {"k": "a\x00b"}, "name": "x\ud800"}, sources={"name": "file name"})
    stored = make_storable(bad)
    assert stored.values == {"header_metadata": {"k": "a\ufffdb"}, "name": "x\ufffd"}
    assert "header_metadata" in stored.issues[-1] and "name" in stored.issues[-1]


def test_json_that_orjson_refuses_is_read_as_the_standard_library_reads_it():
    assert loads_json('{"a": NaN}')["a"] != loads_json('{"a": NaN}')["a"]  # NaN, as json reads it
    assert loads_json('{"a": "\\ud800"}') == {"a": "\ud800"}
    with pytest.raises(ValueError):
        loads_json("{broken")


def test_companion_lookup_prefers_the_exact_name_then_the_first_case_insensitive_one():
    names = {"m.safetensors", "m.JSON", "M.json", "m.Preview.PNG"}
    assert sidecars.sidecar_names("m", names) == ["M.json"]  # first of the case-insensitive matches, as find_name
    assert companions.find_companions("m", names | {"m.json"}, (".json",)) == ["m.json"]
    assert companions.find_companions("m", names, (".preview.png",)) == ["m.Preview.PNG"]
    listing = {"m.png", "m.thumb.jpg", "m.preview.webp", "m.txt", "mm.png"}
    found = companions.find_companions("m", listing, [".thumb.jpg", ".gif", ".png", ".preview.webp"])
    assert found == ["m.thumb.jpg", "m.png", "m.preview.webp"]  # in the order of the suffixes asked for


def test_sqlite_keeps_statement_journals_in_memory(tmp_path):
    """On any configured engine: an SQLite database as settings would configure it gets temp_store=MEMORY."""
    import sqlite3

    from lora_manager.env import database_config

    config = database_config(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path)
    db = sqlite3.connect(config["NAME"])
    db.executescript(config["OPTIONS"]["init_command"])
    assert db.execute("PRAGMA temp_store").fetchone()[0] == 2  # MEMORY: trigger-firing bulk inserts were 2.5x slower
