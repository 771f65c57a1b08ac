import json
import sys

from django.core.management.base import BaseCommand, CommandError

from adapters.models import CivitaiRun


class Command(BaseCommand):
    help = (
        "Look adapters up on Civitai by hash. Default: all but those found not on Civitai in the last 30 days; "
        "--missing: only adapters never checked; --all: every hashed adapter."
    )

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--all", action="store_true", help="every hashed adapter, even recent 'not on Civitai'")
        which.add_argument("--missing", action="store_true", help="only adapters never checked")
        which.add_argument("--id", type=int, action="append", dest="ids", help="this adapter id (repeatable)")
        parser.add_argument("--json", action="store_true", help="print one summary object on stdout")

    def handle(self, *args, **options):
        # Imported here, not at the top: `--help` and `manage.py help` stay light (issue 17).
        from adapters import civitai_lookup, civitai_runs

        if not civitai_lookup.enabled():
            raise CommandError("Civitai lookups are switched off: set LORA_MANAGER_CIVITAI_URL (see docs/civitai.md).")
        if options["ids"]:
            mode = CivitaiRun.Mode.SELECTED
        else:
            mode = CivitaiRun.Mode.ALL if options["all"] else CivitaiRun.Mode.MISSING if options["missing"] else "due"
        if civitai_runs.active_run() is not None:
            raise CommandError(f"Civitai lookup #{civitai_runs.active_run().pk} is running; wait for it or cancel it.")
        run = CivitaiRun.objects.create(mode=mode, adapter_ids=options["ids"] or [], status=CivitaiRun.Status.QUEUED)
        stderr = sys.stderr

        def echo(phase: str, done: int, total: int) -> None:
            stderr.write(f"\r{phase}: {done:,}/{total:,}" + ("\n" if done == total else ""))
            stderr.flush()

        try:
            run = civitai_runs.execute(run, echo=echo)
        except Exception as exc:
            raise CommandError(f"Civitai lookup failed: {exc}") from exc
        summary = {**run.summary(), "message": run.message, "issues": run.issues}
        if options["json"]:
            self.stdout.write(json.dumps(summary, indent=2))
        else:
            self.stdout.write(run.message)
            for issue in run.issues[:50]:
                self.stdout.write(f"  ! {issue['name']} (#{issue['adapter_id']}): {issue['message']}")
            if len(run.issues) > 50:
                self.stdout.write(f"  ... and {len(run.issues) - 50} more issues (use --json for all)")
        if run.status == CivitaiRun.Status.FAILED:
            raise CommandError(run.message)
