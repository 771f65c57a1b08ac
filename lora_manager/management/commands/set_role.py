from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from lora_manager.roles import ROLES, set_role


class Command(BaseCommand):
    help = "Give a user one role: viewer (browse), editor (curate, generate, import) or admin (everything)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("role", choices=ROLES)

    def handle(self, *args, **options):
        try:
            user = get_user_model().objects.get(username=options["username"])
        except get_user_model().DoesNotExist:
            raise CommandError(f"no user named {options['username']!r}") from None
        set_role(user, options["role"])
        self.stdout.write(f"{user.username} is now {options['role']}.")
