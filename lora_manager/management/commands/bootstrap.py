import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from lora_manager.roles import ADMIN, ensure_roles, set_role


class Command(BaseCommand):
    help = "Create the roles, and on first run an admin account (password from the environment or printed once)."

    def handle(self, *args, **options):
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
