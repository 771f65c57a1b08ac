from django.apps import AppConfig


class GenerationConfig(AppConfig):
    name = "generation"

    def ready(self) -> None:
        from generation import reconciling, retention
        from lora_manager.runs.periodic import Periodic

        # Worker start-up and the janitor loop over these (lora_manager.runs, lora_manager.runs.periodic).
        self.reconcilers = (reconciling.reconcile_stale_jobs,)
        self.periodic_jobs = (Periodic("retention", "generation.retention.apply", retention.interval_seconds),)
