"""A trader's own history read from the database: fills with their side, role and fee,
the filters, the maker fills after a marker, and the statement against the balances."""

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from market.core.statement import CLOSING, ENTRY, MAKER, OPENING, TAKER
from market.models import Balance, LedgerEntry, Trade
from market.services.ledger import deposit, withdraw
from market.services.orders import order_cancel, order_place, order_request_parse
from market.tests import factories
from market.trade_history import (
    FillFilters,
    fill_of,
    fill_values,
    fills_for,
    maker_fills_after,
    statement,
)

D = Decimal


def place(holder, side, *, market="CEA", order_type="LIMIT", **fields):
    request = order_request_parse(market_code=market, side=side, order_type=order_type, **fields)
    return order_place(owner=holder, request=request)


def fills(holder, **filters):
    return [
        fill_of(holder.pk, row) for row in fills_for(holder=holder, filters=FillFilters(**filters))
    ]


@pytest.fixture
def traded(db):
    """Alice rests a CEA bid that Bob sells into (Alice maker, Bob taker), then lifts
    Bob's EUA offer (Alice taker, Bob maker); Carol trades with nobody."""
    alice = factories.trader("alice", EUR="10000")
    bob = factories.trader("bob", EUR="10000", CEA=100, EUA=100)
    carol = factories.trader("carol", EUR="500")
    bid = place(alice, "BUY", price="13.00", quantity=10).order
    sold = place(bob, "SELL", order_type="MARKET", quantity=4).order
    ask = place(bob, "SELL", market="EUA", price="70.00", quantity=3).order
    lifted = place(alice, "BUY", market="EUA", order_type="MARKET", quantity=2).order
    return alice, bob, carol, {"bid": bid, "sold": sold, "ask": ask, "lifted": lifted}


def test_each_holder_sees_its_own_side_role_fee_and_order(traded):
    alice, bob, carol, orders = traded
    eua, cea = fills(alice)  # newest first
    assert (cea.market_code, cea.side, cea.role) == ("CEA", "BUY", MAKER)
    assert (cea.price, cea.quantity, cea.value) == (D("13.00"), 4, D("52.00"))
    assert cea.fee == D("0.26") and cea.order_id == orders["bid"].pk  # 0.5 % buy fee
    assert (eua.market_code, eua.side, eua.role, eua.order_id) == (
        "EUA",
        "BUY",
        TAKER,
        orders["lifted"].pk,
    )
    assert eua.value == D("140.00") and eua.fee == D("0.70")
    bob_eua, bob_cea = fills(bob)
    assert (bob_cea.trade_id, bob_cea.side, bob_cea.role) == (cea.trade_id, "SELL", TAKER)
    assert bob_cea.fee == D("0.00") and bob_cea.order_id == orders["sold"].pk
    assert (bob_eua.side, bob_eua.role, bob_eua.order_id) == ("SELL", MAKER, orders["ask"].pk)
    assert fills(carol) == []


@pytest.mark.parametrize(
    "filters, expected",
    [
        ({}, ["EUA", "CEA"]),
        ({"market": "CEA"}, ["CEA"]),
        ({"market": "EUA", "role": MAKER}, []),
        ({"role": MAKER}, ["CEA"]),
        ({"role": TAKER}, ["EUA"]),
        ({"side": "SELL"}, []),
        ({"side": "BUY", "role": TAKER}, ["EUA"]),
    ],
)
def test_filters_by_market_side_and_role(traded, filters, expected):
    alice = traded[0]
    assert [fill.market_code for fill in fills(alice, **filters)] == expected


def test_filters_by_utc_days_both_included(traded):
    alice = traded[0]
    cea, eua = Trade.objects.order_by("id")
    Trade.objects.filter(pk=cea.pk).update(created_at=datetime(2026, 5, 1, 23, 59, tzinfo=UTC))
    Trade.objects.filter(pk=eua.pk).update(created_at=datetime(2026, 5, 2, 0, 0, tzinfo=UTC))
    day1, day2 = date(2026, 5, 1), date(2026, 5, 2)
    assert [f.market_code for f in fills(alice, date_from=day1, date_to=day1)] == ["CEA"]
    assert [f.market_code for f in fills(alice, date_from=day2)] == ["EUA"]
    assert [f.market_code for f in fills(alice, date_to=day2)] == ["EUA", "CEA"]
    assert fills(alice, date_from=date(2026, 5, 3)) == []


def test_fill_values_stream_every_fill_in_one_query(traded, django_assert_num_queries):
    alice = traded[0]
    with django_assert_num_queries(1):
        assert [f.market_code for f in fill_values(holder=alice)] == ["EUA", "CEA"]


def test_maker_fills_after_a_trade_id_newest_first(traded):
    alice, bob, _carol, _orders = traded
    cea, eua = Trade.objects.order_by("id")
    assert [f.trade_id for f in maker_fills_after(holder=alice, trade_id=0, limit=5)] == [cea.pk]
    assert maker_fills_after(holder=alice, trade_id=cea.pk, limit=5) == []
    assert [f.trade_id for f in maker_fills_after(holder=bob, trade_id=0, limit=5)] == [eua.pk]
    # Two more sells into Alice's resting bid: the newest maker fill comes first.
    place(bob, "SELL", order_type="MARKET", quantity=1)
    place(bob, "SELL", order_type="MARKET", quantity=1)
    newest = maker_fills_after(holder=alice, trade_id=cea.pk, limit=1)
    assert [f.trade_id for f in newest] == [Trade.objects.latest("id").pk]


# --- the statement ---------------------------------------------------------------------------


