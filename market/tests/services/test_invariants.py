"""Stateful property test of the ledger and the order book (docs/rules.md §3 and §5).

Hypothesis drives four traders and two market makers through random deposits,
withdrawals (some larger than what is available), limit and market orders on a small
price grid around the reference prices (so orders cross often), idempotent re-placements
(and keys reused for other orders, which are refused)
and cancels (by the owner, by staff, by someone else, of closed orders). After every step
all invariants are checked; a refused operation must raise ValidationError and change
nothing at all.

The holders, their funds and a two-sided market-maker book are created once, in the test's
transaction (`django.test.TestCase.setUpTestData`); each example then runs inside its own
savepoint, rolled back in `teardown`, so every example starts from that same state and
never sees another's rows.
"""

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.test import TestCase as DjangoTestCase
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from market.core.money import fee_on
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
from market.services.holders import house_holder
from market.services.ledger import deposit, withdraw
from market.services.orders import (
    order_amend,
    order_cancel,
    order_place,
    order_request_parse,
    orders_cancel_all,
)
from market.tests import factories
from market.tests.helpers import (
    assert_all_invariants,
    assert_matching_invariants,
    totals_by_asset,
)
from market.validation import IdempotencyKeyReused

D = Decimal
ZERO = D("0")
CENT = D("0.01")
BUY, SELL = Order.Side.BUY, Order.Side.SELL
LIMIT, MARKET = Order.Type.LIMIT, Order.Type.MARKET

# Five ticks a few cents apart around each reference price: orders cross often.
PRICES = {
    "CEA": [D("13.90"), D("13.95"), D("14.00"), D("14.05"), D("14.10")],
    "EUA": [D("80.90"), D("80.95"), D("81.00"), D("81.05"), D("81.10")],
}
INITIAL_TRADER_FUNDS = {"EUR": D("1500.00"), "CEA": D("40"), "EUA": D("8")}
INITIAL_PROVIDER_FUNDS = {"EUR": D("3000.00")}
INITIAL_ASSET_HOLDER_FUNDS = {"CEA": D("80"), "EUA": D("20")}
# (side, market, price, quantity): the provider bids, the asset holder offers.
INITIAL_QUOTES = [
    (SELL, "CEA", D("14.05"), 4),
    (SELL, "CEA", D("14.05"), 4),
    (SELL, "CEA", D("14.10"), 10),
    (BUY, "CEA", D("13.95"), 4),
    (BUY, "CEA", D("13.95"), 4),
    (BUY, "CEA", D("13.90"), 10),
    (SELL, "EUA", D("81.05"), 3),
    (BUY, "EUA", D("80.95"), 3),
]

holder_indexes = st.integers(min_value=0, max_value=5)  # 0-3 traders, 4 LP, 5 AH
markets = st.sampled_from(["CEA", "CEA", "CEA", "EUA"])
price_indexes = st.integers(min_value=0, max_value=4)
quantities = st.integers(min_value=1, max_value=25)
client_keys = st.none() | st.sampled_from(["k-1", "k-2", "k-3"])
assets = st.sampled_from(["EUR", "CEA", "EUA"])


def snapshot():
    """Everything an operation could change; equal before and after a refusal."""
    return (
        sorted(Balance.objects.values_list("holder_id", "asset", "available", "locked")),
        sorted(
            Order.objects.values_list(
                "id", "status", "filled_quantity", "filled_value", "fee_paid", "reserved"
            )
        ),
        LedgerEntry.objects.count(),
        Trade.objects.count(),
        TicketLog.objects.count(),
        sorted(Market.objects.values_list("code", "book_version")),
    )


def priority_key(order):
    """Best first: the lowest ask, the highest bid; oldest first within a price."""
    return (order.price if order.side == SELL else -order.price, order.pk)


@dataclass
class World:
    """The holders every example starts from, funded and with a two-sided book; created
    once per test (`TestMarketMachine.setUpTestData`), restored by each example's rollback."""

    staff: object
    traders: list[Holder]
    provider: Holder
    asset_holder: Holder
    totals: dict[str, Decimal]
    house_id: int


