"""Liquidity services: constant queries, and concurrent executes on PostgreSQL."""

import threading
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from liquidity.models import LiquidityOperation
from liquidity.services import (
    InsufficientAssets,
    PlanChanged,
    liquidity_execute,
    liquidity_preview,
    liquidity_request_parse,
)
from market.db.pipeline import allocate_ids
from market.models import Balance, Market, MarketMakerClient, Order, TicketLog
from market.services.market_makers import market_makers_create_bulk
from market.services.orders import order_place, order_request_parse
from market.tests import factories
from market.tests.helpers import assert_all_invariants

LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER
D = Decimal


def request(bid="100000", ask="50000", market="CEA"):
    return liquidity_request_parse(market_code=market, bid_amount_eur=bid, ask_amount_eur=ask)


def makers(count: int, staff):
    market_makers_create_bulk(
        count=count,
        mm_type=LP,
        asset="EUR",
        total_amount=D("1000000"),
        name_prefix="LP",
        created_by=staff,
    )
    market_makers_create_bulk(
        count=count,
        mm_type=AH,
        asset="CEA",
        total_amount=D("100000"),
        name_prefix="AH",
        created_by=staff,
    )


def statement_kinds(captured) -> set[str]:
    """What kinds of statement ran: SQLite splits one bulk INSERT into batches of at most
    999 parameters, so there only the kinds, not their repeats, stay constant."""
    kinds = set()
    for query in captured.captured_queries:
        words = query["sql"].split()
        if words[0] in ("SAVEPOINT", "RELEASE"):
            kinds.add(words[0])  # savepoint names differ from run to run
            continue
        table = next((w for w in words[1:6] if w.startswith('"')), "")
        kinds.add(f"{words[0]} {table}")
    return kinds


def assert_same_queries(small, large):
    if connection.vendor == "postgresql":
        assert len(small) == len(large), (len(small), len(large))
    else:
        assert statement_kinds(small) == statement_kinds(large), statement_kinds(
            small
        ) ^ statement_kinds(large)


@pytest.mark.django_db
def test_preview_queries_do_not_grow_with_market_makers():
    counts = []
    for count in (10, 500):
        MarketMakerClient.objects.update(is_active=False)
        staff = factories.StaffFactory()
        makers(count, staff)
        with CaptureQueriesContext(connection) as captured:
            plan = liquidity_preview(request=request())
        assert len(plan.bid_plan.allocations) == count
        counts.append(len(captured))
    # Reads have no batching: exactly the same number on every database.
    assert counts[0] == counts[1], counts


@pytest.mark.django_db
def test_execute_queries_do_not_grow_with_market_makers():
    # A process looks each table's id sequence up once, on first use: warm them, or the
    # first execute counts those lookups (whether it is first depends on the tests before).
    with transaction.atomic():
        allocate_ids({Order: 1, TicketLog: 1, LiquidityOperation: 1}).take(Order)
    captures = []
    for count in (10, 500):
        # Earlier makers step aside (and their orders leave the book) for the next size.
        Order.objects.filter(status__in=Order.RESTING).update(status="CANCELLED", reserved=0)
        Balance.objects.update(locked=0)
        MarketMakerClient.objects.update(is_active=False)
        staff = factories.StaffFactory()
        makers(count, staff)
        with CaptureQueriesContext(connection) as captured:
            operation = liquidity_execute(request=request(), user=staff)
        assert operation.orders_created > count
        captures.append(captured)
    assert_same_queries(*captures)


@pytest.mark.django_db
def test_an_execute_that_leaves_makers_out_places_its_plan_and_uses_the_ids_reserved():
    # Order ids are reserved before the plan, for every level of every funded maker: a
    # small BID (and no ASK) leaves most providers without an order, and most ids unused.
    staff = factories.StaffFactory()
    providers = [factories.market_maker(LP, EUR="100000") for _ in range(4)]
    factories.market_maker(AH, CEA=10000)
    previewed = liquidity_preview(request=request(bid="30", ask="0"))
    assert 0 < previewed.total_orders_count < 3 * len(providers)
    operation = liquidity_execute(
        request=request(bid="30", ask="0"), user=staff, fingerprint=previewed.fingerprint()
    )
    placed = list(operation.orders.order_by("pk"))
    planned = previewed.bid_plan.orders
    assert operation.orders_created == len(placed) == len(planned)
    assert [(o.side, o.price, o.quantity) for o in placed] == [
        (p.side, p.price, p.quantity) for p in planned
    ]
    assert_all_invariants()


