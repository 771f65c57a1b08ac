import json
import sys

from django.core.management.base import BaseCommand, CommandError

from adapters.models import ScanRun


class Command(BaseCommand):
    help = "Scan LoRA folders (default: the configured library roots) into the catalog, then hash new files."
    # Run from cron and scripts: skip the system checks, which import the whole web app (URLconf, views,
    # ModelAdmins, template tags) and cost more than scanning an unchanged library (issue 17). The web
    # process runs none either; `manage.py check` runs them all.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="*", help="folders to scan (each becomes a library root)")
        parser.add_argument("--no-hash", action="store_true", help="read headers and sidecars only; hash later")
        parser.add_argument("--json", action="store_true", help="print one summary object on stdout")

    def handle(self, *args, **options):
        # Imported here, not at the top: `--help` and `manage.py help` stay light (issue 17).
        from adapters import scan_runs, thumbnails

        run = ScanRun.objects.create(roots=options["paths"], hash_files=not options["no_hash"])
        stderr = sys.stderr

        def echo(phase: str, done: int, total: int) -> None:
            if not total:
                stderr.write(f"{phase}...\n")
            else:
                stderr.write(f"\r{phase}: {done:,}/{total:,}" + ("\n" if done == total else ""))
            stderr.flush()

        try:
            run = scan_runs.execute(run, echo=echo, settle_wait=True)
        except Exception as exc:
            raise CommandError(f"scan failed: {exc}") from exc
        summary = {**run.summary(), "issues": run.issues}
        if options["json"]:
            self.stdout.write(json.dumps(summary, indent=2))
            return
        self.stdout.write(run.message)
        for key, value in run.summary().items():
            self.stdout.write(f"  {key:>10}: {value}")
        pending = thumbnails.pending_thumbnails().count()
        if pending:  # not made here: decoding them would take as long as the scan itself
            self.stdout.write(f"  {pending:,} preview thumbnails are made on first view in the gallery")
        for issue in run.issues[:50]:
            self.stdout.write(f"  ! {issue['path']}: {issue['message']}")
        if len(run.issues) > 50:
            self.stdout.write(f"  ... and {len(run.issues) - 50} more issues (use --json for all)")
