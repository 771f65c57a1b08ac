from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Write the library (adapters, tags, presets, feedback, files) to a ZIP archive; see docs/archive.md."

    def add_arguments(self, parser):
        parser.add_argument("out", help="the archive to write (.zip); written to a temporary file, then renamed")
        parser.add_argument("--metadata-only", action="store_true", help="leave out the LoRA weights")
        parser.add_argument("--include-history", action="store_true", help="add generation history and images")
        parser.add_argument("--tag", action="append", default=[], help="only adapters with this tag (repeatable)")

    def handle(self, *args, **options):
        # Imported here, not at the top: `--help` and `manage.py help` stay light (issue 17).
        from archive import exporting
        from archive.command_output import echo_progress

        try:
            result = exporting.export_library(
                options["out"],
                tags=options["tag"],
                metadata_only=options["metadata_only"],
                include_history=options["include_history"],
                progress=echo_progress(self.stderr),
            )
        except exporting.ExportError as exc:
            raise CommandError(str(exc)) from None
        counts = ", ".join(f"{value} {key}" for key, value in result.counts.items())
        self.stdout.write(self.style.SUCCESS(f"wrote {result.path} ({result.size} bytes): {counts}"))
