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
