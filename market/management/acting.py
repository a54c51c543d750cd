"""Who a management command acts for, and whether it may go ahead: the rules the pages
keep, kept by the commands too (`create_market`, `seed_market_makers`, `create_liquidity`).

A command that moves money or changes the market runs as a named staff user holding the
permission of what it does, and records that user on its tickets; it never falls back to
some superuser. A command that places money asks before it does, on a terminal, unless
`--yes`; without a terminal and without `--yes` it refuses rather than act silently.
"""

import sys

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

YES = ("y", "yes")


def acting_user(username: str | None, *, permission: str, option: str = "--username"):
    """The active staff user `username` if they hold `permission`; else CommandError
    saying which of these is missing (nothing has been done yet)."""
    if not username:
        raise CommandError(
            f"Pass {option} of the active staff user to act for (they need the "
            f"{permission} permission); it is recorded on the audit tickets."
        )
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"Unknown user {username!r}: pass {option} of an existing user.")
    if not (user.is_active and user.is_staff):
        raise CommandError(f"{username!r} is not an active staff user.")
    if not user.has_perm(permission):
        raise CommandError(f"{username!r} lacks the {permission} permission.")
    return user


def confirmed(command, *, yes: bool, stdin=None, prompt: str = "Execute? [y/N] ") -> bool:
    """Whether to go ahead: `--yes`, or "y" typed on a terminal. Without a terminal (a
    pipe, cron, CI) and without `--yes`, CommandError: never execute unasked."""
    if yes:
        return True
    stdin = stdin if stdin is not None else sys.stdin
    if not (hasattr(stdin, "isatty") and stdin.isatty()):
        raise CommandError(
            "Not a terminal, so there is no one to confirm: nothing was done. "
            "Pass --yes to execute without asking."
        )
    command.stdout.write(prompt, ending="")
    command.stdout.flush()
    answer = stdin.readline()
    return answer.strip().lower() in YES
