from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from market.db.orders import MarketRead
from market.models import Holder, LedgerEntry, Order, TicketLog, Trade
from market.services import orders
from market.services.holders import house_holder
from market.services.ledger import BalanceSheet
from market.services.orders import (
    order_amend,
    order_cancel,
    order_for_amend,
    order_place,
    order_request_parse,
    resting_orders_cancel,
)
from market.tests import factories
from market.tests.helpers import assert_all_invariants
from market.validation import IdempotencyKeyReused

D = Decimal
pytestmark = pytest.mark.django_db


def place(holder, side, order_type="LIMIT", market="CEA", **fields):
    request = order_request_parse(market_code=market, side=side, order_type=order_type, **fields)
    return order_place(owner=holder, request=request)


def balance(holder, asset):
    row = holder.balances.get(asset=asset)
    return row.available, row.locked


def test_limit_buy_rests_and_reserves_value_plus_max_fee(cea):
    buyer = factories.trader(EUR="1000")
    placement = place(buyer, "BUY", price="10.00", quantity=10)
    assert placement.order.status == Order.Status.OPEN
    # 100.00 at the limit plus the 0.5 % buy fee.
    assert placement.order.reserved == D("100.50")
    assert balance(buyer, "EUR") == (D("899.50"), D("100.50"))
    assert_all_invariants()


def test_limit_sell_reserves_certificates(cea):
    seller = factories.trader(CEA=30)
    place(seller, "SELL", price="14.00", quantity=12)
    assert balance(seller, "CEA") == (D("18"), D("12"))
    assert_all_invariants()


def test_crossing_buy_trades_at_resting_price_and_settles_at_once(cea):
    seller = factories.trader(CEA=10)
    buyer = factories.trader(EUR="1000")
    place(seller, "SELL", price="14.00", quantity=10)
    placement = place(buyer, "BUY", price="15.00", quantity=4)

    trade = placement.trades[0]
    assert (trade.price, trade.quantity, trade.value) == (D("14.00"), 4, D("56.00"))
    assert trade.buyer_fee == D("0.28") and trade.seller_fee == D("0")
    assert trade.aggressor_side == "BUY"
    assert placement.order.status == Order.Status.FILLED
    # The buyer paid 56.00 + 0.28 and got the price improvement back.
    assert balance(buyer, "EUR") == (D("943.72"), D("0"))
    assert balance(buyer, "CEA") == (D("4"), D("0"))
    assert balance(seller, "EUR") == (D("56.00"), D("0"))
    assert balance(seller, "CEA") == (D("0"), D("6"))
    assert balance(house_holder(), "EUR") == (D("0.28"), D("0"))
    assert trade.ticket.ticket_id.startswith("TKT-") and len(trade.ticket.ticket_id) == 15
    assert_all_invariants()


def test_price_time_priority(cea):
    early, late, cheap = (factories.trader(CEA=5) for _ in range(3))
    buyer = factories.trader(EUR="1000")
    first = place(early, "SELL", price="14.10", quantity=5).order
    second = place(late, "SELL", price="14.10", quantity=5).order
    best = place(cheap, "SELL", price="14.05", quantity=5).order

    placement = place(buyer, "BUY", price="14.10", quantity=8)
    assert [(t.sell_order_id, t.quantity) for t in placement.trades] == [
        (best.pk, 5),
        (first.pk, 3),
    ]
    second.refresh_from_db()
    assert second.filled_quantity == 0
    first.refresh_from_db()
    assert first.status == Order.Status.PARTIALLY_FILLED and first.remaining_quantity == 2
    assert_all_invariants()


def test_partial_fill_rests_the_remainder_at_the_limit(cea):
    seller = factories.trader(CEA=3)
    buyer = factories.trader(EUR="1000")
    place(seller, "SELL", price="14.00", quantity=3)
    order = place(buyer, "BUY", price="14.20", quantity=10).order
    assert order.status == Order.Status.PARTIALLY_FILLED
    assert (order.filled_quantity, order.remaining_quantity) == (3, 7)
    # The rest stays locked at the limit with the most fee it can still cost:
    # fee on all it may trade (42.00 + 99.40) less the 0.21 already paid.
    assert order.reserved == D("99.40") + (D("0.71") - D("0.21"))
    assert_all_invariants()


