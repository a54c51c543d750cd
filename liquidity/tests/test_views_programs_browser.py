"""Liquidity programs in real Chromium: create one through the form, activate it, let
one tick place its ladder (the worker does not run in tests: `program_refresh`), watch
the polled status pick up a fill without a reload, pause, stop. Screenshots of the list,
the form and the status page at desktop and phone widths go to test-artifacts/."""

import pytest
from django.contrib.auth.models import Permission

from liquidity import programs
from liquidity.models import LiquidityProgram
from market.models import MarketMakerClient
from market.services.orders import order_place, order_request_parse
from market.tests import factories

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER
PASSWORD = "ops-password-123"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture(autouse=True)
def _migrated_rows(migrated_rows):
    """Every browser test starts with the markets and house account (see conftest)."""


@pytest.fixture
def ops_user(django_user_model):
    user = django_user_model.objects.create_user("ops", password=PASSWORD, is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="manage_liquidity"))
    return user


def no_sideways_scroll(page) -> bool:
    return page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )


def both_widths(page, screenshot, name: str) -> None:
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        screenshot(page, f"{name}-{label}")
        if label == "phone":
            assert no_sideways_scroll(page), f"{name} scrolls sideways on a phone"
    page.set_viewport_size(DESKTOP)


def test_create_activate_tick_watch_a_fill_pause_and_stop(
    page, live_server, browser_login, screenshot, ops_user
):
    factories.market_maker(LP, EUR="100000")
    factories.market_maker(AH, CEA=10000)
    browser_login(page, "ops", PASSWORD)
    page.goto(f"{live_server.url}/backoffice/liquidity/programs/")
    assert page.get_by_role("heading", name="Liquidity programs").is_visible()

    # Create through the form: a mistake first, shown next to its field, nothing saved.
    page.get_by_role("link", name="New program").click()
    assert page.get_by_label("Ladder").input_value() == "0.2:50, 0.4:30, 0.5:20"
    both_widths(page, screenshot, "program-form")
    page.get_by_label("Name").fill("CEA day desk")
    page.get_by_label("BID target (EUR)").fill("10000")
    page.get_by_label("ASK target (EUR)").fill("10000")
    page.get_by_label("Ladder").fill("0.2:50, 0.4:30")
    page.get_by_role("button", name="Create program").click()
    error = page.get_by_test_id("error-ladder")
    error.wait_for()
    assert LiquidityProgram.objects.count() == 0
    screenshot(page, "program-form-error")
    page.get_by_label("Ladder").fill("0.2:50, 0.4:30, 0.5:20")
    page.get_by_label("Sun").uncheck()
    page.get_by_role("button", name="Create program").click()
    page.get_by_test_id("program-name").wait_for()
    program = LiquidityProgram.objects.get()
    assert program.state == "draft" and program.active_weekdays == "123456"

    # Activate; one tick places the ladder; the polled part shows it without a reload.
    page.get_by_role("button", name="Activate").click()
    page.locator('[data-testid="program-state"][data-state="active"]').wait_for()
    programs.program_refresh(program_id=program.pk, worker="browser-test")
    page.locator('[data-testid="ladder-row"]').nth(5).wait_for(timeout=15_000)
    assert page.get_by_test_id("ladder-row").count() == 6
    assert "0 CEA" in page.get_by_test_id("sold").inner_text()

    # A trade: the next poll shows the fill, still without a reload.
    page.evaluate("window.__not_reloaded = true")
    trader = factories.trader(EUR="100000")
    order_place(
        owner=trader,
        request=order_request_parse(
            market_code="CEA", side="BUY", order_type="MARKET", quantity="100"
        ),
    )
    page.locator('[data-testid="sold"]', has_text="100 CEA").wait_for(timeout=15_000)
    assert page.evaluate("window.__not_reloaded") is True
    both_widths(page, screenshot, "program-status")

    # Pause, then stop (a confirmation page first).
    page.get_by_role("button", name="Pause").click()
    page.locator('[data-testid="program-state"][data-state="paused"]').wait_for()
    page.get_by_role("button", name="Stop", exact=True).click()
    assert "withdraws its 6 orders" in page.get_by_test_id("confirm-text").inner_text()
    screenshot(page, "program-stop-confirm")
    page.get_by_role("button", name="Stop and withdraw").click()
    page.locator('[data-testid="program-state"][data-state="stopped"]').wait_for()
    assert "6 orders withdrawn" in page.locator("#messages").inner_text()

    # The list, with a second program running, and the kill switch.
    other = programs.program_create(
        user=ops_user,
        data={"name": "EUA standing", "certificate_type": "EUA", "bid_target_eur": "5000"},
    )
    programs.program_activate(program_id=other.pk, user=ops_user)
    page.get_by_role("link", name="Liquidity programs").first.click()
    page.get_by_test_id("programs").wait_for()
    assert page.get_by_test_id("program-row").count() == 2
    both_widths(page, screenshot, "program-list")
    page.get_by_role("button", name="Kill switch").click()
    assert "This stops 1 program" in page.get_by_test_id("confirm-text").inner_text()
    page.get_by_role("button", name="Stop everything").click()
    page.get_by_test_id("programs").wait_for()
    assert (
        "Kill switch pulled: 1 program stopped (EUA standing)"
        in page.locator("#messages").inner_text()
    )
    assert LiquidityProgram.objects.filter(state="stopped").count() == 2
