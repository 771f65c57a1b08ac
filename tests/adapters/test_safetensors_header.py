import errno
import hashlib
import json
import os
import struct

import numpy as np
import pytest
import safetensors
import safetensors.numpy

from adapters import safetensors_header
from adapters.safetensors_header import DTYPE_BITS, HeaderError, TensorInfo, parse_header, read_alpha, read_header
from tests.factories.lora_files import KINDS, kohya_metadata, write_lora, write_raw, write_tensors


def tensor_entry(dtype="F16", shape=(2, 2), start=0, end=8):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": [start, end]}


def expect_error(path, fragment, **kwargs):
    with pytest.raises(HeaderError) as excinfo:
        read_header(path, **kwargs)
    assert fragment in str(excinfo.value)
    return str(excinfo.value)


# --- the factory writes files the reference implementation accepts ------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_factory_files_load_with_safetensors(tmp_path, kind):
    path = write_lora(tmp_path / f"{kind}.safetensors", kind=kind, max_modules=12)
    with safetensors.safe_open(str(path), "np") as reader:
        names = list(reader.keys())
        assert reader.metadata() == (None if kind == "peft_sdxl" else kohya_metadata(kind, **_rank_overrides()))
    header = read_header(path)
    assert sorted(names) == sorted(header.tensors)
    loaded = safetensors.numpy.load_file(path)
    for name, info in header.tensors.items():
        assert loaded[name].shape == info.shape


def _rank_overrides():
    return {"ss_network_dim": "8", "ss_network_alpha": "4.0"}


@pytest.mark.parametrize(("kind", "dtype"), [("sd15", "F32"), ("sdxl", "BF16"), ("dora", "F16"), ("sd15", "F64")])
def test_factory_conv_and_dtypes_load(tmp_path, kind, dtype):
    path = write_lora(tmp_path / "x.safetensors", kind=kind, dtype=dtype, conv=True, max_modules=6)
    with safetensors.safe_open(str(path), "pt") as reader:  # torch: numpy has no bfloat16
        names = reader.keys()  # safe_open is not iterable
        alphas = [float(reader.get_tensor(name)) for name in names if name.endswith(".alpha")]
        assert any(len(reader.get_slice(name).get_shape()) == 4 for name in names)
    assert alphas
    assert all(value == 4.0 for value in alphas)


def test_factory_layout_matches_reference_writer(tmp_path):
    """Same tensors re-saved by the reference writer give the same data section and header padding."""
    ours = write_lora(tmp_path / "ours.safetensors", kind="sdxl", max_modules=5, seed=3)
    theirs = tmp_path / "theirs.safetensors"
    safetensors.numpy.save_file(safetensors.numpy.load_file(ours), theirs, metadata=kohya_metadata())
    ours_header, theirs_header = read_header(ours), read_header(theirs)
    assert ours_header.header_length % 8 == 0
    assert list(ours_header.tensors) == list(theirs_header.tensors)
    assert ours.read_bytes()[ours_header.data_offset :] == theirs.read_bytes()[theirs_header.data_offset :]


def test_factory_seed_changes_bytes_and_max_modules_limits(tmp_path):
    a = write_lora(tmp_path / "a.safetensors", max_modules=3, seed=1)
    b = write_lora(tmp_path / "b.safetensors", max_modules=3, seed=2)
    assert hashlib.sha256(a.read_bytes()).digest() != hashlib.sha256(b.read_bytes()).digest()
    assert len(read_header(a).tensors) == 9  # lora_down, lora_up, alpha per module
    assert 90_000 < a.stat().st_size < 130_000


def test_factory_rejects_unknown_kind_and_conv_on_flux(tmp_path):
    with pytest.raises(ValueError, match="unknown kind"):
        write_lora(tmp_path / "x.safetensors", kind="sd9")
    with pytest.raises(ValueError, match="conv"):
        write_lora(tmp_path / "x.safetensors", kind="flux", conv=True)


# --- valid files --------------------------------------------------------------------------------------------