def world_create() -> World:
    staff = factories.StaffFactory()
    traders = [factories.trader() for _ in range(4)]
    provider = factories.market_maker(MarketMakerClient.Type.LIQUIDITY_PROVIDER).holder
    asset_holder = factories.market_maker(MarketMakerClient.Type.ASSET_HOLDER).holder
    totals = defaultdict(lambda: ZERO)
    for holder, funds in [
        *((trader, INITIAL_TRADER_FUNDS) for trader in traders),
        (provider, INITIAL_PROVIDER_FUNDS),
        (asset_holder, INITIAL_ASSET_HOLDER_FUNDS),
    ]:
        for asset, amount in funds.items():
            deposit(holder=holder, asset=asset, amount=amount, actor=staff)
            totals[asset] += amount
    # Market-maker quotes on both sides, two orders at some levels, so that market orders
    # find a book and time priority within a level is exercised from the first step.
    for side, market, price, quantity in INITIAL_QUOTES:
        request = order_request_parse(
            market_code=market, side=side, order_type=LIMIT, price=price, quantity=quantity
        )
        order_place(owner=asset_holder if side == SELL else provider, request=request)
    assert_all_invariants()
    assert_matching_invariants()
    return World(staff, traders, provider, asset_holder, dict(totals), house_holder().pk)


