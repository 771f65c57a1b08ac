from django.core.management.base import BaseCommand, CommandError

# archive.planning.ON_CONFLICT, spelled out: importing archive.planning (Pillow, requests) for `--help` made
# every look at this command slow (issue 17); tests/lora_manager/test_command_startup.py checks they agree.
ON_CONFLICT = ("skip", "update", "keep-both")


class Command(BaseCommand):
    help = (
        "Import a LoRA Manager archive after checking all of it (nothing changes when any check fails); "
        "see docs/archive.md for the conflict rules."
    )

    def add_arguments(self, parser):
        parser.add_argument("archive", help="the .zip written by export_library or a backup")
        parser.add_argument("--dry-run", action="store_true", help="check and show the plan; change nothing")
        parser.add_argument("--on-conflict", choices=ON_CONFLICT, default="skip", help="see docs/archive.md")
        parser.add_argument("--library-dir", help="library folder for the archive's files (default: see docs)")

    def handle(self, *args, **options):
        # Imported here, not at the top: `--help` and `manage.py help` stay light (issue 17).
        from archive import importing
        from archive.checking import ArchiveRefused
        from archive.command_output import describe_plan, echo_progress

        try:
            result = importing.import_archive(
                options["archive"],
                on_conflict=options["on_conflict"],
                library_dir=options["library_dir"],
                dry_run=options["dry_run"],
                progress=echo_progress(self.stderr),
            )
        except ArchiveRefused as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(describe_plan(result.plan.as_dict()))
        if options["dry_run"]:
            self.stdout.write(self.style.WARNING("dry run: nothing was changed"))
            return
        counts = ", ".join(f"{value} {key.replace('_', ' ')}" for key, value in result.counts.items())
        self.stdout.write(self.style.SUCCESS(f"imported: {counts}"))
