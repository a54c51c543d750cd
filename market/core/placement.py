"""What an order does: the placement core. Pure: `Decimal` and ints, no ORM, no I/O.

Given a market's rules, the account placing, a parsed request, the other side of the book
in priority order and the account's available funds, `place` returns the `Outcome`: the
fills, the reservation and what is released, fees, the statuses, every row to insert and
update (the order, the trades, the resting orders' new state, the ledger moves) and what
the trader reads (the refusal, if any, and notes). Nothing is written here.

- The order-entry estimate calls `place` on an unlocked read and shows the outcome.
- `order_place` calls the same two steps under the locks (`match_order`, then `settle`
  once the balances the walk touched are locked) and hands the outcome to the database
  layer, which writes exactly its rows.
- Liquidity's resting orders are rows of the same shape (`rest`), and so are
  cancellations (`cancel`).

Order types are policies (`POLICIES`): how much an order reserves, which price bounds its
walk, what happens to a remainder. A new type is one more policy here.

Ledger moves: every change of a balance is one `Move` (holder, asset, kind, change of the
available and of the locked amount, and its cause), so a balance is always the sum of its
moves. The moves of one placement, in order: the taker's reservation; for each trade EUR
from buyer to seller, certificates from seller to buyer, each side's fee to the house; the
taker's release of what it did not use; each filled resting order's release of what it no
longer needs.
"""

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal
from itertools import chain
from typing import NamedTuple

from market.core import limits
from market.core.matching import (
    BUY,
    SELL,
    BookOrder,
    MatchResult,
    Stop,
    affordable_quantity,
    match,
)
from market.core.money import (
    EUR,
    MAX_AMOUNT,
    MAX_QUANTITY,
    ZERO,
    describe,
    fee_on,
    format_average_price,
    format_eur,
    format_quantity,
)

LIMIT, MARKET = "LIMIT", "MARKET"
# Time in force: good till cancelled (rests), immediate or cancel, fill or kill.
GTC, IOC, FOK = "GTC", "IOC", "FOK"
OPEN, PARTIALLY_FILLED, FILLED, CANCELLED = "OPEN", "PARTIALLY_FILLED", "FILLED", "CANCELLED"
RESTING = (OPEN, PARTIALLY_FILLED)
TRADER, MARKET_MAKER, HOUSE = "TRADER", "MARKET_MAKER", "HOUSE"
NON_FIELD = "__all__"  # the key of a refusal that belongs to no single input

# Ledger entry kinds.
DEPOSIT, WITHDRAWAL, RESERVE, RELEASE = "DEPOSIT", "WITHDRAWAL", "RESERVE", "RELEASE"
TRADE_DEBIT, TRADE_CREDIT, FEE = "TRADE_DEBIT", "TRADE_CREDIT", "FEE"

AVERAGE_PLACES = Decimal("0.0001")
REST_CANCELLED_SELF = "rest cancelled: it would have traded with your own order"
REMAINDER_CANCELLED = "unfilled remainder cancelled"


# --- Inputs -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MarketRules:
    """One market's settings as read from its row (locked, when placing)."""

    market_id: int
    code: str  # also the code of the certificate it trades
    tick: Decimal
    buy_fee_rate: Decimal
    sell_fee_rate: Decimal
    trading_enabled: bool
    default_reference_price: Decimal
    # Guardrails (`market.core.limits`; None switches one off).
    price_band_pct: Decimal | None = None
    slippage_pct: Decimal | None = None
    max_order_quantity: int | None = None
    max_order_value: Decimal | None = None
    # The last trade price of an earlier day (`limits.previous_close_on`), as of the read.
    previous_close: Decimal | None = None

    @property
    def band(self) -> limits.PriceBand | None:
        """Today's price band: what every order, liquidity's included, rests or trades in."""
        return limits.price_band(
            pct=self.price_band_pct,
            previous_close=self.previous_close,
            reference_price=self.default_reference_price,
            tick=self.tick,
        )


@dataclass(frozen=True, slots=True)
class Account:
    """Who places: a holder id and its kind (trader, market maker, the house)."""

    holder_id: int
    kind: str


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A parsed order, before it meets the market. `market` is the market as read when the
    request was parsed; placement reads it again under its lock."""

    market: MarketRules
    side: str
    order_type: str
    quantity: int | None
    price: Decimal | None
    eur_budget: Decimal | None
    client_order_id: str | None = None
    # A market order is IOC by nature; post-only is a limit GTC that refuses to take.
    time_in_force: str = GTC
    post_only: bool = False

    @property
    def amount_field(self) -> str:
        """The input that sizes the order: where a refusal about its size belongs."""
        return "eur_budget" if self.eur_budget is not None else "quantity"


# --- The single rules -------------------------------------------------------------------


def trading_refusal(market: MarketRules) -> str | None:
    """Why `market` takes no order now (staff paused its trading), or None: the one rule
    for traders' orders and staff liquidity alike."""
    return None if market.trading_enabled else f"Trading in {market.code} is paused."


def fee_rate_for(market: MarketRules, kind: str, side: str) -> Decimal:
    """The fee rate an account pays on its side: market makers pay none."""
    if kind == MARKET_MAKER:
        return ZERO
    return market.buy_fee_rate if side == BUY else market.sell_fee_rate


def reserve_asset_of(side: str, market_code: str) -> str:
    """What an order locks: EUR for a buy, the market's certificates for a sell."""
    return EUR if side == BUY else market_code


def still_reserved(
    *,
    side: str,
    price: Decimal | None,
    remaining: int,
    filled_value: Decimal = ZERO,
    fee_paid: Decimal = ZERO,
    fee_rate: Decimal = ZERO,
) -> Decimal:
    """What a resting order must keep locked: a sell its remaining certificates; a buy the
    rest at its limit plus the most fee it can still be charged (on cumulative value). A
    new limit buy therefore reserves price × quantity plus the fee on it."""
    if side == SELL:
        return Decimal(remaining)
    rest_value = price * remaining
    if not fee_rate:  # no fee to come (fees paid are never negative): the rest alone
        return rest_value
    return rest_value + max(ZERO, fee_on(filled_value + rest_value, fee_rate) - fee_paid)