def test_market_buy_by_quantity_walks_the_book_and_never_rests(cea):
    seller = factories.trader(CEA=10)
    buyer = factories.trader(EUR="1000")
    place(seller, "SELL", price="14.00", quantity=2)
    place(seller, "SELL", price="14.50", quantity=2)
    placement = place(buyer, "BUY", order_type="MARKET", quantity=5)
    order = placement.order
    assert [t.price for t in placement.trades] == [D("14.00"), D("14.50")]
    assert order.filled_quantity == 4
    assert order.status == Order.Status.CANCELLED
    assert "unfilled remainder" in order.status_reason
    assert order.reserved == 0
    assert balance(buyer, "EUR") == (D("1000") - D("57.00") - D("0.29"), D("0"))
    assert_all_invariants()


def test_a_sweep_reads_the_book_across_batches_in_price_time_order(cea):
    """More resting orders than one of the walk's batches holds: every one of them fills,
    best price first and oldest first within a price."""
    from market.services.orders import PLACEMENT_FIRST_BATCH_CAP

    count = PLACEMENT_FIRST_BATCH_CAP + 13  # past the first batch
    sellers = [factories.trader(CEA=100) for _ in range(3)]
    resting = [
        place(sellers[n % 3], "SELL", price=D("14.00") + D("0.01") * (n % 4), quantity=1).order
        for n in range(count)
    ]
    buyer = factories.trader(EUR="100000")
    placement = place(buyer, "BUY", order_type="MARKET", quantity=count)
    expected = sorted(resting, key=lambda order: (order.price, order.pk))
    assert [t.sell_order_id for t in placement.trades] == [o.pk for o in expected]
    assert placement.order.filled_quantity == count
    assert not Order.objects.filter(status__in=Order.RESTING).exists()
    assert_all_invariants()


def test_market_buy_by_eur_budget_spends_at_most_the_budget_fee_included(cea):
    seller = factories.trader(CEA=100)
    buyer = factories.trader(EUR="1000")
    place(seller, "SELL", price="14.00", quantity=100)
    order = place(buyer, "BUY", order_type="MARKET", eur_budget="100.00").order
    # 7 × 14.00 = 98.00 + 0.49 fee ≤ 100; an eighth would cost 112.56.
    assert order.filled_quantity == 7 and order.quantity == 7
    assert order.status == Order.Status.FILLED
    assert balance(buyer, "EUR") == (D("901.51"), D("0"))
    assert_all_invariants()


def test_market_sell_releases_what_it_did_not_sell(cea):
    buyer = factories.trader(EUR="1000")
    seller = factories.trader(CEA=10)
    place(buyer, "BUY", price="13.90", quantity=3)
    order = place(seller, "SELL", order_type="MARKET", quantity=5).order
    assert order.filled_quantity == 3 and order.status == Order.Status.CANCELLED
    assert balance(seller, "CEA") == (D("7"), D("0"))
    assert balance(seller, "EUR") == (D("41.70"), D("0"))
    assert_all_invariants()


def test_self_trade_prevention_cancels_the_incoming_rest(cea):
    trader = factories.trader(EUR="1000", CEA=10)
    other = factories.trader(CEA=10)
    place(other, "SELL", price="14.00", quantity=2)
    own = place(trader, "SELL", price="14.10", quantity=5).order
    order = place(trader, "BUY", price="14.20", quantity=5).order
    assert order.filled_quantity == 2
    assert order.status == Order.Status.CANCELLED
    assert "your own order" in order.status_reason
    own.refresh_from_db()
    assert own.status == Order.Status.OPEN and own.filled_quantity == 0
    assert not Trade.objects.filter(buyer=trader, seller=trader).exists()
    assert_all_invariants()


def test_market_order_against_only_own_orders_is_refused(cea):
    trader = factories.trader(EUR="1000", CEA=10)
    place(trader, "SELL", price="14.10", quantity=5)
    before = Order.objects.count()
    with pytest.raises(ValidationError) as refused:
        place(trader, "BUY", order_type="MARKET", quantity=1)
    assert refused.value.message_dict == {
        "quantity": [
            "Your own sell order at €14.10 is first in line, and we do not trade anyone "
            "with themselves: nothing trades, and orders behind yours are not reached. "
            "Cancel your order, or place a limit order."
        ]
    }
    assert Order.objects.count() == before


