"""The generation parameters an image file carries, read without decoding a single pixel.

* PNG: ``tEXt``/``zTXt``/``iTXt`` chunks (A1111/SD.Next ``parameters``, ComfyUI ``prompt`` and ``workflow``),
  walked chunk by chunk here rather than through Pillow, so a 10 MB chunk or a compressed text bomb is
  skipped with a message instead of being held in memory, and a truncated file still yields the chunks
  before the cut.
* JPEG and WebP: EXIF ``UserComment`` (A1111/SD.Next write it with piexif: an 8-byte ``UNICODE\\0`` or
  ``ASCII\\0\\0\\0`` prefix, then UTF-16 or ASCII text), read through Pillow's lazy EXIF parser.

Everything returned is text that passed ``clean_text``: no lone surrogates, no NULs, bounded length.
"""

from __future__ import annotations

import io
import re
import struct
import warnings
import zlib
from dataclasses import dataclass, field

from PIL import Image

from adapters.sanitize import storable

MAX_TEXT_BYTES = 2 * 1024 * 1024  # one text chunk; A1111 infotext is ~1 KB, big ComfyUI workflows ~500 KB
MAX_TOTAL_TEXT_BYTES = 8 * 1024 * 1024
MAX_CHUNKS = 10_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEXT_CHUNKS = {b"tEXt", b"zTXt", b"iTXt"}
EXIF_IFD = 0x8769
USER_COMMENT = 0x9286
IMAGE_DESCRIPTION = 0x010E
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class MetadataError(Exception):
    """The file cannot be read as an image of a supported type; the message is shown as is."""


@dataclass
class ImageText:
    """Text found in an image: keyword -> text, plus what was skipped and why."""

    kind: str  # png, jpeg, webp
    texts: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def clean_text(value: str, limit: int = MAX_TEXT_BYTES) -> str:
    """Text safe to store and show: lone surrogates become U+FFFD, control characters (but tab and line
    breaks) are dropped, line endings normalised, length capped."""
    value = _CONTROL.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))
    return storable(value)[:limit]  # the one gate for untrusted text (adapters.sanitize)


def sniff(data: bytes) -> str | None:
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def _decode(raw: bytes) -> str:
    """tEXt is Latin-1 by the standard, but many tools write UTF-8 into it: try UTF-8 first."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _inflate(raw: bytes, keyword: str, result: ImageText) -> bytes | None:
    """zlib-decompress at most MAX_TEXT_BYTES: a small chunk that inflates to gigabytes is refused."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(raw, MAX_TEXT_BYTES + 1)
    except zlib.error as exc:
        result.warnings.append(f"text chunk '{keyword}' is corrupt ({exc}); skipped")
        return None
    if len(out) > MAX_TEXT_BYTES or inflater.unconsumed_tail:
        result.warnings.append(f"text chunk '{keyword}' inflates to more than {_mb(MAX_TEXT_BYTES)}; skipped")
        return None
    return out


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB".replace(".0 MB", " MB")


def _text_chunk(kind: bytes, body: bytes, result: ImageText) -> tuple[str, str] | None:
    keyword_raw, sep, rest = body.partition(b"\0")
    keyword = keyword_raw.decode("latin-1")[:79]
    if not sep or not keyword:
        result.warnings.append(f"a {kind.decode()} chunk has no keyword; skipped")
        return None
    if kind == b"tEXt":
        return keyword, _decode(rest)
    if kind == b"zTXt":
        text = _inflate(rest[1:], keyword, result)
        return None if text is None else (keyword, _decode(text))
    # iTXt: compression flag, method, language tag \0, translated keyword \0, text (UTF-8)
    if len(rest) < 2:
        result.warnings.append(f"text chunk '{keyword}' is truncated; skipped")
        return None
    compressed = rest[0] == 1
    parts = rest[2:].split(b"\0", 2)
    if len(parts) < 3:
        result.warnings.append(f"text chunk '{keyword}' is truncated; skipped")
        return None
    text = _inflate(parts[2], keyword, result) if compressed else parts[2]
    return None if text is None else (keyword, text.decode("utf-8", "replace"))


