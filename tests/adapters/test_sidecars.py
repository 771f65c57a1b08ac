import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from adapters import sidecar_formats, sidecars
from adapters.sanitize import clean_html, to_text
from adapters.sidecar_formats import base_model_family
from adapters.sidecars import SidecarValues, merge, read_sidecar, read_sidecars, sidecar_names
from tests.factories.sidecars import (
    ADDNET_HASH,
    MODEL_ID,
    MODEL_SHA256,
    VERSION_ID,
    civitai_hashes,
    civitai_version,
    write_a1111_json,
    write_civitai_info,
    write_cm_info,
    write_description_txt,
    write_lm_metadata,
    write_sdnext_civitai_json,
    write_sidecar_raw,
)

STEM = "zelda_botw"
URL = f"https://civitai.com/models/{MODEL_ID}?modelVersionId={VERSION_ID}"


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return tmp_path / f"{STEM}.safetensors"


def read(path: Path, known_hashes=()) -> SidecarValues:
    return read_sidecar(path, STEM, known_hashes)


def read_all(model: Path, known_hashes=()) -> list[SidecarValues]:
    return read_sidecars(model.parent, STEM, set(os.listdir(model.parent)), known_hashes)


# --- A1111 user metadata ------------------------------------------------------------------------------------


def test_a1111_json_is_parsed_to_normalized_values(model):
    result = read(write_a1111_json(model, negative_text="lowres"))
    assert result.kind == "a1111_json"
    assert result.filename == f"{STEM}.json"
    assert result.issues == []
    assert result.values == {
        "description": "Zelda from Breath of the Wild.",
        "notes": "Looks best with the blue tunic.",
        "base_model": "SD1",
        "activation_text": "zelda, pointy ears",
        "trigger_words": ["zelda", "pointy ears"],
        "preferred_weight": 0.8,
        "negative_text": "lowres",
    }


def test_a1111_zero_weight_and_empty_fields_mean_unset(model):
    result = read(write_a1111_json(model, preferred_weight=0, activation_text="", notes="  ", sd_version="Unknown"))
    assert result.issues == []
    for key in ("preferred_weight", "activation_text", "trigger_words", "notes", "base_model"):
        assert key not in result.values


@pytest.mark.parametrize(("sd_version", "family"), [("SD1", "SD1"), ("SD2", "SD2"), ("SDXL", "SDXL"), ("SD3", "SD3")])
def test_a1111_sd_version_maps_to_family(model, sd_version, family):
    assert read(write_a1111_json(model, sd_version=sd_version)).values["base_model"] == family


def test_a1111_other_is_silently_unset_but_a_strange_version_is_reported(model):
    assert "base_model" not in read(write_a1111_json(model, sd_version="Other")).values  # Civitai Browser+
    result = read(write_a1111_json(model, sd_version="SD9"))
    assert "base_model" not in result.values
    assert result.issues == [f"{STEM}.json: unrecognized 'sd version' 'SD9'"]


def test_a1111_with_civitai_browser_plus_keys(model):
    path = write_a1111_json(model, modelId=MODEL_ID, modelVersionId=str(VERSION_ID), sha256=MODEL_SHA256.upper())
    values = read(path).values
    assert values["civitai_model_id"] == MODEL_ID
    assert values["civitai_version_id"] == VERSION_ID
    assert values["sha256"] == MODEL_SHA256
    assert values["source_url"] == URL


def test_activation_text_split_into_trigger_words_deduplicated(model):
    values = read(write_a1111_json(model, activation_text="zelda,  Pointy Ears , ,zelda, pointy ears")).values
    assert values["trigger_words"] == ["zelda", "Pointy Ears"]
    assert values["activation_text"] == "zelda,  Pointy Ears , ,zelda, pointy ears"


def test_numeric_strings_are_accepted(model):
    assert read(write_a1111_json(model, preferred_weight="0.65")).values["preferred_weight"] == 0.65