def test_market_makers_pay_no_fees(cea):
    maker = factories.market_maker("ASSET_HOLDER", CEA=10)
    buyer = factories.trader(EUR="1000")
    place(maker.holder, "SELL", price="14.00", quantity=10)
    trade = place(buyer, "BUY", price="14.00", quantity=10).trades[0]
    assert trade.seller_fee == 0 and trade.buyer_fee == D("0.70")
    assert_all_invariants()


def test_resting_buyer_pays_the_buy_fee_when_a_seller_hits_it(cea):
    buyer = factories.trader(EUR="1000")
    seller = factories.trader(CEA=10)
    place(buyer, "BUY", price="10.00", quantity=10)
    trade = place(seller, "SELL", price="10.00", quantity=10).trades[0]
    assert trade.buyer_fee == D("0.50") and trade.aggressor_side == "SELL"
    assert balance(buyer, "EUR") == (D("899.50"), D("0"))
    assert_all_invariants()


def test_many_small_fills_never_charge_more_than_the_reserved_fee(cea):
    sellers = [factories.trader(CEA=1) for _ in range(10)]
    buyer = factories.trader(EUR="100")
    for seller in sellers:
        place(seller, "SELL", price="1.00", quantity=1)
    order = place(buyer, "BUY", price="1.00", quantity=10).order
    # Per-fill rounding would charge 10 × 0.01; cumulative rounding charges 0.05.
    assert order.fee_paid == D("0.05")
    assert_all_invariants()


def test_cancel_releases_the_reservation(cea):
    buyer = factories.trader(EUR="1000")
    order = place(buyer, "BUY", price="10.00", quantity=10).order
    cancelled = order_cancel(order_id=order.pk, user=buyer.user)
    assert (cancelled.id, cancelled.reserve_asset, cancelled.released) == (
        order.pk,
        "EUR",
        D("100.50"),
    )
    order.refresh_from_db()
    assert (order.status, order.status_reason) == (Order.Status.CANCELLED, "cancelled by owner")
    assert balance(buyer, "EUR") == (D("1000"), D("0"))
    assert_all_invariants()


def test_cancelling_someone_elses_order_is_refused_and_changes_nothing(cea):
    owner = factories.trader(EUR="1000")
    intruder = factories.trader()
    order = place(owner, "BUY", price="10.00", quantity=10).order
    with pytest.raises(ValidationError, match="not one of your orders"):
        order_cancel(order_id=order.pk, user=intruder.user)
    order.refresh_from_db()
    assert order.status == Order.Status.OPEN
    assert balance(owner, "EUR") == (D("899.50"), D("100.50"))


def test_staff_cancel_is_audited(cea):
    owner = factories.trader(EUR="1000")
    staff = factories.StaffFactory()
    order = place(owner, "BUY", price="10.00", quantity=10).order
    order_cancel(order_id=order.pk, user=staff)
    ticket = TicketLog.objects.get(action_type="ORDER_CANCELLED")
    assert ticket.user == staff and ticket.after_state["released"] == "100.50"


def test_cancelling_a_filled_order_says_so(cea):
    seller = factories.trader(CEA=1)
    buyer = factories.trader(EUR="100")
    order = place(seller, "SELL", price="10.00", quantity=1).order
    place(buyer, "BUY", price="10.00", quantity=1)
    with pytest.raises(ValidationError, match="filled"):
        order_cancel(order_id=order.pk, user=seller.user)


def test_idempotency_key_returns_the_first_order(cea):
    buyer = factories.trader(EUR="1000")
    first = place(buyer, "BUY", price="10.00", quantity=1, client_order_id="abc-1")
    again = place(buyer, "BUY", price="10.00", quantity=1, client_order_id="abc-1")
    assert again.order.pk == first.order.pk and not again.created
    assert Order.objects.filter(owner=buyer).count() == 1
    assert balance(buyer, "EUR") == (D("989.95"), D("10.05"))


