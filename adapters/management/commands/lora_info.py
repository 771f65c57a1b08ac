import json

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Print what the catalog knows about one LoRA, found by file path or sha256 (full or prefix)."
    # A quick look-up: skip the system checks, which import the whole web app (URLconf, views, ModelAdmins,
    # template tags) and cost more than the look-up (issue 17). `manage.py check` runs them all.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("path_or_sha256")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options):
        # Imported here, not at the top: `--help` and `manage.py help` stay light (issue 17).
        from adapters.info import adapter_info, find_adapter

        adapter = find_adapter(options["path_or_sha256"])
        if adapter is None:
            raise CommandError(
                f"no adapter in the catalog for {options['path_or_sha256']!r}: scan its folder first "
                "(manage.py scan_library FOLDER)"
            )
        info = adapter_info(adapter)
        if options["json"]:
            self.stdout.write(json.dumps(info, indent=2, default=str))
            return
        for key, value in info.items():
            if key in ("sources", "paths"):
                continue
            source = info["sources"].get(key)
            suffix = f"  [{source}]" if source else ""
            self.stdout.write(f"{key:>18}: {value}{suffix}")
        for entry in info["paths"]:
            self.stdout.write(f"{'file':>18}: {entry['path']} ({entry['status']})")
