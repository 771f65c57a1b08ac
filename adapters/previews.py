"""Find a LoRA's preview image among its directory entries and turn it into cached WEBP thumbnails.

Preview names (reference/lora-files.md B6, peer-tools.md 2G), tried in this order, first hit wins:

1. ``<stem>.<ext>``: A1111 looks here first and its "replace preview" writes here; Civitai Helper's README says a
   user-made ``<stem>.png`` beats its own download; SD.Next saves Civitai downloads as ``<stem><url ext>``.
2. ``<stem>.preview.<ext>``: Civitai Helper (always ``.preview.png``, whatever the bytes), Civitai Browser+,
   Stability Matrix, ComfyUI-Lora-Manager.
3. ``<stem>.thumb.<ext>``: SD.Next's generated 512 px thumbnail, last because it is the smallest.

Within a slot extensions go in ``PREVIEW_EXTENSIONS`` order. Each name is matched exactly, then
case-insensitively (files copied from Windows). Videos (LM's ``.mp4``/``.webm``) are not previews here.
The extension says little: the real type is sniffed from the first bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import tempfile
import warnings
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from adapters.companions import find_companions

PREVIEW_EXTENSIONS: tuple[str, ...] = ("png", "jpg", "jpeg", "webp", "gif", "avif", "jxl", "bmp", "tiff", "tif", "jp2")
_PREVIEW_SUFFIXES = tuple(f"{infix}.{ext}" for infix in ("", ".preview", ".thumb") for ext in PREVIEW_EXTENSIONS)
MAX_PIXELS = 50_000_000
WEBP_QUALITY = 80
# Sniffed type -> the only Pillow plugin allowed to open it (never let Pillow probe every format, e.g. EPS).
_PIL_FORMATS = {
    "jpeg": "JPEG",
    "png": "PNG",
    "gif": "GIF",
    "webp": "WEBP",
    "avif": "AVIF",
    "bmp": "BMP",
    "tiff": "TIFF",
    "jp2": "JPEG2000",
}
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


class PreviewError(Exception):
    """A preview that cannot be turned into thumbnails; the message is shown to the user as is."""


@dataclass(frozen=True)
class Thumbnails:
    """Cached thumbnails of one source image; ``width``/``height`` are the source's, upright (EXIF applied)."""

    key: str  # sha256 of the source bytes
    card: str  # file name relative to the thumbnail dir
    large: str
    width: int
    height: int
    source_type: str  # sniffed type, see sniff_image_type


def find_preview(stem: str, dir_names: Collection[str]) -> str | None:
    """File name of the best preview for ``stem`` in this listing (order in the module docstring), no disk I/O."""
    found = find_companions(stem, dir_names, _PREVIEW_SUFFIXES)
    return found[0] if found else None


def find_image_preview(directory: str, stem: str, dir_names: Collection[str]) -> tuple[str | None, list[str]]:
    """Like ``find_preview``, but a candidate whose first bytes are not an image (a text file named
    ``.preview.png``) is skipped with an issue, so it never becomes the preview; reads 64 bytes per candidate."""
    issues: list[str] = []
    for name in find_companions(stem, dir_names, _PREVIEW_SUFFIXES):
        try:
            with open(os.path.join(directory, name), "rb") as fh:
                head = fh.read(64)
        except OSError as exc:
            issues.append(f"preview {name}: cannot read it ({exc.strerror or exc}); not used as the preview")
            continue
        if sniff_image_type(head) is None:
            what = "empty file" if not head else f"not an image (starts with {head[:8]!r})"
            issues.append(f"preview {name}: {what}; not used as the preview")
            continue
        return name, issues
    return None, issues