def test_a_market_buy_by_eur_amount_retried_returns_the_first_order(cea):
    seller, buyer = factories.trader(CEA=10), factories.trader(EUR="1000")
    place(seller, "SELL", price="14.00", quantity=10)
    first = place(buyer, "BUY", "MARKET", eur_budget="30.00", client_order_id="abc-1")
    assert first.order.quantity == 2  # what it bought, stored as its quantity
    again = place(buyer, "BUY", "MARKET", eur_budget="30", client_order_id="abc-1")
    assert again.order.pk == first.order.pk and not again.created
    assert Trade.objects.count() == 1


@pytest.mark.parametrize(
    "changed",
    [
        {"price": "10.01"},
        {"quantity": 2},
        {"side": "SELL"},
        {"order_type": "MARKET", "price": None},
        {"market": "EUA", "price": "80.00"},
    ],
    ids=lambda changed: next(iter(changed)),
)
def test_a_client_order_id_reused_for_a_different_order_is_refused(cea, eua, changed):
    buyer = factories.trader(EUR="1000", CEA=5)
    seller = factories.trader(CEA=10, EUA=10)
    place(seller, "SELL", price="14.00", quantity=10)
    place(seller, "SELL", price="80.00", quantity=10, market="EUA")
    first = place(buyer, "BUY", price="10.00", quantity=1, client_order_id="abc-1").order
    before = (
        list(Order.objects.values_list("pk", "status", "reserved")),
        LedgerEntry.objects.count(),
        balance(buyer, "EUR"),
    )
    fields = {"side": "BUY", "price": "10.00", "quantity": 1, **changed}
    with pytest.raises(IdempotencyKeyReused) as refused:
        place(buyer, client_order_id="abc-1", **fields)
    assert refused.value.message_dict == {
        "client_order_id": [
            f"Order #{first.pk} was already placed with this idempotency key, and it is a "
            "different order; nothing was changed."
        ]
    }
    after = (
        list(Order.objects.values_list("pk", "status", "reserved")),
        LedgerEntry.objects.count(),
        balance(buyer, "EUR"),
    )
    assert after == before
    assert_all_invariants()


def test_paused_market_refuses_orders(cea):
    cea.trading_enabled = False
    cea.save()
    buyer = factories.trader(EUR="1000")
    with pytest.raises(ValidationError, match="paused"):
        place(buyer, "BUY", price="10.00", quantity=1)
    assert not Order.objects.exists()


def _prepared_statements() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        return cursor.fetchone()[0]


@pytest.mark.postgres  # psycopg's prepared statements
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.usefixtures("migrated_rows")
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"price": "14.00", "quantity": 1000}, "Insufficient EUR"),  # found after the balances
        ({"order_type": "MARKET", "quantity": 1}, "no sell orders"),  # found on the book
    ],
    ids=["funds", "book"],
)
def test_a_refused_order_keeps_the_connections_prepared_statements(fields, message):
    """A refusal writes nothing and its transaction ends with a COMMIT: a ROLLBACK would
    make psycopg deallocate every statement prepared on the connection, and the orders
    after a refused one would be parsed and planned again under the market lock."""
    buyer = factories.trader(EUR="1000")
    for _ in range(6):  # past psycopg's prepare threshold
        place(buyer, "BUY", price="14.00", quantity=1)
    prepared = _prepared_statements()
    assert prepared >= 3  # the market lock, the book and the balances at least
    with pytest.raises(ValidationError, match=message):
        place(buyer, "BUY", **{"order_type": "LIMIT", **fields})
    assert _prepared_statements() == prepared
    assert Order.objects.filter(owner=buyer).count() == 6
    assert balance(buyer, "EUR") == (D("1000") - 6 * D("14.07"), 6 * D("14.07"))
    assert_all_invariants()


@pytest.mark.postgres  # psycopg's prepared statements
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.usefixtures("migrated_rows")
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"quantity": 500}, "Insufficient EUR"),  # found after the balances
        ({"price": "14.005"}, "decimal places"),  # found before the transaction
        ("cancelled", "is cancelled"),  # found under the market lock
    ],
    ids=["funds", "input", "cancelled-meanwhile"],
)
def test_a_refused_amendment_keeps_the_connections_prepared_statements(
    change, message, monkeypatch
):
    """As a refused order (above): an amendment refused under the locks ends its
    transaction with a COMMIT, not a ROLLBACK, and changes nothing."""
    buyer = factories.trader(EUR="1000")
    for _ in range(6):  # past psycopg's prepare threshold
        resting = place(buyer, "BUY", price="14.00", quantity=1).order
    if change == "cancelled":
        # Cancelled between the amendment's first read of the order and the market lock.
        read_before = order_for_amend(order_id=resting.pk, user=buyer.user)
        monkeypatch.setattr(orders, "order_for_amend", lambda **_: read_before)
        order_cancel(order_id=resting.pk, user=buyer.user)
        change = {"quantity": 2}
    prepared = _prepared_statements()
    before = balance(buyer, "EUR")
    with pytest.raises(ValidationError, match=message):
        order_amend(order_id=resting.pk, user=buyer.user, **change)
    assert _prepared_statements() == prepared
    assert balance(buyer, "EUR") == before
    assert Order.objects.filter(owner=buyer).count() == 6
    assert_all_invariants()


