import hashlib
import io
import os
import struct
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image

from adapters import previews
from adapters.previews import (
    PREVIEW_EXTENSIONS,
    PreviewError,
    Thumbnails,
    find_preview,
    make_thumbnails,
    sniff_image_type,
    thumbnails_from_file,
)
from tests.factories.sidecars import image_bytes, write_preview

STEM = "zelda_botw"


def names(*suffixes: str, stem: str = STEM) -> set[str]:
    return {f"{stem}.safetensors"} | {stem + s for s in suffixes}


# --- finding previews ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("present", "expected"),
    [
        ([".preview.png"], ".preview.png"),  # Civitai Helper, Civitai Browser+
        ([".preview.jpeg", ".preview.webp"], ".preview.jpeg"),  # Stability Matrix
        ([".thumb.jpg"], ".thumb.jpg"),  # SD.Next's generated thumbnail only
        ([".thumb.jpg", ".jpg"], ".jpg"),  # SD.Next with its Civitai download: the full-size one
        ([".thumb.jpg", ".preview.png"], ".preview.png"),
        ([".png", ".preview.png"], ".png"),  # A1111 order; Civitai Helper: a user-made <stem>.png wins
        ([".webp", ".preview.webp"], ".webp"),  # ComfyUI-Lora-Manager
        ([".gif", ".jpeg", ".png"], ".png"),  # extension order within a slot
        ([".avif"], ".avif"),
        ([".jxl", ".preview.jpg"], ".jxl"),
        ([".preview.mp4", ".webm"], None),  # videos are not previews
        ([], None),
    ],
)
def test_find_preview_order(present, expected):
    assert find_preview(STEM, names(*present)) == (STEM + expected if expected else None)


def test_find_preview_ignores_other_models_files():
    listing = names(".json") | {"zelda_botw_v2.png", "zelda.png", "zelda_botw.safetensors.png"}
    assert find_preview(STEM, listing) is None


def test_find_preview_case_insensitive_fallback():
    assert find_preview(STEM, names(".PNG")) == f"{STEM}.PNG"
    assert find_preview(STEM, {"Zelda_BotW.Preview.JPG"}) == "Zelda_BotW.Preview.JPG"
    assert find_preview(STEM, {f"{STEM}.PNG", f"{STEM}.png"}) == f"{STEM}.png"  # exact spelling first
    assert find_preview(STEM, {f"{STEM}.PNG", f"{STEM}.preview.png"}) == f"{STEM}.PNG"  # slot beats case


def test_find_preview_touches_no_files():
    assert find_preview("missing", {"missing.preview.webp"}) == "missing.preview.webp"


def test_preview_extensions_cover_the_tools():
    assert set(PREVIEW_EXTENSIONS) >= {"png", "jpg", "jpeg", "webp", "gif", "avif", "jxl", "tiff", "jp2"}


def test_find_preview_is_fast_in_a_big_directory():
    stems = [f"lora_{i:05d}" for i in range(5000)]
    listing = {f"{s}.safetensors" for s in stems} | {f"{s}.preview.png" for s in stems[::2]}
    start = time.perf_counter()
    found = sum(1 for s in stems if find_preview(s, listing))
    assert found == 2500
    assert time.perf_counter() - start < 0.5


# --- sniffing -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("image_type", ["jpeg", "png", "gif", "webp", "avif", "bmp", "tiff"])
def test_sniff_real_images(image_type):
    assert sniff_image_type(image_bytes(image_type, (16, 16))[:32]) == image_type


def test_sniff_jpeg_bytes_in_a_png_name(tmp_path):
    path = write_preview(tmp_path / f"{STEM}.safetensors", "preview.png", real_type="jpeg")
    assert path.name == f"{STEM}.preview.png"
    assert sniff_image_type(path.read_bytes()[:32]) == "jpeg"


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"%PDF-1.7\n", None),
        (b"<html><body>", None),
        (b"", None),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", None),  # HEIC is not AVIF
        (b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1avifmiaf", "avif"),  # AVIF as a compatible brand
        (b"\xff\x0a\xfa\x7f", "jxl"),
        (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "jp2"),
        (b"BMsome text", None),
    ],
)
def test_sniff_edge_cases(head, expected):
    assert sniff_image_type(head) == expected