def test_read_header_of_kohya_sdxl(tmp_path):
    path = write_lora(tmp_path / "pixelart_xl.safetensors", kind="sdxl", rank=32, max_modules=2)
    header = read_header(path)
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    assert header.header_length == length
    assert header.data_offset == 8 + length
    assert header.file_size == len(raw)
    assert header.metadata == kohya_metadata(ss_network_dim="32", ss_network_alpha="16.0")
    assert header.issues == []
    assert header.fingerprint == hashlib.sha256(raw[8 : 8 + length]).hexdigest()
    info = header.tensors["lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_down.weight"]
    assert info.dtype == "F16"
    assert info.shape == (32, 2048)
    assert info.end - info.start == 32 * 2048 * 2
    assert header.tensors["lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.alpha"].shape == ()


def test_fingerprint_changes_with_metadata_only(tmp_path):
    a = read_header(write_lora(tmp_path / "a.safetensors", max_modules=2))
    b = read_header(write_lora(tmp_path / "b.safetensors", max_modules=2, metadata=kohya_metadata(ss_seed="7")))
    assert a.tensors == b.tensors
    assert a.fingerprint != b.fingerprint


def test_no_metadata_gives_empty_dict(tmp_path):
    header = read_header(write_lora(tmp_path / "x.safetensors", kind="peft_sdxl", max_modules=2))
    assert header.metadata == {}
    path = write_raw(tmp_path / "null.safetensors", {"__metadata__": None})
    assert read_header(path).metadata == {}


def test_file_without_tensors_is_valid(tmp_path):
    header = read_header(write_raw(tmp_path / "x.safetensors", {"__metadata__": {"a": "b"}}))
    assert header.tensors == {}
    assert header.metadata == {"a": "b"}


def test_reads_only_the_header_bytes(tmp_path, monkeypatch):
    path = write_lora(tmp_path / "x.safetensors", max_modules=3)
    sizes = []
    real_read = os.read

    def recording_read(fd, size):
        sizes.append(size)
        return real_read(fd, size)

    monkeypatch.setattr(safetensors_header.os, "read", recording_read)
    header = read_header(path)
    assert sizes == [8, header.header_length]


@pytest.mark.parametrize("dtype", sorted(DTYPE_BITS))
def test_accepts_every_safetensors_dtype(tmp_path, dtype):
    nbytes = 4 * DTYPE_BITS[dtype] // 8  # shape [2, 2]: 4 elements
    path = write_raw(tmp_path / "x.safetensors", {"t": tensor_entry(dtype, (2, 2), 0, nbytes)}, b"\0" * nbytes)
    assert read_header(path).tensors["t"] == TensorInfo(dtype, (2, 2), 0, nbytes)


def test_sub_byte_dtype_must_fill_whole_bytes(tmp_path):
    path = write_raw(tmp_path / "x.safetensors", {"t": tensor_entry("F4", (3,), 0, 2)}, b"\0\0")
    expect_error(path, "not a whole number of bytes")


def test_non_string_metadata_values_are_kept_as_text_with_an_issue(tmp_path):
    metadata = {"ss_network_dim": 32, "ss_flag": True, "ss_tags": {"a": 1}, "ss_none": None, "ok": "x"}
    header = read_header(write_raw(tmp_path / "x.safetensors", {"__metadata__": metadata}))
    assert header.metadata == {
        "ss_network_dim": "32",
        "ss_flag": "true",
        "ss_tags": '{"a": 1}',
        "ss_none": "null",
        "ok": "x",
    }
    assert "__metadata__ value for 'ss_network_dim' was a number, kept as text" in header.issues
    assert len(header.issues) == 4


# --- one test per fatal problem -----------------------------------------------------------------------------


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.safetensors"
    path.write_bytes(b"")
    assert expect_error(path, "empty") == "file is empty (0 bytes)"


def test_file_shorter_than_eight_bytes(tmp_path):
    path = tmp_path / "short.safetensors"
    path.write_bytes(b"\x05\0\0")
    expect_error(path, "too short")


def test_header_length_zero(tmp_path):
    path = write_raw(tmp_path / "x.safetensors", b"{}", header_length=0)
    assert expect_error(path, "header length") == "header length is 0"


def test_header_length_larger_than_file(tmp_path):
    path = write_raw(tmp_path / "x.safetensors", b"{}      ", header_length=9_999)
    message = expect_error(path, "larger than the file")
    assert message == "header length 9,999 bytes is larger than the file (16 bytes)"


