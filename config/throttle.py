"""Per-user request limits: order placement, cancels and the JSON API.

Fixed windows counted in the `throttle` cache (a database table, so every gunicorn process
and host shares the counts): `RATE_LIMITS[scope]` requests per user and window, then
`429 Too Many Requests` with `Retry-After` (the seconds until the window ends) and nothing
done. `RATE_LIMITS_ENABLED = False` switches every limit off (the test settings do).

The count is a cache increment, not a locked row: two processes incrementing at the very
same moment may count one request once, so a burst can pass a few requests past the limit.
That is the price of keeping the counter off the order path's locks; a limit is a guard
against floods, not a money rule.
"""

import math
import time
from dataclasses import dataclass
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string

CACHE_ALIAS = "throttle"
UNITS = {"s": 1, "m": 60, "h": 3600}
MESSAGE = "Too many requests: wait {seconds} s and try again."


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: int

    @classmethod
    def parse(cls, text: str) -> "Rate":
        """`"120/m"` → 120 per 60 s (units s, m, h)."""
        count, _, unit = text.partition("/")
        if not count.isdigit() or unit not in UNITS:
            raise ImproperlyConfigured(
                f"A rate limit is COUNT/s, COUNT/m or COUNT/h, not {text!r}."
            )
        return cls(count=int(count), seconds=UNITS[unit])


def retry_after(*, scope: str, user_id: int, now: float | None = None) -> int | None:
    """Count one request of `user_id` in `scope`. None while within the limit; past it, the
    whole seconds until the window ends (at least 1)."""
    if not settings.RATE_LIMITS_ENABLED:
        return None
    rate = Rate.parse(settings.RATE_LIMITS[scope])
    now = time.time() if now is None else now
    window = int(now // rate.seconds)
    key = f"throttle:{scope}:{user_id}:{window}"
    cache = caches[CACHE_ALIAS]
    # add() starts the window's count; incr() of a key that a concurrent cull just removed
    # raises ValueError, and counting from 1 again is the safe side of that race.
    if cache.add(key, 1, timeout=rate.seconds + 1):
        count = 1
    else:
        try:
            count = cache.incr(key)
        except ValueError:
            cache.set(key, 1, timeout=rate.seconds + 1)
            count = 1
    if count <= rate.count:
        return None
    return max(1, math.ceil((window + 1) * rate.seconds - now))


class RateLimited(Exception):
    """A JSON API call past a limit; `config.api` answers it with 429 and `Retry-After`."""

    def __init__(self, retry_after: int):
        super().__init__(MESSAGE.format(seconds=retry_after))
        self.retry_after = retry_after


def count_call(user, scope: str = "api") -> None:
    """Count one API call of `user` in `scope`; raises `RateLimited` past the limit."""
    seconds = retry_after(scope=scope, user_id=user.pk)
    if seconds is not None:
        raise RateLimited(seconds)


def throttled(scope: str, *, htmx_partial: str | None = None):
    """View decorator: the signed-in user's requests in `scope` are counted (put it inside
    the login check). Past the limit: a 429 page, or to an htmx request the message as
    `htmx_partial` rendered out of band (the page's toasts) with `HX-Reswap: none`."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            seconds = retry_after(scope=scope, user_id=request.user.pk)
            if seconds is None:
                return view(request, *args, **kwargs)
            return rate_limited_response(request, seconds, htmx_partial=htmx_partial)

        return wrapper

    return decorator


def rate_limited_response(request, seconds: int, *, htmx_partial: str | None = None):
    message = MESSAGE.format(seconds=seconds)
    if request.htmx and htmx_partial:
        messages.error(request, message)
        response = HttpResponse(
            render_to_string(htmx_partial, {"oob": True}, request=request), status=429
        )
        response["HX-Reswap"] = "none"
    else:
        response = render(
            request, "429.html", {"message": message, "seconds": seconds}, status=429
        )
    response["Retry-After"] = str(seconds)
    return response
