"""The back office in real Chromium: preview a short plan, provision, execute, withdraw;
the same without JavaScript; traders are kept out.

Screenshots go to test-artifacts/screenshots/ (the `screenshot` fixture). With
DOCS_SCREENSHOTS=1 they are also copied to docs/screenshots/ for the staff guide.
"""

import os
import re
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission

from liquidity.models import LiquidityOperation
from liquidity.services import liquidity_execute, liquidity_request_parse
from market.models import Balance, MarketMakerClient, Order
from market.services.orders import order_place, order_request_parse
from market.tests import factories
from market.tests.helpers import assert_all_invariants

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER
DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PASSWORD = "ops-password-123"


@pytest.fixture(autouse=True)
def _migrated_rows(migrated_rows):
    """Every browser test starts with the markets and house account (see conftest)."""


@pytest.fixture
def shot(screenshot):
    """`screenshot`, also copied into docs/screenshots/ when DOCS_SCREENSHOTS=1."""

    def take(page, name: str, *, full_page: bool = True):
        path = screenshot(page, name, full_page=full_page)
        if os.environ.get("DOCS_SCREENSHOTS") == "1":
            DOCS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DOCS / f"{name}.png")
        return path

    return take


@pytest.fixture
def ops_user(django_user_model):
    """A back-office staff user (not a superuser): the liquidity and the market-maker
    permissions."""
    user = django_user_model.objects.create_user(
        "ops", password=PASSWORD, is_staff=True, first_name="Olivia"
    )
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["manage_liquidity", "change_marketmakerclient"])
    )
    return user


@pytest.fixture
def makers(db):
    """Enough EUR for the BID side, too few CEA for the ASK side."""
    made = {
        "lp1": factories.market_maker(LP, EUR="250000"),
        "lp2": factories.market_maker(LP, EUR="120000"),
        "ah1": factories.market_maker(AH, CEA=1000, EUA=2000),
    }
    for key, name in (
        ("lp1", "Nordic Liquidity"),
        ("lp2", "Baltic Capital"),
        ("ah1", "Carbon Reserve"),
    ):
        MarketMakerClient.objects.filter(pk=made[key].pk).update(name=name)
    return made


def execute(user, market, *, bid, ask, reference_price=None):
    request = liquidity_request_parse(
        market_code=market, bid_amount_eur=bid, ask_amount_eur=ask, reference_price=reference_price
    )
    return liquidity_execute(request=request, user=user)


