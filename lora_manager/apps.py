from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_migrate


class LoraManagerConfig(AppConfig):
    name = "lora_manager"
    verbose_name = "LoRA Manager"

    def ready(self) -> None:
        from lora_manager.roles import ensure_roles_after_migrate
        from lora_manager.runs.periodic import Periodic

        post_migrate.connect(ensure_roles_after_migrate, dispatch_uid="lora_manager.ensure_roles")
        # The janitor: fails runs and generations whose RQ job died (lora_manager.runs.tracked).
        self.periodic_jobs = (
            Periodic("janitor", "lora_manager.runs.tracked.janitor", lambda: settings.JANITOR_SECONDS, at_front=True),
        )
