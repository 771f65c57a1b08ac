from django.apps import AppConfig


def _reconcile_stale_jobs() -> int:
    # Imported when called: generation.reconciling brings the SD.Next client (requests), which every
    # manage.py command would pay for at start-up (issue 17).
    from generation.reconciling import reconcile_stale_jobs

    return reconcile_stale_jobs()


def _retention_seconds() -> float:
    from generation.retention import interval_seconds  # imports Pillow (generation.storage): not at start-up

    return interval_seconds()


def _sweep_job_finished(sender, job_id: int, **kwargs) -> None:
    from generation import sweeps  # Pillow: imported when a job ends, not at every start-up

    sweeps.job_finished(sender, job_id=job_id, **kwargs)


class GenerationConfig(AppConfig):
    name = "generation"

    def ready(self) -> None:
        from generation.signals import job_finished
        from lora_manager.runs.periodic import Periodic

        job_finished.connect(_sweep_job_finished, dispatch_uid="generation.sweeps.job_finished")

        # Worker start-up and the janitor loop over these (lora_manager.runs.tracked, lora_manager.runs.periodic).
        self.reconcilers = (_reconcile_stale_jobs,)
        self.periodic_jobs = (Periodic("retention", "generation.retention.apply", _retention_seconds),)
