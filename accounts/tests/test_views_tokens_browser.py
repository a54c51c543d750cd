"""The API tokens page in real Chromium: a user revokes one of their tokens, at desktop
and phone widths. Screenshots go to test-artifacts/screenshots/."""

import pytest

from accounts.models import ApiToken
from market.tests import factories

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]
PASSWORD = "password"  # factories.UserFactory


@pytest.fixture(autouse=True)
def _migrated_rows(migrated_rows):
    """Every browser test starts with the markets and house account (see conftest)."""


def test_a_user_revokes_a_token_from_their_page(page, live_server, browser_login, screenshot):
    user = factories.StaffFactory(username="token-owner")
    bot, bot_secret = ApiToken.issue(user=user, name="Nightly liquidity report")
    laptop, _ = ApiToken.issue(user=user, name="Laptop script")
    old, _ = ApiToken.issue(user=user, name="Old integration")
    ApiToken.objects.filter(pk=old.pk).update(revoked_at=old.created_at)
    ApiToken.objects.filter(pk=bot.pk).update(last_used_at=bot.created_at)
    ApiToken.issue(user=factories.UserFactory(username="someone-else"), name="Not mine")

    browser_login(page, user.username, PASSWORD)
    page.get_by_test_id("nav-api-tokens").click()
    page.wait_for_url(f"{live_server.url}/accounts/tokens/")
    tokens = page.get_by_test_id("api-token")
    assert tokens.count() == 3
    assert page.get_by_text("Not mine").count() == 0
    assert bot_secret not in page.content()
    assert page.get_by_test_id("revoke-token").count() == 2  # the revoked one has none
    screenshot(page, "api-tokens")

    row = page.locator(f"[data-testid=api-token][data-prefix='{laptop.prefix}']")
    row.get_by_role("button", name="Revoke").click()
    page.get_by_text(f"Token {laptop.prefix}… revoked").wait_for()
    assert row.get_attribute("data-revoked") == "1"
    laptop.refresh_from_db()
    assert laptop.revoked_at is not None
    screenshot(page, "api-tokens-revoked")

    page.set_viewport_size({"width": 390, "height": 844})
    # Nothing pushes the page sideways on a phone.
    assert page.evaluate("document.documentElement.scrollWidth") == 390
    screenshot(page, "api-tokens-phone")


def test_a_trader_creates_a_token_sees_it_once_and_revokes_it(
    page, live_server, browser_login, screenshot
):
    trader = factories.UserFactory(username="token-trader")
    ApiToken.issue(user=trader, name="Old script", scope=ApiToken.Scope.TRADER)

    browser_login(page, trader.username, PASSWORD)
    page.get_by_test_id("nav-api-tokens").click()
    page.wait_for_url(f"{live_server.url}/accounts/tokens/")
    page.get_by_label("Token name").fill("Trading bot")
    page.get_by_test_id("create-token").click()
    secret_box = page.get_by_test_id("new-token-secret")
    secret_box.wait_for()
    secret = secret_box.input_value()
    created = ApiToken.objects.get(user=trader, name="Trading bot")
    assert created.scope == ApiToken.Scope.TRADER
    assert ApiToken.hash(secret) == created.key_hash
    assert page.get_by_text("Copy your new token now").is_visible()
    row = page.locator(f"[data-testid=api-token][data-prefix='{created.prefix}']")
    assert row.get_by_test_id("token-scope").inner_text().strip().lower() == "trader api"
    screenshot(page, "api-tokens-created")

    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") == 390
    screenshot(page, "api-tokens-created-phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    # Shown once: the page reached again does not show it.
    page.get_by_test_id("nav-api-tokens").click()
    page.get_by_test_id("create-token-form").wait_for()
    assert page.get_by_test_id("new-token").count() == 0
    assert secret not in page.content()

    row.get_by_role("button", name="Revoke").click()
    page.get_by_text(f"Token {created.prefix}… revoked").wait_for()
    assert row.get_attribute("data-revoked") == "1"
    created.refresh_from_db()
    assert created.revoked_at is not None
    screenshot(page, "api-tokens-trader-revoked")
