"""The market's Django admin: every model listed with constant queries, read-only where the
ledger demands it; markets, market makers and trader funds changed through the services
and forms of the back office, each action in the object's History."""

from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.db import connection
from django.template import Context, Template
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from market.models import (
    Balance,
    Holder,
    LedgerEntry,
    Market,
    MarketMakerClient,
    Order,
    TicketLog,
    Trade,
)
from market.services.audit import ticket_record
from market.services.market_makers import market_maker_deactivate, market_maker_reactivate
from market.services.orders import order_place, order_request_parse
from market.templatetags.money import certificates, eur
from market.tests import factories
from market.tests.helpers import assert_all_invariants

D = Decimal
LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER
pytestmark = pytest.mark.django_db
MODELS = [model for model in admin.site._registry if model._meta.app_label == "market"]
READ_ONLY = [Holder, Balance, LedgerEntry, Trade, TicketLog, Order]


@pytest.fixture
def staff(db):
    return factories.StaffFactory()


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def place(holder, side, market="CEA", **fields):
    request = order_request_parse(market_code=market, side=side, order_type="LIMIT", **fields)
    return order_place(owner=holder, request=request)


def populate(count: int, staff) -> None:
    """Some of everything: makers, traders, resting orders, trades, staff tickets."""
    for _ in range(count):
        lp = factories.market_maker(LP, EUR="10000.00")
        ah = factories.market_maker(AH, CEA=100, EUA=100)
        trader = factories.trader(EUR="5000.00", CEA=20)
        bid = place(lp.holder, "BUY", price="9.00", quantity=10).order
        ask = place(ah.holder, "SELL", price="20.00", quantity=10).order
        place(trader, "BUY", price="20.00", quantity=2)  # trades with the ask
        place(trader, "SELL", price="9.00", quantity=1)  # trades with the bid
        # Orders placed by an audited staff action carry its ticket.
        placed_by = ticket_record(action_type="LIQUIDITY_CREATED", entity_type="Test", user=staff)
        Order.objects.filter(pk__in=[bid.pk, ask.pk]).update(ticket=placed_by)


# ---------------------------------------------------------------------------- filters


def test_money_filters_format_with_euro_sign_and_separators():
    assert eur(D("1234.56")) == "€1,234.56"
    assert eur(D("1234.5")) == "€1,234.50"
    assert eur("1000000") == "€1,000,000.00"
    assert eur(D("-5")) == "-€5.00"
    assert eur(None) == "—" and eur("nonsense") == "—"
    assert certificates(1234) == "1,234"
    assert certificates(D("20000.00")) == "20,000"
    assert certificates(None) == "—"
    rendered = Template("{% load money %}{{ a|eur }} {{ q|certificates }}").render(
        Context({"a": D("1234.56"), "q": 1234})
    )
    assert rendered == "€1,234.56 1,234"


# ---------------------------------------------------------------------------- changelists


def test_every_market_model_is_registered():
    expected = {Market, Holder, Balance, LedgerEntry, Trade, TicketLog, Order, MarketMakerClient}
    assert expected <= set(MODELS)


def test_site_header(staff_client):
    response = staff_client.get(reverse("admin:index"))
    assert "Carbon Cash Market back office" in response.content.decode()


def test_changelists_answer_with_a_constant_number_of_queries(staff_client, staff):
    populate(1, staff)

    def counts():
        result = {}
        for model in MODELS:
            with CaptureQueriesContext(connection) as queries:
                response = staff_client.get(url(model, "changelist"))
            assert response.status_code == 200, model
            result[model._meta.label] = len(queries)
        return result

    few = counts()
    populate(4, staff)
    assert counts() == few
    assert_all_invariants()


def test_change_pages_render_for_every_model(staff_client, staff):
    populate(1, staff)
    for model in MODELS:
        obj = model._default_manager.first()
        response = staff_client.get(url(model, "change", obj.pk))
        assert response.status_code == 200, model


