"""`manage.py import_recipe IMAGE [IMAGE ...] [--json]`: recipes from generated images (docs/recipes.md).

Every file is tried; one that gives no recipe is reported on stderr with the reason and the others
are still imported. The exit status is 1 when any file failed.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Import PNG, JPEG or WebP images with generation parameters (A1111, SD.Next, ComfyUI) as recipes."

    def add_arguments(self, parser) -> None:
        parser.add_argument("images", nargs="+", metavar="IMAGE")
        parser.add_argument("--json", action="store_true", help='print {"recipes": [...]} as JSON')

    def handle(self, *args, **options) -> None:
        # Imported here, not at the top: `--help` and `manage.py help` stay light (issue 17).
        from generation import recipes

        imported, failed = [], 0
        paths = options["images"]
        for number, name in enumerate(paths, 1):
            path = Path(name)
            try:
                with open(path, "rb") as handle:
                    data = handle.read(recipes.MAX_IMAGE_BYTES + 1)
                recipe = recipes.import_image(data, path.name)
            except OSError as exc:
                failed += 1
                self.stderr.write(f"{name}: cannot read the file ({exc.strerror or exc})")
                continue
            except recipes.ImportFailed as exc:
                failed += 1
                self.stderr.write(f"{name}: {exc}")
                continue
            imported.append(recipe)
            if not options["json"]:
                self.stdout.write(self._summary(number, len(paths), name, recipe))
        if options["json"]:
            self.stdout.write(json.dumps({"recipes": [recipes.as_json(r) for r in imported]}, ensure_ascii=False))
        if failed:
            raise CommandError(f"{failed} of {len(paths)} file(s) gave no recipe (above); {len(imported)} imported.")

    @staticmethod
    def _summary(number: int, total: int, name: str, recipe) -> str:
        loras = list(recipe.loras.all())
        matched = sum(1 for lora in loras if lora.adapter_id)
        lines = [
            f"[{number}/{total}] {name}: recipe #{recipe.pk} ({recipe.get_source_display()}), "
            f"{len(loras)} LoRA(s), {matched} found in the catalog"
        ]
        for lora in loras:
            how = f"matched by {lora.matched_by}" if lora.matched_by else f"missing ({lora.note})"
            weight = "?" if lora.weight is None else f"{lora.weight:g}"
            lines.append(f"    {lora.name} @ {weight}: {how}")
        lines += [f"    warning: {warning}" for warning in recipe.warnings]
        return "\n".join(lines)