DECIMAL_FORM = "Use a point for decimals and no thousands separators, e.g. 13.50."
WHOLE_FORM = "Enter a whole number in digits, without separators, e.g. 150."
BAD_INPUT = [
    ({"price": "-1", "quantity": 1}, "price", "greater than zero"),
    ({"price": "0", "quantity": 1}, "price", "greater than zero"),
    ({"price": "10.001", "quantity": 1}, "price", "decimal places"),
    ({"price": 10.5, "quantity": 1}, "price", "not floating point"),
    ({"price": "1000000.01", "quantity": 1}, "price", "at most"),
    # One strict form: never reinterpreted ("13,50" is not €1,350.00).
    *(
        ({"price": text, "quantity": 1}, "price", DECIMAL_FORM)
        for text in (
            "13,50",
            "1,350.00",
            "10.000,00",
            "1e4",
            "1E4",
            "١٢",
            "１２",
            "1_000",
            "+5",
            "12\x00",
            "€13.50",
            "13.50 EUR",
            "NaN",
            "Infinity",
            "-Infinity",
            "abc",
        )
    ),
    ({"price": "10.00", "quantity": "1.5"}, "quantity", "whole"),
    ({"price": "10.00", "quantity": 0}, "quantity", "greater than zero"),
    ({"price": "10.00", "quantity": -3}, "quantity", "greater than zero"),
    ({"price": "10.00", "quantity": "99999999999999999999"}, "quantity", "at most"),
    *(
        ({"price": "10.00", "quantity": text}, "quantity", WHOLE_FORM)
        for text in ("1,5", "1,000", "1e3", "١٢", "1_0", "NaN")
    ),
    ({"quantity": 1}, "price", "needs a price"),
]


@pytest.mark.parametrize(("fields", "field", "message"), BAD_INPUT)
def test_bad_order_input_is_refused_with_a_clear_message(cea, fields, field, message):
    buyer = factories.trader(EUR="1000")
    with pytest.raises(ValidationError) as error:
        place(buyer, "BUY", **fields)
    assert message in " ".join(error.value.message_dict[field])
    assert not Order.objects.exists()
    assert balance(buyer, "EUR") == (D("1000"), D("0"))


def test_off_tick_price_is_refused(cea):
    cea.tick_size = D("0.05")
    cea.save()
    buyer = factories.trader(EUR="1000")
    with pytest.raises(ValidationError, match="tick"):
        place(buyer, "BUY", price="10.02", quantity=1)


def test_unknown_market_side_and_type_are_named(db):
    with pytest.raises(ValidationError) as error:
        order_request_parse(market_code="XYZ", side="HOLD", order_type="STOP", quantity=1)
    assert set(error.value.message_dict) >= {"market", "side", "order_type"}


@pytest.mark.parametrize(
    ("side", "funds", "fields", "message"),
    [
        ("BUY", {"EUR": "10"}, {"price": "10.00", "quantity": 1}, "Insufficient EUR"),
        ("SELL", {"CEA": 1}, {"price": "10.00", "quantity": 2}, "Insufficient CEA"),
    ],
)
def test_insufficient_funds_is_refused_and_changes_nothing(cea, side, funds, fields, message):
    holder = factories.trader(**funds)
    with pytest.raises(ValidationError, match=message):
        place(holder, side, **fields)
    assert not Order.objects.exists()
    assert LedgerEntry.objects.filter(kind="RESERVE").count() == 0