def status_after(quantity: int | None, filled_quantity: int) -> str:
    if quantity is not None and filled_quantity >= quantity:
        return FILLED
    return PARTIALLY_FILLED if filled_quantity else OPEN


def average_price(value: Decimal, quantity: int) -> Decimal | None:
    """EUR per certificate over a traded (or planned) value, 4 places, half up."""
    if not quantity:
        return None
    return (value / quantity).quantize(AVERAGE_PLACES, rounding=ROUND_HALF_UP)


# --- Order types ------------------------------------------------------------------------


class OrderPolicy:
    """What one order type does. Subclasses set the class attributes and may override."""

    order_type: str
    time_in_force: str
    rests: bool  # a remainder rests in the book (else it is cancelled)
    refuses_unfilled: bool  # an order that trades nothing is refused, nothing written
    refuses_partial: bool = False  # an order that cannot trade in full is refused (FOK)

    def reservation(self, request: OrderRequest, fee_rate: Decimal, walk: MatchResult):
        """What the order locks before it trades."""
        raise NotImplementedError


class LimitPolicy(OrderPolicy):
    """A limit order good till cancelled: what does not trade at once rests."""

    order_type, time_in_force = LIMIT, GTC
    rests = True
    refuses_unfilled = False

    def reservation(self, request, fee_rate, walk):
        return still_reserved(
            side=request.side,
            price=request.price,
            remaining=request.quantity,
            fee_rate=fee_rate,
        )


class ImmediatePolicy(OrderPolicy):
    """An order that never rests: it trades what it can at once and cancels the rest. The
    book is locked while it walks, so a buy by quantity reserves the walk's exact cost."""

    rests = False
    refuses_unfilled = True

    def reservation(self, request, fee_rate, walk):
        if request.side == SELL:
            return Decimal(request.quantity)
        if request.eur_budget is not None:
            return request.eur_budget
        return walk.total_debit


class MarketPolicy(ImmediatePolicy):
    order_type, time_in_force = MARKET, IOC


class LimitIocPolicy(ImmediatePolicy):
    """Immediate or cancel: what crosses the limit now trades, the remainder is cancelled."""

    order_type, time_in_force = LIMIT, IOC


class LimitFokPolicy(ImmediatePolicy):
    """Fill or kill: the whole quantity trades now within the limit, or nothing does."""

    order_type, time_in_force = LIMIT, FOK
    refuses_partial = True


POLICIES: dict[tuple[str, str], OrderPolicy] = {
    (policy.order_type, policy.time_in_force): policy
    for policy in (LimitPolicy(), LimitIocPolicy(), LimitFokPolicy(), MarketPolicy())
}


def policy_of(request: OrderRequest) -> OrderPolicy:
    """The policy of a request's order type and time in force (a market order is IOC
    whatever it says: `order_request_parse` refuses the combinations that mean nothing)."""
    time_in_force = IOC if request.order_type == MARKET else request.time_in_force
    return POLICIES[(request.order_type, time_in_force)]


def time_in_force_refusal(order_type: str, time_in_force: str, post_only: bool):
    """Why a combination of order type, time in force and post-only means nothing, as a
    `Refusal` of the input to change; None for a sensible one."""
    if order_type == MARKET and time_in_force == FOK:
        return Refusal(
            "time_in_force",
            "A market order already trades what it can at once and cancels the rest; "
            "fill or kill is for limit orders.",
        )
    if post_only and order_type == MARKET:
        return Refusal("post_only", "Post-only is for limit orders: a market order always takes.")
    if post_only and time_in_force != GTC:
        return Refusal(
            "post_only",
            "A post-only order rests in the book; it cannot be immediate-or-cancel or "
            "fill-or-kill.",
        )
    return None


# --- Outputs ----------------------------------------------------------------------------


class Move(NamedTuple):
    """One ledger entry: a change of one holder's balance of one asset, and its cause."""

    holder_id: int
    asset: str
    kind: str
    available: Decimal
    locked: Decimal
    order_id: int | None = None
    trade_id: int | None = None
    ticket_id: int | None = None


class OrderRow(NamedTuple):
    """An order to insert, with every column the order table has (but times)."""

    id: int | None
    owner_id: int
    market_id: int
    side: str
    order_type: str
    price: Decimal | None
    quantity: int | None
    eur_budget: Decimal | None
    filled_quantity: int
    filled_value: Decimal
    fee_rate: Decimal
    fee_paid: Decimal
    reserved: Decimal
    status: str
    status_reason: str
    client_order_id: str | None
    ticket_id: int | None
    time_in_force: str = GTC
    post_only: bool = False


class OrderUpdate(NamedTuple):
    """A resting order's new state after it traded or was cancelled."""

    id: int
    filled_quantity: int
    filled_value: Decimal
    fee_paid: Decimal
    reserved: Decimal
    status: str
    status_reason: str


class TradeRow(NamedTuple):
    id: int | None
    market_id: int
    buy_order_id: int | None
    sell_order_id: int | None
    buyer_id: int
    seller_id: int
    price: Decimal
    quantity: int
    value: Decimal
    buyer_fee: Decimal
    seller_fee: Decimal
    aggressor_side: str


class Refusal(NamedTuple):
    """Why an order cannot be placed, and the input it belongs to."""

    field: str
    message: str


@dataclass(frozen=True, slots=True)
class Walk:
    """The first step of a placement: the fills, before any balance is known."""

    market: MarketRules
    account: Account
    request: OrderRequest
    fee_rate: Decimal
    result: MatchResult
    refusal: Refusal | None = None
    # Why a market order's walk stopped at its price bound (band or slippage), if it did.
    stop_reason: str = ""

    @property
    def balance_keys(self) -> frozenset[tuple[int, str]]:
        """(holder id, asset) of every balance the placement changes, but the house's."""
        code, taker = self.market.code, self.account.holder_id
        keys = {(taker, EUR), (taker, code)}
        for fill in self.result.fills:
            keys.add((fill.maker.owner_id, EUR))
            keys.add((fill.maker.owner_id, code))
        return frozenset(keys)

    @property
    def takes_fees(self) -> bool:
        return any(fill.taker_fee or fill.maker_fee for fill in self.result.fills)


