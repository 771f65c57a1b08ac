import django_rq
from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.utils.module_loading import import_string

from lora_manager import installation
from lora_manager.outages import REDIS_ERRORS
from lora_manager.runs import periodic, tracked

GENERATION_PREFIX = "generation-"


class Command(BaseCommand):
    help = (
        "Start an RQ worker (with scheduler) on the given queues (default: every configured queue) after "
        "settling rows a killed worker left running and scheduling the periodic jobs the apps declare."
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
        try:
            installation.claim(django_rq.get_connection("default"))
        except installation.InstallationConflict as exc:
            raise CommandError(str(exc)) from exc
        except REDIS_ERRORS as exc:  # one line, not a traceback per restart while Redis is down
            raise CommandError(
                f"Redis is not reachable ({exc}): the worker cannot start; under make run it is tried again "
                "with a growing delay until Redis is back."
            ) from exc
        fixed = tracked.reconcile_all()  # every reconciler the apps declared (AppConfig.ready)
        if fixed:
            self.stdout.write(f"marked {fixed} run(s) or generation(s) whose worker stopped as failed")
        for config in apps.get_app_configs():  # what the apps want done when a worker starts
            for hook in getattr(config, "worker_start", ()):
                said = import_string(hook)(queues)
                if said:
                    self.stdout.write(said)
        for name in periodic.schedule_all():  # every periodic job the apps declared, the janitor among them
            self.stdout.write(f"scheduled the periodic job '{name}'")
        # Children (work-horse, scheduler) die with the worker, even on kill -9 (lora_manager/runs/workers.py);
        # a killed work-horse fails its row at once and heartbeats are frequent (lora_manager/runs/workers.py).
        call_command(
            "rqworker",
            *queues,
            with_scheduler=True,
            worker_class="lora_manager.runs.workers.Worker",
            worker_ttl=settings.WORKER_TTL,
        )