def sniff_image_type(head: bytes) -> str | None:
    """Image type from magic bytes (pass at least the first 32): jpeg, png, gif, webp, avif, bmp, tiff, jxl, jp2."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp":
        box_end = min(int.from_bytes(head[:4], "big"), len(head))
        brands = {head[8:12], *(head[i : i + 4] for i in range(16, box_end - 3, 4))}
        return "avif" if brands & {b"avif", b"avis"} else None
    if head[:2] == b"BM" and head[6:10] == b"\0\0\0\0":
        return "bmp"
    if head[:4] in (b"II*\0", b"MM\0*"):
        return "tiff"
    if head.startswith((b"\xff\x0a", b"\0\0\0\x0cJXL \r\n\x87\n")):
        return "jxl"
    if head.startswith((b"\0\0\0\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")):
        return "jp2"
    return None


def _open(source: bytes, source_type: str, max_pixels: int) -> Image.Image:
    """Parse only the header and refuse decompression bombs before any pixel is decoded."""
    fmt = _PIL_FORMATS.get(source_type)
    if fmt is None:
        raise PreviewError(f"unsupported image type: {source_type}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(source), formats=[fmt])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        match = _BOMB_PIXELS.search(str(exc))
        pixels = f"{int(match.group(1)):,} pixels" if match else "too many pixels"
        raise PreviewError(f"image too large: {pixels} (limit {max_pixels:,})") from exc
    except Exception as exc:
        raise PreviewError(f"corrupt image: {exc}") from exc
    width, height = image.size
    if width * height > max_pixels:
        raise PreviewError(f"image too large: {width}x{height} pixels (limit {max_pixels:,})")
    if not width or not height:
        raise PreviewError(f"corrupt image: {width}x{height} pixels")
    return image


def _upright_size(image: Image.Image) -> tuple[int, int]:
    width, height = image.size
    if image.format == "PNG" and "exif" not in image.info:
        return width, height  # an eXIf chunk after the pixels is rare; finding it would decode the whole image
    try:
        orientation = image.getexif().get(0x0112)
    except Exception as exc:
        raise PreviewError(f"corrupt image: unreadable EXIF ({exc})") from exc
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _decode(image: Image.Image, largest_px: int) -> Image.Image:
    """Decode the first frame, upright, in a mode WEBP can store (RGB, or RGBA when there is transparency)."""
    try:
        if image.format == "JPEG":
            image.draft("RGB", (largest_px, largest_px))  # let libjpeg downscale while decoding
        image = ImageOps.exif_transpose(image)
        if image.mode in ("RGB", "RGBA"):
            return image
        if image.mode in ("LA", "PA", "La", "RGBa") or (image.mode == "P" and "transparency" in image.info):
            return image.convert("RGBA")
        if image.mode.startswith("I"):  # 16-bit greyscale PNG: scale down instead of clipping to white
            image = image.convert("I").point(lambda v: v / 256).convert("L")
        return image.convert("RGB")
    except Exception as exc:
        raise PreviewError(f"corrupt image: {exc}") from exc


def _save_webp(image: Image.Image, path: Path) -> None:
    """Write atomically (temp file in the same dir, then os.replace) so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            image.save(fh, "WEBP", quality=WEBP_QUALITY)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def make_thumbnails(
    source: bytes, thumb_dir: Path, card_px: int = 384, large_px: int = 1024, max_pixels: int = MAX_PIXELS
) -> Thumbnails:
    """Card and large WEBP thumbnails named by the source's sha256; existing ones are reused, not re-encoded."""
    if not source:
        raise PreviewError("empty file")
    source_type = sniff_image_type(source[:64])
    if source_type is None:
        raise PreviewError(f"not an image (starts with {source[:8]!r})")
    image = _open(source, source_type, max_pixels)
    key = hashlib.sha256(source).hexdigest()
    names = {px: f"{key[:2]}/{key}-{px}.webp" for px in (card_px, large_px)}
    width, height = _upright_size(image)
    missing = [px for px, name in names.items() if not (thumb_dir / name).is_file()]
    if missing:
        current = _decode(image, max(missing))
        for px in sorted(missing, reverse=True):  # each smaller size is resized from the previous one
            current = current.copy()
            current.thumbnail((px, px), Image.Resampling.LANCZOS)
            _save_webp(current, thumb_dir / names[px])
    return Thumbnails(key, names[card_px], names[large_px], width, height, source_type)


def thumbnails_from_file(path: Path, thumb_dir: Path, max_bytes: int = 50_000_000) -> Thumbnails:
    """``make_thumbnails`` for a file on disk, refusing files over ``max_bytes`` without reading them whole."""
    try:
        with open(path, "rb") as fh:
            source = fh.read(max_bytes + 1)
    except OSError as exc:
        raise PreviewError(f"cannot read {path.name}: {exc.strerror or exc}") from exc
    if len(source) > max_bytes:
        raise PreviewError(f"file too large: over {max_bytes:,} bytes")
    return make_thumbnails(source, thumb_dir)