def test_file_size_argument_is_trusted(tmp_path):
    path = write_lora(tmp_path / "x.safetensors", max_modules=1)
    expect_error(path, "larger than the file", file_size=100)


def test_header_length_over_the_cap(tmp_path):
    path = write_raw(tmp_path / "x.safetensors", {"__metadata__": {"k": "v" * 100}})
    message = expect_error(path, "over the limit", max_header_bytes=64)
    assert message.endswith("over the limit of 64 bytes")


def test_header_not_utf8(tmp_path):
    path = write_raw(tmp_path / "x.safetensors", b'{"\xff\xfe": 1}  ')
    expect_error(path, "not UTF-8")


def test_header_not_json(tmp_path):
    path = write_raw(tmp_path / "x.safetensors", b'{"a": [1, 2}   ')
    expect_error(path, "not valid JSON")


def test_header_nested_too_deeply(tmp_path):
    path = write_raw(tmp_path / "x.safetensors", b"[" * 200_000)
    expect_error(path, "nested too deeply")


def test_header_not_an_object(tmp_path):
    path = write_raw(tmp_path / "x.safetensors", b"[1, 2, 3]       ")
    assert expect_error(path, "not an object") == "header JSON is a list, not an object"


def test_metadata_not_an_object(tmp_path):
    path = write_raw(tmp_path / "x.safetensors", {"__metadata__": ["ss_v2", "True"]})
    expect_error(path, "__metadata__ is a list, not an object")


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ("F16", "entry is a string, not an object"),
        ({"shape": [2, 2], "data_offsets": [0, 8]}, "has no dtype string"),
        ({"dtype": 16, "shape": [2, 2], "data_offsets": [0, 8]}, "has no dtype string"),
        ({"dtype": "F16", "data_offsets": [0, 8]}, "shape must be a list"),
        ({"dtype": "F16", "shape": "2x2", "data_offsets": [0, 8]}, "shape must be a list"),
        ({"dtype": "F16", "shape": [2, -2], "data_offsets": [0, 8]}, "shape must be a list"),
        ({"dtype": "F16", "shape": [2, 2.0], "data_offsets": [0, 8]}, "shape must be a list"),
        ({"dtype": "F16", "shape": [2, 2]}, "data_offsets must be"),
        ({"dtype": "F16", "shape": [2, 2], "data_offsets": [0, 4, 8]}, "data_offsets must be"),
        ({"dtype": "F16", "shape": [2, 2], "data_offsets": [8, 0]}, "data_offsets must be"),
        ({"dtype": "F16", "shape": [2, 2], "data_offsets": ["0", 8]}, "data_offsets must be"),
    ],
)
def test_bad_tensor_entry(tmp_path, entry, fragment):
    path = write_raw(tmp_path / "x.safetensors", {"w": entry}, b"\0" * 8)
    message = expect_error(path, fragment)
    assert message.startswith("tensor 'w' ")


def test_unknown_dtype(tmp_path):
    path = write_raw(tmp_path / "x.safetensors", {"w": tensor_entry("F17")}, b"\0" * 8)
    assert expect_error(path, "unknown dtype") == "tensor 'w' has unknown dtype 'F17'"


def test_offsets_outside_the_file(tmp_path):
    path = write_lora(tmp_path / "x.safetensors", max_modules=2)
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size - 100)
    expect_error(path, "truncated file?")


def test_gap_between_tensors(tmp_path):
    header = {"a": tensor_entry(start=0, end=8), "b": tensor_entry(start=12, end=20)}
    path = write_raw(tmp_path / "x.safetensors", header, b"\0" * 20)
    assert expect_error(path, "gap") == "tensor data has a gap: bytes 8-12 belong to no tensor"


def test_overlapping_tensors(tmp_path):
    header = {"a": tensor_entry(start=0, end=8), "b": tensor_entry(start=4, end=12)}
    path = write_raw(tmp_path / "x.safetensors", header, b"\0" * 12)
    expect_error(path, "tensor 'b' overlaps")


def test_trailing_bytes_after_last_tensor(tmp_path):
    path = write_raw(tmp_path / "x.safetensors", {"a": tensor_entry()}, b"\0" * 10)
    assert expect_error(path, "after the last tensor") == "2 bytes after the last tensor belong to no tensor"


