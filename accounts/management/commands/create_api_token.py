from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.models import ApiToken
from config.api import API_PERMISSION, api_user_allowed


class Command(BaseCommand):
    help = (
        "Issue a bearer token for the JSON API. Only its hash is stored: the token is "
        "printed once, alone on the last line."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", required=True)
        parser.add_argument("--name", default="", help="What the token is for")

    def handle(self, *args, username, name, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        if not api_user_allowed(user):
            raise CommandError(
                f"{username!r} must be an active staff user with the {API_PERMISSION} "
                "permission (or a superuser) to use the API."
            )
        row, token = ApiToken.issue(user=user, name=name)
        self.stderr.write(f"API token {row.prefix}… issued for {username}; keep it secret.")
        self.stdout.write(token)
