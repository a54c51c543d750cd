"""Hostile query strings: a NUL or bytes that are not UTF-8 in any query string answer 400.

PostgreSQL refuses a string with a NUL in it ("A string literal cannot contain NUL"), so
a NUL that reaches a filter (an API filter such as `?certificate_type=%00`, an admin
changelist filter, a page's `?market=`) was a 500. `config.middleware.RejectHostileQueryMiddleware`
answers such requests 400 before any view runs; the sweep below sends them to every GET
URL of the permissions matrix (pages, partials, the admin, the API), with the parameter
names each page itself uses (its form fields and the query strings of its links), as a
trader and as a superuser.
"""

import re
from html import unescape
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.test import Client

from config.api import api
from config.tests.test_permissions import MATRIX, SUPER, TRADER, fill, world  # noqa: F401

GET_URLS = sorted(
    {row.url for row in MATRIX if row.method == "GET" and 405 not in row.expect},
)
# Names every page is sent, whatever it reads: the example and a generic one.
GENERIC_NAMES = ("x", "certificate_type", "q", "o", "p", "page", "market")
HOSTILE_VALUES = ("%00", "12%00", "%ff", "%c3%28", "%ed%a0%80")  # NUL, not UTF-8, surrogate
# For the names a page itself uses (many on an admin changelist): a NUL, and not UTF-8.
NAME_VALUES = ("12%00", "%c3%28")


def parameter_names(html: str) -> set[str]:
    """The query parameter names a page uses: its form fields and its links' queries."""
    names = set(re.findall(r'\sname="([^"]+)"', html))
    for href in re.findall(r'href="([^"]*\?[^"]*)"', html):
        names.update(name for name, _ in parse_qsl(urlsplit(unescape(href)).query))
    return {name for name in names if name not in {"csrfmiddlewaretoken"}}


def api_parameter_names(path: str) -> set[str]:
    """The query parameters the API's schema declares for `path`'s operations."""
    schema = api.get_openapi_schema()
    names = set()
    for route, operations in schema["paths"].items():
        if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", route), path):
            for operation in operations.values():
                names |= {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
    return names


def hostile_queries(names) -> list[str]:
    queries = [f"{name}={value}" for name in GENERIC_NAMES for value in HOSTILE_VALUES]
    queries += [
        f"{name}={value}"
        for name in sorted(set(names) - set(GENERIC_NAMES))
        for value in NAME_VALUES
    ]
    return [*queries, "%00=1", "%ff=1", "x=1&%00", "x=%00%ff", "x=%2500&y=%00"]


def client_for(world, role) -> Client:  # noqa: F811
    client = Client(raise_request_exception=False)
    client.force_login(world.users[role])
    return client


@pytest.mark.parametrize("role", [TRADER, SUPER])
def test_hostile_query_strings_answer_400_on_every_url(world, role):  # noqa: F811
    """One test per role over every URL (the world is built once for all of them)."""
    client = client_for(world, role)
    wrong = []
    for url in GET_URLS:
        path = fill(url, world.ids)
        htmx = {"HTTP_HX_REQUEST": "true"} if "/book/" in path or "/balances/" in path else {}
        page = client.get(path, **htmx)
        names = parameter_names(page.getvalue().decode(errors="replace"))  # CSV: streamed
        names |= {name for name, _ in parse_qsl(urlsplit(path).query)}
        base = path.split("?")[0]
        names |= api_parameter_names(base)
        for query in hostile_queries(names):
            response = client.get(f"{base}?{query}", **htmx)
            if response.status_code != 400:
                wrong.append(f"{base}?{query}: {response.status_code}")
    assert wrong == []
    assert len(GET_URLS) > 100  # the sweep reached the admin and the API


# --- what the rule answers, and what it lets through --------------------------------------


@pytest.mark.django_db
def test_the_refusal_is_the_plain_400_page_and_the_api_answers_json(world):  # noqa: F811
    client = client_for(world, SUPER)
    page = client.get("/admin/market/order/?status__exact=%00")
    assert page.status_code == 400
    html = page.content.decode()
    assert 'data-testid="error-page"' in html and "Bad request" in html
    assert "Traceback" not in html and "urlpatterns" not in html.lower()

    api_response = client.get("/api/v1/liquidity/operations?certificate_type=%00")
    assert api_response.status_code == 400
    assert api_response.json()["error"] == "bad_request"
    assert "NUL" in api_response.json()["detail"]["__all__"][0]


@pytest.mark.django_db
def test_a_nul_in_a_form_body_is_refused_and_changes_nothing(world):  # noqa: F811
    """The admin's action on selected orders looked the ids up as they came: a NUL was a
    500 on PostgreSQL. Now the form body is refused before any view reads it."""
    from market.models import Order

    client = client_for(world, SUPER)
    before = sorted(Order.objects.values_list("id", "status"))
    response = client.post(
        "/admin/market/order/",
        "action=cancel_selected&_selected_action=%00",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 400
    assert sorted(Order.objects.values_list("id", "status")) == before
    # The same body with the real id does cancel: the rule is not in the way.
    ok = client.post(
        "/admin/market/order/",
        {"action": "cancel_selected", "_selected_action": [world.ids["order"]]},
    )
    assert ok.status_code == 302
    assert sorted(Order.objects.values_list("id", "status")) != before


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "/admin/market/marketmakerclient/?q=Z%C3%BCrich",  # UTF-8: ü
        "/admin/market/order/?q=%E2%82%AC+100",  # € 100, a space as +
        "/backoffice/market-makers/?q=caf%C3%A9",
        "/api/v1/liquidity/operations?certificate_type=CEA&date_from=2026-01-01",
        "/market/CEA/?price=13.50&side=BUY",
    ],
)
def test_ordinary_query_strings_pass(world, url):  # noqa: F811
    response = client_for(world, SUPER).get(url)
    assert response.status_code in (200, 302), response.status_code


def test_a_nul_in_the_path_is_refused(client):
    assert client.get("/market/CEA%00/").status_code == 400


def test_every_api_operation_declares_the_400_it_may_answer():
    """Any operation may be sent a hostile query string: its 400 is in the schema (that
    schemathesis checks every answer against)."""
    schema = api.get_openapi_schema()
    undeclared = [
        f"{method.upper()} {route}"
        for route, operations in schema["paths"].items()
        for method, operation in operations.items()
        if "400" not in {str(code) for code in operation["responses"]}
    ]
    assert undeclared == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    "selected", ["abc", "1.5", "-1", "99999999999999999999999", "9999999999999999999", "١"]
)
@pytest.mark.parametrize(
    "url",
    [
        "/admin/market/order/",
        "/admin/liquidity/liquidityoperation/",
        "/admin/market/marketmakerclient/",
    ],
)
def test_a_bulk_action_on_rows_that_are_not_ids_answers_400(world, url, selected):  # noqa: F811
    from market.models import Order, TicketLog

    client = client_for(world, SUPER)
    before = (sorted(Order.objects.values_list("id", "status")), TicketLog.objects.count())
    response = client.post(url, {"action": "delete_selected", "_selected_action": [selected]})
    assert response.status_code == 400
    assert (sorted(Order.objects.values_list("id", "status")), TicketLog.objects.count()) == before
