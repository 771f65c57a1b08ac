from django.apps import AppConfig


def _sweep_job_finished(sender, job_id: int, **kwargs) -> None:
    from generation import sweeps  # Pillow: imported when a job ends, not at every start-up

    sweeps.job_finished(sender, job_id=job_id, **kwargs)


class GenerationConfig(AppConfig):
    name = "generation"

    def ready(self) -> None:
        from generation import reconciling, retention
        from generation.signals import job_finished
        from lora_manager.periodic import Periodic

        job_finished.connect(_sweep_job_finished, dispatch_uid="generation.sweeps.job_finished")

        # Worker start-up and the janitor loop over these (lora_manager.runs, lora_manager.periodic).
        self.reconcilers = (reconciling.reconcile_stale_jobs,)
        self.periodic_jobs = (Periodic("retention", "generation.retention.apply", retention.interval_seconds),)