@dataclass(frozen=True)
class Outcome:
    """Everything one order does (see the module docstring). With a `refusal`, the rows
    show what the order would have done, and none of them may be written."""

    walk: Walk
    order: OrderRow
    reservation: Decimal
    available: Mapping[str, Decimal]  # the taker's, by asset, before the order
    trades: tuple[TradeRow, ...] = ()
    maker_updates: tuple[OrderUpdate, ...] = ()
    moves: tuple[Move, ...] = ()
    refusal: Refusal | None = None
    notes: tuple[str, ...] = field(default=())

    # -- what the trader sees (the estimate, and the result of a placement)

    @property
    def request(self) -> OrderRequest:
        return self.walk.request

    @property
    def buying(self) -> bool:
        return self.request.side == BUY

    @property
    def order_type(self) -> str:
        return self.request.order_type

    @property
    def asset(self) -> str:
        return self.walk.market.code

    @property
    def fee_rate(self) -> Decimal:
        return self.walk.fee_rate

    @property
    def reserve_asset(self) -> str:
        return reserve_asset_of(self.request.side, self.asset)

    @property
    def fill_quantity(self) -> int:
        return self.walk.result.filled_quantity

    @property
    def fill_value(self) -> Decimal:
        return self.walk.result.filled_value

    @property
    def rests(self) -> bool:
        return self.order.status in RESTING

    @property
    def rest_quantity(self) -> int:
        """Certificates that rest in the book at the limit price."""
        return self.order.quantity - self.fill_quantity if self.rests else 0

    @property
    def unfilled_quantity(self) -> int:
        """Certificates asked for that neither trade nor rest (cancelled)."""
        if self.rests or self.order.quantity is None:
            return 0
        return self.order.quantity - self.fill_quantity

    @property
    def quantity(self) -> int:
        """Certificates the order trades now or rests."""
        return self.fill_quantity + self.rest_quantity

    @property
    def value(self) -> Decimal:
        """EUR of what trades now plus what rests, at its limit price."""
        rest = self.request.price * self.rest_quantity if self.rest_quantity else ZERO
        return self.fill_value + rest

    @property
    def fee(self) -> Decimal:
        """The fee on everything the order trades now or may trade later (cumulative)."""
        return fee_on(self.value, self.fee_rate)

    @property
    def total(self) -> Decimal:
        """For a buy, the EUR it costs, fee included; for a sell, the EUR it brings in."""
        return self.value + self.fee if self.buying else self.value - self.fee

    @property
    def average_price(self) -> Decimal | None:
        return average_price(self.value, self.quantity)

    @property
    def insufficient(self) -> bool:
        return self.reservation > self.available.get(self.reserve_asset, ZERO)

    def available_after(self, asset: str) -> Decimal:
        """The taker's available `asset` once the order is placed (fills settled)."""
        taker = self.walk.account.holder_id
        change = sum(
            (m.available for m in self.moves if m.holder_id == taker and m.asset == asset), ZERO
        )
        return self.available.get(asset, ZERO) + change

    @property
    def available_eur(self) -> Decimal:
        return self.available.get(EUR, ZERO)

    @property
    def available_certificates(self) -> Decimal:
        return self.available.get(self.asset, ZERO)

    @property
    def eur_after(self) -> Decimal:
        return self.available_after(EUR)

    @property
    def certificates_after(self) -> Decimal:
        return self.available_after(self.asset)

    @property
    def warnings(self) -> tuple[str, ...]:
        """What the estimate shows under the figures: the notes, then any refusal."""
        return self.notes + ((self.refusal.message,) if self.refusal else ())

    def message(self, order_id: int) -> str:
        """The result of a placement, as the trader reads it."""
        order = self.order
        traded = ""
        if order.filled_quantity:
            average = format_average_price(
                average_price(order.filled_value, order.filled_quantity)
            )
            traded = f"{order.filled_quantity:,} {self.asset} at avg {average}"
        if order.status == FILLED:
            return f"Order #{order_id} filled: {traded}."
        if order.status == CANCELLED:
            head = f"Order #{order_id}: {traded}; " if traded else f"Order #{order_id}: "
            return head + f"{order.status_reason}."
        if order.filled_quantity:
            return f"Order #{order_id} partly filled ({traded}); the rest rests in the book."
        return f"Order #{order_id} rests in the book."


# --- The two steps of a placement -------------------------------------------------------


def match_order(
    *, market: MarketRules, account: Account, request: OrderRequest, book: Iterable[BookOrder]
) -> Walk:
    """Step one: walk the book for `request` (price-time, self-trade prevention). `market`
    is the market as read under its lock; `book` the other side in priority order, read
    lazily (the walk stops reading when it is done). A refusal known before any balance
    is (a paused market, the house, an off-tick price, a market order that cannot trade)
    is the walk's `refusal`."""
    fee_rate = fee_rate_for(market, account.kind, request.side)
    band = market.band
    refusal = None
    if paused := trading_refusal(market):
        refusal = Refusal("market", paused)
    elif account.kind == HOUSE:
        refusal = Refusal(NON_FIELD, "The house fee account does not trade.")
    elif request.price is not None and request.price % market.tick:
        refusal = Refusal("price", f"The price must be a multiple of the tick ({market.tick}).")
    elif request.price is not None and (why := limits.outside_band(band, request.price)):
        refusal = Refusal("price", why)
    else:
        refusal = _size_refusal(market, request, request.quantity, _entered_value(request))
    if refusal is not None:
        return Walk(market, account, request, fee_rate, MatchResult(), refusal)
    if request.post_only:
        # A post-only order only rests: it reads the first resting order it could meet.
        first = next(iter(book), None)
        if first is not None and _crosses(request.side, request.price, first.price):
            refusal = Refusal("price", _post_only_refusal(account, request, first))
        return Walk(market, account, request, fee_rate, MatchResult(), refusal)
    limit_price, bound = request.price, ""
    best = None
    passed_over: list[BookOrder] = []
    if request.price is None:
        # A market order is bounded by the band and by its slippage from the best price
        # it meets on entry: peek at that price, then walk the whole book as before.
        # Orders resting from an earlier day outside today's band are passed over.
        orders = iter(book)
        seen = []
        for order in orders:
            seen.append(order)
            if band is None or band.contains(order.price):
                best = order.price
                break
        book = chain(seen, orders)
        if band is not None:
            book = _within(band, book, passed_over)
        limit_price, bound = limits.market_order_bound(
            buying=request.side == BUY,
            best=best,
            band=band,
            slippage_pct=market.slippage_pct,
        )
    result = match(
        taker_owner_id=account.holder_id,
        side=request.side,
        book=book,
        taker_fee_rate=fee_rate,
        limit_price=limit_price,
        quantity=request.quantity,
        eur_budget=request.eur_budget,
    )
    stop_reason = ""
    if request.price is None and result.stop == Stop.LIMIT:
        stop_reason = limits.bound_reason(
            kind=bound,
            best=best,
            band=band,
            slippage_pct=market.slippage_pct,
            next_price=result.stopped_at.price,
        )
    elif result.stop == Stop.BOOK and passed_over:
        stop_reason = limits.bound_reason(
            kind="band",
            best=best,
            band=band,
            slippage_pct=None,
            next_price=passed_over[0].price,
        )
    walk = Walk(market, account, request, fee_rate, result, None, stop_reason)
    policy = policy_of(request)
    if policy.refuses_unfilled and not result.filled_quantity:
        refusal = Refusal(request.amount_field, _why_nothing_traded(walk))
    elif policy.refuses_partial and result.filled_quantity < request.quantity:
        refusal = Refusal(request.amount_field, _why_not_filled(walk))
    elif request.price is None:
        # What a market order trades is known only now: its value, and the quantity an
        # EUR amount buys, are checked here.
        bought = result.filled_quantity if request.quantity is None else None
        refusal = _size_refusal(market, request, bought, result.filled_value)
    if refusal is not None:
        return Walk(market, account, request, fee_rate, result, refusal, stop_reason)
    return walk