class MarketMachine(RuleBasedStateMachine):
    """Needs `MarketMachine.world` (see `TestMarketMachine`)."""

    world: World

    def __init__(self):
        super().__init__()
        world = self.world
        self.staff, self.traders, self.house_id = world.staff, world.traders, world.house_id
        self.holders = [*world.traders, world.provider, world.asset_holder]
        # What each holder may hold and do: market makers keep to their type.
        self.allowed_assets = {holder.pk: ("EUR", "CEA", "EUA") for holder in world.traders}
        self.allowed_sides = {holder.pk: (BUY, SELL) for holder in world.traders}
        self.allowed_assets[world.provider.pk] = ("EUR",)
        self.allowed_sides[world.provider.pk] = (BUY,)
        self.allowed_assets[world.asset_holder.pk] = ("CEA", "EUA")
        self.allowed_sides[world.asset_holder.pk] = (SELL,)
        # Expected total of each asset over all holders: net deposits, tracked here.
        self.expected_totals = defaultdict(lambda: ZERO, world.totals)
        # (holder id, client order id) -> (order id, what that order asked for)
        self.keys = {}
        self._orders = None  # cached (id, owner kind, resting) rows for preconditions
        self._changed = True  # something changed since the invariants last ran
        self._atomic = transaction.atomic()
        self._atomic.__enter__()

    def teardown(self):
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    def _mutated(self):
        self._orders = None
        self._changed = True

    # Helpers -----------------------------------------------------------------------------

    def _deposit(self, holder, asset, amount):
        ticket = deposit(holder=holder, asset=asset, amount=amount, actor=self.staff)
        assert ticket.action_type == "DEPOSIT" and ticket.user == self.staff
        self.expected_totals[asset] += amount
        self._mutated()

    def _balance(self, holder, asset):
        return Balance.objects.get(holder=holder, asset=asset)

    def _fee_rate(self, holder, market, side):
        if holder.kind == Holder.Kind.MARKET_MAKER:  # market makers pay no fees
            return ZERO
        market = factories.market(market)
        return market.buy_fee_rate if side == BUY else market.sell_fee_rate

    def _book(self, market, side):
        """The resting `side` of `market`, best first."""
        orders = Order.objects.filter(market__code=market, side=side, status__in=Order.RESTING)
        return sorted(orders, key=priority_key)

    def _refused(self, before, call):
        """`call` must raise ValidationError and change nothing."""
        try:
            call()
        except ValidationError as error:
            assert snapshot() == before
            return error
        raise AssertionError("expected a ValidationError")

    def _place(self, holder, market, side, order_type, **fields):
        """Place an order and check everything the spec says about the outcome.

        Returns the error when the order was refused (nothing may have changed), else
        None. `must_fail` / `must_pass` are the outcomes the spec fixes in advance.
        """
        key = fields.get("client_order_id")
        before = snapshot()
        opposite = SELL if side == BUY else BUY
        book = self._book(market, opposite)
        book_version = Market.objects.get(code=market).book_version
        reserve_asset = "EUR" if side == BUY else market
        available = self._balance(holder, reserve_asset).available
        fee_rate = self._fee_rate(holder, market, side)
        asked = (
            market,
            side,
            order_type,
            fields.get("price"),
            fields.get("quantity"),
            fields.get("eur_budget"),
        )
        previous, previous_asked = self.keys.get((holder.pk, key), (None, None))
        reused = previous is not None and previous_asked != asked

        must_fail = must_pass = False
        needed = None  # what the order must reserve, where the spec fixes it
        if fields.get("eur_budget") is not None:
            needed = fields["eur_budget"]
        elif side == SELL:
            needed = D(fields["quantity"])
        elif order_type == LIMIT:
            value = fields["price"] * fields["quantity"]
            needed = value + fee_on(value, fee_rate)
        if reused:
            must_fail = True  # the key was used for another order: refused
        elif previous is not None:
            must_pass = True  # the key was used for this order: the first one comes back
        elif order_type == LIMIT:
            must_pass = available >= needed
            must_fail = not must_pass
        else:
            # A market order needs a book whose best order is not its own (self-trade
            # prevention), and the funds it reserves.
            must_fail = (
                not book
                or book[0].owner_id == holder.pk
                or (needed is not None and available < needed)
            )

        try:
            request = order_request_parse(
                market_code=market, side=side, order_type=order_type, **fields
            )
            placement = order_place(owner=holder, request=request)
        except ValidationError as error:
            assert not must_pass, (error, available, fields)
            assert isinstance(error, IdempotencyKeyReused) == reused, (error, fields)
            assert snapshot() == before, "a refused order changed something"
            event(f"refused: {error.messages[0].split(':')[0]}")
            return error
        assert not must_fail, (placement.order, available, fields)

        order = placement.order
        if previous is not None:
            assert not placement.created and order.pk == previous
            assert snapshot() == before, "re-placing with a used key changed something"
            event("idempotent re-placement")
            return None
        assert placement.created
        self._mutated()
        if key:
            self.keys[(holder.pk, key)] = (order.pk, asked)
        event(f"placed {order_type} {side}: {order.status}")

        order.refresh_from_db()
        trades = sorted(placement.trades, key=lambda trade: trade.pk)
        assert trades == list(
            Trade.objects.filter(**{f"{side.lower()}_order": order}).order_by("pk")
        )
        assert order.filled_quantity == sum(trade.quantity for trade in trades)
        if needed is not None:
            # A limit buy locks price × quantity plus the maximum fee, a sell its
            # certificates, a market buy by amount its budget.
            reserves = LedgerEntry.objects.filter(order=order, kind=LedgerEntry.Kind.RESERVE)
            assert [entry.locked_delta for entry in reserves] == [needed], (order, needed)
        if order_type == MARKET:
            assert not order.is_resting and order.reserved == 0
        if fields.get("eur_budget") is not None:
            assert order.filled_value + order.fee_paid <= fields["eur_budget"]
        assert order.fee_rate == fee_rate  # market makers pay no fees
        for trade in trades:  # every trade is audited
            assert trade.ticket.action_type == "TRADE"
            assert trade.ticket.ticket_id.startswith("TKT-"), trade.ticket
        if trades or order.is_resting:  # the book changed: its version moves on
            assert Market.objects.get(code=market).book_version > book_version

        # Price-time priority: the fills are the head of the book, in order; every maker
        # but the last is used up.
        heads = book[: len(trades)]
        maker_ids = [
            trade.sell_order_id if side == BUY else trade.buy_order_id for trade in trades
        ]
        assert maker_ids == [maker.pk for maker in heads], (maker_ids, heads)
        for trade, maker in zip(trades, heads, strict=True):
            assert maker.owner_id != holder.pk
            assert trade.price == maker.price
            assert trade.quantity <= maker.remaining_quantity
        for trade, maker in zip(trades[:-1], heads[:-1], strict=True):
            assert trade.quantity == maker.remaining_quantity

        # No missed fill: an order by quantity stops short only at the end of the book, at
        # its limit, or at one of its own orders.
        if order.quantity is not None and fields.get("eur_budget") is None:
            unfilled = order.quantity - order.filled_quantity
            following = book[len(trades)] if len(book) > len(trades) else None
            last_partial = trades and trades[-1].quantity < heads[-1].remaining_quantity
            if unfilled and following is not None and not last_partial:
                crosses = order.price is None or (
                    following.price <= order.price
                    if side == BUY
                    else following.price >= order.price
                )
                assert not crosses or following.owner_id == holder.pk, (order, following)
                if crosses and following.owner_id == holder.pk:
                    assert not order.is_resting  # self-trade prevention cancels the rest
        return None

    def _holder(self, index, side=None, asset=None):
        holder = self.holders[index]
        if side is not None and side not in self.allowed_sides[holder.pk]:
            return None
        if asset is not None and asset not in self.allowed_assets[holder.pk]:
            return None
        return holder

    # Funding -----------------------------------------------------------------------------

    @rule(who=holder_indexes, asset=assets, units=st.integers(min_value=1, max_value=200_000))
    def deposit_funds(self, who, asset, units):
        holder = self._holder(who, asset=asset)
        if holder is None:
            return
        amount = D(units).scaleb(-2) if asset == "EUR" else D(units % 50 + 1)
        self._deposit(holder, asset, amount)

    @rule(who=holder_indexes, asset=assets, data=st.data())
    def withdraw_funds(self, who, asset, data):
        holder = self._holder(who, asset=asset)
        if holder is None:
            return
        unit = CENT if asset == "EUR" else D(1)
        balance = self._balance(holder, asset)
        choices = [
            "beyond available",
            "available and locked",
        ] + (["within available", "all available"] if balance.available else [])
        kind = data.draw(st.sampled_from(choices), label="withdrawal")
        if kind == "within available":
            units = int(balance.available / unit)
            amount = data.draw(st.integers(min_value=1, max_value=units), label="units") * unit
        elif kind == "all available":
            amount = balance.available
        elif kind == "available and locked":
            amount = balance.available + balance.locked + unit
        else:
            amount = balance.available + data.draw(st.integers(1, 1000), label="over") * unit
        before = snapshot()
        if amount > balance.available:
            self._refused(
                before,
                lambda: withdraw(holder=holder, asset=asset, amount=amount, actor=self.staff),
            )
            event("withdrawal refused")
            return
        ticket = withdraw(holder=holder, asset=asset, amount=amount, actor=self.staff)
        assert ticket.action_type == "WITHDRAWAL" and ticket.user == self.staff
        self.expected_totals[asset] -= amount
        self._mutated()
        after = self._balance(holder, asset)
        assert (after.available, after.locked) == (
            balance.available - amount,
            balance.locked,
        )

    # Orders ------------------------------------------------------------------------------

    @rule(
        who=holder_indexes,
        market=markets,
        side=st.sampled_from([BUY, SELL]),
        price=price_indexes,
        quantity=quantities,
        key=client_keys,
    )
    def limit_order(self, who, market, side, price, quantity, key):
        holder = self._holder(who, side=side)
        if holder is None:
            return
        self._place(
            holder,
            market,
            side,
            LIMIT,
            price=PRICES[market][price],
            quantity=quantity,
            client_order_id=key,
        )

    @rule(who=holder_indexes, market=markets, quantity=quantities, key=client_keys)
    def market_buy_by_quantity(self, who, market, quantity, key):
        holder = self._holder(who, side=BUY)
        if holder is not None:
            self._place(holder, market, BUY, MARKET, quantity=quantity, client_order_id=key)

    @rule(who=holder_indexes, market=markets, cents=st.integers(min_value=500, max_value=60_000))
    def market_buy_by_budget(self, who, market, cents):
        holder = self._holder(who, side=BUY)
        if holder is not None:
            self._place(holder, market, BUY, MARKET, eur_budget=D(cents).scaleb(-2))

    @rule(who=holder_indexes, market=markets, quantity=quantities, key=client_keys)
    def market_sell(self, who, market, quantity, key):
        holder = self._holder(who, side=SELL)
        if holder is not None:
            self._place(holder, market, SELL, MARKET, quantity=quantity, client_order_id=key)

    @rule(
        who=holder_indexes,
        market=markets,
        side=st.sampled_from([BUY, SELL]),
        through=st.integers(min_value=0, max_value=2),
        quantity=quantities,
        key=client_keys,
    )
    def crossing_limit_order(self, who, market, side, through, quantity, key):
        """A limit order at or through the best opposite price: fills, partial fills."""
        holder = self._holder(who, side=side)
        if holder is None:
            return
        book = self._book(market, SELL if side == BUY else BUY)
        if not book:
            return
        step = D("0.05") * through
        price = book[0].price + step if side == BUY else book[0].price - step
        self._place(
            holder, market, side, LIMIT, price=price, quantity=quantity, client_order_id=key
        )

    @rule(
        who=st.integers(min_value=0, max_value=3),
        market=markets,
        side=st.sampled_from([BUY, SELL]),
        price=price_indexes,
        quantity=quantities,
        kind=st.sampled_from(["IOC", "FOK", "POST_ONLY"]),
    )
    def immediate_or_post_only_order(self, who, market, side, price, quantity, kind):
        """IOC and FOK limits never rest (FOK fills in full); post-only never trades."""
        holder = self.traders[who]
        before = snapshot()
        fields = {"time_in_force": "GTC", "post_only": True}
        if kind != "POST_ONLY":
            fields = {"time_in_force": kind}
        try:
            request = order_request_parse(
                market_code=market, side=side, order_type=LIMIT,
                price=PRICES[market][price], quantity=quantity, **fields,
            )  # fmt: skip
            placement = order_place(owner=holder, request=request)
        except ValidationError as error:
            assert snapshot() == before, "a refused order changed something"
            event(f"{kind} refused: {error.messages[0][:20]}")
            return
        self._mutated()
        order = placement.order
        event(f"{kind}: {order.status}")
        assert order.time_in_force == ("GTC" if kind == "POST_ONLY" else kind)
        if kind == "POST_ONLY":
            assert not placement.trades and order.is_resting and order.post_only
        else:
            assert not order.is_resting and order.reserved == 0 and placement.trades
        if kind == "FOK":
            assert order.status == Order.Status.FILLED

    @precondition(lambda self: self._order_ids("TRADER"))
    @rule(
        data=st.data(),
        price=st.one_of(st.none(), price_indexes),
        change=st.integers(min_value=-10, max_value=10),
    )
    def owner_amends(self, data, price, change):
        """Shrinking keeps the order (and its place); anything else replaces it."""
        order_id = data.draw(st.sampled_from(self._order_ids("TRADER")), label="order")
        order = Order.objects.select_related("owner__user", "market").get(pk=order_id)
        if order.order_type != LIMIT:
            return
        new_price = None if price is None else PRICES[order.market.code][price]
        quantity = max(1, order.remaining_quantity + change)
        before = snapshot()
        try:
            amended = order_amend(
                order_id=order_id, user=order.owner.user, price=new_price, quantity=quantity
            )
        except ValidationError as error:
            assert snapshot() == before, "a refused amendment changed something"
            event(f"amend refused: {error.messages[0][:20]}")
            return
        self._mutated()
        old = Order.objects.get(pk=order_id)
        if amended.keeps_priority:
            event("amended in place")
            assert amended.order.pk == order_id and old.is_resting
            assert old.remaining_quantity == quantity < order.remaining_quantity
            assert old.reserved < order.reserved or order.side == SELL
        else:
            event("amended: replaced")
            assert old.status == Order.Status.CANCELLED and old.reserved == 0
            assert old.status_reason == f"replaced by #{amended.order.pk}"
            assert amended.order.pk > order_id and amended.order.quantity == quantity
            released = LedgerEntry.objects.filter(order_id=order_id, kind="RELEASE")
            assert released.order_by("-pk")[0].locked_delta == -order.reserved

    @rule(who=st.integers(min_value=0, max_value=3), market=markets)
    def owner_cancels_all(self, who, market):
        holder = self.traders[who]
        resting = set(
            Order.objects.filter(
                owner=holder, market__code=market, status__in=Order.RESTING
            ).values_list("pk", flat=True)
        )
        cancelled = orders_cancel_all(user=holder.user, market_code=market)
        self._mutated()
        assert {order.id for order in cancelled} == resting
        assert not Order.objects.filter(
            owner=holder, market__code=market, status__in=Order.RESTING
        ).exists()

    # Cancels -----------------------------------------------------------------------------

    def _order_rows(self):
        """(id, owner kind, resting) of every order; cached until something changes."""
        if self._orders is None:
            self._orders = [
                (pk, kind, status in Order.RESTING)
                for pk, kind, status in Order.objects.order_by("pk").values_list(
                    "pk", "owner__kind", "status"
                )
            ]
        return self._orders

    def _order_ids(self, kind, resting=True):
        return [pk for pk, k, r in self._order_rows() if k == kind and r == resting]

    def _cancel_and_check(self, order_id, user):
        order = Order.objects.select_related("market", "owner").get(pk=order_id)
        asset = order.reserve_asset
        before = self._balance(order.owner, asset)
        tickets = TicketLog.objects.filter(action_type="ORDER_CANCELLED").count()
        cancelled = order_cancel(order_id=order_id, user=user)
        self._mutated()
        assert cancelled.id == order_id and cancelled.released == order.reserved
        refreshed = Order.objects.get(pk=order_id)
        assert refreshed.status == Order.Status.CANCELLED and refreshed.reserved == 0
        assert refreshed.filled_quantity == order.filled_quantity
        after = self._balance(order.owner, asset)
        assert after.available == before.available + order.reserved
        assert after.locked == before.locked - order.reserved
        by_staff = order.owner.user_id != user.pk
        staff_tickets = TicketLog.objects.filter(action_type="ORDER_CANCELLED").count()
        assert staff_tickets == tickets + int(by_staff)

    @precondition(lambda self: self._order_ids("TRADER"))
    @rule(data=st.data())
    def owner_cancels(self, data):
        order_id = data.draw(st.sampled_from(self._order_ids("TRADER")), label="order")
        owner = Order.objects.select_related("owner__user").get(pk=order_id).owner
        self._cancel_and_check(order_id, owner.user)

    @precondition(lambda self: self._order_ids("MARKET_MAKER"))
    @rule(data=st.data())
    def staff_cancels_market_maker_order(self, data):
        order_id = data.draw(st.sampled_from(self._order_ids("MARKET_MAKER")), label="order")
        self._cancel_and_check(order_id, self.staff)

    @precondition(lambda self: self._order_ids("TRADER"))
    @rule(data=st.data(), intruder=st.integers(min_value=0, max_value=3))
    def someone_else_cancels(self, data, intruder):
        order_id = data.draw(st.sampled_from(self._order_ids("TRADER")), label="order")
        user = self.traders[intruder].user
        if Order.objects.get(pk=order_id).owner_id == self.traders[intruder].pk:
            return
        error = self._refused(snapshot(), lambda: order_cancel(order_id=order_id, user=user))
        assert "not one of your orders" in str(error)

    @precondition(lambda self: self._order_ids("TRADER", resting=False))
    @rule(data=st.data())
    def owner_cancels_closed_order(self, data):
        order_id = data.draw(st.sampled_from(self._order_ids("TRADER", resting=False)))
        order = Order.objects.select_related("owner__user").get(pk=order_id)
        error = self._refused(
            snapshot(), lambda: order_cancel(order_id=order_id, user=order.owner.user)
        )
        assert order.get_status_display().lower() in str(error)

    # Invariants --------------------------------------------------------------------------

    @invariant()
    def ledger_and_book_are_consistent(self):
        # A step that changed nothing (a refusal, checked against a snapshot) leaves the
        # state the last check saw.
        if not self._changed:
            return
        self._changed = False
        assert_all_invariants()
        assert_matching_invariants()
        totals = totals_by_asset()
        for asset in ("EUR", "CEA", "EUA"):
            assert totals[asset] == self.expected_totals[asset], asset
        assert Balance.objects.get(holder_id=self.house_id, asset="EUR").locked == 0


MarketMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=18,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)


class TestMarketMachine(MarketMachine.TestCase, DjangoTestCase):
    """`MarketMachine.TestCase` with pytest-django's database access: the world is created
    once in the test's transaction, and each example rolls back its own savepoint.
    `MarketMachine.TestCase` comes first so its Hypothesis `settings` shadow Django's
    `settings()` context manager."""

    @classmethod
    def setUpTestData(cls):
        MarketMachine.world = world_create()

    @classmethod
    def tearDownClass(cls):
        del MarketMachine.world
        super().tearDownClass()