def read_png_text(data: bytes) -> ImageText:
    result = ImageText("png")
    position, total = len(PNG_SIGNATURE), 0
    for _ in range(MAX_CHUNKS):
        if position + 8 > len(data):
            result.warnings.append("the file ends without an IEND chunk (truncated?); read what came before")
            break
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        body_start, body_end = position + 8, position + 8 + length
        if kind == b"IEND":
            break
        if kind in TEXT_CHUNKS:
            name = data[body_start : body_start + 80].partition(b"\0")[0].decode("latin-1")
            if length > MAX_TEXT_BYTES:
                result.warnings.append(
                    f"text chunk '{name}' is {_mb(length)}, over the {_mb(MAX_TEXT_BYTES)} limit; skipped"
                )
            elif body_end > len(data):
                result.warnings.append(f"text chunk '{name}' is cut off (the file is truncated); skipped")
                break
            elif total + length > MAX_TOTAL_TEXT_BYTES:
                result.warnings.append(f"more than {_mb(MAX_TOTAL_TEXT_BYTES)} of text; the rest is skipped")
                break
            else:
                total += length
                found = _text_chunk(kind, data[body_start:body_end], result)
                if found:
                    result.texts.setdefault(found[0], clean_text(found[1]))
        position = body_end + 4  # skip the CRC
    return result


def user_comment_text(raw: bytes | str) -> str:
    """Decode EXIF UserComment: 8-byte charset prefix (UNICODE/ASCII/JIS/undefined), then the text."""
    if isinstance(raw, str):
        return raw
    prefix, body = raw[:8], raw[8:]
    if prefix == b"UNICODE\0":
        if body.startswith((b"\xff\xfe", b"\xfe\xff")):
            return body.decode("utf-16", "replace")
        # piexif writes UTF-16BE; some writers use the byte order of the EXIF block (often little-endian).
        even_zeros = body[0::2].count(0)
        odd_zeros = body[1::2].count(0)
        return body.decode("utf-16-le" if odd_zeros > even_zeros else "utf-16-be", "replace")
    if prefix in (b"ASCII\0\0\0", b"\0" * 8, b"JIS\0\0\0\0\0"):
        return _decode(body)
    return _decode(raw)


def read_exif_text(data: bytes, kind: str) -> ImageText:
    result = ImageText(kind)
    fmt = {"jpeg": "JPEG", "webp": "WEBP"}[kind]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data), formats=[fmt]) as image:
                exif = image.getexif()
                comment = exif.get_ifd(EXIF_IFD).get(USER_COMMENT)
                description = exif.get(IMAGE_DESCRIPTION)
    except Exception as exc:  # Pillow raises many types on hostile input
        raise MetadataError(f"this {kind.upper()} file cannot be read ({exc.__class__.__name__}: {exc})") from exc
    if comment:
        text = user_comment_text(comment).rstrip("\0")
        if len(text.encode("utf-8", "replace")) > MAX_TEXT_BYTES:
            result.warnings.append(f"the EXIF UserComment is over the {_mb(MAX_TEXT_BYTES)} limit; skipped")
        elif text.strip():
            result.texts["parameters"] = clean_text(text)
    if "parameters" not in result.texts and isinstance(description, str) and "Steps: " in description:
        result.texts["parameters"] = clean_text(description)
    return result


def read_image_text(data: bytes) -> ImageText:
    """All generation-parameter text in a PNG, JPEG or WebP file; raises MetadataError for other files."""
    kind = sniff(data[:16])
    if kind == "png":
        return read_png_text(data)
    if kind in ("jpeg", "webp"):
        return read_exif_text(data, kind)
    raise MetadataError(f"not a PNG, JPEG or WebP image (the file starts with {data[:8]!r})")
