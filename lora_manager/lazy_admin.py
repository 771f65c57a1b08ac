"""The admin app without discovery at start-up: admin.py modules import the actions they offer (bulk edits,
Civitai lookups, archive runs) and with them numpy, requests and Pillow, which cost every manage.py command
~0.5 s. They are discovered when the URLconf loads (lora_manager/urls.py) or the admin's checks run."""

from __future__ import annotations

from typing import Any

from django.contrib.admin import autodiscover
from django.contrib.admin.apps import SimpleAdminConfig
from django.contrib.admin.checks import check_admin_app, check_dependencies
from django.core import checks


def check_discovered_admin(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The admin's own checks, over every ModelAdmin: discover them first (cheap once the URLconf did)."""
    autodiscover()
    return check_admin_app(app_configs, **kwargs)


class LazyAdminConfig(SimpleAdminConfig):
    def ready(self) -> None:
        checks.register(check_dependencies, checks.Tags.admin)
        checks.register(check_discovered_admin, checks.Tags.admin)
