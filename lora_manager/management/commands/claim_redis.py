import django_rq
from django.core.management.base import BaseCommand, CommandError

from lora_manager import installation


class Command(BaseCommand):
    help = "Claim the configured Redis database for this installation (refused when another one holds it)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--force", action="store_true", help="take it over from an installation that no longer exists"
        )

    def handle(self, *args, **options):
        try:
            claimed = installation.claim(django_rq.get_connection("default"), force=options["force"])
        except installation.InstallationConflict as exc:
            raise CommandError(str(exc)) from exc
        except Exception as exc:
            raise CommandError(f"cannot reach Redis to claim it: {exc}") from exc
        self.stdout.write(f"Redis database claimed for installation '{claimed['instance']}'")
