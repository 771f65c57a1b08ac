import secrets

import django_rq
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from lora_manager import installation
from lora_manager.outages import REDIS_ERRORS
from lora_manager.roles import ADMIN, ensure_roles, set_role


class Command(BaseCommand):
    help = "Create the roles, and on first run an admin account (password from the environment or printed once)."

    def handle(self, *args, **options):
        try:
            installation.claim(django_rq.get_connection("default"))
        except installation.InstallationConflict as exc:
            raise CommandError(str(exc)) from exc
        except REDIS_ERRORS as exc:  # the web process starts without Redis; workers claim it when it is back
            self.stderr.write(f"Redis is not reachable, so it was not claimed for this installation yet: {exc}")
        ensure_roles()
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            return
        password = settings.ADMIN_PASSWORD or secrets.token_urlsafe(12)
        user = User.objects.create_superuser(settings.ADMIN_USER, email="", password=password)
        set_role(user, ADMIN)
        if settings.ADMIN_PASSWORD:
            self.stdout.write(f"Created admin account '{user.username}' (password from LORA_MANAGER_ADMIN_PASSWORD).")
        else:
            self.stdout.write(
                f"Created admin account '{user.username}' with password: {password}\n"
                "It is shown only this once: change it after logging in."
            )
