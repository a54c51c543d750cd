"""Price-time matching of one incoming order against the resting book. Pure: no ORM.

The caller hands in the opposite side of the book already in priority order (best price
first, oldest first within a price), as an iterable that may be read lazily: the walk
stops reading as soon as it is done. Each trade executes at the resting order's price.

Fees are charged on cumulative traded value: a fill costs
`fee_on(value traded so far + this fill) - fee already paid`, so however an order is split
into fills it pays exactly `fee_on(total traded value)` — never more than the maximum fee
reserved for it at placement. The same holds for a resting order over all the walks that
fill it.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal

from market.core.money import ZERO, fee_on

BUY, SELL = "BUY", "SELL"


def opposite(side: str) -> str:
    """The other side of the book: where an order of `side` finds what it trades with."""
    return SELL if side == BUY else BUY


class Stop:
    """Why a walk ended."""

    FILLED = "filled"  # the order's quantity is traded
    BUDGET = "budget"  # the EUR budget does not buy one more certificate
    LIMIT = "limit"  # the next resting order is beyond the limit price
    BOOK = "book"  # no resting order left on the other side
    SELF_TRADE = "self_trade"  # the next resting order is the taker's own


@dataclass(frozen=True, slots=True)
class BookOrder:
    """A resting order as the matcher sees it, before this walk."""

    order_id: int
    owner_id: int
    price: Decimal
    quantity: int
    filled_quantity: int
    filled_value: Decimal
    fee_rate: Decimal
    fee_paid: Decimal
    reserved: Decimal

    @property
    def remaining(self) -> int:
        return self.quantity - self.filled_quantity


@dataclass(frozen=True, slots=True)
class Fill:
    maker: BookOrder
    quantity: int
    value: Decimal
    maker_fee: Decimal
    taker_fee: Decimal

    @property
    def price(self) -> Decimal:
        return self.maker.price


@dataclass(slots=True)
class MatchResult:
    fills: list[Fill] = field(default_factory=list)
    filled_quantity: int = 0
    filled_value: Decimal = ZERO
    fee_paid: Decimal = ZERO
    stop: str = Stop.BOOK
    # The resting order the walk stopped at (a price beyond the limit, the taker's own).
    stopped_at: BookOrder | None = None

    @property
    def total_debit(self) -> Decimal:
        """What a buyer pays: traded value plus fees."""
        return self.filled_value + self.fee_paid


def affordable_quantity(
    *, price: Decimal, budget: Decimal, spent_value: Decimal, fee_rate: Decimal, limit: int
) -> int:
    """The most certificates at `price` that keep value plus cumulative fee within budget."""

    def total(quantity: int) -> Decimal:
        value = spent_value + price * quantity
        return value + fee_on(value, fee_rate)

    estimate = ((budget / (1 + fee_rate) - spent_value) / price).to_integral_value(ROUND_FLOOR)
    quantity = max(0, min(limit, int(estimate)))
    while quantity < limit and total(quantity + 1) <= budget:
        quantity += 1
    while quantity > 0 and total(quantity) > budget:
        quantity -= 1
    return quantity


def match(
    *,
    taker_owner_id: int,
    side: str,
    book: Iterable[BookOrder],
    taker_fee_rate: Decimal,
    limit_price: Decimal | None = None,
    quantity: int | None = None,
    eur_budget: Decimal | None = None,
) -> MatchResult:
    """Walk `book` for an incoming order and return its fills.

    `side` is the taker's side ("BUY" or "SELL"). Exactly one of `quantity` and
    `eur_budget` (market buys only) bounds the order; `limit_price` bounds the price when
    given. Stops at the first resting order of the taker's own (self-trade prevention:
    the resting order stays), so the book is never left crossed.
    """
    if (quantity is None) == (eur_budget is None):
        raise ValueError("Give exactly one of quantity and eur_budget")
    buying = side == BUY
    result = MatchResult()
    for maker in book:
        if limit_price is not None and (
            (buying and maker.price > limit_price) or (not buying and maker.price < limit_price)
        ):
            result.stop, result.stopped_at = Stop.LIMIT, maker
            return result
        if maker.owner_id == taker_owner_id:
            result.stop, result.stopped_at = Stop.SELF_TRADE, maker
            return result
        if quantity is not None:
            fill_quantity = min(maker.remaining, quantity - result.filled_quantity)
        else:
            fill_quantity = affordable_quantity(
                price=maker.price,
                budget=eur_budget,
                spent_value=result.filled_value,
                fee_rate=taker_fee_rate,
                limit=maker.remaining,
            )
        if fill_quantity <= 0:
            result.stop = Stop.BUDGET
            return result
        value = maker.price * fill_quantity
        taker_fee = fee_on(result.filled_value + value, taker_fee_rate) - result.fee_paid
        maker_fee = fee_on(maker.filled_value + value, maker.fee_rate) - maker.fee_paid
        result.fills.append(Fill(maker, fill_quantity, value, maker_fee, taker_fee))
        result.filled_quantity += fill_quantity
        result.filled_value += value
        result.fee_paid += taker_fee
        if quantity is not None and result.filled_quantity >= quantity:
            # Done without reading further: the book may be read lazily, in batches.
            result.stop = Stop.FILLED
            return result
        if fill_quantity < maker.remaining:
            # A partly filled maker with quantity left means the budget is spent.
            result.stop = Stop.BUDGET
            return result
    return result
