"""Price-time matching of one incoming order against the resting book. Pure: no ORM.

The caller hands in the opposite side of the book already in priority order (best price
first, oldest first within a price) and applies the fills it gets back. Each trade executes
at the resting order's price.

Fees are charged on cumulative traded value: a fill costs
`fee_on(value traded so far + this fill) - fee already paid`, so however an order is split
into fills it pays exactly `fee_on(total traded value)` — never more than the maximum fee
reserved for it at placement.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal

from market.money import fee_on

ZERO = Decimal("0")


@dataclass
class BookOrder:
    """A resting order as the matcher sees it; updated in place as it fills."""

    order_id: int
    owner_id: int
    price: Decimal
    remaining: int
    fee_rate: Decimal
    filled_value: Decimal = ZERO
    fee_paid: Decimal = ZERO


@dataclass(frozen=True)
class Fill:
    maker: BookOrder
    price: Decimal
    quantity: int
    value: Decimal
    maker_fee: Decimal
    taker_fee: Decimal


@dataclass
class MatchResult:
    fills: list[Fill] = field(default_factory=list)
    filled_quantity: int = 0
    filled_value: Decimal = ZERO
    fee_paid: Decimal = ZERO
    # The walk stopped at one of the taker's own resting orders (self-trade prevention).
    stopped_by_self_trade: bool = False

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
    the incoming remainder is cancelled, the resting order stays), so the book is never
    left crossed. Mutates the `BookOrder`s it fills (remaining, filled value, fee paid).
    """
    if (quantity is None) == (eur_budget is None):
        raise ValueError("Give exactly one of quantity and eur_budget")
    buying = side == "BUY"
    result = MatchResult()
    for maker in book:
        if limit_price is not None and (
            (buying and maker.price > limit_price) or (not buying and maker.price < limit_price)
        ):
            break
        if quantity is not None and result.filled_quantity >= quantity:
            break
        if maker.owner_id == taker_owner_id:
            result.stopped_by_self_trade = True
            break
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
            break
        value = maker.price * fill_quantity
        taker_fee = fee_on(result.filled_value + value, taker_fee_rate) - result.fee_paid
        maker_fee = fee_on(maker.filled_value + value, maker.fee_rate) - maker.fee_paid
        result.fills.append(
            Fill(
                maker=maker,
                price=maker.price,
                quantity=fill_quantity,
                value=value,
                maker_fee=maker_fee,
                taker_fee=taker_fee,
            )
        )
        result.filled_quantity += fill_quantity
        result.filled_value += value
        result.fee_paid += taker_fee
        maker.remaining -= fill_quantity
        maker.filled_value += value
        maker.fee_paid += maker_fee
        if maker.remaining > 0:
            # A partly filled maker means the taker is exhausted (quantity or budget).
            break
    return result


def buy_reservation_needed(
    *, price: Decimal, remaining: int, filled_value: Decimal, fee_paid: Decimal, fee_rate: Decimal
) -> Decimal:
    """EUR a resting limit buy must keep locked: the rest at its limit plus the most fee
    it can still be charged."""
    rest_value = price * remaining
    return rest_value + max(ZERO, fee_on(filled_value + rest_value, fee_rate) - fee_paid)