# --- <stem>.json schema detection ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        ({"description": "x", "sd version": "SDXL"}, "a1111_json"),
        ({"activation text": "x"}, "a1111_json"),
        ({"modelId": 1, "modelVersionId": 2, "sha256": MODEL_SHA256}, "a1111_json"),
        ({}, "a1111_json"),
        ({"id": 1, "name": "x", "modelVersions": []}, "sdnext_civitai_json"),
        ({"id": 1, "name": "x", "creator": {"username": "u"}, "description": "d"}, "sdnext_civitai_json"),
        ({"id": 2, "modelId": 1, "trainedWords": ["a"], "baseModel": "Pony", "description": "d"}, "civitai_info"),
        ({"prompt": "x", "seed": 1}, "unknown_json"),
    ],
)
def test_json_kind_is_detected_from_keys(model, data, kind):
    assert read(write_sidecar_raw(model, ".json", json.dumps(data))).kind == kind


def test_unknown_json_has_an_issue_and_no_values(model):
    result = read(write_sidecar_raw(model, ".json", '{"prompt": "zelda", "seed": 1}'))
    assert result.kind == "unknown_json"
    assert result.values == {}
    assert result.issues == [f"{STEM}.json: unrecognized JSON, not a known sidecar format (keys: prompt, seed)"]


# --- SD.Next Civitai model JSON -----------------------------------------------------------------------------


def sdnext_versions():
    """Three versions of one model; the second is the local file (identified by its hashes)."""
    v3 = {"sha256": hashlib_hex("v3"), "addnet_hash": hashlib_hex("v3 tensors")}
    v1 = {"sha256": hashlib_hex("v1"), "addnet_hash": hashlib_hex("v1 tensors")}
    return [
        civitai_version(version_id=3, name="v3", trained_words=["zelda v3"], base_model="SDXL 1.0", **v3),
        civitai_version(version_id=2, name="v2", trained_words=["zelda v2"], base_model="Pony"),
        civitai_version(version_id=1, name="v1", trained_words=["zelda v1"], **v1),
    ]