def test_changelists_search_and_filter(staff_client, staff):
    populate(1, staff)
    maker = MarketMakerClient.objects.first()
    response = staff_client.get(url(MarketMakerClient, "changelist"), {"q": maker.code})
    assert maker.code in response.content.decode()
    response = staff_client.get(url(Order, "changelist"), {"status__exact": "OPEN", "q": "MM"})
    assert response.status_code == 200
    response = staff_client.get(url(TicketLog, "changelist"), {"action_type": "MM_CREATED"})
    assert response.status_code == 200


def test_money_shows_with_euro_sign_and_thousands_separators(staff_client):
    factories.market_maker(LP, EUR="1234.56")
    factories.market_maker(AH, CEA=20000)
    page = staff_client.get(url(MarketMakerClient, "changelist")).content.decode()
    assert "€1,234.56 / €0.00" in page
    assert "20,000 / 0" in page
    page = staff_client.get(url(Holder, "changelist")).content.decode()
    assert "€1,234.56" in page
    page = staff_client.get(url(Market, "changelist")).content.decode()
    assert "€14.00" in page and "0.5 %" in page


# ---------------------------------------------------------------------------- read-only


@pytest.mark.parametrize("model", READ_ONLY, ids=lambda model: model.__name__)
def test_read_only_models_refuse_add_change_and_delete(staff_client, staff, model):
    populate(1, staff)
    model_admin = admin.site._registry[model]
    request = RequestFactory().get("/")
    request.user = staff
    obj = model._default_manager.first()
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, obj)
    assert not model_admin.has_delete_permission(request, obj)

    assert staff_client.get(url(model, "add")).status_code == 403
    assert staff_client.get(url(model, "delete", obj.pk)).status_code == 403
    assert staff_client.post(url(model, "change", obj.pk), {}).status_code == 403
    page = staff_client.get(url(model, "changelist")).content.decode()
    assert "delete_selected" not in page


def test_markets_cannot_be_deleted(staff_client):
    market = Market.objects.get(code="CEA")
    assert staff_client.get(url(Market, "delete", market.pk)).status_code == 403


