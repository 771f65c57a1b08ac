"""An image file's bytes -> ``ParsedRecipe``: which reader applies, and one clear error when none does.

A ComfyUI graph wins over an A1111 ``parameters`` text when a PNG carries both (ComfyUI extensions
that also write A1111-style text describe the same graph with less detail).
"""

from __future__ import annotations

from generation import comfyui_graph
from generation.image_metadata import ImageText, read_image_text
from generation.recipe_parsing import ParsedRecipe, RecipeError, parse_infotext


def recipe_from_texts(found: ImageText) -> ParsedRecipe:
    texts = found.texts
    problems: list[str] = []
    recipe: ParsedRecipe | None = None
    if texts.get("prompt", "").strip() or texts.get("workflow", "").strip():
        try:
            recipe = comfyui_graph.parse(texts.get("prompt", ""), texts.get("workflow", ""))
        except RecipeError as exc:
            problems.append(f"ComfyUI graph: {exc}")
    if recipe is None and texts.get("parameters", "").strip():
        try:
            recipe = parse_infotext(texts["parameters"])
        except RecipeError as exc:
            problems.append(f"A1111 parameters: {exc}")
    if recipe is None:
        what = {"png": "a 'parameters', 'prompt' or 'workflow' text chunk", "jpeg": "an EXIF UserComment"}
        looked = what.get(found.kind, "an EXIF UserComment")
        detail = "; ".join(problems + found.warnings)
        raise RecipeError(
            f"no generation parameters found in this {found.kind.upper()} (looked for {looked})"
            + (f": {detail}" if detail else "")
        )
    recipe.warnings = [*found.warnings, *recipe.warnings]
    return recipe


def recipe_from_image(data: bytes) -> ParsedRecipe:
    """Parse an image file's bytes; raises RecipeError (or image_metadata.MetadataError) with a clear message."""
    return recipe_from_texts(read_image_text(data))
