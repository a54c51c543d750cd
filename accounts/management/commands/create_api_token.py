from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts import two_factor
from accounts.models import ApiToken
from accounts.services import trader_token_create
from config.api import STAFF_PERMISSIONS, staff_api_user
from market.validation import one_line


class Command(BaseCommand):
    help = (
        "Issue a staff bearer token for the JSON API's staff endpoints (traders create "
        "their own trader tokens on /accounts/tokens/). Only its hash is stored: the token is "
        "printed once, alone on the last line. Where staff need two-factor sign-in, the "
        "token's user must have enrolled, and --code is a current code of theirs."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", required=True)
        parser.add_argument("--name", default="", help="What the token is for")
        parser.add_argument(
            "--scope",
            choices=ApiToken.Scope.values,
            default=ApiToken.Scope.STAFF,
            help="staff (default): the staff endpoints, for staff with the liquidity "
            "permission; trader: the trader endpoints of the user's own account (traders "
            "also create these themselves on /accounts/tokens/)",
        )
        parser.add_argument(
            "--code",
            default="",
            help="The user's authenticator code (or a recovery code): needed for staff "
            "where two-factor sign-in is required",
        )

    def handle(self, *args, username, name, code, scope, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        if scope == ApiToken.Scope.TRADER:
            self._issue_trader_token(user, name)
            return
        if not staff_api_user(user):
            raise CommandError(
                f"{username!r} must be an active staff user with one of the permissions "
                f"{', '.join(STAFF_PERMISSIONS)} (or a superuser) to use the staff API."
            )
        # A token is a password that skips the second factor, so it is only issued to its
        # owner's face: the code from their authenticator, where staff need one.
        if two_factor.staff_2fa_required():
            if not two_factor.has_authenticator(user):
                raise CommandError(
                    f"{username!r} has no two-factor sign-in yet, which staff need: they "
                    "enrol at /accounts/two-factor/ first."
                )
            if not code:
                raise CommandError(f"Give --code: a current authenticator code of {username!r}.")
            if two_factor.verify_code(user=user, code=code) is None:
                raise CommandError("That code is not valid (or was already used).")
        row, token = ApiToken.issue(user=user, name=name, scope=ApiToken.Scope.STAFF)
        self.stderr.write(f"API token {row.prefix}… issued for {username}; keep it secret.")
        self.stdout.write(token)

    def _issue_trader_token(self, user, name: str) -> None:
        """The same as the trader's own page does (`trader_token_create`, audited)."""
        try:
            result = trader_token_create(user=user, name=name)
        except ValidationError as error:
            raise CommandError(one_line(error)) from None
        self.stderr.write(
            f"Trader API token {result.token.prefix}… issued for {user.get_username()} "
            f"({result.ticket.ticket_id}); keep it secret."
        )
        self.stdout.write(result.secret)
