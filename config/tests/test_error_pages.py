"""The error pages (templates/400.html, 403, 404, 500): plain, with no URL list, setting
or traceback, whoever asks; as served with DEBUG=False (`make run`, production)."""

import pytest
from django.test import Client, override_settings
from django.urls import path

from market.tests import factories

LEAKS = ("urlpatterns", "Traceback", "SECRET_KEY", "DATABASES", "Using the URLconf", "admin/")


def boom(request):
    raise RuntimeError("the database is on fire")


urlpatterns = [path("boom/", boom)]


def assert_plain(response, status: int, heading: str):
    assert response.status_code == status
    html = response.content.decode()
    assert f'data-status="{status}"' in html and heading in html
    for leak in LEAKS:
        assert leak not in html, leak


@pytest.mark.django_db
@pytest.mark.parametrize("signed_in", [False, True])
def test_an_unknown_url_is_the_plain_404_page(signed_in):
    client = Client()
    if signed_in:
        client.force_login(factories.StaffFactory(username="lost-staff"))
    assert_plain(client.get("/no-such-page/"), 404, "Page not found")
    assert_plain(client.get("/backoffice/no-such-page/"), 404, "Page not found")


@pytest.mark.django_db
def test_a_forbidden_page_is_the_plain_403_page():
    client = Client()
    client.force_login(factories.UserFactory(username="curious-trader"))
    assert_plain(client.get("/backoffice/liquidity/"), 403, "You may not open this page")


@pytest.mark.django_db
def test_a_hostile_query_is_the_plain_400_page(client):
    assert_plain(client.get("/?q=%00"), 400, "The request could not be understood")


@override_settings(ROOT_URLCONF=__name__)
def test_a_server_error_is_the_plain_500_page():
    client = Client(raise_request_exception=False)
    response = client.get("/boom/")
    assert_plain(response, 500, "Something went wrong on our side")
    assert "on fire" not in response.content.decode()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_404_page_in_chromium(page, live_server, migrated_rows, screenshot):
    response = page.goto(f"{live_server.url}/no-such-page/")
    assert response.status == 404
    page.get_by_role("heading", name="Page not found").wait_for()
    assert "urlpatterns" not in page.content()
    screenshot(page, "error-404")
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") == 390
    screenshot(page, "error-404-phone")
    page.get_by_role("link", name="Back to the start page").click()
    page.wait_for_url(f"{live_server.url}/")
