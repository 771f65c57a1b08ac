from django.core.management import call_command
from django.core.management.base import BaseCommand

from adapters.scan_runs import reconcile_stale_runs
from adapters.tasks import schedule_periodic_rescan


class Command(BaseCommand):
    help = "Start an RQ worker (with scheduler) after settling rows a killed worker left running."

    def add_arguments(self, parser):
        parser.add_argument("queues", nargs="*", default=["default", "embeddings"])

    def handle(self, *args, **options):
        fixed = reconcile_stale_runs()
        if fixed:
            self.stdout.write(f"marked {fixed} scan(s) left running by a stopped worker as failed")
        schedule_periodic_rescan()
        call_command("rqworker", *options["queues"], with_scheduler=True)