def summed(holder, *, before=None) -> dict:
    """Available and locked per asset from the ledger, summed in Python."""
    sums = defaultdict(lambda: [D(0), D(0)])
    entries = LedgerEntry.objects.filter(holder=holder)
    if before is not None:
        entries = entries.filter(created_at__lt=before)
    for asset, available, locked in entries.values_list(
        "asset", "available_delta", "locked_delta"
    ):
        sums[asset][0] += available
        sums[asset][1] += locked
    return sums


def test_statement_of_today_closes_on_the_balances_and_opens_on_what_came_before(traded):
    alice, *_ = traded
    today = datetime.now(UTC).date()
    # Move the first deposit to yesterday: it is the opening balance, not an entry.
    first = LedgerEntry.objects.filter(holder=alice).order_by("id").first()
    LedgerEntry.objects.filter(pk=first.pk).update(
        created_at=datetime.combine(today - timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    )
    lines = list(statement(holder=alice, date_from=today, date_to=today).lines)
    opening = {x.asset: x.balance for x in lines if x.line == OPENING}
    closing = {x.asset: x.balance for x in lines if x.line == CLOSING}
    assert list(opening) == list(closing) == ["EUR", "CEA", "EUA"]
    assert opening["EUR"].available == D("10000.00") and opening["CEA"].total == 0
    for balance in Balance.objects.filter(holder=alice):
        assert (closing[balance.asset].available, closing[balance.asset].locked) == (
            balance.available,
            balance.locked,
        )
    entries = [x.entry for x in lines if x.line == ENTRY]
    assert [e.entry_id for e in entries] == sorted(
        LedgerEntry.objects.filter(holder=alice).exclude(pk=first.pk).values_list("pk", flat=True),
        key=lambda pk: (["EUR", "CEA", "EUA"].index(LedgerEntry.objects.get(pk=pk).asset), pk),
    )
    kinds = {e.kind for e in entries}
    assert {"Reserve", "Trade debit", "Trade credit", "Fee"} <= kinds
    assert all(e.order_id or e.trade_id or e.ticket for e in entries)


def test_statement_reads_a_fixed_number_of_queries(traded, django_assert_num_queries):
    alice = traded[0]
    today = datetime.now(UTC).date()
    with django_assert_num_queries(3):  # the assets, the opening sums, the entries
        lines = list(statement(holder=alice, date_from=today, date_to=today).lines)
    for _ in range(30):
        deposit(holder=alice, asset="EUR", amount="1.00")
    with django_assert_num_queries(3):
        assert (
            len(list(statement(holder=alice, date_from=today, date_to=today).lines))
            == len(lines) + 30
        )


def test_statement_lists_only_the_holders_own_entries(traded):
    *_, carol, _ = traded
    today = datetime.now(UTC).date()
    lines = list(statement(holder=carol, date_from=today, date_to=today).lines)
    entries = [x.entry.entry_id for x in lines if x.line == ENTRY]
    assert entries == list(LedgerEntry.objects.filter(holder=carol).values_list("pk", flat=True))
    assert len(entries) == 1  # her deposit


DAY0 = date(2026, 1, 1)


class TestStatementIdentity(TestCase):
    """Whatever the moves and however the period cuts them: each asset's opening balance
    is the sum of its entries before the period, its closing balance that plus the
    period's changes, which is the sum of the entries before the period's end."""

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        moves=st.lists(
            st.tuples(
                st.integers(0, 9),  # the day
                st.sampled_from(["deposit", "withdraw", "bid", "cancel"]),
                st.integers(1, 50),
            ),
            min_size=1,
            max_size=12,
        ),
        period=st.tuples(st.integers(0, 9), st.integers(0, 9)).map(sorted),
    )
    def test_opening_plus_changes_is_closing(self, moves, period):
        holder = factories.trader()
        resting = []
        for day, action, amount in moves:
            mark = LedgerEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0
            if action == "deposit":
                deposit(holder=holder, asset="EUR", amount=D(amount))
            elif (
                action == "withdraw"
                and Balance.objects.get(holder=holder, asset="EUR").available >= amount
            ):
                withdraw(holder=holder, asset="EUR", amount=D(amount))
            elif (
                action == "bid"
                and Balance.objects.get(holder=holder, asset="EUR").available >= amount
            ):
                resting.append(place(holder, "BUY", price="1.00", quantity=amount // 2 or 1).order)
            elif action == "cancel" and resting:
                order_cancel(order_id=resting.pop().pk, user=holder.user)
            LedgerEntry.objects.filter(id__gt=mark).update(
                created_at=datetime.combine(
                    DAY0 + timedelta(days=day), datetime.min.time(), tzinfo=UTC
                )
                + timedelta(hours=12)
            )
        first, last = (DAY0 + timedelta(days=day) for day in period)
        lines = list(statement(holder=holder, date_from=first, date_to=last).lines)
        start = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
        end = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        before, through = summed(holder, before=start), summed(holder, before=end)
        for asset in ("EUR", "CEA", "EUA"):
            rows = [x for x in lines if x.asset == asset]
            opening, closing = rows[0], rows[-1]
            changes = [x.entry for x in rows if x.line == ENTRY]
            assert (opening.balance.available, opening.balance.locked) == tuple(before[asset])
            assert closing.balance.available == opening.balance.available + sum(
                (e.available_delta for e in changes), D(0)
            )
            assert closing.balance.locked == opening.balance.locked + sum(
                (e.locked_delta for e in changes), D(0)
            )
            assert (closing.balance.available, closing.balance.locked) == tuple(through[asset])
