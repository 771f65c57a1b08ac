from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Write a backup now (metadata only unless LORA_MANAGER_BACKUP_WEIGHTS or --weights) and prune old ones."

    def add_arguments(self, parser):
        parser.add_argument("--weights", action="store_true", help="include the LoRA weights in this backup")

    def handle(self, *args, **options):
        # Imported here, not at the top: `--help` and `manage.py help` stay light (issue 17).
        from archive import backups, exporting
        from archive.command_output import echo_progress

        try:
            result = backups.backup_now(
                weights=options["weights"] or settings.BACKUP_WEIGHTS, progress=echo_progress(self.stderr)
            )
        except exporting.ExportError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(f"backup written: {result.path} ({result.size} bytes)"))
