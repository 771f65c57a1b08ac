"""`manage.py generate`: submit a generation from scripts and cron, through the same queue as the web page."""

from __future__ import annotations

import json
import sys
import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from django.http import QueryDict
from rq.worker import Worker

from adapters.models import Adapter, AdapterFile
from generation import backends, composer, forms, lora_names, storage, submitting
from generation.models import BackendLora, GenerationJob, JobStatus
from lora_manager.runs import workers


def lora_choice(spec: str, backend: str) -> composer.LoraChoice:
    """NAME[:WEIGHT]: a catalog adapter by SD.Next name, name, alias, file stem or id; else a LoRA SD.Next lists."""
    name, colon, weight_text = spec.rpartition(":")
    if not colon:
        name, weight_text = spec, ""
    name = name.strip()
    if not name:
        raise CommandError(f"--lora {spec!r}: use NAME or NAME:WEIGHT")
    weight = None
    if weight_text:
        try:
            weight = float(weight_text)
        except ValueError:
            raise CommandError(f"--lora {spec!r}: weight {weight_text!r} is not a number") from None
        if not composer.WEIGHT[0] <= weight <= composer.WEIGHT[1]:
            raise CommandError(f"--lora {spec!r}: weight must be from {composer.WEIGHT[0]:g} to {composer.WEIGHT[1]:g}")
    adapter = find_adapter(name, backend)
    if adapter is None:
        if BackendLora.objects.filter(backend=backend, name=name).exists():
            return composer.LoraChoice(None, 1.0 if weight is None else weight, triggers=False, name=name)
        raise CommandError(f"--lora {name!r}: no such LoRA in the catalog or in SD.Next's list (refresh it?)")
    return composer.LoraChoice(adapter.pk, composer.default_weight(adapter) if weight is None else weight)


def find_adapter(name: str, backend: str) -> Adapter | None:
    known = BackendLora.objects.filter(backend=backend, name=name, adapter__isnull=False).first()
    if known is not None:
        return known.adapter
    if name.isdigit():
        found = Adapter.objects.filter(pk=int(name)).first()
        if found:
            return found
    by_label = list(Adapter.objects.filter(Q(name__iexact=name) | Q(alias__iexact=name))[:5])
    if len(by_label) == 1:
        return by_label[0]
    by_file = list(
        Adapter.objects.filter(files__in=AdapterFile.objects.filter(path__endswith=f"/{name}.safetensors")).distinct()[
            :5
        ]
    )
    if len(by_file) == 1:
        return by_file[0]
    candidates = by_label or by_file
    if candidates:
        listed = ", ".join(f"#{a.pk} {a.name}" for a in candidates)
        raise CommandError(f"--lora {name!r} is ambiguous ({listed}): give the id instead")
    return None


def job_state(job: GenerationJob) -> dict:
    return {
        "id": job.pk,
        "status": job.status,
        "message": job.message,
        "backend": job.backend,
        "prompt": job.prompt,
        "negative_prompt": job.negative_prompt,
        "warnings": job.warnings,
        "seeds": job.seeds,
        "images": [str(storage.absolute(image.path)) for image in job.images.all()],
        "loras": [
            {"name": lora.name, "weight": lora.weight, "adapter_id": lora.adapter_id, "applied": lora.applied}
            for lora in job.loras.all()
        ],
        "loras_applied": job.loras_applied,
    }


