"""Signing in with the second factor, the two-factor pages, and the staff gates (back
office, admin, API by session) with two-factor sign-in required and not required."""

import json

import django_otp
import pytest
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import two_factor
from accounts.tests.helpers import code_for, enrol, login_with_code
from market.tests import factories

BACK_OFFICE = "/backoffice/liquidity/"


@pytest.fixture
def required(settings):
    settings.STAFF_2FA_REQUIRED = True


@pytest.fixture
def not_required(settings):
    settings.STAFF_2FA_REQUIRED = False


def verified(client) -> bool:
    return bool(client.session.get(django_otp.DEVICE_ID_SESSION_KEY))


# --- the login form ---------------------------------------------------------------------


def test_an_enrolled_user_needs_the_code_to_sign_in(db, client):
    trader = factories.UserFactory()
    device, _ = enrol(trader)
    response = client.post(
        "/accounts/login/", {"username": trader.username, "password": "password"}
    )
    assert response.status_code == 200
    assert "Enter the 6-digit code from your authenticator app" in response.content.decode()
    assert "_auth_user_id" not in client.session
    wrong = client.post(
        "/accounts/login/",
        {"username": trader.username, "password": "password", "code": "12345x"},
    )
    assert "That code is not valid" in wrong.content.decode()
    assert "_auth_user_id" not in client.session
    assert login_with_code(client, trader, device).status_code == 302
    assert client.session["_auth_user_id"] == str(trader.pk) and verified(client)


def test_a_recovery_code_signs_in_once(db, client):
    trader = factories.UserFactory()
    _, codes = enrol(trader)
    data = {"username": trader.username, "password": "password", "code": codes[0]}
    assert client.post("/accounts/login/", data).status_code == 302
    assert verified(client)
    again = Client().post("/accounts/login/", data)
    assert again.status_code == 200 and "That code is not valid" in again.content.decode()


def test_without_two_factor_the_password_alone_signs_in(db, client, required):
    trader = factories.UserFactory()
    response = client.post(
        "/accounts/login/", {"username": trader.username, "password": "password"}
    )
    assert response.status_code == 302 and response["Location"] == "/"
    assert not verified(client)


def test_staff_go_to_the_enrolment_after_the_password_where_required(db, client, required):
    staff = factories.StaffFactory()
    response = client.post(
        "/accounts/login/",
        {"username": staff.username, "password": "password", "next": BACK_OFFICE},
    )
    assert response["Location"] == "/accounts/two-factor/setup/?next=%2Fbackoffice%2Fliquidity%2F"


def test_demo_staff_sign_in_with_a_password_alone(db, client, not_required):
    staff = factories.StaffFactory()
    response = client.post(
        "/accounts/login/",
        {"username": staff.username, "password": "password", "next": BACK_OFFICE},
    )
    assert response["Location"] == BACK_OFFICE
    assert client.get(BACK_OFFICE).status_code == 200


def test_enrolled_staff_reach_the_back_office_straight_from_the_login(db, client, required):
    staff = factories.StaffFactory()
    device, _ = enrol(staff)
    response = client.post(
        "/accounts/login/",
        {
            "username": staff.username,
            "password": "password",
            "code": code_for(device),
            "next": BACK_OFFICE,
        },
    )
    assert response["Location"] == BACK_OFFICE
    assert client.get(BACK_OFFICE).status_code == 200


# --- the gates ----------------------------------------------------------------------------


def test_unverified_staff_are_sent_to_the_enrolment_from_every_staff_page(db, client, required):
    staff = factories.StaffFactory()
    client.force_login(staff)
    setup = "/accounts/two-factor/setup/?next="
    assert client.get(BACK_OFFICE)["Location"].startswith(setup + "%2Fbackoffice")
    assert client.get("/backoffice/market-makers/")["Location"].startswith(setup)
    htmx = client.post(
        "/backoffice/liquidity/preview/",
        {},
        HTTP_HX_REQUEST="true",
        HTTP_HX_CURRENT_URL="http://testserver/backoffice/liquidity/new/",
    )
    assert htmx["HX-Redirect"] == setup + "%2Fbackoffice%2Fliquidity%2Fnew%2F"
    admin = client.get("/admin/", follow=True)
    assert admin.redirect_chain[-1][0] == setup + "%2Fadmin%2F"
    api = client.get("/api/v1/liquidity/operations")
    assert api.status_code == 403 and "two-factor" in api.json()["detail"]
    # Trading needs no second factor.
    assert client.get("/market/CEA/").status_code == 200


def test_a_verified_staff_session_passes_every_gate(db, client, required):
    staff = factories.StaffFactory()
    device, _ = enrol(staff)
    login_with_code(client, staff, device)
    assert client.get(BACK_OFFICE).status_code == 200
    assert client.get("/admin/").status_code == 200
    assert client.get("/api/v1/liquidity/operations").status_code == 200