def test_staff_previews_provisions_executes_and_withdraws(
    page, live_server, browser_login, shot, screenshot, ops_user, makers
):
    browser_login(page, "ops", PASSWORD)
    page.goto(f"{live_server.url}/backoffice/liquidity/new/")
    assert page.get_by_role("heading", name="Create liquidity").is_visible()
    assert page.get_by_test_id("how-it-works").is_visible()
    shot(page, "create-liquidity-form")

    # 1. Preview a plan the asset holders cannot cover.
    page.get_by_test_id("market-CEA").click()
    page.get_by_label("BID liquidity (EUR)").fill("100000")
    page.get_by_label("ASK liquidity (EUR)").fill("50000")
    page.get_by_label("Notes").fill("Morning CEA ladder")
    page.get_by_role("button", name="Preview").click()
    status = page.get_by_test_id("plan-status")
    status.wait_for()
    assert status.get_attribute("data-status") == "short"
    shortfall = page.get_by_test_id("shortfall-ask")
    assert shortfall.get_by_test_id("shortfall-ask-amount").inner_text() == "2,559 CEA"
    assert page.get_by_test_id("shortfall-bid").count() == 0
    assert page.locator("#execute-button").is_disabled()
    shot(page, "create-liquidity-short")

    # 2. Provision: two new asset holders holding the missing certificates.
    create = page.get_by_test_id("provision-create-ask")
    assert create.get_by_label("Total amount").input_value() == "2559"
    create.get_by_label("Count").fill("2")
    create.get_by_role("button", name="Create & refresh preview").click()
    page.locator('[data-testid="plan-status"][data-status="ready"]').wait_for()
    assert "Created 2 market makers" in page.get_by_test_id("plan-notice").inner_text()
    assert int(page.get_by_test_id("total-orders").inner_text()) > 6
    assert page.get_by_label("ASK liquidity (EUR)").input_value() in ("50000", "50000.00")
    assert MarketMakerClient.objects.filter(mm_type=AH).count() == 3
    ask_rows = page.get_by_test_id("ask-makers").locator("tbody tr")
    assert ask_rows.count() == 3
    shot(page, "create-liquidity-preview")
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.get_by_role("button", name="Confirm & Execute").is_visible()
    screenshot(page, "create-liquidity-mobile")  # not in the guide
    page.set_viewport_size({"width": 1280, "height": 900})

    # 3. Execute: busy state, then the operation page.
    page.get_by_role("button", name="Confirm & Execute").click()
    page.wait_for_url(re.compile(r"/backoffice/liquidity/\d+/$"))
    op = LiquidityOperation.objects.get()
    assert page.url.endswith(f"/backoffice/liquidity/{op.pk}/")
    assert op.notes == "Morning CEA ladder"
    assert op.orders.count() > 6  # two sides, three levels, several makers
    assert (
        f"Liquidity operation {op.ticket.ticket_id} placed"
        in page.locator("#messages").inner_text()
    )
    assert page.get_by_test_id("state-badge").inner_text().strip() == "Active"
    assert page.get_by_test_id("fill-pct").inner_text() == "0.0%"
    shot(page, "operation-detail")

    # 4. Withdraw, accepting the confirmation dialog.
    dialogs = []

    def accept(dialog):
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    page.get_by_test_id("withdraw").click()
    page.get_by_test_id("withdraw-refusal").wait_for()
    assert dialogs and op.ticket.ticket_id in dialogs[0]
    assert page.get_by_test_id("state-badge").inner_text().strip() == "Withdrawn"
    assert "cancelled" in page.get_by_test_id("flash").inner_text()
    assert page.locator("#messages").count() == 0  # the stale "placed" message is gone
    assert not Order.objects.filter(status__in=Order.RESTING).exists()
    assert Balance.objects.get(holder=makers["lp1"].holder, asset="EUR").available == Decimal(
        "250000"
    )
    assert_all_invariants()
    shot(page, "operation-withdrawn")

    # 5. More history: an EUA ladder a trader partly fills, and a CEA one still active.
    eua = execute(ops_user, "EUA", bid="50000", ask="40500")
    buyer = factories.trader(EUR="100000")
    best_ask = eua.orders.filter(side="SELL").order_by("price").first()
    order_place(
        owner=buyer,
        request=order_request_parse(
            market_code="EUA", side="BUY", order_type="LIMIT", price=best_ask.price, quantity=150
        ),
    )
    execute(ops_user, "CEA", bid="20000", ask="10000", reference_price="14.10")
    page.goto(f"{live_server.url}/backoffice/liquidity/")
    assert page.get_by_test_id("operation-row").count() == 3
    states = page.get_by_test_id("state-badge").all_inner_texts()
    assert [state.strip() for state in states] == ["Active", "Partly filled", "Withdrawn"]
    shot(page, "liquidity-operations")

    page.goto(f"{live_server.url}/backoffice/market-makers/")
    lp2_eur = Balance.objects.get(holder=makers["lp2"].holder, asset="EUR")
    row = page.locator(f'[data-code="{makers["lp2"].code}"]')
    row.get_by_role("link", name="Fund").click()
    panel = page.get_by_test_id("mm-action")
    panel.get_by_label("Amount").fill("30000")
    shot(page, "market-maker-fund")
    panel.get_by_role("button", name="Deposit").click()
    page.get_by_text(f"Deposited €30,000.00 into {makers['lp2'].code}").wait_for()
    lp2_eur_after = Balance.objects.get(pk=lp2_eur.pk)
    assert lp2_eur_after.available == lp2_eur.available + Decimal("30000")
    shot(page, "market-makers")


