"""Apply the history retention policy now, or only count what it would remove (--dry-run)."""

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Remove old generation jobs and their images by the retention policy (never pinned, rated or running ones)."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="only count what would be removed")
        parser.add_argument("--keep-jobs", type=int, help="override LORA_MANAGER_RETENTION_KEEP_JOBS")
        parser.add_argument("--keep-days", type=int, help="override LORA_MANAGER_RETENTION_KEEP_DAYS")

    def handle(self, *args, **options):
        # Imported here, not at the top: `--help` and `manage.py help` stay light (issue 17).
        from generation import retention

        current = retention.policy()
        jobs = current.keep_jobs if options["keep_jobs"] is None else options["keep_jobs"]
        days = current.keep_days if options["keep_days"] is None else options["keep_days"]
        if jobs < 0 or days < 0:
            raise CommandError("--keep-jobs and --keep-days must be 0 (no limit) or more")
        rule = retention.Policy(jobs, days)
        self.stdout.write(rule.describe())
        if not rule.active:
            return
        plan = retention.plan(rule)
        self.stdout.write(
            f"would remove {plan.jobs} job(s) with {plan.images} image(s), {plan.bytes / 1_000_000:.1f} MB; "
            f"keeping {plan.kept_pinned} pinned, {plan.kept_rated} rated, {plan.kept_active} queued or running"
        )
        if not options["dry_run"]:
            self.stdout.write(retention.apply(rule).message)
