"""Market-maker services: create, bulk create, edit, fund, withdraw, deactivate."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from market.models import Balance, Holder, LedgerEntry, MarketMakerClient, Order, TicketLog
from market.selectors import market_maker_rows
from market.services.market_makers import (
    market_maker_create,
    market_maker_deactivate,
    market_maker_fund,
    market_maker_withdraw,
    market_makers_create_bulk,
    market_makers_fund_bulk,
)
from market.services.orders import order_place, order_request_parse
from market.tests import factories
from market.tests.helpers import assert_all_invariants

D = Decimal
LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER
pytestmark = pytest.mark.django_db
# Django 5.2 caps a SQLite statement at 999 parameters, so bulk inserts of more than ~70
# tickets are split in two; PostgreSQL takes the full 100 in one statement.
LARGE = 100 if connection.vendor == "postgresql" else 60


@pytest.fixture
def staff(db):
    return factories.StaffFactory()


def balance(maker, asset):
    row = Balance.objects.get(holder_id=maker.holder_id, asset=asset)
    return row.available, row.locked


def snapshot():
    """Everything a refused call must leave unchanged."""
    return (
        MarketMakerClient.objects.count(),
        Holder.objects.count(),
        Balance.objects.count(),
        TicketLog.objects.count(),
        LedgerEntry.objects.count(),
        sorted(Balance.objects.values_list("holder_id", "asset", "available", "locked")),
        sorted(MarketMakerClient.objects.values_list("pk", "is_active")),
    )


def place(holder, side, market="CEA", **fields):
    request = order_request_parse(market_code=market, side=side, order_type="LIMIT", **fields)
    return order_place(owner=holder, request=request)


# ---------------------------------------------------------------------------- create


def test_create_liquidity_provider_funds_it_and_writes_one_ticket(staff):
    created = market_maker_create(
        name="  Alpha LP ",
        mm_type=LP,
        description="house bids",
        funding={"EUR": "250000.00"},
        created_by=staff,
        ip="10.0.0.7",
    )
    maker = created.market_maker
    maker.refresh_from_db()
    assert maker.code == f"MM-{maker.pk:03d}" and maker.name == "Alpha LP"
    assert maker.holder.kind == Holder.Kind.MARKET_MAKER and maker.holder.name == "Alpha LP"
    assert maker.is_active and maker.created_by == staff
    assert balance(maker, "EUR") == (D("250000.00"), D("0"))
    assert balance(maker, "CEA") == (D("0"), D("0"))

    ticket = TicketLog.objects.get(action_type="MM_CREATED")
    assert ticket.ticket_id.startswith("TKT-") and len(ticket.ticket_id) == 15
    assert (ticket.user, ticket.market_maker, ticket.ip_address) == (staff, maker, "10.0.0.7")
    assert ticket.entity_type == "MarketMakerClient" and ticket.entity_id == str(maker.pk)
    assert ticket.request_payload["funding"] == {"EUR": "250000.00"}
    assert ticket.before_state == {}
    assert ticket.after_state["code"] == maker.code
    assert ticket.after_state["balances"]["EUR"] == {"available": "250000.00", "locked": "0.00"}
    # The ticket is the ledger entry's cause, and no other ticket was written.
    entry = LedgerEntry.objects.get(holder=maker.holder)
    assert (entry.kind, entry.ticket, entry.available_delta) == ("DEPOSIT", ticket, D("250000"))
    assert TicketLog.objects.count() == 1
    assert created.ticket == ticket
    assert_all_invariants()


def test_create_asset_holder_with_both_certificates(staff):
    created = market_maker_create(
        name="Beta AH", mm_type=AH, funding={"cea": 20000, "EUA": "5000"}, created_by=staff
    )
    maker = created.market_maker
    assert balance(maker, "CEA") == (D("20000"), D("0"))
    assert balance(maker, "EUA") == (D("5000"), D("0"))
    assert balance(maker, "EUR") == (D("0"), D("0"))
    assert LedgerEntry.objects.filter(ticket=created.ticket).count() == 2
    assert_all_invariants()


def test_create_without_funding_is_allowed(staff):
    created = market_maker_create(name="Empty", mm_type=AH, created_by=None)
    assert balance(created.market_maker, "CEA") == (D("0"), D("0"))
    assert not LedgerEntry.objects.exists()
    assert created.ticket.user is None


def test_codes_are_unique_and_padded(staff):
    makers = [
        market_maker_create(name=f"M{i}", mm_type=LP, created_by=staff).market_maker
        for i in range(3)
    ]
    codes = [maker.code for maker in makers]
    assert len(set(codes)) == 3
    # Zero-padded to three digits at least; PostgreSQL sequences do not rewind between
    # tests, so the number itself depends on what ran before.
    assert codes == [f"MM-{maker.pk:03d}" for maker in makers]
    assert codes == list(
        MarketMakerClient.objects.filter(pk__in=[m.pk for m in makers])
        .order_by("pk")
        .values_list("code", flat=True)
    )


@pytest.mark.parametrize(
    ("mm_type", "funding", "field", "text"),
    [
        (LP, {"CEA": "10"}, "cea", "liquidity provider is funded in EUR only"),
        (LP, {"EUR": "10", "EUA": "5"}, "eua", "liquidity provider is funded in EUR only"),
        (AH, {"EUR": "100.00"}, "eur", "asset holder is funded in certificates"),
    ],
)
def test_type_specific_funding_is_refused_and_nothing_is_created(
    staff, mm_type, funding, field, text
):
    before = snapshot()
    with pytest.raises(ValidationError) as error:
        market_maker_create(name="Wrong", mm_type=mm_type, funding=funding, created_by=staff)
    assert text in " ".join(error.value.message_dict[field])
    assert snapshot() == before


@pytest.mark.parametrize(
    ("mm_type", "funding", "field", "text"),
    [
        (LP, {"EUR": "-5"}, "eur", "greater than zero"),
        (LP, {"EUR": "0"}, "eur", "greater than zero"),
        (LP, {"EUR": "NaN"}, "eur", "Use a point for decimals"),
        (LP, {"EUR": "Infinity"}, "eur", "Use a point for decimals"),
        (LP, {"EUR": "10.001"}, "eur", "2 decimal places"),
        (LP, {"EUR": 10.5}, "eur", "not floating point"),
        (LP, {"EUR": "abc"}, "eur", "Use a point for decimals"),
        (LP, {"EUR": "1e13"}, "eur", "Use a point for decimals"),
        (LP, {"EUR": "10000000000000"}, "eur", "at most"),
        (LP, {"EUR": "250,000.00"}, "eur", "no thousands separators"),
        (AH, {"EUA": "5,000"}, "eua", "without separators"),
        (AH, {"CEA": "٥"}, "cea", "in digits"),
        (AH, {"CEA": "1.5"}, "cea", "whole units"),
        (AH, {"EUA": "100000001"}, "eua", "at most"),
        (AH, {"XYZ": "1"}, "funding", "Unknown asset"),
    ],
)
def test_bad_funding_is_refused_and_nothing_is_created(staff, mm_type, funding, field, text):
    before = snapshot()
    with pytest.raises(ValidationError) as error:
        market_maker_create(name="Bad", mm_type=mm_type, funding=funding, created_by=staff)
    assert text in " ".join(error.value.message_dict[field])
    assert snapshot() == before


def test_bad_identity_reports_every_field(staff):
    with pytest.raises(ValidationError) as error:
        market_maker_create(name="  ", mm_type="BROKER", created_by=staff)
    assert set(error.value.message_dict) == {"name", "mm_type"}
    with pytest.raises(ValidationError) as error:
        market_maker_create(name="x" * 151, mm_type=LP, created_by=staff)
    assert "name" in error.value.message_dict
    assert not MarketMakerClient.objects.exists()


# ---------------------------------------------------------------------------- bulk create


def test_bulk_create_splits_eur_to_the_cent(staff):
    results = market_makers_create_bulk(
        count=3,
        mm_type=LP,
        asset="EUR",
        total_amount="1000.00",
        name_prefix="Auto LP",
        created_by=staff,
        ip="127.0.0.1",
    )
    makers = [result.market_maker for result in results]
    assert [maker.name for maker in makers] == ["Auto LP 1", "Auto LP 2", "Auto LP 3"]
    assert [balance(maker, "EUR")[0] for maker in makers] == [
        D("333.34"),
        D("333.33"),
        D("333.33"),
    ]
    for maker, ticket in ((result.market_maker, result.ticket) for result in results):
        stored = MarketMakerClient.objects.get(pk=maker.pk)
        assert stored.code == maker.code == f"MM-{maker.pk:03d}"
        assert stored.holder.kind == Holder.Kind.MARKET_MAKER
        assert ticket.ticket_id.startswith("TKT-")
        assert ticket.action_type == "MM_CREATED"
        assert ticket.market_maker_id == maker.pk and ticket.user == staff
        assert LedgerEntry.objects.get(holder=maker.holder_id).ticket_id == ticket.pk
        # A balance row per asset: EUR and each market's certificate.
        assert Balance.objects.filter(holder_id=maker.holder_id).count() == 3
    assert len({result.ticket.ticket_id for result in results}) == 3
    assert_all_invariants()


def test_bulk_create_gives_whole_certificates_and_the_exact_total(staff):
    makers = [
        result.market_maker
        for result in market_makers_create_bulk(
            count=4, mm_type=AH, asset="EUA", total_amount=10, name_prefix="AH", created_by=staff
        )
    ]
    assert [balance(maker, "EUA")[0] for maker in makers] == [3, 3, 2, 2]
    assert sum(balance(maker, "EUA")[0] for maker in makers) == 10
    assert_all_invariants()


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"mm_type": LP, "asset": "CEA"}, "asset"),
        ({"mm_type": AH, "asset": "EUR"}, "asset"),
        ({"count": 0}, "count"),
        ({"count": 501}, "count"),
        ({"count": True}, "count"),
        ({"count": "lots"}, "count"),
        ({"count": "٣"}, "count"),
        ({"count": "1e2"}, "count"),
        ({"total_amount": "0.02", "count": 3}, "total_amount"),
        ({"total_amount": "-1"}, "amount"),
        ({"total_amount": "1.001"}, "amount"),
        ({"asset": "GBP"}, "asset"),
        ({"name_prefix": ""}, "name_prefix"),
    ],
)
def test_bulk_create_refuses_bad_input_and_creates_nothing(staff, fields, key):
    arguments = {
        "count": 2,
        "mm_type": LP,
        "asset": "EUR",
        "total_amount": "100.00",
        "name_prefix": "X",
        "created_by": staff,
    } | fields
    before = snapshot()
    with pytest.raises(ValidationError) as error:
        market_makers_create_bulk(**arguments)
    assert key in error.value.message_dict
    assert snapshot() == before


def test_bulk_create_runs_a_constant_number_of_queries(staff, django_assert_num_queries):
    def create(count, prefix):
        results = market_makers_create_bulk(
            count=count,
            mm_type=AH,
            asset="CEA",
            total_amount=count * 7 + 3,
            name_prefix=prefix,
            created_by=staff,
        )
        return [result.market_maker for result in results]

    create(1, "Warm")  # once per process: the id sequence's name is looked up and kept
    with CaptureQueriesContext(connection) as small:
        create(10, "Small")
    with django_assert_num_queries(len(small)):
        makers = create(LARGE, "Large")
    assert len(makers) == LARGE
    assert sum(balance(maker, "CEA")[0] for maker in makers) == LARGE * 7 + 3
    assert_all_invariants()


# ---------------------------------------------------------------------------- fund


def test_fund_deposits_and_writes_a_ticket(staff):
    maker = factories.market_maker(LP, EUR="100.00")
    ticket = market_maker_fund(
        market_maker=maker, asset="EUR", amount="1234.56", actor=staff, ip="10.1.1.1"
    )
    assert balance(maker, "EUR") == (D("1334.56"), D("0"))
    assert ticket.action_type == "MM_FUNDED" and ticket.ticket_id.startswith("TKT-")
    assert (ticket.user, ticket.market_maker, ticket.ip_address) == (staff, maker, "10.1.1.1")
    assert ticket.request_payload["amount"] == "1234.56"
    assert ticket.before_state["balances"]["EUR"]["available"] == "100.00"
    assert ticket.after_state["balances"]["EUR"]["available"] == "1334.56"
    assert LedgerEntry.objects.get(ticket=ticket).available_delta == D("1234.56")
    assert_all_invariants()


@pytest.mark.parametrize(
    ("mm_type", "asset", "amount", "key"),
    [
        (LP, "CEA", "10", "asset"),
        (AH, "EUR", "10.00", "asset"),
        (LP, "EUR", "0", "amount"),
        (LP, "EUR", "-1", "amount"),
        (LP, "EUR", "nan", "amount"),
        (LP, "EUR", "0.001", "amount"),
        (LP, "EUR", "10000000000000", "amount"),
        (AH, "CEA", "2.5", "amount"),
        (AH, "XYZ", "1", "asset"),
    ],
)
def test_fund_refuses_bad_input_and_changes_nothing(staff, mm_type, asset, amount, key):
    maker = factories.market_maker(mm_type)
    before = snapshot()
    with pytest.raises(ValidationError) as error:
        market_maker_fund(market_maker=maker, asset=asset, amount=amount, actor=staff)
    assert key in error.value.message_dict
    assert snapshot() == before


def test_an_inactive_market_maker_cannot_be_funded(staff):
    maker = factories.market_maker(LP)
    market_maker_deactivate(market_maker=maker, actor=staff, cancel_open_orders=False)
    before = snapshot()
    with pytest.raises(ValidationError, match=f"{maker.code} is inactive, so it cannot be funded"):
        market_maker_fund(market_maker=maker, asset="EUR", amount="10", actor=staff)
    assert snapshot() == before


def test_fund_bulk_gives_each_the_same_amount(staff):
    makers = [factories.market_maker(AH, CEA=i + 1) for i in range(3)]
    tickets = market_makers_fund_bulk(
        market_makers=makers, asset="CEA", amount_each="100", actor=staff
    )
    assert [balance(maker, "CEA")[0] for maker in makers] == [101, 102, 103]
    assert [ticket.market_maker_id for ticket in tickets] == [maker.pk for maker in makers]
    assert all(ticket.ticket_id.startswith("TKT-") for ticket in tickets)
    assert_all_invariants()


def test_fund_bulk_splits_a_total_exactly_among_the_makers(staff):
    makers = [factories.market_maker(LP) for _ in range(3)]
    tickets = market_makers_fund_bulk(
        market_makers=reversed(makers), asset="EUR", total_amount="100000", actor=staff
    )
    # To the cent, adding up to the total; the first makers (by id) get the odd cent.
    assert [balance(maker, "EUR")[0] for maker in makers] == [
        D("33333.34"),
        D("33333.33"),
        D("33333.33"),
    ]
    assert [ticket.request_payload["amount"] for ticket in tickets] == [
        "33333.34",
        "33333.33",
        "33333.33",
    ]
    assert {ticket.user for ticket in tickets} == {staff}
    assert tickets[0].request_payload["split"] == {"total_amount": "100000.00", "makers": 3}
    holders = [factories.market_maker(AH) for _ in range(2)]
    market_makers_fund_bulk(market_makers=holders, asset="CEA", total_amount=5, actor=staff)
    assert [balance(maker, "CEA")[0] for maker in holders] == [3, 2]  # whole certificates
    assert_all_invariants()


def test_fund_bulk_refuses_a_total_too_small_to_split_and_changes_nothing(staff):
    makers = [factories.market_maker(LP) for _ in range(3)]
    before = snapshot()
    with pytest.raises(ValidationError) as error:
        market_makers_fund_bulk(
            market_makers=makers, asset="EUR", total_amount="0.02", actor=staff
        )
    assert "cannot give each of 3" in error.value.message_dict["total_amount"][0]
    with pytest.raises(ValidationError) as error:
        market_makers_fund_bulk(
            market_makers=makers, asset="EUR", total_amount="1,000", actor=staff
        )
    assert "total_amount" in error.value.message_dict
    assert snapshot() == before


def test_fund_bulk_with_an_inactive_maker_refuses_all_and_names_it(staff):
    active, inactive = factories.market_maker(LP), factories.market_maker(LP)
    market_maker_deactivate(market_maker=inactive, actor=staff, cancel_open_orders=False)
    before = snapshot()
    with pytest.raises(ValidationError, match=f"{inactive.code} is inactive"):
        market_makers_fund_bulk(
            market_makers=[active, inactive], asset="EUR", total_amount="10", actor=staff
        )
    assert snapshot() == before


def test_fund_bulk_refuses_a_mixed_selection_entirely(staff):
    makers = [factories.market_maker(AH), factories.market_maker(LP)]
    before = snapshot()
    with pytest.raises(ValidationError) as error:
        market_makers_fund_bulk(market_makers=makers, asset="EUA", amount_each="1", actor=staff)
    assert "asset" in error.value.message_dict
    assert snapshot() == before
    with pytest.raises(ValidationError, match="at least one"):
        market_makers_fund_bulk(market_makers=[], asset="EUA", amount_each="1", actor=staff)


def test_fund_bulk_runs_a_constant_number_of_queries(staff, django_assert_num_queries):
    makers = [
        result.market_maker
        for result in market_makers_create_bulk(
            count=LARGE,
            mm_type=LP,
            asset="EUR",
            total_amount=LARGE,
            name_prefix="LP",
            created_by=staff,
        )
    ]
    with CaptureQueriesContext(connection) as small:
        market_makers_fund_bulk(
            market_makers=makers[:10], asset="EUR", amount_each="5", actor=staff
        )
    with django_assert_num_queries(len(small)):
        market_makers_fund_bulk(market_makers=makers, asset="EUR", amount_each="5", actor=staff)
    assert balance(makers[0], "EUR")[0] == D("11.00")
    assert balance(makers[-1], "EUR")[0] == D("6.00")
    assert_all_invariants()


# ---------------------------------------------------------------------------- withdraw


def test_withdraw_takes_available_funds_only(staff, cea):
    maker = factories.market_maker(LP, EUR="1000.00")
    place(maker.holder, "BUY", price="10.00", quantity=60)  # market makers pay no fee
    assert balance(maker, "EUR") == (D("400.00"), D("600.00"))

    before = snapshot()
    with pytest.raises(ValidationError) as error:
        market_maker_withdraw(market_maker=maker, asset="EUR", amount="400.01", actor=staff)
    text = " ".join(error.value.message_dict["amount"])
    assert "€400.00 available" in text and "€600.00 is locked behind open orders" in text
    assert snapshot() == before

    ticket = market_maker_withdraw(
        market_maker=maker, asset="EUR", amount="400.00", actor=staff, ip="10.0.0.1"
    )
    assert balance(maker, "EUR") == (D("0.00"), D("600.00"))
    assert ticket.action_type == "MM_WITHDRAWN" and ticket.market_maker == maker
    assert ticket.before_state["balances"]["EUR"] == {"available": "400.00", "locked": "600.00"}
    assert ticket.after_state["balances"]["EUR"] == {"available": "0.00", "locked": "600.00"}
    entry = LedgerEntry.objects.get(ticket=ticket)
    assert (entry.kind, entry.available_delta) == ("WITHDRAWAL", D("-400.00"))
    assert_all_invariants()


def test_a_liquidity_provider_can_withdraw_certificates_it_bought(staff, cea):
    maker = factories.market_maker(LP, EUR="1000.00")
    seller = factories.trader(CEA=5)
    place(seller, "SELL", price="10.00", quantity=5)
    place(maker.holder, "BUY", price="10.00", quantity=5)
    assert balance(maker, "CEA") == (D("5"), D("0"))
    market_maker_withdraw(market_maker=maker, asset="CEA", amount=5, actor=staff)
    assert balance(maker, "CEA") == (D("0"), D("0"))
    assert_all_invariants()


@pytest.mark.parametrize("amount", ["0", "-1", "NaN", "1.5", "1e9"])
def test_withdraw_refuses_bad_amounts(staff, amount):
    maker = factories.market_maker(AH, CEA=10)
    before = snapshot()
    with pytest.raises(ValidationError) as error:
        market_maker_withdraw(market_maker=maker, asset="CEA", amount=amount, actor=staff)
    assert "amount" in error.value.message_dict
    assert snapshot() == before


def test_an_inactive_market_maker_can_be_emptied(staff):
    maker = factories.market_maker(AH, EUA=7)
    market_maker_deactivate(market_maker=maker, actor=staff, cancel_open_orders=False)
    market_maker_withdraw(market_maker=maker, asset="EUA", amount="7", actor=staff)
    assert balance(maker, "EUA") == (D("0"), D("0"))
    assert_all_invariants()


# ---------------------------------------------------------------------------- deactivate


def test_deactivate_with_open_orders_needs_confirmation_then_releases_funds(staff, cea, eua):
    maker = factories.market_maker(AH, CEA=100, EUA=50)
    first = place(maker.holder, "SELL", price="15.00", quantity=40).order
    second = place(maker.holder, "SELL", market="EUA", price="90.00", quantity=50).order
    assert market_maker_rows([maker])[0].open_orders == 2

    before = snapshot()
    with pytest.raises(ValidationError) as error:
        market_maker_deactivate(market_maker=maker, actor=staff, cancel_open_orders=False)
    text = " ".join(error.value.message_dict["cancel_open_orders"])
    assert "2 open orders" in text and "confirm" in text
    assert snapshot() == before
    maker.refresh_from_db()
    assert maker.is_active

    ticket = market_maker_deactivate(
        market_maker=maker, actor=staff, cancel_open_orders=True, ip="10.0.0.9"
    )
    assert maker.is_active is False
    assert MarketMakerClient.objects.get(pk=maker.pk).is_active is False
    for order in (first, second):
        order.refresh_from_db()
        assert order.status == Order.Status.CANCELLED
        assert order.status_reason == "market maker deactivated" and order.reserved == 0
    assert balance(maker, "CEA") == (D("100"), D("0"))
    assert balance(maker, "EUA") == (D("50"), D("0"))
    assert ticket.action_type == "MM_DEACTIVATED" and ticket.ticket_id.startswith("TKT-")
    assert (ticket.user, ticket.market_maker, ticket.ip_address) == (staff, maker, "10.0.0.9")
    assert ticket.before_state == {"is_active": True, "open_orders": 2}
    assert sorted(ticket.after_state["cancelled_order_ids"]) == sorted([first.pk, second.pk])
    assert ticket.after_state["released"] == {"CEA": "40.00", "EUA": "50.00"}
    assert_all_invariants()


def test_deactivate_without_orders_and_twice(staff):
    maker = factories.market_maker(LP, EUR="10")
    ticket = market_maker_deactivate(market_maker=maker, actor=staff, cancel_open_orders=False)
    assert ticket.after_state["cancelled_order_ids"] == []
    with pytest.raises(ValidationError, match="already inactive"):
        market_maker_deactivate(market_maker=maker, actor=staff, cancel_open_orders=True)
    assert TicketLog.objects.filter(action_type="MM_DEACTIVATED").count() == 1


def test_rows_carry_every_balance_and_open_orders_in_constant_queries(
    staff, cea, django_assert_num_queries
):
    provider = factories.market_maker(LP, EUR="1234.56")
    holder = factories.market_maker(AH, CEA=7, EUA=3)
    place(holder.holder, "SELL", price="15.00", quantity=2)
    for count in (2, 12):
        while MarketMakerClient.objects.count() < count:
            factories.market_maker(LP, EUR="1")
        with django_assert_num_queries(4):  # the makers, the assets, balances, orders
            rows = market_maker_rows(MarketMakerClient.objects.order_by("pk"))
        assert len(rows) == count
    by_code = {row.maker.code: row for row in rows}
    eur = by_code[provider.code].balance("EUR")
    assert (eur.available, eur.locked) == (D("1234.56"), D("0"))
    cea_row = by_code[holder.code].balance("CEA")
    assert (cea_row.available, cea_row.locked, cea_row.total) == (D("5"), D("2"), D("7"))
    assert [b.asset for b in by_code[holder.code].balances] == ["EUR", "CEA", "EUA"]
    assert (by_code[holder.code].open_orders, by_code[provider.code].open_orders) == (1, 0)
