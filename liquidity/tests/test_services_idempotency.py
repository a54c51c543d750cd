"""Idempotent liquidity execution (`liquidity_execute` with an idempotency key): a retry of
the same request gets the first operation back, whenever it arrives; a different request
under the key is refused and changes nothing."""

from decimal import Decimal

import pytest

from liquidity.models import LiquidityOperation
from liquidity.services import liquidity_execute, liquidity_preview, liquidity_request_parse
from market.models import Balance, LedgerEntry, MarketMakerClient, Order, TicketLog
from market.tests import factories
from market.tests.helpers import assert_all_invariants, race_behind_a_lock, run_together
from market.validation import IdempotencyKeyReused

LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER
D = Decimal
REQUEST = {"market_code": "CEA", "bid_amount_eur": "100000", "ask_amount_eur": "50000"}


def request(**fields):
    return liquidity_request_parse(**{**REQUEST, **fields})


def funded(*, markets=("CEA",)):
    """Funds for several operations, so a second one would not be refused for lack of
    them: only idempotency stops it."""
    factories.market_maker(LP, EUR="1000000")
    for market in markets:
        factories.market_maker(AH, **{market: 100000})


def written():
    return (
        LiquidityOperation.objects.count(),
        Order.objects.count(),
        TicketLog.objects.count(),
        LedgerEntry.objects.count(),
        sorted(Balance.objects.values_list("pk", "available", "locked")),
    )


@pytest.mark.django_db
def test_a_retry_of_the_same_request_returns_the_first_operation_and_writes_nothing():
    staff = factories.StaffFactory()
    funded()
    first = liquidity_execute(request=request(), user=staff, idempotency_key="op-1")
    assert first.replayed is False
    before = written()
    # A fresher fingerprint (the retry previewed again) is still the same request.
    fresh = liquidity_preview(request=request()).fingerprint()
    again = liquidity_execute(
        request=request(), user=staff, idempotency_key="op-1", fingerprint=fresh
    )
    assert again.pk == first.pk and again.replayed is True
    assert again.orders_created == 6
    assert written() == before
    assert_all_invariants()


@pytest.mark.django_db
def test_the_same_amounts_written_differently_are_the_same_request():
    staff = factories.StaffFactory()
    funded()
    first = liquidity_execute(
        request=request(reference_price="14.00"), user=staff, idempotency_key="op-1"
    )
    again = liquidity_execute(
        request=request(bid_amount_eur="100000.00", reference_price="14"),
        user=staff,
        idempotency_key="op-1",
    )
    assert again.pk == first.pk and again.replayed


@pytest.mark.django_db
@pytest.mark.parametrize(
    "changed",
    [
        {"market_code": "EUA"},
        {"bid_amount_eur": "100000.01"},
        {"ask_amount_eur": "0"},
        {"reference_price": "14.10"},
        {"notes": "a second ladder"},
    ],
    ids=lambda changed: next(iter(changed)),
)
def test_a_different_request_under_the_same_key_is_refused_and_changes_nothing(changed):
    staff = factories.StaffFactory()
    funded(markets=("CEA", "EUA"))
    first = liquidity_execute(request=request(), user=staff, idempotency_key="op-1")
    before = written()
    with pytest.raises(IdempotencyKeyReused) as refused:
        liquidity_execute(request=request(**changed), user=staff, idempotency_key="op-1")
    assert refused.value.messages == [
        f"Liquidity operation {first.ticket.ticket_id} was already executed with this "
        "idempotency key, for a different request; nothing was changed."
    ]
    assert written() == before


@pytest.mark.django_db
def test_keys_are_per_user():
    funded()
    one, other = factories.StaffFactory(), factories.StaffFactory()
    first = liquidity_execute(request=request(), user=one, idempotency_key="op-1")
    second = liquidity_execute(request=request(notes="mine"), user=other, idempotency_key="op-1")
    assert second.pk != first.pk and not second.replayed
    assert LiquidityOperation.objects.count() == 2


# --- races on PostgreSQL ------------------------------------------------------------------


def execute_previewed(staff, key, fingerprint=None, **fields):
    def work():
        return liquidity_execute(
            request=request(**fields), user=staff, idempotency_key=key, fingerprint=fingerprint
        )

    return work


@pytest.mark.parametrize("with_fingerprint", [True, False], ids=["fingerprint", "no-fingerprint"])
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.usefixtures("migrated_rows")
def test_a_twin_waiting_on_the_market_lock_gets_the_first_operation(with_fingerprint):
    """The twin looks the key up while the first operation is written but not committed,
    then queues on the market row. Once it gets the lock it must find the committed
    operation, not re-plan from the book its twin changed (409 plan_changed) or place a
    second ladder."""
    staff = factories.StaffFactory()
    funded()
    fingerprint = liquidity_preview(request=request()).fingerprint() if with_fingerprint else None
    work = execute_previewed(staff, "same", fingerprint)

    first, twin, twin_waited = race_behind_a_lock(work, work)
    assert twin_waited is True
    assert isinstance(first, LiquidityOperation) and not first.replayed, first
    assert isinstance(twin, LiquidityOperation), twin
    assert twin.pk == first.pk and twin.replayed
    assert LiquidityOperation.objects.count() == 1
    assert Order.objects.count() == 6
    assert TicketLog.objects.filter(action_type="LIQUIDITY_CREATED").count() == 1
    assert_all_invariants()


@pytest.mark.parametrize(
    "changed",
    [{"bid_amount_eur": "90000"}, {"market_code": "EUA"}],
    ids=["same-market", "other-market"],
)
@pytest.mark.parametrize("with_fingerprint", [True, False], ids=["fingerprint", "no-fingerprint"])
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.usefixtures("migrated_rows")
def test_a_different_request_racing_the_first_under_its_key_is_refused(changed, with_fingerprint):
    """The second request waits on the market row (same market) or on the providers'
    EUR rows (another market); when the first commits, it is refused as a reused key,
    whatever else it would have met (a changed plan, the key's unique index)."""
    staff = factories.StaffFactory()
    funded(markets=("CEA", "EUA"))
    fingerprint = None
    if with_fingerprint:
        fingerprint = liquidity_preview(request=request(**changed)).fingerprint()

    first, second, second_waited = race_behind_a_lock(
        execute_previewed(staff, "same"), execute_previewed(staff, "same", fingerprint, **changed)
    )
    assert second_waited is True
    assert isinstance(first, LiquidityOperation), first
    assert isinstance(second, IdempotencyKeyReused), second
    assert LiquidityOperation.objects.count() == 1
    assert Order.objects.count() == 6
    assert_all_invariants()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.usefixtures("migrated_rows")
def test_the_same_previewed_request_sent_three_times_at_once_makes_one_operation():
    staff = factories.StaffFactory()
    funded()
    fingerprint = liquidity_preview(request=request()).fingerprint()
    for attempt in range(3):
        key = f"burst-{attempt}"
        results = run_together(*[execute_previewed(staff, key, fingerprint)] * 3)
        assert all(isinstance(r, LiquidityOperation) for r in results), results
        assert len({r.pk for r in results}) == 1
        assert sorted(r.replayed for r in results) == [False, True, True]
        fingerprint = liquidity_preview(request=request()).fingerprint()  # the book moved
    assert LiquidityOperation.objects.count() == 3
    assert_all_invariants()