class Command(BaseCommand):
    help = "Queue a txt2img generation on an SD.Next backend (a worker runs it); --wait follows it to the end."

    def add_arguments(self, parser):
        parser.add_argument("--prompt", required=True)
        parser.add_argument("--negative", default="")
        parser.add_argument("--lora", action="append", default=[], metavar="NAME:WEIGHT", help="repeatable")
        parser.add_argument("--checkpoint", default="", help="default: the checkpoint SD.Next has loaded")
        parser.add_argument("--sampler", default="Default")
        parser.add_argument("--steps", default="20")
        parser.add_argument("--cfg", default="6")
        parser.add_argument("--width", default="1024")
        parser.add_argument("--height", default="1024")
        parser.add_argument("--seed", default="-1")
        parser.add_argument("--batch-size", default="1")
        parser.add_argument("--count", default="1", help="batch count (SD.Next n_iter)")
        parser.add_argument("--backend", default="default")
        parser.add_argument("--user", default="", help="record the job as this user's")
        parser.add_argument("--no-triggers", action="store_true", help="do not insert trigger words")
        parser.add_argument("--wait", action="store_true", help="follow the job; exit 1 unless it succeeds")
        parser.add_argument("--timeout", type=float, default=0, help="with --wait: give up after this many seconds")
        parser.add_argument("--json", action="store_true", help="print the job's (final) state as JSON")

    def handle(self, *args, **options):
        if options["backend"] not in backends.names():
            raise CommandError(f"unknown backend {options['backend']!r}; configured: {', '.join(backends.names())}")
        data = QueryDict(mutable=True)
        values = {key: options[key] for key in ("prompt", "negative", "checkpoint", "sampler", "steps", "seed")}
        values.update(
            backend=options["backend"],
            cfg_scale=options["cfg"],
            width=options["width"],
            height=options["height"],
            batch_size=options["batch_size"],
            count=options["count"],
        )
        data.update(values)
        composition, errors = forms.parse(data)
        if errors:
            raise CommandError("; ".join(forms.messages(errors)))
        composition.loras = [lora_choice(spec, composition.backend) for spec in options["lora"]]
        if options["no_triggers"]:
            for choice in composition.loras:
                choice.triggers = False
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"no user {options['user']!r}")
        info = backends.server_info(composition.backend)
        lora_names.read_on_first_use(composition.backend, info)  # so the linter knows SD.Next's LoRAs
        built = composer.build(composition, info)
        printed = {issue.message for issue in built.issues}
        for issue in built.issues:
            if issue.level != "error":
                self.stderr.write(f"{issue.level}: {issue.message}")
        try:
            job = submitting.submit(composition, user, built=built)
        except submitting.SubmitError as exc:
            raise CommandError(str(exc)) from exc
        self._warn_without_worker(job)
        if not options["wait"]:
            if options["json"]:
                self.stdout.write(json.dumps(job_state(job), indent=2))
            else:
                self.stdout.write(f"queued job #{job.pk} on {job.backend}")
            return
        job = self._follow(job, options["timeout"])
        if options["json"]:
            self.stdout.write(json.dumps(job_state(job), indent=2))
        elif job.status == JobStatus.SUCCEEDED:
            self.stdout.write(f"job #{job.pk} succeeded: {job.message}")
            for image in job.images.all():
                self.stdout.write(str(storage.absolute(image.path)))
        for warning in job.warnings:
            if warning not in printed:
                self.stderr.write(f"warning: {warning}")
        if job.status != JobStatus.SUCCEEDED:
            raise CommandError(f"job #{job.pk} {job.status}: {job.message}", returncode=1)

    def _warn_without_worker(self, job: GenerationJob) -> None:
        queue = backends.queue(backends.get(job.backend))
        if not [w for w in Worker.all(queue=queue) if workers.is_alive(w)]:
            self.stderr.write(
                f"note: no worker listens on queue {queue.name} yet; start one with 'python manage.py run_worker'"
            )

    def _follow(self, job: GenerationJob, timeout: float) -> GenerationJob:
        started, last = time.monotonic(), ""
        while True:
            job.refresh_from_db()
            line = f"job #{job.pk}: {job.get_status_display().lower()}"
            if job.status == JobStatus.RUNNING and job.steps_total:
                line += f" · {job.phase} step {job.step}/{job.steps_total} ({round(job.progress * 100)}%)"
            if line != last:
                self.stderr.write(line)
                sys.stderr.flush()
                last = line
            if not job.is_active:
                return job
            if timeout and time.monotonic() - started > timeout:
                raise CommandError(f"job #{job.pk} is still {job.status} after {timeout:g} s", returncode=3)
            time.sleep(0.2)