def test_without_javascript_preview_and_execute_are_plain_posts(
    browser, live_server, ops_user, makers, shot
):
    context = browser.new_context(
        java_script_enabled=False, viewport={"width": 1280, "height": 900}
    )
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("Username").fill("ops")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.goto(f"{live_server.url}/backoffice/liquidity/new/")
        page.get_by_test_id("market-CEA").click()
        page.get_by_label("BID liquidity (EUR)").fill("100000")
        page.get_by_label("ASK liquidity (EUR)").fill("10000")
        page.get_by_label("Ladder").fill("0.2:60, 0.4:40")
        page.get_by_role("button", name="Preview").click()
        page.wait_for_url("**/liquidity/preview/")
        assert page.get_by_test_id("plan-status").get_attribute("data-status") == "ready"
        assert page.get_by_label("Ladder").input_value() == "0.2:60, 0.4:40"
        page.get_by_role("button", name="Confirm & Execute").click()
        page.wait_for_url(re.compile(r"/backoffice/liquidity/\d+/$"))
        op = LiquidityOperation.objects.get()
        assert op.ladder == [
            {"distance_pct": "0.2", "share_pct": "60"},
            {"distance_pct": "0.4", "share_pct": "40"},
        ]
        # Withdraw: the link opens a confirmation page with a POST form.
        page.get_by_test_id("withdraw").click()
        page.get_by_test_id("withdraw-confirm").wait_for()
        shot(page, "withdraw-confirm")
        page.get_by_role("button", name="Withdraw liquidity").click()
        page.wait_for_url(f"**/backoffice/liquidity/{op.pk}/")
        assert "Withdrawn" in page.get_by_test_id("state-badge").inner_text()
        assert not Order.objects.filter(status__in=Order.RESTING).exists()
    finally:
        context.close()


def test_the_same_preview_confirmed_twice_without_javascript_makes_one_operation(
    browser, live_server, ops_user, makers, screenshot
):
    """Without JavaScript nothing disables the button: the preview is confirmed, then the
    same preview (kept in a second tab, or resent) is confirmed again. The second submit
    lands on the operation the first made; a stale copy whose inputs were changed places
    nothing and says why."""
    context = browser.new_context(
        java_script_enabled=False, viewport={"width": 1280, "height": 900}
    )
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("Username").fill("ops")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.goto(f"{live_server.url}/backoffice/liquidity/new/")
        page.get_by_test_id("market-CEA").click()
        page.get_by_label("BID liquidity (EUR)").fill("100000")
        page.get_by_label("ASK liquidity (EUR)").fill("10000")
        page.get_by_role("button", name="Preview").click()
        page.wait_for_url("**/liquidity/preview/")
        preview_html = page.content()

        page.get_by_role("button", name="Confirm & Execute").click()
        page.wait_for_url(re.compile(r"/backoffice/liquidity/\d+/$"))
        op = LiquidityOperation.objects.get()
        placed = Order.objects.count()
        assert f"placed {placed} orders" in page.get_by_role("status").first.inner_text()

        # The same preview in a second tab, served as the browser kept it.
        copy_url = f"{live_server.url}/backoffice/liquidity/preview/copy/"

        def open_copy(html):
            tab = context.new_page()
            tab.route(copy_url, lambda route: route.fulfill(body=html, content_type="text/html"))
            tab.goto(copy_url)
            return tab

        tab = open_copy(preview_html)
        tab.get_by_role("button", name="Confirm & Execute").click()
        tab.wait_for_url(f"**/backoffice/liquidity/{op.pk}/")
        notice = tab.get_by_role("status").first.inner_text()
        assert f"{op.ticket.ticket_id} was already executed from this preview" in notice
        assert LiquidityOperation.objects.count() == 1 and Order.objects.count() == placed
        screenshot(tab, "liquidity-already-executed")
        tab.set_viewport_size({"width": 390, "height": 844})
        screenshot(tab, "liquidity-already-executed-phone")

        # A stale copy whose inputs no longer match what its key executed.
        stale = preview_html.replace(
            'name="ask_amount_eur" value="10000', 'name="ask_amount_eur" value="3000'
        )
        assert stale != preview_html
        tab = open_copy(stale)
        tab.get_by_role("button", name="Confirm & Execute").click()
        tab.wait_for_url("**/liquidity/execute/")
        notice = tab.get_by_test_id("plan-notice")
        assert notice.get_attribute("data-level") == "error"
        assert "already executed with this idempotency key" in notice.inner_text()
        assert LiquidityOperation.objects.count() == 1 and Order.objects.count() == placed
        screenshot(tab, "liquidity-key-reused")
        tab.set_viewport_size({"width": 390, "height": 844})
        screenshot(tab, "liquidity-key-reused-phone")
        # The page shows the plan for these inputs under a new key: confirming places it.
        tab.get_by_role("button", name="Confirm & Execute").click()
        tab.wait_for_url(re.compile(r"/backoffice/liquidity/\d+/$"))
        assert LiquidityOperation.objects.count() == 2
        assert_all_invariants()
    finally:
        context.close()


