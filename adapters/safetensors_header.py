"""Reading and validating the header of a ``.safetensors`` file without touching its tensor data.

Layout (huggingface/safetensors "Format"): 8 bytes little-endian header length N, N bytes of UTF-8
JSON, then the tensor data section, which the tensors must tile exactly. Only the first 8+N bytes are
read, so a scan costs one small read per file however large the LoRA is.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import struct
from dataclasses import dataclass, field

import orjson

MAX_HEADER_BYTES = 100_000_000  # the reference readers' MAX_HEADER_SIZE

# Bits per element of every dtype the reference implementation knows (safetensors 0.8 ``Dtype``).
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
}

_JSON_KINDS = {
    str: "a string",
    bool: "true/false",
    int: "a number",
    float: "a number",
    list: "a list",
    dict: "an object",
}
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)  # a FIFO must not hang a scan


class HeaderError(Exception):
    """The file is not a usable safetensors file; ``str(exc)`` is meant for the user."""


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]
    start: int  # offsets relative to the data section (byte 8+N of the file)
    end: int


@dataclass
class SafetensorsHeader:
    header_length: int
    data_offset: int
    file_size: int
    metadata: dict[str, str]
    tensors: dict[str, TensorInfo]
    issues: list[str] = field(default_factory=list)
    fingerprint: str = ""  # sha256 of the N header bytes: tells a metadata edit from an unchanged file


def _label(name: str) -> str:
    """Tensor names come from untrusted files: keep messages short."""
    return repr(name if len(name) <= 80 else name[:77] + "...")


def _shape(shape: list[int]) -> str:
    return str(shape) if len(shape) <= 8 else f"[{len(shape)} dimensions]"


def _kind(value: object) -> str:
    return "null" if value is None else _JSON_KINDS.get(type(value), type(value).__name__)


def read_header(
    path: str | os.PathLike, *, file_size: int | None = None, max_header_bytes: int = MAX_HEADER_BYTES
) -> SafetensorsHeader:
    """Read and validate the header; pass ``file_size`` from a directory scan to save an fstat."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise HeaderError(f"cannot read file: {exc.strerror or exc}") from exc
    try:
        if file_size is None:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise HeaderError("cannot read file: not a regular file")
            file_size = st.st_size
        if file_size == 0:
            raise HeaderError("file is empty (0 bytes)")
        prefix = os.read(fd, 8)
        if len(prefix) < 8:
            raise HeaderError(f"file is too short for a safetensors header ({len(prefix)} bytes, needs at least 8)")
        (header_length,) = struct.unpack("<Q", prefix)
        _check_length(header_length, file_size, max_header_bytes)
        raw = _read_exactly(fd, header_length)
    except OSError as exc:
        raise HeaderError(f"cannot read file: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    return parse_header(raw, file_size=file_size, header_length=header_length)


def _check_length(header_length: int, file_size: int, max_header_bytes: int) -> None:
    if header_length == 0:
        raise HeaderError("header length is 0")
    if header_length > file_size - 8:
        raise HeaderError(f"header length {header_length:,} bytes is larger than the file ({file_size:,} bytes)")
    if header_length > max_header_bytes:
        raise HeaderError(f"header length {header_length:,} bytes is over the limit of {max_header_bytes:,} bytes")


def _read_exactly(fd: int, size: int) -> bytes:
    data = os.read(fd, size)
    if len(data) == size:
        return data
    parts = [data]  # short reads only happen near EOF or on odd filesystems
    got = len(data)
    while got < size:
        chunk = os.read(fd, size - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def parse_header(raw_header: bytes, *, file_size: int, header_length: int) -> SafetensorsHeader:
    """Validate the JSON header the way the reference reader does, but keep odd metadata as issues."""
    if len(raw_header) != header_length:
        raise HeaderError(f"file ends inside the header (read {len(raw_header):,} of {header_length:,} bytes)")
    try:
        document = orjson.loads(raw_header)
    except orjson.JSONDecodeError:  # the standard parser decides (and words) what orjson refuses
        document = _loads_strictly(raw_header)
    if not isinstance(document, dict):
        raise HeaderError(f"header JSON is {_kind(document)}, not an object")
    issues: list[str] = []
    metadata = _metadata(document.pop("__metadata__", None), issues)
    data_size = file_size - 8 - header_length
    tensors = {name: _tensor(name, entry, data_size) for name, entry in document.items()}
    _check_tiling(tensors, data_size)
    return SafetensorsHeader(
        header_length=header_length,
        data_offset=8 + header_length,
        file_size=file_size,
        metadata=metadata,
        tensors=tensors,
        issues=issues,
        fingerprint=hashlib.sha256(raw_header).hexdigest(),
    )


def _loads_strictly(raw_header: bytes) -> object:
    try:
        text = raw_header.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HeaderError(f"header is not UTF-8 text (invalid byte at position {exc.start:,})") from exc
    try:
        return json.loads(text)
    except ValueError as exc:
        raise HeaderError(f"header is not valid JSON ({exc})") from exc
    except RecursionError as exc:  # hostile "[[[[..." headers
        raise HeaderError("header is not valid JSON (nested too deeply)") from exc


def loads_json(text: str | bytes) -> object:
    """``json.loads`` semantics at orjson speed: what orjson refuses (NaN, lone surrogates, a BOM, nesting
    deeper than 1024) goes to the standard parser, which accepts it or raises its own ValueError."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _metadata(value: object, issues: list[str]) -> dict[str, str]:
    if value is None:  # the reference reader treats a null __metadata__ as absent
        return {}
    if not isinstance(value, dict):
        raise HeaderError(f"__metadata__ is {_kind(value)}, not an object of strings")
    metadata: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, str):
            metadata[key] = item
        else:
            metadata[key] = json.dumps(item, ensure_ascii=False)
            issues.append(f"__metadata__ value for {_label(key)} was {_kind(item)}, kept as text")
    return metadata


def _tensor(name: str, entry: object, data_size: int) -> TensorInfo:
    """One tensor entry; plain type() checks because this runs thousands of times per file."""
    if type(entry) is not dict:
        raise HeaderError(f"tensor {_label(name)} entry is {_kind(entry)}, not an object")
    dtype = entry.get("dtype")
    if type(dtype) is not str:
        raise HeaderError(f"tensor {_label(name)} has no dtype string")
    bits = DTYPE_BITS.get(dtype)
    if bits is None:
        raise HeaderError(f"tensor {_label(name)} has unknown dtype {_label(dtype)}")
    shape = entry.get("shape")
    if type(shape) is not list:
        raise HeaderError(f"tensor {_label(name)} shape must be a list of non-negative integers")
    total_bits = bits
    for dim in shape:
        if type(dim) is not int or dim < 0:
            raise HeaderError(f"tensor {_label(name)} shape must be a list of non-negative integers")
        total_bits *= dim
    offsets = entry.get("data_offsets")
    if type(offsets) is not list or len(offsets) != 2:
        raise HeaderError(f"tensor {_label(name)} data_offsets must be [begin, end] integers with begin <= end")
    start, end = offsets
    if type(start) is not int or type(end) is not int or not 0 <= start <= end:
        raise HeaderError(f"tensor {_label(name)} data_offsets must be [begin, end] integers with begin <= end")
    if end > data_size:
        raise HeaderError(
            f"tensor {_label(name)} data ends at byte {end:,} but the data section has only {data_size:,} bytes "
            "(truncated file?)"
        )
    if total_bits != (end - start) * 8:
        if total_bits % 8:
            raise HeaderError(f"tensor {_label(name)} shape {_shape(shape)} of {dtype} is not a whole number of bytes")
        raise HeaderError(
            f"tensor {_label(name)} has {end - start:,} bytes but shape {_shape(shape)} of {dtype} "
            f"needs {total_bits // 8:,}"
        )
    return TensorInfo(dtype, tuple(shape), start, end)


def _check_tiling(tensors: dict[str, TensorInfo], data_size: int) -> None:
    """Tensors must cover the data section without gaps, overlaps or trailing bytes, as the reference demands."""
    position = 0
    for info in tensors.values():  # fast path: writers list tensors in data order
        if info.start != position:
            break
        position = info.end
    else:
        if position == data_size:
            return
    position = 0
    for start, end, name in sorted((info.start, info.end, name) for name, info in tensors.items()):
        if start > position:
            raise HeaderError(f"tensor data has a gap: bytes {position:,}-{start:,} belong to no tensor")
        if start < position:
            raise HeaderError(f"tensor {_label(name)} overlaps the previous tensor at byte {start:,}")
        position = end
    if position != data_size:
        raise HeaderError(f"{data_size - position:,} bytes after the last tensor belong to no tensor")


_SCALAR_FORMATS = {"F16": "<e", "F32": "<f", "F64": "<d"}


def read_alpha(path: str | os.PathLike, header: SafetensorsHeader) -> float | None:
    """The first ``*.alpha`` scalar, read with one small pread; None when there is none or it is not finite."""
    for name, info in header.tensors.items():
        if not name.endswith(".alpha") or math.prod(info.shape) != 1:
            continue
        if info.dtype not in _SCALAR_FORMATS and info.dtype != "BF16":
            continue
        try:
            fd = os.open(path, _OPEN_FLAGS)
            try:
                raw = os.pread(fd, info.end - info.start, header.data_offset + info.start)
            finally:
                os.close(fd)
        except OSError as exc:
            raise HeaderError(f"cannot read file: {exc.strerror or exc}") from exc
        if len(raw) != info.end - info.start:
            raise HeaderError(f"file ends inside tensor {_label(name)} (truncated file?)")
        if info.dtype == "BF16":
            (value,) = struct.unpack("<f", b"\x00\x00" + raw)  # bfloat16 is the top half of a float32
        else:
            (value,) = struct.unpack(_SCALAR_FORMATS[info.dtype], raw)
        return value if math.isfinite(value) else None
    return None
