"""Recipes in a real browser: upload an A1111 PNG and a ComfyUI PNG (file input and drag and drop), read
the recipe pages (prompt, LoRAs found in the catalog), open them in the composer."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from playwright.sync_api import expect

from adapters.identity import hash_pending
from adapters.models import Adapter
from adapters.scanning import scan
from generation.models import Recipe
from tests.adapters.conftest import lora
from tests.conftest import make_user
from tests.e2e.conftest import ARTIFACTS, login
from tests.generation import recipe_images as ri

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

DROP = """([name, data]) => {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, { type: "image/png" }));
  const zone = document.querySelector("[data-dropzone]");
  zone.dispatchEvent(new DragEvent("dragover", { dataTransfer: transfer, bubbles: true, cancelable: true }));
  zone.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
}"""

# The whole LoRA table (how each LoRA was found, or why not, is its last column) is inside its card.
FITS = "(table) => table.getBoundingClientRect().right <= table.closest('.card').getBoundingClientRect().right + 1"


def test_import_a1111_and_comfyui_images_then_open_them_in_the_composer(
    live_app, page, sdnext_standin, scanned_library, tmp_path: Path
):
    root = Path(sdnext_standin.engine.loras.root)
    lora(root, "style/ink_sd15.safetensors", "sdxl", seed=11)
    lora(root, "pixel_xl.safetensors", "sdxl", seed=12)
    scan([str(root)])
    hash_pending(workers=1)
    adapters = {a.name: a for a in Adapter.objects.all()}
    a1111 = tmp_path / "fox-a1111.png"
    a1111.write_bytes(
        ri.a1111_png(
            ink_hash=adapters["ink_sd15"].tensor_sha256[:12].upper(),
            pixel_hash=adapters["pixel_xl"].tensor_sha256[:12],
        )
    )
    make_user("eddie", "editor")
    csp_errors: list[str] = []
    page.on("console", lambda msg: csp_errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: csp_errors.append(str(exc)))
    login(page, live_app, "eddie", "pw-eddie-1234")

    page.get_by_role("link", name="Recipes").click()
    expect(page.locator("#recipe-results")).to_contain_text("No recipes yet")
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("shopping list")
    page.locator("#recipe-files").set_input_files([str(a1111), str(not_an_image)])
    page.get_by_role("button", name="Import", exact=True).click()
    results = page.locator("#recipe-import")
    expect(results).to_contain_text("fox-a1111.png: recipe")
    expect(results).to_contain_text("notes.png: not a PNG, JPEG or WebP image")
    expect(page.locator("#recipe-results .result-card")).to_have_count(1)  # the grid refreshed too

    # The ComfyUI image arrives by drag and drop.
    page.evaluate(DROP, ["comfy.png", base64.b64encode(ri.comfy_png()).decode()])
    expect(results).to_contain_text("comfy.png: recipe")
    expect(page.locator("#recipe-results .result-card")).to_have_count(2)

    first = Recipe.objects.get(title="fox-a1111.png")
    page.locator("#recipe-results").get_by_role("link", name="fox-a1111.png", exact=True).click()
    expect(page.locator("#recipe-prompt")).to_contain_text("masterpiece, ink drawing of a fox")
    expect(page.locator("#recipe-negative")).to_have_text("blurry, lowres")
    table = page.locator("#recipe-loras")
    expect(table.locator("tr.lora-matched")).to_have_count(2)
    expect(table).to_contain_text("AutoV3 (tensor hash)")
    expect(page.locator(f"#recipe-{first.pk} img.recipe-image")).to_be_visible()
    assert table.evaluate(FITS), "the LoRA table overflows its card: 'In the catalog' is scrolled out of sight"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "recipe-a1111.png"), full_page=True)

    page.get_by_role("link", name="Open in composer").click()
    expect(page.locator(".messages")).to_contain_text("Loaded from recipe “fox-a1111.png”")
    expect(page.locator("#prompt")).to_have_value("masterpiece, ink drawing of a fox\ndetailed background")
    names = page.locator(".lora-row .lora-name")
    expect(names).to_have_text(["ink_sd15", "pixel_xl"])
    expect(page.locator("#seed")).to_have_value("123456789")

    page.goto(f"{live_app}/generate/recipes/?q=lighthouse")
    page.locator("#recipe-results .result-card a").first.click()
    expect(page.locator("#recipe-prompt")).to_have_text("a lighthouse at dusk, ink style")
    expect(page.locator("#recipe-loras")).to_contain_text("File name")
    expect(page.locator("#recipe-loras tr.lora-matched")).to_have_count(2)
    assert page.locator("#recipe-loras").evaluate(FITS)
    page.screenshot(path=str(ARTIFACTS / "recipe-comfyui.png"), full_page=True)
    page.get_by_role("link", name="Open in composer").click()
    expect(page.locator("#prompt")).to_have_value("a lighthouse at dusk, ink style")
    expect(names).to_have_text(["ink_sd15", "pixel_xl"])
    page.screenshot(path=str(ARTIFACTS / "recipe-composer.png"), full_page=True)
    assert csp_errors == [], csp_errors