@pytest.mark.django_db
def test_execute_refuses_when_short_and_changes_nothing():
    staff = factories.StaffFactory()
    factories.market_maker(LP, EUR="10")
    with pytest.raises(InsufficientAssets) as error:
        liquidity_execute(request=request(), user=staff)
    assert len(error.value.plan.shortfalls) == 2
    assert not Order.objects.exists() and not LiquidityOperation.objects.exists()


@pytest.mark.django_db
def test_execute_refuses_a_moved_market_with_a_fresh_plan():
    staff = factories.StaffFactory()
    factories.market_maker(LP, EUR="200000")
    factories.market_maker(AH, CEA=10000)
    previewed = liquidity_preview(request=request())
    seller = factories.trader(CEA=10)
    order_place(
        owner=seller,
        request=order_request_parse(
            market_code="CEA", side="SELL", order_type="LIMIT", price="13.99", quantity=1
        ),
    )
    with pytest.raises(PlanChanged) as error:
        liquidity_execute(request=request(), user=staff, fingerprint=previewed.fingerprint())
    assert error.value.plan.fingerprint() != previewed.fingerprint()
    assert not LiquidityOperation.objects.exists()


@pytest.mark.django_db
def test_plan_never_crosses_the_live_book():
    staff = factories.StaffFactory()
    factories.market_maker(LP, EUR="200000")
    factories.market_maker(AH, CEA=10000)
    # A trader's bid sits just under the default reference.
    buyer = factories.trader(EUR="10000")
    order_place(
        owner=buyer,
        request=order_request_parse(
            market_code="CEA", side="BUY", order_type="LIMIT", price="13.99", quantity=5
        ),
    )
    operation = liquidity_execute(request=request(), user=staff)
    assert not operation.orders.filter(side="SELL", price__lte=D("13.99")).exists()
    assert_all_invariants()


@pytest.mark.django_db
def test_a_paused_market_takes_no_liquidity():
    staff = factories.StaffFactory()
    factories.market_maker(LP, EUR="200000")
    factories.market_maker(AH, CEA=10000)
    asked = request()  # read while trading was on
    Market.objects.filter(code="CEA").update(trading_enabled=False)
    with pytest.raises(ValidationError) as error:
        request()
    assert error.value.message_dict == {"certificate_type": ["Trading in CEA is paused."]}
    with pytest.raises(ValidationError) as error:
        liquidity_execute(request=asked, user=staff)
    assert error.value.message_dict == {"certificate_type": ["Trading in CEA is paused."]}
    assert not Order.objects.exists() and not LiquidityOperation.objects.exists()
    assert not TicketLog.objects.filter(action_type="LIQUIDITY_CREATED").exists()


def test_bad_request_is_refused_before_anything(db):
    with pytest.raises(ValidationError) as error:
        liquidity_request_parse(market_code="CEA", bid_amount_eur="abc", ask_amount_eur="-1")
    assert set(error.value.message_dict) == {"bid_amount_eur", "ask_amount_eur"}


def _run_in_threads(targets):
    barrier = threading.Barrier(len(targets))
    results: list = [None] * len(targets)

    def run(index, target):
        try:
            barrier.wait()
            results[index] = target()
        except Exception as error:  # the test inspects what each thread got
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, t)) for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


@pytest.mark.postgres  # row locks
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.usefixtures("migrated_rows")
def test_two_concurrent_creates_compete_for_the_same_funds():
    staff = [factories.StaffFactory(), factories.StaffFactory()]
    factories.market_maker(LP, EUR="150000")
    factories.market_maker(AH, CEA=6000)
    # Each asks for 100,000 / 50,000: the funds cover one, not two.
    results = _run_in_threads(
        [lambda user=user: liquidity_execute(request=request(), user=user) for user in staff]
    )
    succeeded = [r for r in results if isinstance(r, LiquidityOperation)]
    refused = [r for r in results if isinstance(r, InsufficientAssets)]
    assert len(succeeded) == 1 and len(refused) == 1, results
    assert LiquidityOperation.objects.count() == 1
    assert_all_invariants()


@pytest.mark.postgres  # row locks
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.usefixtures("migrated_rows")
def test_the_same_idempotency_key_twice_at_once_makes_one_operation():
    user = factories.StaffFactory()
    factories.market_maker(LP, EUR="1000000")
    factories.market_maker(AH, CEA=100000)
    results = _run_in_threads(
        [
            lambda: liquidity_execute(request=request(), user=user, idempotency_key="same")
            for _ in range(2)
        ]
    )
    assert all(isinstance(r, LiquidityOperation) for r in results), results
    assert results[0].pk == results[1].pk
    assert LiquidityOperation.objects.count() == 1
    assert Order.objects.count() == 6
    assert_all_invariants()
