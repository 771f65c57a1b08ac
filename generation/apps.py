from django.apps import AppConfig


def _reconcile_stale_jobs() -> int:
    # Imported when called: generation.reconciling brings the SD.Next client (requests), which every
    # manage.py command would pay for at start-up (issue 17).
    from generation.reconciling import reconcile_stale_jobs

    return reconcile_stale_jobs()


def _retention_seconds() -> float:
    from generation.retention import interval_seconds  # imports Pillow (generation.storage): not at start-up

    return interval_seconds()


class GenerationConfig(AppConfig):
    name = "generation"

    def ready(self) -> None:
        from lora_manager.runs.periodic import Periodic

        # Worker start-up and the janitor loop over these (lora_manager.runs.tracked, lora_manager.runs.periodic).
        self.reconcilers = (_reconcile_stale_jobs,)
        self.periodic_jobs = (Periodic("retention", "generation.retention.apply", _retention_seconds),)
