from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from adapters.civitai_runs import reconcile_stale_runs as reconcile_civitai_runs
from adapters.scan_runs import reconcile_stale_runs, start_first_scan
from adapters.tasks import schedule_periodic_rescan
from archive.runs import reconcile_stale_runs as reconcile_archive_runs
from archive.tasks import schedule_periodic_backup
from generation.reconciling import reconcile_stale_jobs
from generation.tasks import schedule_periodic_retention
from recommendations.embedding_runs import reconcile_stale_runs as reconcile_embedding_runs

GENERATION_PREFIX = "generation-"


class Command(BaseCommand):
    help = (
        "Start an RQ worker (with scheduler) on the given queues (default: every configured queue) after "
        "settling rows a killed worker left running."
    )

    def add_arguments(self, parser):
        parser.add_argument("queues", nargs="*", help=f"queue names; configured: {', '.join(settings.RQ_QUEUES)}")
        parser.add_argument(
            "--no-generation",
            action="store_true",
            help="leave out the generation-<backend> queues (run a worker per backend beside this one)",
        )

    def handle(self, *args, **options):
        queues = options["queues"] or [
            name for name in settings.RQ_QUEUES if not (options["no_generation"] and name.startswith(GENERATION_PREFIX))
        ]
        unknown = [name for name in queues if name not in settings.RQ_QUEUES]
        if unknown:
            raise CommandError(f"unknown queue(s) {', '.join(unknown)}; configured: {', '.join(settings.RQ_QUEUES)}")
        fixed = reconcile_stale_runs()
        if fixed:
            self.stdout.write(f"marked {fixed} scan(s) left running by a stopped worker as failed")
        fixed = reconcile_stale_jobs()
        if fixed:
            self.stdout.write(f"marked {fixed} generation(s) left queued or running by a stopped worker as failed")
        reconcile_civitai_runs()  # Civitai lookups a killed worker left running
        reconcile_embedding_runs()  # embedding runs a killed worker left running
        if "default" in queues and start_first_scan():
            self.stdout.write("library folders are configured and the catalog is empty: first scan queued")
        schedule_periodic_rescan()
        schedule_periodic_retention()
        reconcile_archive_runs()  # exports/imports a killed worker left running
        schedule_periodic_backup()
        call_command("rqworker", *queues, with_scheduler=True)
