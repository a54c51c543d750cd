"""The sign-in lockout (django-axes): its message, and the 429 answer to a locked login.

django-axes counts failed sign-ins per username (settings: `AXES_FAILURE_LIMIT`,
`AXES_COOLOFF_TIME`) and marks the request once that username is locked. The login forms
(`accounts.forms`) then show `lockout_message()` in place of "wrong password", so the
site's login and the admin's show it on their own page; `lockout_response` (axes'
`AXES_LOCKOUT_CALLABLE`) keeps that page and only turns it into a 429 with `Retry-After`.
Staff lift a lockout early with `manage.py axes_reset_username USERNAME`.
"""

from django.conf import settings
from django.shortcuts import render


def is_locked_out(request) -> bool:
    """Whether django-axes refused this request's sign-in attempt as locked out."""
    return bool(getattr(request, "axes_locked_out", False))


def cooloff_minutes() -> int:
    return max(1, int(settings.AXES_COOLOFF_TIME.total_seconds() // 60))


def lockout_message() -> str:
    return (
        f"Too many failed sign-ins for this username: it is locked for {cooloff_minutes()} "
        "minutes. Try again later, or ask an administrator to unlock it."
    )


def lockout_response(request, original_response=None, credentials=None):
    """The login page the view rendered (with the lockout message), as 429."""
    response = original_response
    if response is None or response.status_code != 200:
        # Not a page of ours (e.g. an async request): a plain login page with the message.
        response = render(request, "registration/login.html", {"lockout": lockout_message()})
    response.status_code = 429
    response["Retry-After"] = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    return response
