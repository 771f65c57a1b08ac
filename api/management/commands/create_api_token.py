from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from api import tokens


class Command(BaseCommand):
    help = "Create a personal API token for USER and print it (it is shown only this once; only a hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="command line", help="what the token is for (shown on the tokens page)")

    def handle(self, *args, **options):
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"There is no user named '{options['username']}'.")
        if not user.is_active:
            raise CommandError(f"The user '{user.username}' is disabled.")
        try:
            _, plaintext = tokens.create(user, options["name"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(plaintext)
