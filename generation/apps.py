from django.apps import AppConfig


class GenerationConfig(AppConfig):
    name = "generation"

    def ready(self) -> None:
        from generation import reconciling, retention, signals, sweeps
        from lora_manager.periodic import Periodic

        signals.job_finished.connect(sweeps.job_finished, dispatch_uid="generation.sweeps.job_finished")

        # Worker start-up and the janitor loop over these (lora_manager.runs, lora_manager.periodic).
        self.reconcilers = (reconciling.reconcile_stale_jobs,)
        self.periodic_jobs = (Periodic("retention", "generation.retention.apply", retention.interval_seconds),)
