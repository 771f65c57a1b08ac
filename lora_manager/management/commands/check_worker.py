import secrets
import time

import django_rq
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Round-trip a job through the queue; fails with a clear message when no worker answers."

    def add_arguments(self, parser):
        parser.add_argument("--queue", default="default")
        parser.add_argument("--timeout", type=float, default=10.0)

    def handle(self, *args, **options):
        if options["queue"] not in settings.RQ_QUEUES:
            raise CommandError(f"unknown queue '{options['queue']}': use one of {', '.join(settings.RQ_QUEUES)}")
        if options["timeout"] <= 0:
            raise CommandError("--timeout must be a positive number of seconds")
        token = secrets.token_hex(8)
        try:
            # "auto": enqueue now even inside a transaction; the heartbeat needs no database row.
            queue = django_rq.get_queue(options["queue"], commit_mode="auto")
            job = queue.enqueue(
                "lora_manager.runs.tasks.heartbeat", 0, token, result_ttl=60, ttl=int(options["timeout"]) + 5
            )
        except Exception as exc:
            raise CommandError(f"cannot reach Redis to enqueue a job: {exc}") from exc
        deadline = time.monotonic() + options["timeout"]
        while time.monotonic() < deadline:
            status = job.get_status(refresh=True)
            if status == "finished" and job.return_value() == token:
                self.stdout.write(f"worker answered on queue '{options['queue']}' in time")
                return
            if status == "failed":
                raise CommandError("a worker took the job but it failed: see the worker's log")
            time.sleep(0.1)
        job.cancel()
        raise CommandError(
            f"no worker answered on queue '{options['queue']}' within {options['timeout']:.0f} s: "
            "start one with 'make run' or 'python manage.py run_worker'"
        )