def test_market_buy_with_too_little_money_trades_nothing(cea):
    seller = factories.trader(CEA=10)
    buyer = factories.trader(EUR="20")
    place(seller, "SELL", price="14.00", quantity=10)
    with pytest.raises(ValidationError, match="Insufficient EUR"):
        place(buyer, "BUY", order_type="MARKET", quantity=5)
    assert not Trade.objects.exists()


def test_market_order_on_an_empty_book_is_refused(cea):
    buyer = factories.trader(EUR="1000")
    with pytest.raises(ValidationError, match="no sell orders"):
        place(buyer, "BUY", order_type="MARKET", quantity=1)
    assert not Order.objects.exists()


def test_budget_is_only_for_market_buys(cea):
    with pytest.raises(ValidationError, match="only for market buys"):
        order_request_parse(market_code="CEA", side="SELL", order_type="MARKET", eur_budget="10")


def test_the_house_does_not_trade(cea):
    house = house_holder()
    assert house.kind == Holder.Kind.HOUSE
    with pytest.raises(ValidationError, match="house"):
        place(house, "BUY", price="10.00", quantity=1)


def test_filled_and_cancelled_orders_get_a_fresh_updated_at(cea):
    sellers = [factories.trader(CEA=5) for _ in range(2)]
    resting = [place(s, "SELL", price="14.00", quantity=5).order for s in sellers]
    before = {o.pk: o.updated_at for o in Order.objects.filter(pk__in=[o.pk for o in resting])}

    place(factories.trader(EUR="1000"), "BUY", price="14.00", quantity=7)
    order_cancel(order_id=resting[1].pk, user=sellers[1].user)

    after = dict(Order.objects.filter(pk__in=before).values_list("pk", "updated_at"))
    assert all(after[pk] > before[pk] for pk in before), (before, after)
    assert_all_invariants()


def test_a_fill_costs_the_same_queries_whatever_the_number_of_makers(cea):
    """The makers' orders are read with the market lock, in one batch as large as the
    order's quantity needs, and written by one statement: no query per maker (a deferred
    field read back, a house lookup). An order sized by an EUR budget reads the book in
    batches that grow eightfold: a query per batch, never per order."""
    from market.db.orders import BOOK_BATCH_GROWTH, BOOK_FIRST_BATCH

    def sweep(makers: int, **fields) -> int:
        for _ in range(makers):
            place(factories.trader(CEA=5), "SELL", price="14.00", quantity=1)
        buyer = factories.trader(EUR="10000")
        request = order_request_parse(
            market_code="CEA",
            side="BUY",
            **(fields or {"order_type": "LIMIT", "price": "14.00", "quantity": makers}),
        )
        with CaptureQueriesContext(connection) as queries:
            placement = order_place(owner=buyer, request=request)
        assert placement.order.filled_quantity == makers
        return len(queries)

    one_read = sweep(1)
    assert sweep(2 * BOOK_FIRST_BATCH) == one_read
    assert BOOK_BATCH_GROWTH > 1

    def budget(makers):
        return sweep(makers, order_type="MARKET", eur_budget=str(D("14.07") * makers))

    assert budget(BOOK_FIRST_BATCH - 1) == budget(1) == one_read
    assert budget(BOOK_FIRST_BATCH + 1) == budget(2 * BOOK_FIRST_BATCH) == one_read + 1
    assert_all_invariants()


@pytest.mark.django_db
def test_resting_orders_cancel_writes_nothing_when_the_sheet_lacks_an_owner(cea):
    seller = factories.trader(CEA=10)
    placed = order_place(
        owner=seller,
        request=order_request_parse(
            market_code="CEA", side="SELL", order_type="LIMIT", quantity="5", price="14.50"
        ),
    ).order
    with transaction.atomic():
        market = MarketRead(market_id=cea.pk, lock=True).rules()
        assert (
            resting_orders_cancel(
                market=market, orders=[placed.pk], sheet=BalanceSheet([]), reason="test"
            )
            is None
        )
        sheet = BalanceSheet.lock({(seller.pk, "CEA")})
        cancelled = resting_orders_cancel(
            market=market, orders=[placed.pk], sheet=sheet, reason="test"
        )
        sheet.flush()
    assert [c.id for c in cancelled] == [placed.pk]
    placed.refresh_from_db()
    assert placed.status == Order.Status.CANCELLED
    assert_all_invariants()
