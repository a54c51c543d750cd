"""The project-level pages: landing page, login, the base layout."""

import pytest
from django.contrib import messages
from django.contrib.auth.models import Permission
from django.contrib.messages.storage.fallback import FallbackStorage
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.urls import reverse

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def trader(django_user_model):
    return django_user_model.objects.create_user("trader1", password=PASSWORD)


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("staff1", password=PASSWORD, is_staff=True)


@pytest.mark.django_db
def test_home_anonymous_describes_product_and_links_to_login(client):
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Carbon Cash Market" in html
    assert "China Emission Allowance, EU Allowance" in html  # the markets, from their rows
    assert f'href="{reverse("login")}"' in html
    assert "/market/CEA/" not in html
    assert "Log out" not in html


@pytest.mark.django_db
def test_home_logged_in_links_to_both_markets(client, trader):
    client.force_login(trader)
    html = client.get("/").content.decode()
    assert 'href="/market/CEA/"' in html
    assert 'href="/market/EUA/"' in html
    assert "trader1" in html
    assert "Log out" in html


@pytest.mark.django_db
def test_base_layout_loads_local_htmx_and_css_and_sends_csrf_header(client, trader):
    client.force_login(trader)
    html = client.get("/").content.decode()
    assert "/static/django_htmx/htmx-2.min.js" in html
    assert "/static/css/dist/styles.css" in html
    assert 'hx-headers=\'{"X-CSRFToken": "' in html
    assert "//unpkg.com" not in html and "cdn" not in html.lower()


@pytest.mark.django_db
def test_login_page_renders_labelled_form(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    html = response.content.decode()
    assert '<label for="id_username"' in html
    assert '<label for="id_password"' in html
    assert 'name="csrfmiddlewaretoken"' in html


@pytest.mark.django_db
def test_login_with_wrong_password_shows_error(client, trader):
    response = client.post(reverse("login"), {"username": "trader1", "password": "wrong"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_login_redirects_home_and_logout_is_post(client, trader):
    response = client.post(reverse("login"), {"username": "trader1", "password": PASSWORD})
    assert response.status_code == 302
    assert response.url == reverse("home")
    assert client.session["_auth_user_id"] == str(trader.pk)

    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_messages_are_coloured_by_level(trader):
    request = RequestFactory().get("/")
    request.user = trader
    request.session = {}
    request._messages = FallbackStorage(request)
    messages.error(request, "Something broke")
    messages.success(request, "All good")
    html = render_to_string("home.html", request=request)
    assert 'data-level="error"' in html and "bg-red-50" in html
    assert 'data-level="success"' in html and "bg-emerald-50" in html


@pytest.mark.django_db
def test_admin_site_header(client, staff):
    staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    html = client.get(reverse("admin:index")).content.decode()
    assert "Carbon Cash Market back office" in html


@pytest.mark.browser
# Serialized rollback like every other browser test: a plain transactional flush would
# re-create the content types that the next serialized-rollback test restores (unique
# constraint failure when the browser tests run alone, `pytest -m browser`).
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_login_in_chromium_shows_home(
    page, live_server, browser_login, screenshot, staff, migrated_rows
):
    staff.user_permissions.add(Permission.objects.get(codename="manage_liquidity"))
    browser_login(page, "staff1", PASSWORD)
    assert page.url == f"{live_server.url}/"
    assert page.get_by_role("heading", name="Welcome, staff1").is_visible()
    assert page.get_by_role("link", name="Cash market", exact=True).is_visible()
    assert page.get_by_role("link", name="Create liquidity", exact=True).is_visible()
    assert page.get_by_role("link", name="Market makers", exact=True).count() == 0
    # The Tailwind stylesheet was served and applied (slate-900 navigation bar).
    header_bg = page.eval_on_selector("header", "el => getComputedStyle(el).backgroundColor")
    assert header_bg not in ("rgba(0, 0, 0, 0)", "transparent")
    assert page.evaluate("typeof window.htmx") == "object"
    screenshot(page, "home-staff")


def test_password_reset_sends_mail_without_an_smtp_server(client, django_user_model, mailoutbox):
    django_user_model.objects.create_user("reset-me", email="reset@example.com", password="x")
    response = client.post("/accounts/password_reset/", {"email": "reset@example.com"})
    assert response.status_code == 302
    assert len(mailoutbox) == 1 and mailoutbox[0].to == ["reset@example.com"]