def test_a_market_added_in_the_admin_gives_every_holder_its_certificate(staff_client, staff):
    trader = factories.trader(EUR="10")
    response = staff_client.post(
        url(Market, "add"),
        market_form(code="uka", name="UK Allowance", default_reference_price="40.00"),
    )
    assert response.status_code == 302, response.content.decode()
    market = Market.objects.get(code="UKA")
    assert (market.name, market.default_reference_price) == ("UK Allowance", D("40.00"))
    assert Balance.objects.get(holder=trader, asset="UKA").available == 0
    holders = Holder.objects.count()
    assert Balance.objects.filter(asset="UKA").count() == holders
    ticket = TicketLog.objects.get(action_type="MARKET_CREATED")
    assert ticket.user == staff and ticket.after_state["code"] == "UKA"
    assert ticket.after_state["balance_rows_created"] == holders
    history = LogEntry.objects.get(object_id=str(market.pk), content_type__model="market")
    assert history.is_addition()


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"code": "EUR"}, "code", "EUR is the currency"),
        ({"code": "CEA"}, "code", "already exists"),
        ({"code": "U-K"}, "code", "capital letters or digits"),
        ({"tick_size": "0,05"}, "tick_size", "Use a point for decimals"),
        ({"default_reference_price": "1e2"}, "default_reference_price", "Use a point"),
        ({"buy_fee_rate": "٠.٠٠٥"}, "buy_fee_rate", "Use a point"),
        ({"buy_fee_rate": "0.1"}, "buy_fee_rate", "Must be below 0.1"),
        ({"sell_fee_rate": "-0.001"}, "sell_fee_rate", "Must be zero or more"),
    ],
)
def test_a_refused_new_market_shows_why_and_creates_nothing(staff_client, changes, field, message):
    markets, balances = Market.objects.count(), Balance.objects.count()
    response = staff_client.post(
        url(Market, "add"), market_form(code="UKA", name="UK Allowance") | changes
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert message in " ".join(errors[field]), errors
    assert (Market.objects.count(), Balance.objects.count()) == (markets, balances)
    assert not TicketLog.objects.exists()


# ---------------------------------------------------------------------------- markets


def market_form(**changes):
    return {
        "name": "China Emission Allowance",
        "tick_size": "0.01",
        "default_reference_price": "14.00",
        "buy_fee_rate": "0.005",
        "sell_fee_rate": "0",
        "trading_enabled": "on",
    } | changes


def test_market_settings_are_edited_and_audited(staff_client, staff):
    market = Market.objects.get(code="CEA")
    Market.objects.filter(pk=market.pk).update(book_version=41)
    response = staff_client.post(
        url(Market, "change", market.pk),
        market_form(default_reference_price="15.50", buy_fee_rate="0.004"),
    )
    assert response.status_code == 302
    market.refresh_from_db()
    assert (market.default_reference_price, market.buy_fee_rate) == (D("15.50"), D("0.004"))
    assert market.book_version == 41
    ticket = TicketLog.objects.get(action_type="MARKET_SETTINGS_CHANGED")
    assert ticket.user == staff and ticket.before_state["default_reference_price"] == "14.00"
    assert ticket.after_state["default_reference_price"] == "15.50"


def test_market_settings_are_validated_by_the_model(staff_client):
    market = Market.objects.get(code="CEA")
    response = staff_client.post(
        url(Market, "change", market.pk),
        market_form(tick_size="0.05", default_reference_price="14.02"),
    )
    assert response.status_code == 200
    assert "must be on the tick" in response.content.decode()
    market.refresh_from_db()
    assert market.tick_size == D("0.01")
    assert not TicketLog.objects.exists()


def test_tick_cannot_change_under_resting_orders_off_the_new_tick(staff_client):
    trader = factories.trader(EUR="1000.00")
    place(trader, "BUY", price="10.03", quantity=1)
    market = Market.objects.get(code="CEA")
    response = staff_client.post(url(Market, "change", market.pk), market_form(tick_size="0.05"))
    assert response.status_code == 200
    assert "not on a 0.05 tick" in response.content.decode()


def test_a_refusal_by_the_service_after_the_form_check_shows_the_form_again(
    staff_client, monkeypatch
):
    """The form checks the book without its lock; an order arriving before the service
    takes the lock makes the service refuse. The page then shows the form as typed, the
    service's message next to the tick, and nothing is saved."""
    trader = factories.trader(EUR="1000.00")
    market = Market.objects.get(code="CEA")
    monkeypatch.setattr("market.forms.market_settings_check", lambda **kwargs: None)
    place(trader, "BUY", price="10.03", quantity=1)  # the order the form's check missed
    response = staff_client.post(
        url(Market, "change", market.pk),
        market_form(tick_size="0.05", default_reference_price="15.00"),
    )
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert "not on a 0.05 tick" in " ".join(form.errors["tick_size"])
    assert form["default_reference_price"].value() == "15.00"
    market.refresh_from_db()
    assert (market.tick_size, market.default_reference_price) == (D("0.01"), D("14.00"))
    assert not TicketLog.objects.filter(action_type="MARKET_SETTINGS_CHANGED").exists()
    assert not LogEntry.objects.exists()


# ---------------------------------------------------------------------------- orders


def test_cancel_selected_orders_releases_funds_and_writes_tickets(staff_client, staff):
    trader = factories.trader(EUR="1000.00")
    maker = factories.market_maker(AH, CEA=10)
    buy = place(trader, "BUY", price="10.00", quantity=10).order
    sell = place(maker.holder, "SELL", price="20.00", quantity=10).order
    response = staff_client.post(
        url(Order, "changelist"),
        {"action": "cancel_selected", "_selected_action": [buy.pk, sell.pk]},
        follow=True,
    )
    assert "Cancelled 2 order(s)" in response.content.decode()
    for order in (buy, sell):
        order.refresh_from_db()
        assert order.status == Order.Status.CANCELLED and order.reserved == 0
    tickets = TicketLog.objects.filter(action_type="ORDER_CANCELLED").order_by("entity_id")
    assert [t.entity_id for t in tickets] == sorted([str(buy.pk), str(sell.pk)])
    assert all(t.user == staff and t.ticket_id.startswith("TKT-") for t in tickets)
    assert tickets.get(entity_id=str(sell.pk)).market_maker == maker
    assert_all_invariants()


# ---------------------------------------------------------------------------- market makers


def test_add_market_maker_through_the_admin_form_funds_it(staff_client, staff):
    page = staff_client.get(url(MarketMakerClient, "add")).content.decode()
    assert "Initial funding" in page and 'name="eur"' in page and 'name="cea"' in page
    response = staff_client.post(
        url(MarketMakerClient, "add"),
        {"name": "Gamma LP", "mm_type": LP, "description": "", "eur": "250000.00"},
    )
    assert response.status_code == 302, response.content.decode()
    maker = MarketMakerClient.objects.get(name="Gamma LP")
    assert maker.code == f"MM-{maker.pk:03d}" and maker.created_by == staff
    assert Balance.objects.get(holder=maker.holder, asset="EUR").available == D("250000.00")
    ticket = TicketLog.objects.get(action_type="MM_CREATED")
    assert ticket.user == staff and ticket.ip_address == "127.0.0.1"
    page = staff_client.get(response.url).content.decode()
    assert "€250,000.00" in page
    assert LogEntry.objects.get(object_id=str(maker.pk)).is_addition()
    assert_all_invariants()


def test_add_form_refuses_an_amount_with_a_thousands_separator(staff_client):
    response = staff_client.post(
        url(MarketMakerClient, "add"), {"name": "Comma LP", "mm_type": LP, "eur": "250,000.00"}
    )
    assert response.status_code == 200
    assert "no thousands separators" in response.content.decode()
    assert not MarketMakerClient.objects.exists()


def test_add_form_refuses_type_mismatched_funding(staff_client):
    response = staff_client.post(
        url(MarketMakerClient, "add"),
        {"name": "Wrong", "mm_type": LP, "cea": "100", "eur": "1.001"},
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "funded in EUR only" in page and "2 decimal places" in page
    assert (
        not MarketMakerClient.objects.exists()
        and not Holder.objects.filter(kind="MARKET_MAKER").exists()
    )


def test_add_asset_holder_with_certificates(staff_client):
    response = staff_client.post(
        url(MarketMakerClient, "add"),
        {"name": "Delta AH", "mm_type": AH, "cea": "20000", "eua": "5000"},
    )
    assert response.status_code == 302
    maker = MarketMakerClient.objects.get(name="Delta AH")
    assert Balance.objects.get(holder=maker.holder, asset="EUA").available == 5000


def test_change_form_edits_name_and_audits(staff_client, staff):
    maker = factories.market_maker(LP, EUR="10")
    response = staff_client.post(
        url(MarketMakerClient, "change", maker.pk), {"name": "Renamed", "description": "x"}
    )
    assert response.status_code == 302
    maker.refresh_from_db()
    assert maker.name == "Renamed" and maker.holder.name == "Renamed"
    assert maker.mm_type == LP and maker.is_active
    assert TicketLog.objects.get(action_type="MM_UPDATED").before_state["name"] != "Renamed"


def test_fund_and_withdraw_pages(staff_client, staff):
    maker = factories.market_maker(LP, EUR="100.00")
    fund_url = url(MarketMakerClient, "fund", maker.pk)
    page = staff_client.get(fund_url).content.decode()
    assert "€100.00" in page and 'value="CEA"' not in page

    response = staff_client.post(fund_url, {"asset": "EUR", "amount": "1,000.50"})
    assert "no thousands separators" in response.content.decode()
    response = staff_client.post(fund_url, {"asset": "EUR", "amount": "1000.50"}, follow=True)
    assert f"Deposited €1,000.50 into {maker.code}" in response.content.decode()
    assert Balance.objects.get(holder=maker.holder, asset="EUR").available == D("1100.50")

    withdraw_url = url(MarketMakerClient, "withdraw", maker.pk)
    response = staff_client.post(withdraw_url, {"asset": "EUR", "amount": "5000"})
    assert response.status_code == 200
    assert "available to withdraw" in response.content.decode()
    response = staff_client.post(withdraw_url, {"asset": "EUR", "amount": "100.50"})
    assert response.status_code == 302
    assert Balance.objects.get(holder=maker.holder, asset="EUR").available == D("1000.00")
    actions = TicketLog.objects.values_list("action_type", flat=True)
    assert {"MM_FUNDED", "MM_WITHDRAWN"} <= set(actions)
    # Each action is in the maker's History, with its ticket.
    history = [
        entry.get_change_message()
        for entry in LogEntry.objects.filter(object_id=str(maker.pk)).order_by("pk")
    ]
    assert history[0].startswith(f"Deposited €1,000.50 into {maker.code} (TKT-")
    assert history[1].startswith(f"Withdrew €100.50 from {maker.code} (TKT-")
    assert_all_invariants()


def test_deactivate_page_needs_confirmation_with_open_orders(staff_client, staff):
    maker = factories.market_maker(LP, EUR="1000.00")
    order = place(maker.holder, "BUY", price="10.00", quantity=10).order
    deactivate_url = url(MarketMakerClient, "deactivate", maker.pk)
    response = staff_client.post(deactivate_url, {})
    assert response.status_code == 200
    assert "1 open order" in response.content.decode()
    maker.refresh_from_db()
    assert maker.is_active

    response = staff_client.post(deactivate_url, {"cancel_open_orders": "on"})
    assert response.status_code == 302
    maker.refresh_from_db()
    order.refresh_from_db()
    assert not maker.is_active and order.status == Order.Status.CANCELLED
    assert Balance.objects.get(holder=maker.holder, asset="EUR").locked == 0
    assert_all_invariants()


def test_deactivate_action_with_intermediate_confirmation(staff_client):
    makers = [factories.market_maker(AH, CEA=10) for _ in range(2)]
    place(makers[0].holder, "SELL", price="20.00", quantity=5)
    changelist = url(MarketMakerClient, "changelist")
    selection = {"action": "deactivate_selected", "_selected_action": [m.pk for m in makers]}

    page = staff_client.post(changelist, selection).content.decode()
    assert "Cancel its open orders" in page and makers[0].code in page

    response = staff_client.post(changelist, selection | {"apply": "yes"})
    assert "confirm cancelling them" in response.content.decode()
    assert MarketMakerClient.objects.filter(is_active=True).count() == 1  # the one without orders

    response = staff_client.post(
        changelist, selection | {"apply": "yes", "cancel_open_orders": "on"}
    )
    assert response.status_code == 302
    assert not MarketMakerClient.objects.filter(is_active=True).exists()
    assert_all_invariants()


def test_fund_selected_action(staff_client):
    makers = [factories.market_maker(AH, CEA=1) for _ in range(3)]
    changelist = url(MarketMakerClient, "changelist")
    selection = {"action": "fund_selected", "_selected_action": [m.pk for m in makers]}
    assert "Amount each" in staff_client.post(changelist, selection).content.decode()

    response = staff_client.post(
        changelist, selection | {"apply": "yes", "asset": "CEA", "amount": "1.5"}
    )
    assert "whole units" in response.content.decode()

    response = staff_client.post(
        changelist, selection | {"apply": "yes", "asset": "EUA", "amount": "1,000"}
    )
    assert "without separators" in response.content.decode()
    response = staff_client.post(
        changelist, selection | {"apply": "yes", "asset": "EUA", "amount": "1000"}
    )
    assert response.status_code == 302
    assert [Balance.objects.get(holder=m.holder, asset="EUA").available for m in makers] == [
        1000
    ] * 3
    assert TicketLog.objects.filter(action_type="MM_FUNDED").count() == 3


def test_market_makers_cannot_be_deleted(staff_client):
    maker = factories.market_maker(LP)
    assert staff_client.get(url(MarketMakerClient, "delete", maker.pk)).status_code == 403


def test_non_staff_cannot_reach_the_maker_pages(client):
    maker = factories.market_maker(LP)
    user = factories.UserFactory()
    client.force_login(user)
    response = client.post(url(MarketMakerClient, "fund", maker.pk), {"asset": "EUR"})
    assert response.status_code == 302 and "/login/" in response.url


def test_reactivate_page_and_service_are_audited(staff_client, staff):
    maker = factories.market_maker(LP, EUR="100.00")
    reactivate_url = url(MarketMakerClient, "reactivate", maker.pk)
    response = staff_client.post(reactivate_url, {})
    assert "already active" in response.content.decode()
    assert not TicketLog.objects.filter(action_type="MM_REACTIVATED").exists()

    staff_client.post(url(MarketMakerClient, "deactivate", maker.pk), {})
    page = staff_client.get(url(MarketMakerClient, "change", maker.pk)).content.decode()
    assert reactivate_url in page

    response = staff_client.post(reactivate_url, {}, follow=True)
    assert "Reactivated " + maker.code in response.content.decode()
    maker.refresh_from_db()
    assert maker.is_active
    ticket = TicketLog.objects.get(action_type="MM_REACTIVATED")
    assert ticket.user == staff and ticket.market_maker == maker
    assert ticket.ip_address == "127.0.0.1"
    assert (ticket.before_state, ticket.after_state) == ({"is_active": False}, {"is_active": True})
    assert Balance.objects.get(holder=maker.holder, asset="EUR").available == D("100.00")


def test_reactivate_service_refuses_an_active_maker(staff):
    maker = factories.market_maker(AH, CEA=5)
    with pytest.raises(ValidationError, match="already active"):
        market_maker_reactivate(market_maker=maker, actor=staff)
    market_maker_deactivate(market_maker=maker, actor=staff, cancel_open_orders=False)
    ticket = market_maker_reactivate(market_maker=maker, actor=staff, ip="10.0.0.1")
    assert maker.is_active and MarketMakerClient.objects.get(pk=maker.pk).is_active
    assert ticket.ticket_id.startswith("TKT-") and ticket.ip_address == "10.0.0.1"
    assert ticket.entity_type == "MarketMakerClient" and ticket.entity_id == str(maker.pk)


def test_reactivate_selected_action(staff_client, staff):
    makers = [factories.market_maker(AH, CEA=1) for _ in range(3)]
    for maker in makers[:2]:
        market_maker_deactivate(market_maker=maker, actor=staff, cancel_open_orders=False)
    response = staff_client.post(
        url(MarketMakerClient, "changelist"),
        {"action": "reactivate_selected", "_selected_action": [m.pk for m in makers]},
        follow=True,
    )
    page = response.content.decode()
    assert "Reactivated" in page and "1 selected market maker(s) were already active" in page
    assert MarketMakerClient.objects.filter(is_active=True).count() == 3
    assert TicketLog.objects.filter(action_type="MM_REACTIVATED").count() == 2


# ---------------------------------------------------------------------------- traders


@pytest.fixture
def funder(db):
    """Staff with only the permissions a funding clerk needs: no superuser."""
    user = factories.UserFactory(is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="market", codename__in=["view_holder", "change_balance"]
        )
    )
    return user


def balance(holder, asset):
    return Balance.objects.get(holder=holder, asset=asset)


def test_trader_change_page_has_deposit_and_withdraw_buttons(staff_client):
    trader = factories.trader(EUR="10.00")
    maker = factories.market_maker(LP)
    page = staff_client.get(url(Holder, "change", trader.pk)).content.decode()
    assert url(Holder, "deposit", trader.pk) in page and url(Holder, "withdraw", trader.pk) in page
    page = staff_client.get(url(Holder, "change", maker.holder_id)).content.decode()
    assert "/deposit/" not in page
    # Only traders: a market maker's holder is funded through the market-maker pages.
    assert staff_client.get(url(Holder, "deposit", maker.holder_id)).status_code == 404


def test_deposit_and_withdraw_for_a_trader(client, funder):
    client.force_login(funder)
    trader = factories.trader()
    deposit_url = url(Holder, "deposit", trader.pk)
    page = client.get(deposit_url).content.decode()
    assert 'value="CEA"' in page and 'name="note"' in page and "€0.00" in page

    response = client.post(
        deposit_url, {"asset": "EUR", "amount": "1250.50", "note": "wire 42"}, follow=True
    )
    assert "Available EUR: €1,250.50." in response.content.decode()
    history = LogEntry.objects.get(object_id=str(trader.pk), content_type__model="holder")
    assert history.get_change_message().startswith(f"Deposited €1,250.50 into {trader} (TKT-")
    assert balance(trader, "EUR").available == D("1250.50")
    ticket = TicketLog.objects.get(action_type="DEPOSIT", entity_id=str(trader.pk))
    assert ticket.user == funder and ticket.ip_address == "127.0.0.1"
    assert ticket.request_payload == {"asset": "EUR", "amount": "1250.50", "note": "wire 42"}
    assert LedgerEntry.objects.get(holder=trader, ticket=ticket).available_delta == D("1250.50")

    client.post(deposit_url, {"asset": "CEA", "amount": "30"})
    response = client.post(
        url(Holder, "withdraw", trader.pk), {"asset": "CEA", "amount": "12"}, follow=True
    )
    assert "Withdrew 12 CEA from" in response.content.decode()
    assert "Available CEA: 18." in response.content.decode()
    assert balance(trader, "CEA").available == 18
    ticket = TicketLog.objects.get(action_type="WITHDRAWAL")
    assert ticket.user == funder and ticket.before_state["available"] == "30.00"
    assert_all_invariants()


@pytest.mark.parametrize(
    ("view", "asset", "amount", "message"),
    [
        ("deposit", "EUR", "-5", "Must be greater than zero."),
        ("deposit", "EUR", "0", "Must be greater than zero."),
        ("deposit", "EUR", "NaN", "Use a point for decimals and no thousands separators"),
        ("deposit", "EUR", "Infinity", "Use a point for decimals"),
        ("deposit", "EUR", "abc", "Use a point for decimals"),
        ("deposit", "EUR", "1,250.50", "no thousands separators, e.g. 13.50."),
        ("deposit", "EUR", "10.000,00", "Use a point for decimals"),
        ("deposit", "EUR", "1e4", "Use a point for decimals"),
        ("deposit", "CEA", "1,5", "Enter a whole number in digits"),
        ("deposit", "CEA", "١٢", "Enter a whole number in digits"),
        ("deposit", "EUR", "1.001", "Use at most 2 decimal places."),
        ("deposit", "CEA", "1.5", "Certificates are whole units"),
        ("deposit", "EUA", "", "This field is required."),
        ("deposit", "XYZ", "1", "Select a valid choice."),
        ("withdraw", "EUR", "100.01", "Insufficient EUR"),
        ("withdraw", "CEA", "11", "Insufficient CEA"),
        ("withdraw", "EUR", "-1", "Must be greater than zero."),
        ("withdraw", "EUA", "0.5", "Certificates are whole units"),
    ],
)
def test_bad_trader_transfers_show_the_error_and_change_nothing(
    staff_client, view, asset, amount, message
):
    trader = factories.trader(EUR="100.00", CEA=10)
    place(trader, "BUY", price="5.00", quantity=10)  # €50.25 of the €100 locked
    before = list(Balance.objects.filter(holder=trader).values_list("available", "locked"))
    entries, tickets = LedgerEntry.objects.count(), TicketLog.objects.count()

    response = staff_client.post(url(Holder, view, trader.pk), {"asset": asset, "amount": amount})
    assert response.status_code == 200
    page = response.content.decode()
    assert message in page
    assert '<ul class="errorlist' in page  # inline, next to the field
    assert list(Balance.objects.filter(holder=trader).values_list("available", "locked")) == before
    assert (LedgerEntry.objects.count(), TicketLog.objects.count()) == (entries, tickets)


def test_withdrawing_more_than_available_leaves_locked_funds_alone(staff_client):
    trader = factories.trader(EUR="100.00")
    place(trader, "BUY", price="5.00", quantity=10)
    available = balance(trader, "EUR").available
    response = staff_client.post(
        url(Holder, "withdraw", trader.pk), {"asset": "EUR", "amount": str(available + 1)}
    )
    assert "Insufficient EUR" in response.content.decode()
    response = staff_client.post(
        url(Holder, "withdraw", trader.pk), {"asset": "EUR", "amount": str(available)}
    )
    assert response.status_code == 302
    assert balance(trader, "EUR").available == 0 and balance(trader, "EUR").locked > 0
    assert_all_invariants()


def test_staff_without_the_balance_permission_gets_403(client):
    clerk = factories.UserFactory(is_staff=True)
    clerk.user_permissions.add(
        Permission.objects.get(content_type__app_label="market", codename="view_holder")
    )
    client.force_login(clerk)
    trader = factories.trader(EUR="100.00")
    page = client.get(url(Holder, "change", trader.pk)).content.decode()
    assert "/deposit/" not in page and "/withdraw/" not in page
    for view in ("deposit", "withdraw"):
        assert client.get(url(Holder, view, trader.pk)).status_code == 403
        response = client.post(url(Holder, view, trader.pk), {"asset": "EUR", "amount": "5"})
        assert response.status_code == 403
    assert balance(trader, "EUR").available == D("100.00")
    assert not TicketLog.objects.filter(user=clerk).exists()


def test_holder_changelist_filters_by_kind_and_shows_balances(staff_client):
    trader = factories.trader(EUR="1234.56", CEA=7, EUA=1500)
    maker = factories.market_maker(LP, EUR="99.00")
    page = staff_client.get(url(Holder, "changelist"), {"kind__exact": "TRADER"}).content.decode()
    assert trader.name in page and maker.name not in page
    assert "€1,234.56 / €0.00" in page and "7 / 0" in page and "1,500 / 0" in page

    def count():
        with CaptureQueriesContext(connection) as queries:
            assert staff_client.get(url(Holder, "changelist")).status_code == 200
        return len(queries)

    few = count()
    for _ in range(5):
        factories.trader(EUR="1.00", CEA=1)
    assert count() == few


def test_an_inactive_makers_fund_and_deactivate_pages_refuse_when_they_open(staff_client, staff):
    maker = factories.market_maker(LP, EUR="10")
    market_maker_deactivate(market_maker=maker, actor=staff, cancel_open_orders=False)
    tickets = TicketLog.objects.count()
    for view, reason in (
        ("fund", "is inactive, so it cannot be funded"),
        ("deactivate", "is already inactive: there is nothing to deactivate"),
    ):
        for method in ("get", "post"):
            response = getattr(staff_client, method)(
                url(MarketMakerClient, view, maker.pk),
                {"asset": "EUR", "amount": "5", "cancel_open_orders": "on"},
                follow=True,
            )
            assert response.redirect_chain[-1][0] == url(MarketMakerClient, "change", maker.pk)
            assert reason in response.content.decode()
    assert TicketLog.objects.count() == tickets
    assert Balance.objects.get(holder=maker.holder, asset="EUR").available == D("10")


@pytest.mark.parametrize("action", ["deactivate_selected", "fund_selected"])
def test_bulk_actions_act_on_the_active_makers_and_count_the_skipped(staff_client, action):
    active = [factories.market_maker(LP) for _ in range(2)]
    inactive = factories.market_maker(LP)
    MarketMakerClient.objects.filter(pk=inactive.pk).update(is_active=False)
    changelist = url(MarketMakerClient, "changelist")
    selection = {"action": action, "_selected_action": [m.pk for m in [*active, inactive]]}

    page = staff_client.post(changelist, selection).content.decode()
    assert f"Skipped 1 inactive market maker(s): {inactive.code}." in page
    assert all(maker.code in page for maker in active)
    assert f'name="_selected_action" value="{inactive.pk}"' not in page

    apply = {"apply": "yes", "asset": "EUR", "amount": "100"}
    response = staff_client.post(changelist, selection | apply, follow=True)
    assert f"Skipped 1 inactive market maker(s): {inactive.code}." in response.content.decode()
    if action == "fund_selected":
        assert [Balance.objects.get(holder=m.holder, asset="EUR").available for m in active] == [
            D("100")
        ] * 2
        assert Balance.objects.get(holder=inactive.holder, asset="EUR").available == 0
        assert TicketLog.objects.filter(action_type="MM_FUNDED").count() == 2
    else:
        assert not MarketMakerClient.objects.filter(is_active=True).exists()
        assert TicketLog.objects.filter(action_type="MM_DEACTIVATED").count() == 2

    # A selection of inactive makers only: refused, nothing written.
    tickets = TicketLog.objects.count()
    only_inactive = {"action": action, "_selected_action": [inactive.pk]}
    response = staff_client.post(changelist, only_inactive | apply, follow=True)
    assert "None of the selected market makers is active" in response.content.decode()
    assert TicketLog.objects.count() == tickets
