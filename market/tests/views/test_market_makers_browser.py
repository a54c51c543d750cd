"""The market-maker pages in real Chromium: a staff user who may manage market makers
(and nothing else) creates one with the funding of its type, at desktop and phone widths.

Screenshots go to test-artifacts/screenshots/ (the `screenshot` fixture)."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission

from market.models import Balance, MarketMakerClient
from market.services.market_makers import market_maker_deactivate
from market.tests import factories

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

AH = MarketMakerClient.Type.ASSET_HOLDER
PASSWORD = "desk-password-123"


@pytest.fixture(autouse=True)
def _migrated_rows(migrated_rows):
    """Every browser test starts with the markets and house account (see conftest)."""


@pytest.fixture
def maker_desk(django_user_model):
    """Staff with the market-maker permission only."""
    user = django_user_model.objects.create_user("desk", password=PASSWORD, is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="change_marketmakerclient"))
    return user


def test_new_market_maker_asks_for_the_funding_of_its_type(
    page, live_server, browser_login, maker_desk, screenshot
):
    browser_login(page, "desk", PASSWORD)
    page.goto(f"{live_server.url}/backoffice/market-makers/")
    # Without the liquidity permission the navigation offers no liquidity page.
    assert page.get_by_role("link", name="Market makers").is_visible()
    assert page.get_by_role("link", name="Create liquidity").count() == 0
    page.get_by_role("link", name="New market maker").click()
    panel = page.get_by_test_id("mm-action")
    panel.get_by_label("Name").fill("Helios Carbon")
    assert panel.get_by_label("Initial EUR").is_visible()
    assert not panel.get_by_label("Initial CEA").is_visible()
    panel.get_by_text("Asset holder", exact=True).click()
    assert not panel.get_by_label("Initial EUR").is_visible()
    panel.get_by_label("Initial CEA").fill("2,500")
    panel.get_by_role("button", name="Create market maker").click()
    # The strict parser's message, next to the input; nothing created.
    panel.get_by_text("without separators").wait_for()
    assert not MarketMakerClient.objects.filter(name="Helios Carbon").exists()
    screenshot(page, "market-maker-create-refused")
    page.set_viewport_size({"width": 390, "height": 844})
    # Nothing pushes the page sideways on a phone (the wide table scrolls in its box).
    assert page.evaluate("document.documentElement.scrollWidth") == 390
    screenshot(page, "market-maker-create-phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    panel.get_by_label("Initial CEA").fill("2500")
    screenshot(page, "market-maker-create")
    panel.get_by_role("button", name="Create market maker").click()
    page.get_by_text("Created MM-").wait_for()
    maker = MarketMakerClient.objects.get(name="Helios Carbon")
    assert maker.mm_type == AH
    assert Balance.objects.get(holder=maker.holder, asset="CEA").available == Decimal("2500")
    screenshot(page, "market-makers")


def test_an_inactive_makers_fund_and_deactivate_pages_offer_nothing(
    page, live_server, browser_login, maker_desk, screenshot
):
    maker = factories.market_maker(AH, CEA=40)
    market_maker_deactivate(market_maker=maker, actor=maker_desk, cancel_open_orders=False)
    browser_login(page, "desk", PASSWORD)
    for action, reason in (
        ("fund", "cannot be funded: reactivate it first"),
        ("deactivate", "already inactive"),
    ):
        page.goto(f"{live_server.url}/backoffice/market-makers/{maker.pk}/{action}/")
        panel = page.get_by_test_id("mm-action")
        assert reason in panel.get_by_test_id("mm-refusal").inner_text()
        assert panel.locator("form, button").count() == 0
        assert panel.get_by_role("link", name="Back to market makers").is_visible()
        screenshot(page, f"market-maker-{action}-refused-desktop")
        page.set_viewport_size({"width": 390, "height": 844})
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        screenshot(page, f"market-maker-{action}-refused-phone")
        page.set_viewport_size({"width": 1280, "height": 900})
    assert Balance.objects.get(holder=maker.holder, asset="CEA").available == Decimal("40")