def test_staff_enter_a_two_level_ladder_preview_it_and_place_it(
    page, live_server, browser_login, screenshot, ops_user
):
    factories.market_maker(LP, EUR="250000")
    factories.market_maker(AH, CEA=10000)
    browser_login(page, "ops", PASSWORD)
    page.goto(f"{live_server.url}/backoffice/liquidity/new/")
    ladder = page.get_by_label("Ladder")
    assert ladder.input_value() == "0.2:50, 0.4:30, 0.5:20"  # the default, to edit

    page.get_by_test_id("market-CEA").click()
    page.get_by_label("BID liquidity (EUR)").fill("100000")
    page.get_by_label("ASK liquidity (EUR)").fill("50000")
    # A mistake first: shown next to the field, nothing previewed.
    ladder.fill("0.1:70, 0.3:20")
    page.get_by_role("button", name="Preview").click()
    error = page.get_by_test_id("error-ladder")
    error.wait_for()
    assert "add up to 90 %" in error.inner_text()
    assert page.get_by_test_id("execute-form").count() == 0

    page.get_by_label("Ladder").fill("0.1:70, 0.3:30")
    page.get_by_role("button", name="Preview").click()
    page.locator('[data-testid="plan-status"][data-status="ready"]').wait_for()
    assert page.get_by_test_id("error-ladder").count() == 0
    assert "0.1:70, 0.3:30" in page.get_by_test_id("plan-ladder").inner_text()
    bid_levels = page.get_by_test_id("bid-levels")
    assert bid_levels.get_by_test_id("level-distance").all_inner_texts() == ["−0.1%", "−0.3%"]
    assert bid_levels.get_by_test_id("level-share").all_inner_texts() == ["70%", "30%"]
    screenshot(page, "liquidity-ladder-preview")
    fits = "table => table.scrollWidth <= table.parentElement.clientWidth"
    assert bid_levels.evaluate(fits) and page.get_by_test_id("ask-levels").evaluate(fits)
    page.set_viewport_size({"width": 390, "height": 844})
    levels = page.get_by_test_id("ask-levels")
    levels.scroll_into_view_if_needed()
    screenshot(page, "liquidity-ladder-preview-phone")
    screenshot(page, "liquidity-ladder-preview-phone-levels", full_page=False)
    # Readable on a phone: the level table fits its card, no sideways scrolling.
    widths = levels.evaluate("table => [table.scrollWidth, table.parentElement.clientWidth]")
    assert widths[0] <= widths[1], widths
    page.set_viewport_size({"width": 1280, "height": 900})

    page.get_by_role("button", name="Confirm & Execute").click()
    page.wait_for_url(re.compile(r"/backoffice/liquidity/\d+/$"))
    op = LiquidityOperation.objects.get()
    assert op.ladder == [
        {"distance_pct": "0.1", "share_pct": "70"},
        {"distance_pct": "0.3", "share_pct": "30"},
    ]
    prices = sorted({str(order.price) for order in op.orders.all()})
    assert prices == ["13.95", "13.98", "14.02", "14.05"]
    section = page.get_by_test_id("ladder")
    assert section.get_by_test_id("ladder-level").count() == 2
    assert "custom" in section.inner_text()
    screenshot(page, "liquidity-ladder-operation")
    page.set_viewport_size({"width": 390, "height": 844})
    section.scroll_into_view_if_needed()
    screenshot(page, "liquidity-ladder-operation-phone")
    assert_all_invariants()


def test_inline_errors_in_the_browser(page, live_server, browser_login, ops_user, makers):
    browser_login(page, "ops", PASSWORD)
    page.goto(f"{live_server.url}/backoffice/liquidity/new/")
    page.get_by_label("BID liquidity (EUR)").fill("12.345")
    page.get_by_label("Reference price (EUR)").fill("-1")
    page.get_by_role("button", name="Preview").click()
    page.get_by_test_id("error-bid_amount_eur").wait_for()
    assert page.get_by_test_id("error-reference_price").is_visible()
    assert not LiquidityOperation.objects.exists()


def test_a_trader_cannot_reach_the_back_office(
    page, live_server, browser_login, django_user_model
):
    django_user_model.objects.create_user("trader", password=PASSWORD)
    browser_login(page, "trader", PASSWORD)
    for path in (
        "/backoffice/liquidity/new/",
        "/backoffice/liquidity/",
        "/backoffice/market-makers/",
        "/backoffice/market-makers/new/",
    ):
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 403, path
    assert page.get_by_role("link", name="Create liquidity").count() == 0