def test_tensors_out_of_order_in_header_are_fine(tmp_path):
    header = {"b": tensor_entry(start=8, end=16), "a": tensor_entry(start=0, end=8)}
    path = write_raw(tmp_path / "x.safetensors", header, b"\0" * 16)
    assert list(read_header(path).tensors) == ["b", "a"]


def test_byte_length_not_matching_shape(tmp_path):
    path = write_raw(tmp_path / "x.safetensors", {"w": tensor_entry("F32", (2, 2), 0, 8)}, b"\0" * 8)
    assert expect_error(path, "needs") == "tensor 'w' has 8 bytes but shape [2, 2] of F32 needs 16"


def test_symlink_loop(tmp_path):
    loop = tmp_path / "loop.safetensors"
    os.symlink(loop, loop)
    assert expect_error(loop, "cannot read file").startswith("cannot read file: ")


def test_missing_file(tmp_path):
    assert expect_error(tmp_path / "gone.safetensors", "cannot read") == "cannot read file: No such file or directory"


def test_unreadable_path_directory(tmp_path):
    directory = tmp_path / "folder.safetensors"
    directory.mkdir()
    assert expect_error(directory, "cannot read file") == "cannot read file: not a regular file"
    assert expect_error(directory, "cannot read file", file_size=4096) == "cannot read file: Is a directory"


def test_permission_denied(tmp_path, monkeypatch):
    """Tests run as root, where chmod 000 does not stop reads: make open() fail like it would for a user."""
    path = write_lora(tmp_path / "x.safetensors", max_modules=1)

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(safetensors_header.os, "open", denied)
    assert expect_error(path, "cannot read") == "cannot read file: Permission denied"


def test_fifo_does_not_hang(tmp_path):
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    assert expect_error(fifo, "not a regular file") == "cannot read file: not a regular file"
    expect_error(fifo, "too short", file_size=1000)  # a stale size from a scan: the read still returns at once


def test_parse_header_reports_short_header():
    with pytest.raises(HeaderError, match="file ends inside the header"):
        parse_header(b"{}", file_size=100, header_length=50)


def test_long_hostile_names_are_shortened_in_messages(tmp_path):
    name = "x" * 5000
    path = write_raw(tmp_path / "x.safetensors", {name: tensor_entry("NOPE")}, b"\0" * 8)
    assert len(expect_error(path, "unknown dtype")) < 200


# --- alpha --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["F16", "BF16", "F32", "F64"])
def test_read_alpha(tmp_path, dtype):
    path = write_lora(tmp_path / "x.safetensors", rank=16, alpha=8.0, dtype=dtype, max_modules=2, metadata=None)
    assert read_alpha(path, read_header(path)) == 8.0


def test_read_alpha_none_without_alpha_tensors(tmp_path):
    path = write_lora(tmp_path / "x.safetensors", kind="peft_sdxl", max_modules=2)
    assert read_alpha(path, read_header(path)) is None


def test_read_alpha_ignores_non_finite_and_non_float(tmp_path):
    path = write_tensors(tmp_path / "x.safetensors", {"m.alpha": ()}, scalar=float("inf"))
    assert read_alpha(path, read_header(path)) is None
    ints = {"m.alpha": {"dtype": "I32", "shape": [], "data_offsets": [0, 4]}}
    path = write_raw(tmp_path / "i.safetensors", ints, struct.pack("<i", 4))
    assert read_alpha(path, read_header(path)) is None


def test_read_alpha_of_vanished_file(tmp_path):
    path = write_lora(tmp_path / "x.safetensors", max_modules=1)
    header = read_header(path)
    path.unlink()
    with pytest.raises(HeaderError, match="cannot read file"):
        read_alpha(path, header)


def test_header_json_is_what_the_reference_reader_sees(tmp_path):
    path = tmp_path / "ref.safetensors"
    safetensors.numpy.save_file({"w": np.ones((3, 4), np.float16)}, path, metadata={"k": "v"})
    header = read_header(path)
    assert header.metadata == {"k": "v"}
    assert header.tensors == {"w": TensorInfo("F16", (3, 4), 0, 24)}
    raw = path.read_bytes()[8 : header.data_offset]
    assert json.loads(raw)["w"]["data_offsets"] == [0, 24]
