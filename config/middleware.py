"""Security middleware Django's own does not provide: the Content-Security-Policy, the
refusal of hostile input before any view reads it, and no caching of private pages."""

from urllib.parse import unquote_to_bytes

from django.conf import settings
from django.http import JsonResponse
from django.utils.cache import add_never_cache_headers
from django.views.defaults import bad_request

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
API_PREFIX = "/api/"
REFUSAL = "The request holds a NUL character or bytes that are not UTF-8."


class ContentSecurityPolicyMiddleware:
    """Send `settings.CONTENT_SECURITY_POLICY` on every response (pages, partials, API,
    static files), unless a view set its own. No inline script and no `eval` may run:
    htmx runs with `allowEval: false` and its triggers carry no JavaScript filters."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.policy = settings.CONTENT_SECURITY_POLICY

    def __call__(self, request):
        response = self.get_response(request)
        if self.policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = self.policy
        return response


def is_hostile(encoded: bytes) -> bool:
    """Whether URL-encoded text (a query string, a form body) decodes to a NUL or to
    bytes that are not UTF-8. No field of ours takes either, and PostgreSQL refuses a NUL
    in any string: one that reached a filter (an admin changelist's, the API's) was a 500."""
    decoded = unquote_to_bytes(encoded.replace(b"+", b" "))
    if b"\x00" in decoded:
        return True
    try:
        decoded.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


class RejectHostileInputMiddleware:
    """Answer 400 (JSON under /api/, the plain 400 page elsewhere) to a request whose path,
    query string or URL-encoded form body holds a NUL or invalid UTF-8, before anything
    reads it: one rule for every page, partial, admin page and API endpoint. Multipart
    bodies (file uploads; none today) are left to the forms."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # WSGI hands the query string over as latin-1: these are the bytes the client sent.
        query = request.META.get("QUERY_STRING", "").encode("latin-1", errors="replace")
        hostile = "\x00" in request.path_info or is_hostile(query)
        if not hostile and request.content_type == FORM_CONTENT_TYPE:
            hostile = is_hostile(request.body)
        if hostile:
            if request.path_info.startswith(API_PREFIX):
                # The API's error shape (config.api).
                return JsonResponse(
                    {"error": "bad_request", "detail": {"__all__": [REFUSAL]}}, status=400
                )
            return bad_request(request, exception=None)
        return self.get_response(request)


class PrivateResponsesNotStoredMiddleware:
    """Every response to a signed-in user (pages, partials, API calls by session or
    token) shows what is theirs, balances, orders, trades, operations, so no browser or
    proxy may store it: `Cache-Control: no-store` (with Django's never-cache headers).

    A response that already says how it may be cached keeps its header: the order-book
    poll sends `private, no-cache` with its ETag, because the browser must keep the body
    to revalidate it and get the `304 Not Modified` the poll relies on (and the book is the
    same public data for every trader); the admin's pages are never-cache already. Static
    files are answered by WhiteNoise before this middleware. Checking the header first
    keeps the poll free of the session lookup `request.user` would cost.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if "Cache-Control" in response:
            return response
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            add_never_cache_headers(response)
        return response
