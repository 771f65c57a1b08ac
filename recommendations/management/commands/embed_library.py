import json
import sys

from django.core.management.base import BaseCommand, CommandError

from recommendations.models import EmbeddingRun


class Command(BaseCommand):
    help = "Embed adapters whose text, model or recipe changed and republish the similarity index (with progress)."

    def add_arguments(self, parser):
        parser.add_argument("--rebuild", action="store_true", help="re-embed every adapter and rebuild the index")
        parser.add_argument("--json", action="store_true", help="print one summary object on stdout")

    def handle(self, *args, **options):
        # Imported here, not at the top: `--help` and `manage.py help` stay light (issue 17).
        from recommendations import embedding_runs

        run = EmbeddingRun.objects.create(reason="embed_library command", rebuild=options["rebuild"])
        stderr = sys.stderr

        def echo(phase: str, done: int, total: int) -> None:
            if total:
                stderr.write(f"\r{phase}: {done:,}/{total:,}" + ("\n" if done >= total else ""))
            else:
                stderr.write(f"{phase}...\n")
            stderr.flush()

        try:
            run = embedding_runs.execute(run, echo=echo)
        except Exception as exc:
            raise CommandError(str(exc)) from exc
        summary = {"embedded": run.embedded, "unchanged": run.unchanged, "indexed": run.indexed, "kind": run.index_kind}
        if options["json"]:
            self.stdout.write(json.dumps(summary))
        else:
            self.stdout.write(run.message)