def hashlib_hex(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def test_sdnext_model_json_is_parsed(model):
    result = read(write_sdnext_civitai_json(model), [MODEL_SHA256])
    assert result.kind == "sdnext_civitai_json"
    assert result.issues == []
    values = result.values
    assert values["civitai_model_id"] == MODEL_ID
    assert values["civitai_version_id"] == VERSION_ID
    assert values["name"] == "Zelda (Breath of the Wild)"
    assert values["description"].startswith("<p>Princess Zelda")  # the model's, not the version's
    assert values["tags"] == ["character", "zelda", "video game"]
    assert values["author"] == "hyrule_artist"
    assert values["nsfw"] is False
    assert values["trigger_words"] == ["zelda", "pointy ears", "blonde hair"]
    assert values["base_model_detail"] == "SD 1.5"
    assert values["base_model"] == "SD1"
    assert values["sha256"] == MODEL_SHA256
    assert values["source_url"] == URL


@pytest.mark.parametrize(
    "known",
    [
        [ADDNET_HASH],  # sshs_model_hash (full) starts with the file's 12-char AutoV3
        [MODEL_SHA256[:10]],  # an AutoV2 that prefixes the file's full SHA256
        [MODEL_SHA256.upper()],
        ["0xdeadbeef", MODEL_SHA256[:8]],  # the 8-char short hash SD.Next uses
        ["0x" + ADDNET_HASH.upper()],  # OneTrainer writes sshs_model_hash with a 0x prefix
    ],
)
def test_sdnext_version_is_picked_by_known_hash(model, known):
    result = read(write_sdnext_civitai_json(model, versions=sdnext_versions()), known)
    assert result.issues == []
    assert result.values["civitai_version_id"] == 2
    assert result.values["trigger_words"] == ["zelda v2"]
    assert result.values["base_model"] == "SDXL"
    assert result.values["base_model_detail"] == "Pony"
    assert result.values["sha256"] == MODEL_SHA256


def test_sdnext_without_known_hash_uses_first_version_and_declares_no_sha256(model):
    result = read(write_sdnext_civitai_json(model, versions=sdnext_versions()))
    assert result.issues == []
    assert result.values["civitai_version_id"] == 3
    assert "sha256" not in result.values


def test_sdnext_with_unmatched_hash_reports_the_guess(model):
    result = read(write_sdnext_civitai_json(model, versions=sdnext_versions()), [hashlib_hex("unrelated")])
    assert result.values["civitai_version_id"] == 3
    assert result.issues == [f"{STEM}.json: no model version matches the file's hash; using the first version"]


def test_sdnext_old_style_tag_objects(model):
    values = read(write_sdnext_civitai_json(model, tags=[{"name": "Anime"}, {"name": " style"}])).values
    assert values["tags"] == ["anime", "style"]


# --- Civitai Helper .civitai.info ---------------------------------------------------------------------------


def test_civitai_info_is_parsed(model):
    result = read(write_civitai_info(model, base_model="Illustrious"))
    assert result.kind == "civitai_info"
    assert result.issues == []
    assert result.values == {
        "civitai_version_id": VERSION_ID,
        "civitai_model_id": MODEL_ID,
        "name": "Zelda (Breath of the Wild)",
        "nsfw": False,
        "description": "<p>Trained on 60 screenshots. Works best at <strong>0.7-0.9</strong>.</p>",
        "author": "hyrule_artist",
        "trigger_words": ["zelda", "pointy ears", "blonde hair"],
        "base_model_detail": "Illustrious",
        "base_model": "SDXL",
        "sha256": MODEL_SHA256,
        "source_url": URL,
    }


def test_empty_civitai_info_means_not_on_civitai(model):
    result = read(write_civitai_info(model, empty=True))
    assert result.values == {"not_on_civitai": True}
    assert result.issues == []


def test_civitai_info_model_creator_and_merged_model_description(model):
    info = {"name": "Zelda", "nsfw": True, "creator": "helper_user", "description": "<p>Model text</p>"}
    values = read(write_civitai_info(model, model=info, creator=None)).values
    assert values["author"] == "helper_user"
    assert values["nsfw"] is True
    assert values["description"] == "<p>Model text</p>"  # Civitai Helper-z merges the model description here


def test_civitai_info_sha256_from_the_file_matching_a_known_hash(model):
    fp16 = hashlib_hex("fp16")
    files = [
        {"name": "a.safetensors", "primary": True, "hashes": civitai_hashes(fp16, hashlib_hex("x"))},
        {"name": "b.safetensors", "primary": False, "hashes": civitai_hashes()},
    ]
    path = write_civitai_info(model, files=files)
    assert read(path, [ADDNET_HASH]).values["sha256"] == MODEL_SHA256
    assert read(path).values["sha256"] == fp16  # no known hash: the primary file


# --- ComfyUI-Lora-Manager .metadata.json ---------------------------------------------------------------------


def test_lm_metadata_is_parsed(model):
    result = read(write_lm_metadata(model))
    assert result.kind == "lm_metadata_json"
    assert result.issues == []
    values = result.values
    assert values["name"] == "Zelda (Breath of the Wild)"
    assert values["sha256"] == MODEL_SHA256
    assert values["base_model"] == "SD1"
    assert values["notes"] == "Use with the BotW checkpoint."
    assert values["description"].startswith("<p>Princess Zelda")
    assert values["tags"] == ["character", "zelda"]
    assert values["favorite"] is True
    assert values["trigger_words"] == ["zelda"]  # LM's top-level (user-editable) list beats the civitai block
    assert values["preferred_weight"] == 0.8
    assert values["weight_min"] == 0.6
    assert values["weight_max"] == 1.0
    assert values["clip_strength"] == 1.0
    assert values["clip_skip"] == 2
    assert values["civitai_version_id"] == VERSION_ID
    assert values["author"] == "hyrule_artist"
    assert values["source_url"] == URL


def test_lm_usage_tips_accepts_clipstrength_spelling(model):
    values = read(write_lm_metadata(model, usage_tips='{"strength": 1.2, "clipStrength": 0.5}')).values
    assert values["preferred_weight"] == 1.2
    assert values["clip_strength"] == 0.5
    assert "weight_min" not in values


def test_lm_broken_usage_tips_only_loses_the_tips(model):
    result = read(write_lm_metadata(model, usage_tips="{strength: 0.8"))
    assert result.issues == [f"{STEM}.metadata.json: 'usage_tips' is not valid JSON"]
    assert "preferred_weight" not in result.values
    assert result.values["notes"] == "Use with the BotW checkpoint."


def test_lm_usage_tips_with_bad_number(model):
    result = read(write_lm_metadata(model, usage_tips={"strength": "strong", "strength_min": 0.5}))
    assert result.issues == [f"{STEM}.metadata.json: 'usage_tips.strength' is not a number"]
    assert result.values["weight_min"] == 0.5


def test_lm_not_from_civitai_with_unknown_base_model(model):
    path = write_lm_metadata(model, civitai={}, base_model="Unknown", trainedWords=[], notes="")
    result = read(path)
    assert result.issues == []
    for key in ("base_model", "base_model_detail", "civitai_model_id", "trigger_words", "notes", "source_url"):
        assert key not in result.values


# --- Stability Matrix .cm-info.json ---------------------------------------------------------------------------


def test_cm_info_is_parsed(model):
    result = read(write_cm_info(model, BaseModel="Flux.1 D"))
    assert result.kind == "cm_info_json"
    assert result.issues == []
    assert result.values == {
        "name": "Zelda (Breath of the Wild)",
        "civitai_model_id": MODEL_ID,
        "civitai_version_id": VERSION_ID,
        "base_model_detail": "Flux.1 D",
        "base_model": "Flux",
        "trigger_words": ["zelda", "pointy ears"],
        "tags": ["character", "zelda"],
        "sha256": MODEL_SHA256,
        "description": "<p>Princess Zelda, <em>Breath of the Wild</em> outfit.</p>",
        "nsfw": False,
        "author": "hyrule_artist",
        "source_url": URL,
    }


def test_cm_info_user_title_and_non_civitai_source(model):
    path = write_cm_info(model, UserTitle="My Zelda", Source="OpenModelDb", SourceUrl="https://openmodeldb.info/x")
    values = read(path).values
    assert values["name"] == "My Zelda"
    assert "civitai_model_id" not in values
    assert values["source_url"] == "https://openmodeldb.info/x"


# --- description text ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["txt", "description.txt"])
def test_description_txt(model, variant):
    result = read(write_description_txt(model, "  A <b>plain</b> description.\n", variant=variant))
    assert result.kind == "description_txt"
    assert result.values == {"description": "A <b>plain</b> description."}


def test_description_txt_in_another_encoding_is_reported(model):
    result = read(write_sidecar_raw(model, ".txt", "Pokémon".encode("cp1252")))
    assert result.values == {}
    assert result.issues == [f"{STEM}.txt: not valid UTF-8 (byte 0xe9 at position 3)"]


# --- broken files never raise --------------------------------------------------------------------------------


def test_broken_json_is_reported_with_position(model):
    result = read(write_sidecar_raw(model, ".civitai.info", '{"id": 1,\n  "name": }'))
    assert result.kind == "civitai_info"
    assert result.values == {}
    assert result.issues == [f"{STEM}.civitai.info: not valid JSON (line 2 column 11: Expecting value)"]


def test_broken_json_named_json_is_unknown(model):
    result = read(write_sidecar_raw(model, ".json", "{"))
    assert result.kind == "unknown_json"
    assert "not valid JSON (line 1 column 2" in result.issues[0]


def test_non_utf8_json(model):
    result = read(write_sidecar_raw(model, ".metadata.json", b'{"notes": "\xff\xfe caf\xe9"}'))
    assert result.values == {}
    assert result.issues == [f"{STEM}.metadata.json: not valid UTF-8 (byte 0xff at position 11)"]


def test_utf8_bom_and_utf16_are_read(model):
    data = json.dumps({"notes": "Zelda ✓"})
    assert read(write_sidecar_raw(model, ".json", b"\xef\xbb\xbf" + data.encode())).values["notes"] == "Zelda ✓"
    assert read(write_sidecar_raw(model, ".json", data.encode("utf-16"))).values["notes"] == "Zelda ✓"


@pytest.mark.parametrize(("content", "got"), [("[1, 2]", "an array"), ('"text"', "a string"), ("null", "null")])
def test_json_that_is_not_an_object(model, content, got):
    result = read(write_sidecar_raw(model, ".cm-info.json", content))
    assert result.kind == "cm_info_json"
    assert result.issues == [f"{STEM}.cm-info.json: expected a JSON object, got {got}"]


def test_wrong_types_skip_only_the_bad_fields(model):
    path = write_civitai_info(model, trained_words="zelda", baseModel=15, modelId="abc", model=["x"], files={})
    result = read(path)
    assert result.values["civitai_version_id"] == VERSION_ID
    assert result.values["description"].startswith("<p>Trained")
    assert sorted(result.issues) == sorted(
        f"{STEM}.civitai.info: {message}"
        for message in (
            "'modelId' is not a whole number",
            "'model' is not an object (got an array)",
            "'trainedWords' is not a list of strings",
            "'baseModel' is not a string (got a number)",
            "'files' is not a list (got an object)",
        )
    )


@pytest.mark.parametrize("weight", ["abc", "nan", float("inf"), True, [0.8]])
def test_bad_preferred_weight(model, weight):
    result = read(write_sidecar_raw(model, ".json", json.dumps({"preferred weight": weight, "notes": "n"})))
    assert result.values == {"notes": "n"}
    assert result.issues == [f"{STEM}.json: 'preferred weight' is not a number"]


def test_bad_sha256_and_list_items(model):
    result = read(write_lm_metadata(model, sha256="not-a-hash", tags=["ok", 3], civitai={}))
    assert "sha256" not in result.values and "tags" not in result.values
    assert result.issues == [
        f"{STEM}.metadata.json: 'sha256' is not a SHA-256 hex digest",
        f"{STEM}.metadata.json: 'tags' is not a list of strings",
    ]


def test_oversized_sidecar_is_skipped(model, monkeypatch):
    monkeypatch.setattr(sidecars, "MAX_SIDECAR_BYTES", 1024 * 1024)
    path = write_sidecar_raw(model, ".civitai.info", json.dumps({"description": "x" * (1024 * 1024)}))
    result = read(path)
    assert result.values == {}
    assert result.issues == [f"{STEM}.civitai.info: larger than 1 MB, skipped"]


def test_deeply_nested_json(model):
    result = read(write_sidecar_raw(model, ".json", "[" * 200_000 + "]" * 200_000))
    assert result.values == {}
    assert result.issues[0].startswith(f"{STEM}.json: not valid JSON (RecursionError")


def test_unreadable_sidecar(model):
    path = model.with_name(f"{STEM}.json")
    path.mkdir(parents=True)
    result = read(path)
    assert result.issues == [f"{STEM}.json: cannot read (Is a directory)"]


WEIRD_VALUES = [None, 0, -1, 1.5, "", "x", [], [1], ["x"], {}, {"a": 1}, True, "NaN", 10**30]


@pytest.mark.parametrize(
    "writer",
    [write_a1111_json, write_sdnext_civitai_json, write_civitai_info, write_lm_metadata, write_cm_info],
)
def test_every_field_with_any_type_never_raises(model, writer):
    path = writer(model)
    original = json.loads(path.read_text())
    nested = [("modelVersions", 0), ("civitai", None), ("model", None), ("files", 0), ("Hashes", None)]
    targets = [(original, key) for key in original]
    for key, index in nested:
        inner = original.get(key)
        inner = inner[index] if isinstance(inner, list) and inner else inner
        if isinstance(inner, dict):
            targets += [(inner, k) for k in inner]
    for container, key in targets:
        saved = container[key]
        for weird in WEIRD_VALUES:
            container[key] = weird
            path.write_text(json.dumps(original))
            result = read(path, [ADDNET_HASH])
            assert all(issue.startswith(path.name + ": ") for issue in result.issues)
        container[key] = saved


# --- listing and precedence ----------------------------------------------------------------------------------


def test_sidecar_names_lists_only_existing_in_precedence_order_without_disk_access():
    names = {f"{STEM}{s}" for s in (".json", ".civitai.info", ".txt", ".metadata.json", ".cm-info.json")}
    names |= {f"{STEM}.description.txt", f"{STEM}.safetensors", f"{STEM}_v2.json", "other.civitai.info"}
    assert sidecar_names(STEM, names) == [  # none of these files exist
        f"{STEM}.description.txt",
        f"{STEM}.txt",
        f"{STEM}.cm-info.json",
        f"{STEM}.metadata.json",
        f"{STEM}.civitai.info",
        f"{STEM}.json",
    ]
    assert sidecar_names("nothing", names) == []


def test_sidecar_names_falls_back_to_case_insensitive_match():
    names = {"Zelda_BotW.safetensors", "zelda_botw.JSON", "ZELDA_BOTW.Civitai.Info", "Zelda_BotW.txt"}
    assert sidecar_names("Zelda_BotW", names) == ["Zelda_BotW.txt", "ZELDA_BOTW.Civitai.Info", "zelda_botw.JSON"]


def test_stem_containing_a_sidecar_suffix(model):
    path = write_sidecar_raw(model.with_name("x.metadata.safetensors"), ".json", '{"notes": "n"}')
    assert read_sidecar(path, "x.metadata").kind == "a1111_json"
    assert read_sidecar(path, "x").kind == "lm_metadata_json"


def test_read_sidecars_sorts_by_detected_kind(model):
    write_sdnext_civitai_json(model)  # <stem>.json with SD.Next's schema ranks below .civitai.info
    write_civitai_info(model)
    write_description_txt(model)
    kinds = [s.kind for s in read_all(model, iter([ADDNET_HASH]))]
    assert kinds == ["description_txt", "sdnext_civitai_json", "civitai_info"]


def test_merge_follows_precedence_and_records_sources(model):
    write_description_txt(model, "plain text")
    write_sdnext_civitai_json(model, versions=sdnext_versions(), tags=["Anime"])
    write_civitai_info(model, base_model="Pony", trained_words=["zelda", "hylian"])
    write_lm_metadata(model.with_name("elsewhere.safetensors"))  # another model's sidecar: ignored
    write_cm_info(model, Tags=["character"], BaseModel="SD 1.5")
    merged, sources = merge(read_all(model, [ADDNET_HASH]))
    assert merged["base_model_detail"] == "Pony"
    assert sources["base_model_detail"] == "civitai_info"
    assert merged["description"].startswith("<p>Trained")
    assert merged["tags"] == ["character", "anime"]
    assert sources["tags"] == "cm_info_json"
    assert merged["trigger_words"] == ["zelda", "hylian", "pointy ears", "zelda v2"]
    assert sources["trigger_words"] == "civitai_info"


def test_a1111_hand_edits_beat_civitai_data(model):
    write_civitai_info(model)
    write_lm_metadata(model, notes="lm note")
    write_a1111_json(model, activation_text="zelda, hylian shield", preferred_weight=0.6, notes="mine")
    merged, sources = merge(read_all(model))
    assert merged["activation_text"] == "zelda, hylian shield"
    assert merged["preferred_weight"] == 0.6
    assert merged["notes"] == "mine"
    assert sources["preferred_weight"] == sources["notes"] == "a1111_json"
    assert merged["weight_max"] == 1.0 and sources["weight_max"] == "lm_metadata_json"
    assert merged["trigger_words"] == ["zelda", "hylian shield", "pointy ears", "blonde hair"]


def test_merge_drops_not_on_civitai_when_another_source_found_it(model):
    write_civitai_info(model, empty=True)
    assert merge(read_all(model))[0] == {"not_on_civitai": True}
    write_cm_info(model)
    merged, sources = merge(read_all(model))
    assert "not_on_civitai" not in merged and "not_on_civitai" not in sources


def test_merge_of_nothing():
    assert merge([]) == ({}, {})


def test_precedence_is_complete():
    assert set(sidecars.PRECEDENCE) == set(sidecar_formats.PARSERS) | {"description_txt"}
    assert sidecars.PRECEDENCE[-1] == "a1111_json"


@pytest.mark.parametrize(
    ("detail", "family"),
    [
        ("SD 1.5", "SD1"),
        ("SD 1.4", "SD1"),
        ("SD 2.1 768", "SD2"),
        ("SDXL 1.0", "SDXL"),
        ("SDXL Lightning", "SDXL"),
        ("Pony", "SDXL"),
        ("Illustrious", "SDXL"),
        ("NoobAI", "SDXL"),
        ("SD 3.5 Large", "SD3"),
        ("SD 3", "SD3"),
        ("Flux.1 D", "Flux"),
        ("Flux.1 S", "Flux"),
        ("Pony V7", "Other"),
        ("Hunyuan Video", "Other"),
        ("Other", "Other"),
    ],
)
def test_base_model_family(detail, family):
    assert base_model_family(detail) == family


def test_lookups_stay_fast_in_a_big_directory():
    stems = [f"lora_{i:05d}" for i in range(5000)]
    names = {f"{s}.safetensors" for s in stems} | {f"{s}.civitai.info" for s in stems[::2]}
    names |= {f"{s}.preview.png" for s in stems[::3]}
    start = time.perf_counter()
    found = sum(len(sidecar_names(s, names)) for s in stems)
    elapsed = time.perf_counter() - start
    assert found == 2500
    assert elapsed < 0.5  # 5,000 stems; a per-stem scan of the listing would take seconds


# --- HTML sanitizing (descriptions come from sidecars) -------------------------------------------------------


def test_clean_html_strips_scripts_handlers_and_unsafe_links():
    dirty = (
        '<p onclick="steal()" style="color:red">Hi <b>there</b><script>alert(1)</script>'
        '<a href="javascript:alert(1)">js</a> <a href="/admin/">rel</a> '
        '<a href="https://civitai.com/models/1" target="_blank" onmouseover="x()">ok</a>'
        '<img src="x" onerror="alert(1)"><iframe src="https://evil"></iframe></p>'
    )
    rel = 'rel="noopener noreferrer nofollow"'
    assert clean_html(dirty) == (
        f'<p>Hi <b>there</b><a {rel}>js</a> <a {rel}>rel</a> <a href="https://civitai.com/models/1" {rel}>ok</a></p>'
    )


def test_clean_html_keeps_the_allowed_formatting():
    html = "<h2>Usage</h2><ul><li><em>a</em></li></ul><pre><code>x</code></pre><blockquote>q</blockquote><br>"
    assert clean_html(html) == html


def test_to_text_flattens_html_for_search():
    html = "<h1>Zelda</h1><p>Weight&nbsp;0.8 &amp; <b>CFG</b>  7</p><ul><li>one</li><li>two</li></ul>x<br>y"
    html += "<script>var s = 1;</script><style>p {}</style>"
    assert to_text(html) == "Zelda\nWeight 0.8 & CFG 7\none\ntwo\nx\ny"
    assert to_text("a < b > c") == "a < b > c"
    assert to_text("") == ""
