"""Real images carrying generation parameters the way A1111/SD.Next and ComfyUI write them."""

from __future__ import annotations

import io
import json
import struct
import zlib

from PIL import Image, ImageDraw, PngImagePlugin

A1111_TEXT = (
    "masterpiece, ink drawing of a fox, <lora:ink_sd15:0.8>, <lora:pixel_xl:0.6>\n"
    "detailed background\n"
    "Negative prompt: blurry, lowres\n"
    "Steps: 28, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 123456789, Size: 832x1216, "
    'Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Lora hashes: "ink_sd15: {ink}, pixel_xl: {pixel}", '
    "Clip skip: 2, Version: v1.10.1"
)


def a1111_text(ink_hash: str = "36ea8aeef318", pixel_hash: str = "a1b2c3d4e5f6") -> str:
    return A1111_TEXT.format(ink=ink_hash, pixel=pixel_hash)


def comfy_api_graph(lora_a: str = "style\\ink_sd15.safetensors", lora_b: str = "pixel_xl.safetensors") -> dict:
    """An API-format graph as ComfyUI's SaveImage writes it: checkpoint -> 2 LoRAs -> KSampler."""
    return {
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "seed": 987654321,
                "steps": 30,
                "cfg": 7.0,
                "sampler_name": "dpmpp_2m",
                "scheduler": "karras",
                "denoise": 1.0,
                "model": ["11", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
            },
        },
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 896, "height": 1152, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse at dusk, ink style", "clip": ["11", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "watermark, text", "clip": ["11", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
        "10": {
            "class_type": "LoraLoader",
            "inputs": {
                "lora_name": lora_a,
                "strength_model": 0.75,
                "strength_clip": 1.0,
                "model": ["4", 0],
                "clip": ["4", 1],
            },
        },
        "11": {
            "class_type": "LoraLoaderModelOnly",
            "inputs": {"lora_name": lora_b, "strength_model": 0.5, "model": ["10", 0]},
        },
    }


def comfy_workflow() -> dict:
    """The UI-format workflow of the same graph (nodes with widgets_values, links table)."""

    def node(node_id, kind, widgets, inputs=()):
        return {
            "id": node_id,
            "type": kind,
            "widgets_values": widgets,
            "inputs": [{"name": name, "link": link} for name, link in inputs],
        }

    return {
        "last_node_id": 11,
        "nodes": [
            node(
                3,
                "KSampler",
                [987654321, "fixed", 30, 7.0, "dpmpp_2m", "karras", 1.0],
                [("model", 1), ("positive", 2), ("negative", 3), ("latent_image", 4)],
            ),
            node(4, "CheckpointLoaderSimple", ["sd_xl_base_1.0.safetensors"]),
            node(5, "EmptyLatentImage", [896, 1152, 1]),
            node(6, "CLIPTextEncode", ["a lighthouse at dusk, ink style"], [("clip", 5)]),
            node(7, "CLIPTextEncode", ["watermark, text"], [("clip", 5)]),
            node(10, "LoraLoader", ["style\\ink_sd15.safetensors", 0.75, 1.0], [("model", 6), ("clip", 7)]),
            node(11, "LoraLoaderModelOnly", ["pixel_xl.safetensors", 0.5], [("model", 8)]),
        ],
        "links": [
            [1, 11, 0, 3, 0, "MODEL"],
            [2, 6, 0, 3, 1, "CONDITIONING"],
            [3, 7, 0, 3, 2, "CONDITIONING"],
            [4, 5, 0, 3, 3, "LATENT"],
            [5, 10, 1, 6, 0, "CLIP"],
            [6, 4, 0, 10, 0, "MODEL"],
            [7, 4, 1, 10, 1, "CLIP"],
            [8, 10, 0, 11, 0, "MODEL"],
        ],
        "version": 0.4,
    }


def _image(color=(40, 90, 160), size=(128, 192)) -> Image.Image:
    """A small picture with some structure (a gradient and a disc), so thumbnails look like images."""
    image = Image.new("RGB", size, color)
    draw = ImageDraw.Draw(image)
    for y in range(size[1]):
        shade = tuple(min(255, c + y // 3) for c in color)
        draw.line([(0, y), (size[0], y)], fill=shade)
    draw.ellipse([size[0] // 4, size[1] // 4, size[0] * 3 // 4, size[1] // 2], fill=(250, 230, 180))
    return image


def png_with_text(texts: dict[str, str], color=(40, 90, 160)) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in texts.items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    _image(color).save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def a1111_png(**hashes) -> bytes:
    return png_with_text({"parameters": a1111_text(**hashes)})


def comfy_png(prompt: dict | None = None, workflow: dict | None = None) -> bytes:
    texts = {}
    if prompt is not False:
        texts["prompt"] = json.dumps(prompt or comfy_api_graph())
    if workflow is not None:
        texts["workflow"] = json.dumps(workflow)
    return png_with_text(texts, color=(200, 120, 30))


def user_comment(text: str, encoding: str = "unicode", byteorder: str = "be") -> bytes:
    if encoding == "ascii":
        return b"ASCII\0\0\0" + text.encode("ascii", "replace")
    return b"UNICODE\0" + text.encode("utf-16-be" if byteorder == "be" else "utf-16-le")


def exif_image(fmt: str, comment: bytes) -> bytes:
    """A JPEG or WebP whose EXIF UserComment holds ``comment`` (as A1111/SD.Next write it with piexif)."""
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = comment
    buffer = io.BytesIO()
    _image((10, 150, 60)).save(buffer, fmt, exif=exif.tobytes())
    return buffer.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_with_raw_chunks(*chunks: bytes) -> bytes:
    """A valid small PNG with extra chunks inserted before IDAT (for oversized or broken text chunks)."""
    plain = png_with_text({})
    ihdr_end = 8 + 25
    return plain[:ihdr_end] + b"".join(chunks) + plain[ihdr_end:]
