"""Sign-in in real Chromium: the lockout on the login page and the admin's, and a staff
member's enrolment by QR code (required), through to the back office.

Screenshots at desktop (1280) and phone (390) widths go to test-artifacts/screenshots/.
"""

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.tests.helpers import code_for

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PASSWORD = "pw-staff-123"
DESKTOP, PHONE = {"width": 1280, "height": 900}, {"width": 390, "height": 844}


@pytest.fixture(autouse=True)
def _migrated_rows(migrated_rows):
    """Every browser test starts with the markets and house account (see conftest)."""


def both_widths(page, screenshot, name: str):
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, f"{name}-phone")
    page.set_viewport_size(DESKTOP)
    screenshot(page, f"{name}-desktop")


def test_six_wrong_passwords_lock_the_login_with_the_message_on_the_page(
    page, live_server, django_user_model, screenshot
):
    django_user_model.objects.create_user("trader", password=PASSWORD)
    django_user_model.objects.create_user("colleague", password=PASSWORD)
    page.goto(f"{live_server.url}/accounts/login/")
    for _ in range(6):
        page.get_by_label("Username").fill("trader")
        page.get_by_label("Password").fill("wrong")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_load_state()
    errors = page.get_by_test_id("login-errors")
    assert "Too many failed sign-ins for this username" in errors.inner_text()
    # The right password is refused too, on the same page.
    page.get_by_label("Username").fill("trader")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
    assert "/accounts/login/" in page.url
    assert "locked for 15 minutes" in page.get_by_test_id("login-errors").inner_text()
    both_widths(page, screenshot, "login-lockout")
    # Someone else from the same browser and address signs in.
    page.get_by_label("Username").fill("colleague")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/accounts/login/" not in url)
    assert page.get_by_test_id("nav-username").inner_text() == "colleague"


def test_the_admin_login_shows_the_lockout(page, live_server, django_user_model, screenshot):
    django_user_model.objects.create_user("ops", password=PASSWORD, is_staff=True)
    page.goto(f"{live_server.url}/admin/login/")
    for _ in range(5):
        page.fill("#id_username", "ops")
        page.fill("#id_password", "wrong")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_load_state()
    assert "Too many failed sign-ins" in page.get_by_test_id("login-errors").inner_text()
    page.set_viewport_size(DESKTOP)
    screenshot(page, "admin-login-lockout-desktop")


def test_staff_enrol_by_qr_code_then_reach_the_back_office(
    page, live_server, django_user_model, screenshot, settings
):
    settings.STAFF_2FA_REQUIRED = True
    staff = django_user_model.objects.create_user(
        "ops", password=PASSWORD, is_staff=True, is_superuser=True
    )
    page.goto(f"{live_server.url}/backoffice/liquidity/")
    page.get_by_label("Username").fill("ops")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/accounts/two-factor/setup/" in url)
    qr = page.get_by_test_id("qr-code")
    assert qr.locator("svg").count() == 1 and qr.bounding_box()["width"] > 150
    both_widths(page, screenshot, "two-factor-setup")

    device = TOTPDevice.objects.get(user=staff, confirmed=False)
    page.get_by_label("Code from the app").fill("000000")
    page.get_by_role("button", name="Turn on").click()
    assert "That code is not valid" in page.get_by_test_id("error-code").inner_text()
    device.refresh_from_db()
    device.throttle_reset()
    page.get_by_label("Code from the app").fill(code_for(device))
    page.get_by_role("button", name="Turn on").click()
    codes = page.get_by_test_id("recovery-code-list").locator("li")
    assert codes.count() == 10
    both_widths(page, screenshot, "two-factor-recovery-codes")
    page.get_by_role("link", name="I have saved them: continue").click()
    page.wait_for_url(lambda url: url.endswith("/backoffice/liquidity/"))
    assert page.get_by_role("heading", name="Liquidity operations").is_visible()
    assert "/accounts/" not in page.url

    # The next sign-in asks for the code.
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(lambda url: "/accounts/login/" in url)
    page.get_by_label("Username").fill("ops")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    assert "Enter the 6-digit code" in page.get_by_test_id("error-code").inner_text()
    device.refresh_from_db()
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Authentication code").fill(code_for(device, steps_ahead=1))
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/accounts/login/" not in url)
    page.goto(f"{live_server.url}/backoffice/liquidity/")
    assert page.url.endswith("/backoffice/liquidity/")
