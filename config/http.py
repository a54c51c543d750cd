"""Request and response helpers shared by every app's views (and the API)."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.http import HttpResponseClientRedirect

from accounts.two_factor import second_factor_missing, second_factor_url


def client_ip(request) -> str | None:
    """The address the request came from, as recorded on audit tickets (the TLS
    terminator in front of the app is trusted to pass it on as the peer address)."""
    return request.META.get("REMOTE_ADDR") or None


def staff_required(*permissions: str):
    """Login required (anonymous → login page); active staff holding every one of
    `permissions` only (anyone else logged in → 403); and, where staff need two-factor
    sign-in, a verified session (else → the code or the enrolment, then back here)."""

    def decorator(view):
        @wraps(view)
        def guarded(request, *args, **kwargs):
            user = request.user
            if not (user.is_active and user.is_staff and user.has_perms(permissions)):
                raise PermissionDenied
            if second_factor_missing(request):
                back = (request.htmx and request.htmx.current_url_abs_path) or (
                    request.get_full_path() if request.method == "GET" else "/"
                )
                return done(request, second_factor_url(user, back))
            return view(request, *args, **kwargs)

        return login_required(guarded)

    return decorator


def render_page(request, template: str, partial: str, context: dict):
    """The partial (`template#partial`, named after the DOM id it replaces) to an HTMX
    request, the whole page otherwise."""
    return render(request, f"{template}#{partial}" if request.htmx else template, context)


def done(request, url: str):
    """After a successful POST: HTMX follows `HX-Redirect`, a browser a 302. (Not
    `redirect()`: it would take a `next` without a slash for a view name to reverse.)"""
    return HttpResponseClientRedirect(url) if request.htmx else HttpResponseRedirect(url)


def posted(request):
    """The POST data of a POST (even when empty, so the form is bound), else None."""
    return request.POST if request.method == "POST" else None


def safe_next(request, default: str) -> str:
    """The `next` URL of the request if it is a path of this site, else `default`."""
    url = request.POST.get("next") or request.GET.get("next") or ""
    if url.startswith("/") and url_has_allowed_host_and_scheme(
        url, {request.get_host()}, request.is_secure()
    ):
        return url
    return default