# --- thumbnails ---------------------------------------------------------------------------------------------


def open_thumb(thumb_dir: Path, name: str) -> Image.Image:
    image = Image.open(thumb_dir / name)
    image.load()
    return image


def test_make_thumbnails(tmp_path):
    source = image_bytes("png", (1500, 2000))
    thumbs = make_thumbnails(source, tmp_path)
    key = hashlib.sha256(source).hexdigest()
    assert thumbs == Thumbnails(key, f"{key[:2]}/{key}-384.webp", f"{key[:2]}/{key}-1024.webp", 1500, 2000, "png")
    card, large = open_thumb(tmp_path, thumbs.card), open_thumb(tmp_path, thumbs.large)
    assert (card.format, card.size) == ("WEBP", (288, 384))
    assert (large.format, large.size) == ("WEBP", (768, 1024))
    assert sorted(p.name for p in (tmp_path / key[:2]).iterdir()) == [f"{key}-1024.webp", f"{key}-384.webp"]


def test_thumbnails_are_cached_by_content(tmp_path, monkeypatch):
    source = image_bytes("jpeg", (800, 600))
    first = make_thumbnails(source, tmp_path)
    mtimes = [(tmp_path / n).stat().st_mtime_ns for n in (first.card, first.large)]

    def no_encoding(*args):
        raise AssertionError("re-encoded a cached thumbnail")

    monkeypatch.setattr(previews, "_save_webp", no_encoding)
    second = make_thumbnails(source, tmp_path)
    assert second == first
    assert [(tmp_path / n).stat().st_mtime_ns for n in (first.card, first.large)] == mtimes


def test_small_images_are_not_upscaled(tmp_path):
    thumbs = make_thumbnails(image_bytes("webp", (200, 100)), tmp_path)
    assert open_thumb(tmp_path, thumbs.card).size == (200, 100)
    assert open_thumb(tmp_path, thumbs.large).size == (200, 100)


@pytest.mark.parametrize("image_type", ["jpeg", "png", "webp"])
def test_exif_orientation_is_applied(tmp_path, image_type):
    thumbs = make_thumbnails(image_bytes(image_type, (600, 400), exif_orientation=6), tmp_path)
    assert (thumbs.width, thumbs.height) == (400, 600)
    assert open_thumb(tmp_path, thumbs.card).size == (256, 384)


@pytest.mark.parametrize(("mode", "color"), [("RGBA", (255, 0, 0, 128)), ("LA", (200, 128))])
def test_transparency_is_kept(tmp_path, mode, color):
    out = io.BytesIO()
    Image.new(mode, (64, 64), color).save(out, "PNG")
    card = open_thumb(tmp_path, make_thumbnails(out.getvalue(), tmp_path).card)
    assert card.mode == "RGBA"
    assert 120 <= card.getpixel((5, 5))[3] <= 136


