"""Security headers Django's own middleware does not set."""

from django.conf import settings


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
