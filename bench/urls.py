"""The project's URLs plus two reference views for the poll benchmark:

- `/bench/bare/`: a tiny response; no database, no template.
- `/bench/auth/`: the same after loading the session and the user (what every logged-in
  view pays before its own work: two queries with database sessions). Not a target, a
  floor: no view behind login can be faster.
"""

from django.http import HttpResponse
from django.urls import path

from config.urls import urlpatterns as project_urlpatterns


def bare(request):
    return HttpResponse(b"ok", content_type="text/plain")


def auth(request):
    status = 200 if request.user.is_authenticated else 403
    return HttpResponse(b"ok", content_type="text/plain", status=status)


urlpatterns = [
    path("bench/bare/", bare, name="bench_bare"),
    path("bench/auth/", auth, name="bench_auth"),
    *project_urlpatterns,
]