def _within(band: limits.PriceBand, book: Iterable[BookOrder], passed_over: list[BookOrder]):
    """The resting orders inside `band`, read lazily; the others (resting from an earlier
    day) are passed over and noted in `passed_over`."""
    for order in book:
        if band.contains(order.price):
            yield order
        else:
            passed_over.append(order)


def _entered_value(request: OrderRequest) -> Decimal | None:
    """The EUR value an order states before it meets the book: a limit order's price ×
    quantity, a market buy's budget (a market order by quantity states none)."""
    if request.price is not None and request.quantity is not None:
        return request.price * request.quantity
    return request.eur_budget


def _size_refusal(market: MarketRules, request: OrderRequest, quantity, value):
    refused = limits.order_size_refusal(
        quantity=quantity,
        value=value,
        max_quantity=market.max_order_quantity,
        max_value=market.max_order_value,
        code=market.code,
    )
    return None if refused is None else Refusal(request.amount_field, refused)


def settle(
    walk: Walk,
    *,
    available: Mapping[str, Decimal],
    house_id: int | None = None,
    order_id: int | None = None,
    trade_ids: Iterable[int] | None = None,
) -> Outcome:
    """Step two: the outcome of a walk, given the taker's `available` balances by asset
    (read under the balance locks when placing) and, when it will be written, the house
    fee account's holder id and the ids allocated for the order and its trades."""
    market, account, request, result = walk.market, walk.account, walk.request, walk.result
    policy = policy_of(request)
    side, code, fee_rate = request.side, market.code, walk.fee_rate
    reserve_asset = reserve_asset_of(side, code)
    reservation = policy.reservation(request, fee_rate, result)

    quantity = request.quantity if request.quantity is not None else result.filled_quantity
    status = status_after(quantity, result.filled_quantity)
    reason = ""
    if status in RESTING and result.stop == Stop.SELF_TRADE:
        status, reason = CANCELLED, REST_CANCELLED_SELF
    elif status in RESTING and not policy.rests:
        status = CANCELLED
        reason = (
            f"{REMAINDER_CANCELLED}: {walk.stop_reason}"
            if walk.stop_reason
            else (REMAINDER_CANCELLED)
        )
    rest = quantity - result.filled_quantity if status in RESTING else 0
    keep = (
        still_reserved(
            side=side,
            price=request.price,
            remaining=rest,
            filled_value=result.filled_value,
            fee_paid=result.fee_paid,
            fee_rate=fee_rate,
        )
        if rest
        else ZERO
    )
    order = OrderRow(
        id=order_id,
        owner_id=account.holder_id,
        market_id=market.market_id,
        side=side,
        order_type=request.order_type,
        price=request.price,
        quantity=quantity,
        eur_budget=request.eur_budget,
        filled_quantity=result.filled_quantity,
        filled_value=result.filled_value,
        fee_rate=fee_rate,
        fee_paid=result.fee_paid,
        reserved=keep,
        status=status,
        status_reason=reason,
        client_order_id=request.client_order_id,
        ticket_id=None,
        time_in_force=policy.time_in_force,
        post_only=request.post_only,
    )

    taker = account.holder_id
    moves = [Move(taker, reserve_asset, RESERVE, -reservation, reservation, order_id)]
    trades, updates, releases = [], [], []
    trade_ids = iter(trade_ids) if trade_ids is not None else None
    buying = side == BUY
    for fill in result.fills:
        maker = fill.maker
        trade_id = next(trade_ids) if trade_ids is not None else None
        buyer, seller = (taker, maker.owner_id) if buying else (maker.owner_id, taker)
        buy_fee, sell_fee = (
            (fill.taker_fee, fill.maker_fee) if buying else (fill.maker_fee, fill.taker_fee)
        )
        trades.append(
            TradeRow(
                id=trade_id,
                market_id=market.market_id,
                buy_order_id=order_id if buying else maker.order_id,
                sell_order_id=maker.order_id if buying else order_id,
                buyer_id=buyer,
                seller_id=seller,
                price=maker.price,
                quantity=fill.quantity,
                value=fill.value,
                buyer_fee=buy_fee,
                seller_fee=sell_fee,
                aggressor_side=side,
            )
        )
        moves += _settlement_moves(
            code, buyer, seller, house_id, fill, trade_id, buy_fee, sell_fee
        )
        # The resting order after its fill, and what it no longer needs locked.
        filled_quantity = maker.filled_quantity + fill.quantity
        filled_value = maker.filled_value + fill.value
        fee_paid = maker.fee_paid + fill.maker_fee
        spent = Decimal(fill.quantity) if buying else fill.value + fill.maker_fee
        maker_status = status_after(maker.quantity, filled_quantity)
        maker_keep = (
            still_reserved(
                side=SELL if buying else BUY,
                price=maker.price,
                remaining=maker.quantity - filled_quantity,
                filled_value=filled_value,
                fee_paid=fee_paid,
                fee_rate=maker.fee_rate,
            )
            if maker_status in RESTING
            else ZERO
        )
        updates.append(
            OrderUpdate(
                maker.order_id,
                filled_quantity,
                filled_value,
                fee_paid,
                maker_keep,
                maker_status,
                "",
            )
        )
        released = maker.reserved - spent - maker_keep
        if released:
            maker_asset = reserve_asset_of(SELL if buying else BUY, code)
            releases.append(
                Move(maker.owner_id, maker_asset, RELEASE, released, -released, maker.order_id)
            )
    spent = result.total_debit if buying else Decimal(result.filled_quantity)
    released = reservation - spent - keep
    moves.append(Move(taker, reserve_asset, RELEASE, released, -released, order_id))
    moves += releases

    outcome_refusal = walk.refusal
    if outcome_refusal is None and reservation > available.get(reserve_asset, ZERO):
        have = available.get(reserve_asset, ZERO)
        outcome_refusal = Refusal(
            request.amount_field,
            f"Insufficient {reserve_asset}: {describe(reserve_asset, reservation)} needed, "
            f"{describe(reserve_asset, have)} available.",
        )
    return Outcome(
        walk=walk,
        order=order,
        reservation=reservation,
        available=available,
        trades=tuple(trades),
        maker_updates=tuple(updates),
        moves=tuple(move for move in moves if move.available or move.locked),
        refusal=outcome_refusal,
        notes=tuple(_notes(walk, order) if walk.refusal is None else ()),
    )