def test_palette_with_transparency(tmp_path):
    image = Image.new("P", (32, 32), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    out = io.BytesIO()
    image.save(out, "PNG", transparency=0)
    thumbs = make_thumbnails(out.getvalue(), tmp_path)
    assert open_thumb(tmp_path, thumbs.card).getpixel((0, 0))[3] == 0


def test_cmyk_jpeg(tmp_path):
    out = io.BytesIO()
    Image.new("CMYK", (64, 48), (0, 255, 255, 0)).save(out, "JPEG")
    thumbs = make_thumbnails(out.getvalue(), tmp_path)
    red, green, blue = open_thumb(tmp_path, thumbs.card).convert("RGB").getpixel((10, 10))
    assert red > 200 and green < 60 and blue < 60


def test_sixteen_bit_greyscale_is_scaled_not_clipped(tmp_path):
    out = io.BytesIO()
    Image.new("I;16", (32, 32), 30000).save(out, "PNG")
    thumbs = make_thumbnails(out.getvalue(), tmp_path)
    assert 100 < open_thumb(tmp_path, thumbs.card).convert("L").getpixel((5, 5)) < 135


def test_animated_gif_uses_first_frame(tmp_path):
    frames = [Image.new("RGB", (40, 40), color) for color in ("red", "blue", "green")]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    thumbs = make_thumbnails(out.getvalue(), tmp_path)
    assert thumbs.source_type == "gif"
    red, _, blue = open_thumb(tmp_path, thumbs.card).convert("RGB").getpixel((20, 20))
    assert red > 200 and blue < 60


def test_jpeg_named_png_is_thumbnailed_by_its_real_type(tmp_path):
    path = write_preview(tmp_path / "m.safetensors", "preview.png", size=(300, 450), real_type="jpeg")
    thumbs = thumbnails_from_file(path, tmp_path / "thumbs")
    assert (thumbs.source_type, thumbs.width, thumbs.height) == ("jpeg", 300, 450)


def test_atomic_writes_leave_no_temp_files(tmp_path):
    thumbs = make_thumbnails(image_bytes("png", (64, 64)), tmp_path)
    assert [p.name for p in (tmp_path / thumbs.key[:2]).iterdir() if not p.name.endswith(".webp")] == []


def test_failed_write_removes_the_temp_file(tmp_path, monkeypatch):
    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        make_thumbnails(image_bytes("png", (64, 64)), tmp_path)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


# --- refused previews ---------------------------------------------------------------------------------------


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims huge dimensions but carries (almost) no pixel data: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_decompression_bomb_beyond_pillows_limit_is_refused(tmp_path):
    with pytest.raises(PreviewError, match=r"^image too large: 10,000,000,000 pixels \(limit 50,000,000\)$"):
        make_thumbnails(png_header(100_000, 100_000), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_image_over_our_limit_is_refused_before_decoding(tmp_path):
    with pytest.raises(PreviewError, match=r"^image too large: 8000x8000 pixels \(limit 50,000,000\)$"):
        make_thumbnails(png_header(8000, 8000), tmp_path)
    with pytest.raises(PreviewError, match=r"^image too large: 1000x1000 pixels \(limit 100,000\)$"):
        make_thumbnails(image_bytes("png", (1000, 1000)), tmp_path, max_pixels=100_000)


def test_text_file_named_png_is_refused(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("%PDF-1.7 this is not an image")
    with pytest.raises(PreviewError, match=r"^not an image \(starts with b'%PDF-1.7'\)$"):
        thumbnails_from_file(path, tmp_path / "thumbs")


def test_truncated_jpeg_is_refused(tmp_path):
    data = image_bytes("jpeg", (512, 768))
    with pytest.raises(PreviewError, match=r"^corrupt image: image file is truncated"):
        make_thumbnails(data[: len(data) // 2], tmp_path)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_garbage_after_a_png_signature_is_refused(tmp_path):
    with pytest.raises(PreviewError, match=r"^corrupt image: "):
        make_thumbnails(b"\x89PNG\r\n\x1a\n" + os.urandom(200), tmp_path)


def test_undecodable_type_is_refused(tmp_path):
    with pytest.raises(PreviewError, match=r"^unsupported image type: jxl$"):
        make_thumbnails(b"\xff\x0a" + bytes(100), tmp_path)


def test_empty_missing_and_oversized_files(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(PreviewError, match=r"^empty file$"):
        thumbnails_from_file(empty, tmp_path)
    with pytest.raises(PreviewError, match=r"^cannot read missing.png: No such file or directory$"):
        thumbnails_from_file(tmp_path / "missing.png", tmp_path)
    big = write_preview(tmp_path / "m.safetensors", "png", size=(64, 64))
    with pytest.raises(PreviewError, match=r"^file too large: over 100 bytes$"):
        thumbnails_from_file(big, tmp_path, max_bytes=100)