def test_enrolled_but_unverified_staff_are_asked_for_the_code(db, client, required):
    staff = factories.StaffFactory()
    device, _ = enrol(staff)
    client.force_login(staff)  # e.g. a session from before the enrolment
    response = client.get(BACK_OFFICE)
    assert response["Location"] == "/accounts/two-factor/verify/?next=%2Fbackoffice%2Fliquidity%2F"
    page = client.get(response["Location"])
    assert page.status_code == 200 and "Authentication code" in page.content.decode()
    wrong = client.post(response["Location"], {"code": "000000", "next": BACK_OFFICE})
    assert "That code is not valid" in wrong.content.decode() and not verified(client)
    device.throttle_reset()
    right = client.post(response["Location"], {"code": code_for(device), "next": BACK_OFFICE})
    assert right["Location"] == BACK_OFFICE and verified(client)
    assert client.get(BACK_OFFICE).status_code == 200


def test_bearer_tokens_pass_without_a_session(db, required):
    from accounts.models import ApiToken

    staff = factories.StaffFactory()
    _, token = ApiToken.issue(user=staff)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/v1/liquidity/operations").status_code == 200


def test_the_admin_login_asks_for_the_code(db, required):
    staff = factories.StaffFactory()
    device, _ = enrol(staff)
    client = Client()
    page = client.get("/admin/login/")
    assert 'name="code"' in page.content.decode()
    no_code = client.post(
        "/admin/login/?next=/admin/", {"username": staff.username, "password": "password"}
    )
    assert no_code.status_code == 200 and "_auth_user_id" not in client.session
    response = login_with_code(client, staff, device, path="/admin/login/?next=/admin/")
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_unenrolled_staff_signing_in_on_the_admin_are_sent_to_the_enrolment(db, required):
    staff = factories.StaffFactory()
    client = Client()
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": staff.username, "password": "password"},
        follow=True,
    )
    assert response.redirect_chain[-1][0].startswith("/accounts/two-factor/setup/?next=")
    assert b"Set up two-factor sign-in" in response.content


# --- the two-factor pages -------------------------------------------------------------------


def test_enrolment_by_qr_code_then_recovery_codes(db, client, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    trader = factories.UserFactory()
    client.force_login(trader)
    status = client.get("/accounts/two-factor/").content.decode()
    assert "Turn on two-factor sign-in" in status
    page = client.get("/accounts/two-factor/setup/")
    html = page.content.decode()
    assert 'data-testid="qr-code"' in html and "<svg" in html
    device = TOTPDevice.objects.get(user=trader, confirmed=False)
    assert two_factor.secret_for_typing(device) in html
    wrong = client.post("/accounts/two-factor/setup/", {"code": "000000"})
    assert "That code is not valid" in wrong.content.decode()
    assert not two_factor.has_authenticator(trader)
    done = client.post(
        "/accounts/two-factor/setup/", {"code": code_for(device), "next": "/market/"}
    )
    html = done.content.decode()
    assert "Two-factor sign-in is on." in html and 'href="/market/"' in html
    assert html.count('class="rounded bg-slate-100 px-3 py-1.5 text-center"') == 10
    assert two_factor.has_authenticator(trader) and verified(client)
    # From now on the login asks for the code.
    Client().post("/accounts/logout/")
    again = Client().post(
        "/accounts/login/", {"username": trader.username, "password": "password"}
    )
    assert again.status_code == 200


def test_empty_or_junk_codes_get_a_message_next_to_the_field(db, client):
    client.force_login(factories.UserFactory())
    for code in ("", " ", "x" * 40):
        html = client.post("/accounts/two-factor/setup/", {"code": code}).content.decode()
        assert 'data-testid="error-code"' in html


def test_replacing_an_authenticator_needs_a_verified_session(db, client):
    trader = factories.UserFactory()
    enrol(trader)
    client.force_login(trader)
    response = client.get("/accounts/two-factor/setup/")
    assert response["Location"].startswith("/accounts/two-factor/verify/?next=")


def test_new_recovery_codes_and_turning_off(db, client):
    trader = factories.UserFactory()
    device, old = enrol(trader)
    login_with_code(client, trader, device)
    html = client.post("/accounts/two-factor/recovery-codes/").content.decode()
    assert "Your recovery codes" in html and old[0] not in html
    assert two_factor.verify_code(user=trader, code=old[0]) is None
    response = client.post("/accounts/two-factor/turn-off/", follow=True)
    assert "Two-factor sign-in is off" in response.content.decode()
    assert not two_factor.has_authenticator(trader)


def test_staff_where_required_cannot_turn_it_off(db, client, required):
    staff = factories.StaffFactory()
    device, _ = enrol(staff)
    login_with_code(client, staff, device)
    assert "Turn off" not in client.get("/accounts/two-factor/").content.decode()
    response = client.post("/accounts/two-factor/turn-off/", follow=True)
    assert "required for staff" in response.content.decode()
    assert two_factor.has_authenticator(staff)


def test_the_verify_page_without_an_authenticator_offers_the_enrolment(db, client):
    client.force_login(factories.UserFactory())
    response = client.get("/accounts/two-factor/verify/?next=/market/")
    assert response["Location"] == "/accounts/two-factor/setup/?next=%2Fmarket%2F"


def test_the_api_schema_declares_the_429(db, client):
    schema = json.loads(client.get("/api/v1/openapi.json").content)
    for operations in schema["paths"].values():
        for operation in operations.values():
            assert "429" in operation["responses"]