def place(
    *,
    market: MarketRules,
    account: Account,
    request: OrderRequest,
    book: Iterable[BookOrder],
    available: Callable[[frozenset[tuple[int, str]]], Mapping[str, Decimal]],
) -> Outcome:
    """Both steps at once, for a caller that reads without locks (the estimate):
    `available(keys)` returns the taker's available balances by asset."""
    walk = match_order(market=market, account=account, request=request, book=book)
    return settle(walk, available=available(walk.balance_keys))


def max_amount(
    *,
    market: MarketRules,
    account: Account,
    side: str,
    order_type: str,
    price: Decimal | None,
    by_eur: bool,
    available: Mapping[str, Decimal],
    book: Iterable[BookOrder] = (),
) -> Decimal | int | None:
    """The most an account can put into an order (the order form's MAX): for a sell, every
    available certificate; for a market buy by EUR amount, the available EUR; for a limit
    buy, the certificates the available EUR reserves at `price`, fee included (None without
    a price); for a market buy by quantity, what the available EUR buys walking `book`
    (the sell side, in priority order) as a placement would. Never more than the market's
    largest order (quantity and value)."""
    most = min(MAX_QUANTITY, market.max_order_quantity or MAX_QUANTITY)
    if price is not None and market.max_order_value is not None:
        most = min(most, int(market.max_order_value // price))
    if side == SELL:
        return min(int(available.get(market.code, ZERO)), most)
    budget = available.get(EUR, ZERO)
    if order_type == MARKET and by_eur:
        return min(budget, MAX_AMOUNT, market.max_order_value or MAX_AMOUNT)
    fee_rate = fee_rate_for(market, account.kind, BUY)
    if order_type == LIMIT:
        if price is None:
            return None
        return affordable_quantity(
            price=price, budget=budget, spent_value=ZERO, fee_rate=fee_rate, limit=most
        )
    walk = match(
        taker_owner_id=account.holder_id,
        side=BUY,
        book=book,
        taker_fee_rate=fee_rate,
        eur_budget=min(budget, market.max_order_value or budget),
    )
    return min(walk.filled_quantity, most)


def _settlement_moves(
    code, buyer, seller, house, fill, trade_id, buyer_fee, seller_fee
) -> list[Move]:
    """One trade settled from the buyer's and seller's reservations: EUR buyer → seller,
    certificates seller → buyer, both fees to the house."""
    value, quantity = fill.value, Decimal(fill.quantity)
    return [
        Move(buyer, EUR, TRADE_DEBIT, ZERO, -value, None, trade_id),
        Move(buyer, EUR, FEE, ZERO, -buyer_fee, None, trade_id),
        Move(buyer, code, TRADE_CREDIT, quantity, ZERO, None, trade_id),
        Move(seller, code, TRADE_DEBIT, ZERO, -quantity, None, trade_id),
        Move(seller, EUR, TRADE_CREDIT, value, ZERO, None, trade_id),
        Move(seller, EUR, FEE, -seller_fee, ZERO, None, trade_id),
        Move(house, EUR, FEE, buyer_fee + seller_fee, ZERO, None, trade_id),
    ]


def _crosses(side: str, limit: Decimal, resting_price: Decimal) -> bool:
    """Whether an order at `limit` would trade with a resting order at `resting_price`."""
    return resting_price <= limit if side == BUY else resting_price >= limit


def _post_only_refusal(account: Account, request: OrderRequest, first: BookOrder) -> str:
    best, other = ("ask", "sell") if request.side == BUY else ("bid", "buy")
    move, beyond = ("lower", "below") if request.side == BUY else ("raise", "above")
    price = format_eur(first.price)
    if first.owner_id == account.holder_id:
        # It would meet the trader's own order: it could neither trade nor rest.
        return (
            f"Post-only: your own {other} order at {price} is first in line, so this order "
            f"could neither trade nor rest; {move} the price {beyond} {price}."
        )
    return (
        f"Post-only: this order would trade at once (best {best} {price}); "
        f"{move} the price to rest it."
    )


def _immediate_label(request: OrderRequest) -> str:
    return {IOC: "An immediate-or-cancel", FOK: "A fill-or-kill"}.get(request.time_in_force, "")


def _why_nothing_traded(walk: Walk) -> str:
    result, request, market = walk.result, walk.request, walk.market
    other = "sell" if request.side == BUY else "buy"
    if result.stop == Stop.SELF_TRADE:
        return _own_order_first(result.stopped_at, other, request)
    if result.stop == Stop.BUDGET:
        return "This amount does not buy a single certificate at the best offer."
    if walk.stop_reason:
        return f"Nothing can trade: {walk.stop_reason}."
    if request.price is not None:
        better = "or below" if request.side == BUY else "or above"
        best = (
            f" (the best is {format_eur(result.stopped_at.price)})"
            if result.stopped_at is not None
            else ""
        )
        return (
            f"Nothing can trade now: there are no {other} orders at "
            f"{format_eur(request.price)} {better}{best}. {_immediate_label(request)} order "
            "does not rest; nothing was placed."
        )
    return f"There are no {other} orders to trade with in {market.code}."


def _why_not_filled(walk: Walk) -> str:
    """A fill-or-kill order that would trade only part of its quantity."""
    request, filled = walk.request, walk.result.filled_quantity
    because = ""
    if walk.result.stop == Stop.SELF_TRADE:
        because = f" before your own order at {format_eur(walk.result.stopped_at.price)}"
    return (
        f"Fill or kill: only {filled:,} of {request.quantity:,} {walk.market.code} can trade "
        f"now at {format_eur(request.price)} or better{because}; nothing was placed."
    )


def _own_order_first(own: BookOrder, other: str, request: OrderRequest) -> str:
    """Nothing traded because the trader's own order is first in line: say so, and what
    to do (the other traders' orders behind it are not reached)."""
    head = (
        f"Your own {other} order at {format_eur(own.price)} is first in line, and we do not "
        "trade anyone with themselves: nothing trades, and orders behind yours are not "
        "reached."
    )
    if request.order_type == MARKET:
        return head + " Cancel your order, or place a limit order."
    return head + " Cancel your order first."


def _notes(walk: Walk, order: OrderRow) -> list[str]:
    """What the trader should know about a placement that goes ahead."""
    result, request, code = walk.result, walk.request, walk.market.code
    filled = result.filled_quantity
    notes = []
    other = "sell" if request.side == BUY else "buy"
    if request.post_only:
        notes.append("Post-only: it rests in the book and trades only when others take it.")
    elif request.order_type == LIMIT and request.time_in_force != GTC:
        unfilled = request.quantity - filled
        label = "IOC" if request.time_in_force == IOC else "Fill or kill"
        if unfilled and result.stop != Stop.SELF_TRADE:
            notes.append(
                f"{label}: {filled:,} fill now, the remaining {unfilled:,} are cancelled."
            )
        elif not unfilled:
            notes.append(f"{label}: all {filled:,} fill now; nothing rests.")
    elif request.order_type == LIMIT:
        rest = order.quantity - filled if order.status in RESTING else 0
        if filled:
            notes.append(
                f"Crosses the spread: {filled:,} trade at once, "
                + (f"{rest:,} rest in the book at your price." if rest else "none rest.")
            )
    elif filled and order.quantity is not None and request.quantity is not None:
        unfilled = request.quantity - filled
        if unfilled:
            because = f": {walk.stop_reason}" if walk.stop_reason else ""
            notes.append(
                f"Partial fill: only {filled:,} {code} can trade now; "
                f"the other {format_quantity(unfilled)} will be cancelled{because}."
            )
    elif filled and request.eur_budget is not None and result.stop in (Stop.BOOK, Stop.LIMIT):
        unspent = format_eur(request.eur_budget - result.total_debit)
        if walk.stop_reason:
            notes.append(
                f"Only {filled:,} {code} can trade now ({walk.stop_reason}); "
                f"{unspent} of your amount stays unspent."
            )
        else:
            notes.append(
                f"The book holds only {filled:,} {code} on offer; "
                f"{unspent} of your amount stays unspent."
            )
    if result.stop == Stop.SELF_TRADE and filled and order.status == CANCELLED:
        notes.append(
            f"Your own {other} order at {format_eur(result.stopped_at.price)} is next in "
            "line: the rest is cancelled rather than traded with yourself."
        )
    elif result.stop == Stop.SELF_TRADE and request.order_type == LIMIT and not filled:
        notes.append(
            f"Your own {other} order at {format_eur(result.stopped_at.price)} is first in "
            "line, and we do not trade anyone with themselves: nothing trades, and the order "
            "is cancelled rather than rest crossing yours."
        )
    return notes


# --- Resting orders that never trade, and cancellations ----------------------------------


class RestingOrder(NamedTuple):
    """A market-maker limit order to rest in the book (a liquidity operation's)."""

    owner_id: int
    side: str
    price: Decimal
    quantity: int


@dataclass(frozen=True)
class Resting:
    """The rows of `rest`: orders (ids assigned on insert) and, for each, its reservation
    (the move's order id is filled in once the order has one)."""

    orders: tuple[OrderRow, ...]
    reservations: tuple[Move, ...]
    refusal: Refusal | None = None


def rest_refusal(
    *,
    market: MarketRules,
    orders: Sequence[RestingOrder],
    best_bid: Decimal | None,
    best_ask: Decimal | None,
) -> Refusal | None:
    """Why `rest` refuses these orders, or None: a paused market, an order that would
    cross the book or another of them, or one outside the price band. Orders that pass
    together pass in any split (a caller may rest them a part at a time)."""
    bids = [order.price for order in orders if order.side == BUY]
    asks = [order.price for order in orders if order.side == SELL]
    refusal = None
    if paused := trading_refusal(market):
        return Refusal("market", paused)
    if bids and asks and max(bids) >= min(asks):
        refusal = "The planned bids and asks would cross each other."
    elif bids and best_ask is not None and max(bids) >= best_ask:
        refusal = f"A bid at {max(bids)} would cross the best ask {best_ask}."
    elif asks and best_bid is not None and min(asks) <= best_bid:
        refusal = f"An ask at {min(asks)} would cross the best bid {best_bid}."
    band = market.band
    # The band is an interval: only when its lowest or highest price is outside does any
    # order lie outside (the refusal names the first one, in the orders' order).
    prices = [*bids, *asks]
    if (
        refusal is None
        and band is not None
        and prices
        and not (band.contains(min(prices)) and band.contains(max(prices)))
    ):
        refusal = limits.outside_band(
            band, next(order.price for order in orders if not band.contains(order.price))
        )
    return None if refusal is None else Refusal(NON_FIELD, refusal)


def rest(
    *,
    market: MarketRules,
    orders: Iterable[RestingOrder],
    best_bid: Decimal | None,
    best_ask: Decimal | None,
    ticket_id: int | None = None,
    order_ids: Sequence[int] | None = None,
) -> Resting:
    """Fee-free limit orders that rest without trading, each reserving what it may spend
    (the same rule as any limit order, at a fee rate of zero). Refused in a paused market,
    if any lies outside the price band, and if any would cross the book or another of
    them: no such order ever trades on placement. `order_ids`, one per order in their
    order, are the ids allocated for them (the rows and the reservations name them);
    without, the rows have none."""
    orders = list(orders)
    order_ids = _ids_for(orders, order_ids)
    refusal = rest_refusal(market=market, orders=orders, best_bid=best_bid, best_ask=best_ask)
    if refusal is not None:
        return Resting((), (), refusal)
    return rest_rows(market=market, orders=orders, ticket_id=ticket_id, order_ids=order_ids)


def _ids_for(orders: Sequence[RestingOrder], order_ids: Sequence[int] | None) -> Sequence:
    if order_ids is None:
        return [None] * len(orders)
    if len(order_ids) != len(orders):
        raise ValueError(f"{len(order_ids)} ids for {len(orders)} orders")
    return order_ids


def rest_rows(
    *,
    market: MarketRules,
    orders: Sequence[RestingOrder],
    ticket_id: int | None = None,
    order_ids: Sequence[int] | None = None,
) -> Resting:
    """`rest`'s rows and reservations for orders that `rest_refusal` passed (as a whole or
    in a larger set: a caller may build them a part at a time)."""
    order_ids = _ids_for(orders, order_ids)
    rows, reservations = [], []
    market_id, code, tick = market.market_id, market.code, market.tick
    for (owner_id, side, price, quantity), order_id in zip(orders, order_ids, strict=True):
        if quantity <= 0 or price <= 0 or price % tick:
            raise ValueError(f"Invalid resting order {owner_id, side, price, quantity}")
        reserved = still_reserved(side=side, price=price, remaining=quantity)
        rows.append(
            OrderRow(
                order_id, owner_id, market_id, side, LIMIT, price, quantity, None,
                0, ZERO, ZERO, ZERO, reserved, OPEN, "", None, ticket_id,
            )
        )  # fmt: skip
        asset = EUR if side == BUY else code
        reservations.append(Move(owner_id, asset, RESERVE, -reserved, reserved, order_id))
    return Resting(tuple(rows), tuple(reservations))


class CancellingOrder(NamedTuple):
    """A resting order to cancel, as read under its market's lock."""

    id: int
    owner_id: int
    reserve_asset: str
    reserved: Decimal
    filled_quantity: int
    filled_value: Decimal
    fee_paid: Decimal


def cancel(
    orders: Iterable[CancellingOrder], *, reason: str
) -> tuple[list[OrderUpdate], list[Move]]:
    """Cancel resting orders: each releases everything it still reserves."""
    updates, moves = [], []
    for order in orders:
        updates.append(
            OrderUpdate(
                order.id,
                order.filled_quantity,
                order.filled_value,
                order.fee_paid,
                ZERO,
                CANCELLED,
                reason,
            )
        )
        if order.reserved:
            moves.append(
                Move(
                    order.owner_id,
                    order.reserve_asset,
                    RELEASE,
                    order.reserved,
                    -order.reserved,
                    order.id,
                )
            )
    return updates, moves


# --- Amending a resting order -------------------------------------------------------------


class AmendingOrder(NamedTuple):
    """A resting limit order to amend, as read (and locked) under its market's lock."""

    id: int
    owner_id: int
    side: str
    price: Decimal
    quantity: int
    filled_quantity: int
    filled_value: Decimal
    fee_rate: Decimal
    fee_paid: Decimal
    reserved: Decimal
    post_only: bool = False

    @property
    def remaining(self) -> int:
        return self.quantity - self.filled_quantity


class QuantityUpdate(NamedTuple):
    """A resting order shrunk in place: its new quantity and what it still reserves."""

    id: int
    quantity: int
    reserved: Decimal


@dataclass(frozen=True)
class AmendPlan:
    """What an amendment is, before the book is read: the order's new price and open
    quantity (what will rest or trade), and whether it keeps its place in the queue. A
    replacement's `request` is the new order's."""

    market: MarketRules
    order: AmendingOrder
    price: Decimal
    open_quantity: int
    keeps_priority: bool
    request: OrderRequest | None = None
    refusal: Refusal | None = None


NOTHING_TO_AMEND = "Nothing to change: give a new price or a new open quantity."


def replaced_reason(new_order_id: int | None) -> str:
    return f"replaced by #{new_order_id}" if new_order_id else "replaced by a new order"


def amend_plan(
    *,
    market: MarketRules,
    order: AmendingOrder,
    price: Decimal | None = None,
    quantity: int | None = None,
) -> AmendPlan:
    """Step one of an amendment: the order's new limit `price` and open `quantity` (the
    certificates still to trade; None keeps either). Only shrinking the open quantity at
    the same price keeps the order's place in the queue (the same order, smaller); a new
    price or a larger quantity cancels it and places a new order at the back of its
    price's queue, through the placement core (it may trade at once)."""
    price = order.price if price is None else price
    quantity = order.remaining if quantity is None else quantity
    keeps = price == order.price and quantity < order.remaining
    plan = AmendPlan(market, order, price, quantity, keeps)
    if price == order.price and quantity == order.remaining:
        return replace(plan, refusal=Refusal(NON_FIELD, NOTHING_TO_AMEND))
    if quantity <= 0:
        return replace(plan, refusal=Refusal("quantity", "The open quantity must be at least 1."))
    if keeps:
        return plan
    request = OrderRequest(
        market, order.side, LIMIT, quantity, price, None, None, GTC, order.post_only
    )
    return replace(plan, request=request)


@dataclass(frozen=True)
class Amendment:
    """Everything an amendment does. In place (`keeps_priority`): `shrunk` and a release.
    Replaced: the old order's cancellation (`cancelled`, its release first in `moves`)
    and the new order's `placement`, settled with the old order's funds added to what is
    available. With a `refusal`, nothing may be written."""

    plan: AmendPlan
    available: Mapping[str, Decimal]  # the owner's, by asset, before the amendment
    moves: tuple[Move, ...] = ()
    shrunk: QuantityUpdate | None = None
    cancelled: OrderUpdate | None = None
    placement: Outcome | None = None
    refusal: Refusal | None = None

    @property
    def order(self) -> AmendingOrder:
        return self.plan.order

    @property
    def keeps_priority(self) -> bool:
        return self.plan.keeps_priority

    @property
    def asset(self) -> str:
        return self.plan.market.code

    @property
    def reserve_asset(self) -> str:
        return reserve_asset_of(self.order.side, self.asset)

    @property
    def released(self) -> Decimal:
        """What the old order gives back (all of it, when replaced)."""
        return sum((m.available for m in self.moves if m.order_id == self.order.id), ZERO)

    @property
    def reserved_after(self) -> Decimal:
        """What stays locked for the order (or its replacement) afterwards."""
        if self.shrunk is not None:
            return self.shrunk.reserved
        return self.placement.order.reserved if self.placement is not None else ZERO

    def available_after(self, asset: str) -> Decimal:
        owner = self.order.owner_id
        moves = chain(self.moves, self.placement.moves if self.placement else ())
        change = sum(
            (m.available for m in moves if m.holder_id == owner and m.asset == asset), ZERO
        )
        return self.available.get(asset, ZERO) + change

    @property
    def eur_after(self) -> Decimal:
        return self.available_after(EUR)

    @property
    def certificates_after(self) -> Decimal:
        return self.available_after(self.asset)

    @property
    def notes(self) -> tuple[str, ...]:
        plan = self.plan
        old = self.order
        change = f"{format_quantity(old.remaining)} → {format_quantity(plan.open_quantity)}"
        if plan.keeps_priority:
            return (
                f"Keeps its place in the queue: only the open quantity shrinks ({change} "
                f"{self.asset}); {describe(self.reserve_asset, self.released)} released.",
            )
        what = []
        if plan.price != old.price:
            what.append(f"price {format_eur(old.price)} → {format_eur(plan.price)}")
        if plan.open_quantity != old.remaining:
            what.append(f"open quantity {change}")
        head = (
            f"Loses its place in the queue ({', '.join(what)}): the order is cancelled and "
            "a new one placed with its funds."
        )
        placement_notes = self.placement.notes if self.placement is not None else ()
        return (head, *placement_notes)

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.notes + ((self.refusal.message,) if self.refusal else ())

    def message(self, new_order_id: int | None = None) -> str:
        """The result, as the trader reads it."""
        plan, old = self.plan, self.order
        if plan.keeps_priority:
            return (
                f"Order #{old.id} amended: {format_quantity(plan.open_quantity)} {self.asset} "
                f"open at {format_eur(plan.price)}, still in its place in the queue; "
                f"{describe(self.reserve_asset, self.released)} released."
            )
        return f"Order #{old.id} replaced by #{new_order_id}. " + self.placement.message(
            new_order_id
        )


def amend_settle(
    plan: AmendPlan,
    *,
    account: Account,
    walk: Walk | None,
    available: Mapping[str, Decimal],
    house_id: int | None = None,
    new_order_id: int | None = None,
    trade_ids: Iterable[int] | None = None,
) -> Amendment:
    """Step two: the amendment's rows, given the owner's `available` balances (read under
    the balance locks when amending) and, for a replacement, the new order's `walk`
    (`match_order` of `plan.request`) and the ids allocated for it and its trades."""
    order, market = plan.order, plan.market
    asset = reserve_asset_of(order.side, market.code)
    if plan.refusal is not None:
        return Amendment(plan, available, refusal=plan.refusal)
    if plan.keeps_priority:
        keep = still_reserved(
            side=order.side,
            price=order.price,
            remaining=plan.open_quantity,
            filled_value=order.filled_value,
            fee_paid=order.fee_paid,
            fee_rate=order.fee_rate,
        )
        released = order.reserved - keep
        moves = (Move(order.owner_id, asset, RELEASE, released, -released, order.id),)
        return Amendment(
            plan,
            available,
            moves=tuple(m for m in moves if m.available),
            shrunk=QuantityUpdate(order.id, order.filled_quantity + plan.open_quantity, keep),
        )
    # Replaced: the old order's funds are released first, then the new order reserves.
    release = Move(order.owner_id, asset, RELEASE, order.reserved, -order.reserved, order.id)
    cancelled = OrderUpdate(
        order.id,
        order.filled_quantity,
        order.filled_value,
        order.fee_paid,
        ZERO,
        CANCELLED,
        replaced_reason(new_order_id),
    )
    with_funds = dict(available)
    with_funds[asset] = with_funds.get(asset, ZERO) + order.reserved
    placement = settle(
        walk, available=with_funds, house_id=house_id, order_id=new_order_id, trade_ids=trade_ids
    )
    refusal = placement.refusal
    if refusal is None and placement.order.status == CANCELLED and not placement.fill_quantity:
        # Nothing would trade and nothing rest (the trader's own order first in line):
        # the amendment would only cancel the order.
        refusal = Refusal(
            "price",
            "At this price the order would meet your own order first and be cancelled; "
            "nothing was changed. Choose another price, or cancel the order.",
        )
    return Amendment(
        plan,
        available,
        moves=(release,) if order.reserved else (),
        cancelled=cancelled,
        placement=placement,
        refusal=refusal,
    )


def amend(
    *,
    market: MarketRules,
    account: Account,
    order: AmendingOrder,
    price: Decimal | None,
    quantity: int | None,
    book: Iterable[BookOrder],
    available: Mapping[str, Decimal],
) -> Amendment:
    """Both steps at once, for a caller that reads without locks (the amend estimate);
    `book` is the other side, read only for a replacement."""
    plan = amend_plan(market=market, order=order, price=price, quantity=quantity)
    walk = None
    if plan.refusal is None and plan.request is not None:
        walk = match_order(market=market, account=account, request=plan.request, book=book)
    return amend_settle(plan, account=account, walk=walk, available=available)
