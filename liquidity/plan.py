"""The liquidity plan: which market maker places which order at which price.

Pure domain code: no ORM, no I/O, no floats. The caller (the preview and execute services)
reads the market, its book and the market makers' balances, hands them in as plain frozen
values, and gets back a frozen `LiquidityPlan`. Execution builds a fresh plan under locks
and refuses unless `fresh.fingerprint() == previewed_fingerprint`.

All arithmetic is exact: EUR amounts and prices are converted to whole cents (ints) on the
way in and back to 2-place `Decimal`s on the way out; certificates are ints.

How a plan is built
-------------------
1. **Reference price** (`reference_source`): the staff override if given (parsed:
   positive, on tick, at most `MAX_PRICE`), else the book's own reference
   (`market.core.book.reference_price`: the mid of best bid and best ask, else the best
   bid, else the best ask, else the last trade price, else the market's default, on the
   tick, an exact half tick downward). A staff reference more than the market's band (%)
   from the book's own is refused (`market.core.limits.reference_refusal`, the message
   names the allowed range) unless staff tick `reference_outside_band`, which the plan,
   its fingerprint, the operation and its ticket record.
2. **Price levels**, per side, best first, one per level of the ladder
   (`liquidity.ladder`: distance % and share %, by default 0.2 / 0.4 / 0.5 % holding
   50 / 30 / 20 %). BID at ref × (1 − distance) rounded *down* to tick; ASK at
   ref × (1 + distance) rounded *up* to tick. Then
   each level is stepped outward (bids down, asks up) as far as needed so that
   - every bid is strictly below the reference price and strictly below the best ask,
   - every ask is strictly above the reference price and strictly above the best bid,
   - levels are strictly ordered and at least one tick apart.
   A bid level that would reach zero or below raises `PlanError("reference_price")`
   (we never silently drop levels); an ask level above `MAX_PRICE` likewise, and so does
   any level outside today's price band (`MarketSnapshot.band`). A side whose EUR target
   is zero has no levels at all, so an ASK-only plan never fails on a low price.
3. **Level quantities at the prices placed**: each side's EUR target is split by the
   ladder's shares by largest remainder (in cents); a level holds the whole certificates its share
   is worth at its own price, and what a share cannot pay of one more certificate
   carries over to the next level (`_level_quantities`). So a side's planned value never
   exceeds its target and falls short of it by less than one certificate, BID and ASK
   alike, however far the levels were pushed from the reference.
4. **Allocation**, level by level, best first: a level's certificates are shared among
   the side's makers pro rata to what each holds (EUR for BID, certificates for ASK), by
   largest remainder, capped by what each maker still has after the levels before
   (`capped_largest_remainder`: what a capped maker cannot take goes to the others).
   A maker's orders are its certificates per level; it is listed only if it places one,
   and its allocation is exactly what its orders reserve.
5. **Sufficiency**: a side is sufficient when every level's certificates find makers.
   A short side yields a `Shortfall` (one per short side, so both when both are short)
   and suggested actions; it keeps its levels (what it would need) but gets **no
   allocations and no orders**: a plan is placed whole or not at all. An ASK shortfall is
   required − available; a BID shortfall adds one best-level price per maker and one
   more, since each maker buys whole certificates and may leave less than one
   certificate's price unused: funding the shortfall, spread over the side's makers or
   given to one new provider, covers the side.
6. `can_execute` = both sides sufficient and at least one order planned.

Invariants (checked by `liquidity/tests/test_plan.py`)
-------------------------------------------------------
- No maker is allocated, nor asked to lock, more than it holds; every listed maker
  places at least one order.
- A sufficient side's orders total exactly its levels' quantities; its value is ≤ its
  target and > target − the price of one certificate at its last level.
- Levels: on tick, strictly ordered, ≥ one tick apart, bids < ref < asks, bids < best ask,
  asks > best bid, bids > 0, all inside the price band.
- The plan does not depend on the order in which market makers are passed in.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Context, Decimal, Inexact, InvalidOperation, Rounded
from typing import Literal, NamedTuple

from liquidity.ladder import DEFAULT_LADDER, Ladder
from market.core.book import REFERENCE_SOURCES, reference_price
from market.core.limits import PriceBand, reference_refusal
from market.core.makers import maker_type_for
from market.core.money import MAX_PRICE, MAX_QUANTITY, capped_largest_remainder, largest_remainder

__all__ = [
    "NON_FIELD_ERRORS",
    "REFERENCE_SOURCE_LABELS",
    "LiquidityPlan",
    "MakerAllocation",
    "MakerFunds",
    "MarketSnapshot",
    "PlanError",
    "PlannedOrder",
    "PriceLevel",
    "Shortfall",
    "SidePlan",
    "build_plan",
    "most_orders",
]

Side = Literal["BID", "ASK"]
OrderSide = Literal["BUY", "SELL"]
MakerType = Literal["LIQUIDITY_PROVIDER", "ASSET_HOLDER"]
ReferenceSource = Literal["override", "mid", "best_bid", "best_ask", "last_price", "default"]

REFERENCE_SOURCE_LABELS: dict[str, str] = {"override": "entered by staff", **REFERENCE_SOURCES}

# Same key Django forms use for errors that belong to no single field.
NON_FIELD_ERRORS = "__all__"

_FINGERPRINT_VERSION = 3


class PlanError(ValueError):
    """An input the staff user can correct. `field` names the form field
    ("bid_amount_eur", "ask_amount_eur", "reference_price", or `NON_FIELD_ERRORS`)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message

    def __repr__(self) -> str:
        return f"PlanError({self.field!r}, {self.message!r})"


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class MarketSnapshot:
    """The market as the caller read it. Prices are EUR per certificate with at most two
    decimals (the `price_field` of the models); `tick_size` is a positive multiple of
    €0.01. Book prices need not be on the current tick (the tick may have changed)."""

    code: str
    tick_size: Decimal
    default_reference_price: Decimal
    best_bid: Decimal | None = None
    best_ask: Decimal | None = None
    last_price: Decimal | None = None
    # Today's price band (`MarketRules.band`): every planned order lies inside it.
    band: PriceBand | None = None
    # How far (%) a staff reference may lie from the book's own without an override.
    reference_band_pct: Decimal | None = None

    def __post_init__(self):
        if not isinstance(self.code, str) or not self.code:
            raise ValueError("MarketSnapshot.code must be a non-empty string")
        _cents(self.tick_size, "MarketSnapshot.tick_size", positive=True)
        _cents(self.default_reference_price, "MarketSnapshot.default_reference_price", True)
        for name in ("best_bid", "best_ask", "last_price"):
            value = getattr(self, name)
            if value is not None:
                _cents(value, f"MarketSnapshot.{name}", positive=True)


@dataclass(frozen=True)
class MakerFunds:
    """A market maker of the side's type and what it holds, available (not locked):
    EUR for a liquidity provider, certificates of the market's asset for an asset holder.
    Sub-cent EUR and fractional certificates are not usable and are ignored (floored)."""

    market_maker_id: int
    code: str
    name: str
    available: Decimal

    def __post_init__(self):
        if isinstance(self.market_maker_id, bool) or not isinstance(self.market_maker_id, int):
            raise ValueError("MakerFunds.market_maker_id must be an int")
        available = self.available
        if type(available) is Decimal:  # what the services pass, a thousand at a time
            if available.is_finite() and available >= 0:
                return
        elif isinstance(available, bool) or not isinstance(available, Decimal | int):
            raise ValueError("MakerFunds.available must be a Decimal")
        if not Decimal(available).is_finite() or available < 0:
            raise ValueError(f"MakerFunds.available must be finite and >= 0, got {self.available}")


# --------------------------------------------------------------------------- outputs


@dataclass(frozen=True)
class PriceLevel:
    """One price level of a side, best first.

    `target_eur` is the level's share of the side's EUR; `target_quantity` the whole
    certificates that share (with what the better levels could not use) is worth at the
    level's price (`_level_quantities`). `quantity`, `value_eur` and `orders_count` are
    what the planned orders at this level add up to: 0 when the side is short."""

    price: Decimal
    share: Decimal  # of the side, as a fraction (0.5 for 50 %)
    distance_pct: Decimal  # the ladder's distance from the reference
    target_eur: Decimal
    target_quantity: int
    quantity: int
    value_eur: Decimal
    orders_count: int


class MakerAllocation(NamedTuple):
    """What one market maker contributes to a side (a plain tuple, as `PlannedOrder`).

    BID: `available` and `allocated` are EUR, `level_allocations` the EUR budget per level.
    ASK: they are whole certificates (integral `Decimal`s), `level_allocations` the
    certificates offered per level. `sum(level_allocations) == allocated <= available`.
    `quantity` / `value_eur` / `orders_count` are its planned orders; what execution
    reserves is `value_eur` (BID, market makers pay no fee) or `quantity` (ASK)."""

    market_maker_id: int
    code: str
    name: str
    available: Decimal
    allocated: Decimal
    level_allocations: tuple[Decimal, ...]
    orders_count: int
    quantity: int
    value_eur: Decimal


class PlannedOrder(NamedTuple):
    """A limit order to place: `level` counts from 1 (best first), `quantity` > 0. A
    plain tuple, not a dataclass: a plan holds thousands, built in the execute's lock."""

    market_maker_id: int
    side: OrderSide
    level: int
    price: Decimal
    quantity: int

    @property
    def value_eur(self) -> Decimal:
        return _eur(_price_cents(self.price) * self.quantity)


@dataclass(frozen=True)
class Shortfall:
    """A side lacking assets. Amounts are EUR for BID, whole certificates for ASK."""

    side: Side
    asset: str
    maker_type: MakerType
    required: Decimal
    available: Decimal
    shortfall: Decimal


@dataclass(frozen=True)
class SidePlan:
    """One side of the plan. `asset` is "EUR" (BID) or the certificate code (ASK);
    `required` / `available` are in that asset (EUR, or whole certificates).
    An empty side (target 0) has no levels and is sufficient."""

    side: Side
    order_side: OrderSide
    maker_type: MakerType
    asset: str
    target_eur: Decimal
    target_quantity: int
    required: Decimal
    available: Decimal
    sufficient: bool
    levels: tuple[PriceLevel, ...]
    allocations: tuple[MakerAllocation, ...]
    orders: tuple[PlannedOrder, ...]
    total_quantity: int
    total_value_eur: Decimal
    # What the side lacks (0 when sufficient), in `asset`: ASK required − available; BID
    # that plus one best-level price per maker and one more (whole certificates each).
    shortfall: Decimal = Decimal(0)

    @property
    def orders_count(self) -> int:
        return len(self.orders)

    @property
    def best_price(self) -> Decimal | None:
        """The best level that places (or, on a short side, would place) certificates."""
        for level in self.levels:
            if (level.quantity if self.sufficient else level.target_quantity) > 0:
                return level.price
        return None


@dataclass(frozen=True)
class LiquidityPlan:
    """The whole plan. `shortfalls` has one entry per short side; `missing_assets` is the
    first of them (the reference API's shape). `estimated_spread` is the best planned
    ask minus the best planned bid (None when a side plans nothing);
    `estimated_spread_pct` is that spread in % of the reference price (2 places)."""

    certificate_type: str
    tick_size: Decimal
    reference_price: Decimal
    reference_source: ReferenceSource
    # The staff reference lies outside the reference band, and staff said to use it.
    reference_outside_band: bool
    bid_amount_eur: Decimal
    ask_amount_eur: Decimal
    bid_plan: SidePlan
    ask_plan: SidePlan
    can_execute: bool
    shortfalls: tuple[Shortfall, ...]
    suggested_actions: tuple[str, ...]
    warnings: tuple[str, ...]
    total_orders_count: int
    estimated_spread: Decimal | None
    estimated_spread_pct: Decimal | None
    ladder: Ladder = DEFAULT_LADDER

    @property
    def missing_assets(self) -> Shortfall | None:
        return self.shortfalls[0] if self.shortfalls else None

    @property
    def reference_source_label(self) -> str:
        return REFERENCE_SOURCE_LABELS[self.reference_source]

    @property
    def orders(self) -> tuple[PlannedOrder, ...]:
        return self.bid_plan.orders + self.ask_plan.orders

    def fingerprint(self) -> str:
        """SHA-256 (hex) of everything execution must find unchanged: market, tick,
        reference price and source, targets, and per side its sufficiency, levels, every
        allocation and every order. Makers' balances are deliberately left out: a balance
        that moved without changing any allocation or order does not invalidate the plan.

        Computed once per plan (the plan is frozen, so it cannot change) and remembered
        outside the dataclass fields, so equality and `asdict` are unaffected."""
        cached = self.__dict__.get("_fingerprint")
        if cached is not None:
            return cached
        payload = {
            "v": _FINGERPRINT_VERSION,
            "market": self.certificate_type,
            "tick": str(self.tick_size),
            "reference_price": str(self.reference_price),
            "reference_source": self.reference_source,
            "reference_outside_band": self.reference_outside_band,
            "ladder": self.ladder.as_text(),
            "bid_amount_eur": str(self.bid_amount_eur),
            "ask_amount_eur": str(self.ask_amount_eur),
            "can_execute": self.can_execute,
            "sides": [_side_fingerprint(s) for s in (self.bid_plan, self.ask_plan)],
        }
        encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(encoded.encode()).hexdigest()
        object.__setattr__(self, "_fingerprint", digest)
        return digest


def _side_fingerprint(plan: SidePlan) -> dict:
    return {
        "side": plan.side,
        "sufficient": plan.sufficient,
        "required": str(plan.required),
        "levels": [
            [str(lv.price), str(lv.share), str(lv.target_eur), lv.target_quantity, lv.quantity]
            for lv in plan.levels
        ],
        "allocations": [
            [a.market_maker_id, str(a.allocated), [str(x) for x in a.level_allocations]]
            for a in plan.allocations
        ],
        "orders": [
            [o.market_maker_id, o.side, o.level, str(o.price), o.quantity] for o in plan.orders
        ],
    }


# --------------------------------------------------------------------------- exact helpers


def _cents(value, what: str, positive: bool = False) -> int:
    """Exact whole cents of a Decimal with at most two places (ValueError otherwise)."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise ValueError(f"{what} must be a Decimal, got {type(value).__name__}")
    value = Decimal(value)
    if not value.is_finite():
        raise ValueError(f"{what} must be finite")
    cents, exact = _hundredths(value)
    if not exact:
        raise ValueError(f"{what} must have at most two decimal places, got {value}")
    if cents < 0 or (positive and cents == 0):
        raise ValueError(f"{what} must be {'positive' if positive else 'non-negative'}")
    return cents


def _hundredths(value: Decimal) -> tuple[int, bool]:
    """(value × 100 truncated to an int, whether that was exact), in integer arithmetic on
    the Decimal's exact ratio: no context precision can round it, and no Fraction is built."""
    numerator, denominator = value.as_integer_ratio()
    cents, rest = divmod(abs(numerator) * 100, denominator)
    return (-cents if numerator < 0 else cents), rest == 0


def _price_cents(price: Decimal) -> int:
    return _hundredths(price)[0]


# Enough digits for any amount the plan handles (MAX_AMOUNT in cents has 15), so `scaleb`
# never rounds; Inexact is trapped all the same, so a rounding could never pass silently.
_EXACT = Context(prec=60, traps=[Inexact, Rounded, InvalidOperation])


def _eur(cents: int) -> Decimal:
    """Whole cents to a Decimal with exactly two places, without any context rounding."""
    return Decimal(cents).scaleb(-2, _EXACT)


def _fmt_eur(cents: int) -> str:
    return f"€{_eur(cents):,}"


# --------------------------------------------------------------------------- validation


def _amount_cents(value: Decimal) -> int:
    """A side's EUR target (parsed: non-negative, at most two places) in cents."""
    return _cents(value, "amount")


def _override_cents(value: Decimal, tick_c: int) -> int:
    """The staff's reference price (parsed against the tick the market had then) in
    cents, checked against the tick the market has now."""
    cents = _cents(value, "reference_price", positive=True)
    if cents % tick_c != 0:
        raise PlanError(
            "reference_price",
            f"The reference price must be a multiple of the tick (€{_eur(tick_c)}).",
        )
    return cents


def _usable_makers(makers: Sequence[MakerFunds], unit_cents: int) -> list[tuple[MakerFunds, int]]:
    """Makers sorted by id with their usable holding in integer units (cents for EUR,
    whole certificates when `unit_cents` is 100). Duplicate ids are a programming error."""
    seen: set[int] = set()
    result = []
    for maker in sorted(makers, key=lambda mk: mk.market_maker_id):
        if maker.market_maker_id in seen:
            raise ValueError(f"market maker {maker.market_maker_id} passed twice")
        seen.add(maker.market_maker_id)
        units = _hundredths(maker.available)[0] // unit_cents
        result.append((maker, units))
    return result


# --------------------------------------------------------------------------- pricing


def _book_reference(market: MarketSnapshot) -> tuple[Decimal, str]:
    return reference_price(
        best_bid=market.best_bid,
        best_ask=market.best_ask,
        last_price=market.last_price,
        default=market.default_reference_price,
        tick=market.tick_size,
    )


def _reference(
    market: MarketSnapshot, override, tick_c: int, outside_band: bool
) -> tuple[int, ReferenceSource, bool]:
    """The reference in cents, its source, and whether staff's override of the reference
    band was needed (and given)."""
    if override is not None:
        cents = _override_cents(override, tick_c)
        book_c = _cents(_book_reference(market)[0], "reference")
        # A book reference below half a tick is no yardstick: staff must enter one.
        refused = book_c > 0 and reference_refusal(
            entered=_eur(cents),
            book_reference=_eur(book_c),
            pct=market.reference_band_pct,
            tick=market.tick_size,
        )
        if refused and not outside_band:
            raise PlanError("reference_price", refused)
        return cents, "override", bool(refused)
    price, source = _book_reference(market)
    ref = _cents(price, "reference")
    if ref <= 0:
        raise PlanError(
            "reference_price",
            f"The {REFERENCE_SOURCE_LABELS[source]} rounds to zero on a €{_eur(tick_c)} tick; "
            "enter a reference price.",
        )
    return ref, source, False


def _bid_prices(ref_c: int, tick_c: int, best_ask_c: int | None, ladder: Ladder) -> list[int]:
    ceiling = (ref_c - 1) // tick_c * tick_c  # highest tick strictly below ref
    if best_ask_c is not None:
        ceiling = min(ceiling, (best_ask_c - 1) // tick_c * tick_c)
    prices: list[int] = []
    for level in ladder:
        price = (ref_c * (10000 - level.distance_bp)) // (10000 * tick_c) * tick_c
        price = min(price, ceiling, prices[-1] - tick_c if prices else price)
        if price <= 0:
            raise PlanError(
                "reference_price",
                f"The reference price €{_eur(ref_c)} is too low for {len(ladder)} bid "
                f"level{'s' if len(ladder) > 1 else ''} on a "
                f"€{_eur(tick_c)} tick"
                + (f" below the best ask €{_eur(best_ask_c)}" if best_ask_c is not None else "")
                + "; enter a higher reference price.",
            )
        prices.append(price)
    return prices


def _ask_prices(ref_c: int, tick_c: int, best_bid_c: int | None, ladder: Ladder) -> list[int]:
    floor = (ref_c // tick_c + 1) * tick_c  # lowest tick strictly above ref
    if best_bid_c is not None:
        floor = max(floor, (best_bid_c // tick_c + 1) * tick_c)
    prices: list[int] = []
    for level in ladder:
        price = -((-ref_c * (10000 + level.distance_bp)) // (10000 * tick_c)) * tick_c
        price = max(price, floor, prices[-1] + tick_c if prices else price)
        prices.append(price)
    if prices[-1] > _price_cents(MAX_PRICE):
        raise PlanError(
            "reference_price",
            f"The reference price €{_eur(ref_c)} is too high: an ask level would exceed "
            f"€{MAX_PRICE:,.2f}.",
        )
    return prices


# --------------------------------------------------------------------------- sides


def _check_order_sizes(orders: list[PlannedOrder], field: str, label: str) -> None:
    biggest = max((o.quantity for o in orders), default=0)
    if biggest > MAX_QUANTITY:
        raise PlanError(
            field,
            f"The {label} is too large: one order would hold {biggest:,} certificates, above "
            f"the per-order maximum of {MAX_QUANTITY:,}. Lower it or add market makers.",
        )


def _level_quantities(level_eur: list[int], prices: list[int]) -> list[int]:
    """Whole certificates per level at the prices placed, best level first: each level
    buys (or offers) what its EUR share is worth, and what a level's share cannot pay of
    one more certificate carries over to the next level. The side's value therefore never
    exceeds its target and falls short of it by less than one certificate."""
    quantities, carry = [], 0
    for eur, price in zip(level_eur, prices, strict=True):
        quantity, carry = divmod(eur + carry, price)
        quantities.append(quantity)
    return quantities


def _side_plan(
    *,
    side: Side,
    asset: str,
    target_c: int,
    prices: list[int],
    level_eur: list[int],
    makers: list[tuple[MakerFunds, int]],
    ladder: Ladder,
) -> SidePlan:
    """Assemble a side: certificates per level (`_level_quantities`) allocated across the
    makers level by level, pro rata to what each holds and capped by what it still has
    (`capped_largest_remainder`). Units of holdings: cents for BID (a certificate at a
    level costs its price), whole certificates for ASK. A side is sufficient when every
    level's certificates find makers; a short side plans no orders (a plan is placed
    whole or not at all). An empty side has no prices."""
    bid = side == "BID"
    order_side: OrderSide = "BUY" if bid else "SELL"
    available_units = sum(units for _, units in makers)
    targets = _level_quantities(level_eur, prices)
    costs = prices if bid else [1] * len(prices)
    required_units = sum(q * cost for q, cost in zip(targets, costs, strict=True))

    units_out = _eur if bid else Decimal  # integer units back to what the plan returns

    # Level by level: each level's parts (one per maker, in the makers' order), and what
    # each maker has left for the next levels.
    weights = [units for _, units in makers]
    left = list(weights)
    level_parts: list[list[int]] = []
    unplaced_units = 0
    for quantity, cost in zip(targets, costs, strict=True):
        parts = capped_largest_remainder(quantity, weights, [room // cost for room in left])
        level_parts.append(parts)
        left = [room - part * cost for room, part in zip(left, parts, strict=True)]
        unplaced_units += (quantity - sum(parts)) * cost
    sufficient = unplaced_units == 0
    # What to add so that the side is covered however it is spread over these makers:
    # each buys whole certificates, so each may leave up to one certificate's price
    # unused (the allocation places everything once the makers hold the required amount
    # plus one best-level price per maker, see `test_plan.py`); one more for a new maker.
    # Certificates offered are whole already: what is missing, exactly.
    if sufficient:
        shortfall = 0
    elif bid:
        shortfall = required_units + (len(makers) + 1) * max(prices) - available_units
    else:
        shortfall = required_units - available_units

    # Integer cents / units throughout; a Decimal is built only for what the plan
    # returns, and each level's price Decimal once, shared by its orders.
    price_out = [_eur(price) for price in prices]
    level_quantity = [0] * len(prices)
    level_count = [0] * len(prices)
    allocations: list[MakerAllocation] = []
    by_level: list[list[PlannedOrder]] = [[] for _ in prices]
    if sufficient:
        levels_of = list(enumerate(zip(prices, costs, price_out, by_level, strict=True)))
        rows = list(zip(*level_parts, strict=True)) if level_parts else [()] * len(makers)
        for (maker, units), row in zip(makers, rows, strict=True):
            if not any(row):
                continue
            maker_id = maker.market_maker_id
            spent_per_level = []
            spent = value_c = count = quantity_total = 0
            for (lv, (price, cost, price_dec, level_orders)), quantity in zip(
                levels_of, row, strict=True
            ):
                units_spent = quantity * cost
                spent_per_level.append(units_spent)
                if quantity:
                    level_orders.append(
                        PlannedOrder(maker_id, order_side, lv + 1, price_dec, quantity)
                    )
                    level_quantity[lv] += quantity
                    level_count[lv] += 1
                    count += 1
                    quantity_total += quantity
                    spent += units_spent
                    value_c += quantity * price
            allocations.append(
                MakerAllocation(
                    market_maker_id=maker_id,
                    code=maker.code,
                    name=maker.name,
                    available=units_out(units),
                    allocated=units_out(spent),
                    level_allocations=tuple(map(units_out, spent_per_level)),
                    orders_count=count,
                    quantity=quantity_total,
                    value_eur=_eur(value_c),
                )
            )
    # Makers come sorted by id (`_usable_makers`), so appending level by level already
    # gives the order (level, market maker id).
    orders = [order for level_orders in by_level for order in level_orders]

    levels = tuple(
        PriceLevel(
            price=price_out[lv],
            share=ladder.levels[lv].share,
            distance_pct=ladder.levels[lv].distance_pct,
            target_eur=_eur(level_eur[lv]),
            target_quantity=targets[lv],
            quantity=level_quantity[lv],
            value_eur=_eur(price * level_quantity[lv]),
            orders_count=level_count[lv],
        )
        for lv, price in enumerate(prices)
    )
    return SidePlan(
        side=side,
        order_side=order_side,
        maker_type=maker_type_for(side),
        asset=asset,
        target_eur=_eur(target_c),
        target_quantity=sum(targets),
        required=units_out(required_units),
        available=units_out(available_units),
        sufficient=sufficient,
        levels=levels,
        allocations=tuple(allocations),
        orders=tuple(orders),
        total_quantity=sum(level_quantity),
        total_value_eur=_eur(sum(p * q for p, q in zip(prices, level_quantity, strict=True))),
        shortfall=units_out(shortfall),
    )


def _check_band(prices: list[int], band: PriceBand | None, label: str) -> None:
    if band is None:
        return
    outside = [price for price in prices if not band.contains(_eur(price))]
    if outside:
        raise PlanError(
            "reference_price",
            f"{label} level at {_fmt_eur(outside[0])} would lie outside today's price band "
            f"{band.describe()}; enter a reference price further inside the band.",
        )


def _bid_side(
    bid_c: int,
    ref_c: int,
    market: MarketSnapshot,
    best_ask_c,
    makers: Sequence[MakerFunds],
    ladder: Ladder,
) -> SidePlan:
    tick_c = _cents(market.tick_size, "tick_size", positive=True)
    prices = _bid_prices(ref_c, tick_c, best_ask_c, ladder) if bid_c else []
    _check_band(prices, market.band, "A bid")
    plan = _side_plan(
        side="BID",
        asset="EUR",
        target_c=bid_c,
        prices=prices,
        level_eur=largest_remainder(bid_c, _weights(ladder)) if bid_c else [],
        makers=_usable_makers(makers, unit_cents=1),
        ladder=ladder,
    )
    _check_order_sizes(list(plan.orders), "bid_amount_eur", "BID amount")
    return plan


def _ask_side(
    ask_c: int,
    ref_c: int,
    market: MarketSnapshot,
    best_bid_c,
    makers: Sequence[MakerFunds],
    ladder: Ladder,
) -> SidePlan:
    tick_c = _cents(market.tick_size, "tick_size", positive=True)
    prices = _ask_prices(ref_c, tick_c, best_bid_c, ladder) if ask_c else []
    _check_band(prices, market.band, "An ask")
    plan = _side_plan(
        side="ASK",
        asset=market.code,
        target_c=ask_c,
        prices=prices,
        level_eur=largest_remainder(ask_c, _weights(ladder)) if ask_c else [],
        makers=_usable_makers(makers, unit_cents=100),
        ladder=ladder,
    )
    _check_order_sizes(list(plan.orders), "ask_amount_eur", "ASK amount")
    return plan


def _weights(ladder: Ladder) -> list[int]:
    return [level.share_weight for level in ladder]


def _suggestions(shortfall: Shortfall) -> list[str]:
    if shortfall.side == "BID":
        amount = f"€{shortfall.shortfall:,}"
        return [
            f"Create liquidity providers holding {amount} more",
            f"Fund existing liquidity providers with {amount}",
        ]
    amount = f"{int(shortfall.shortfall):,} {shortfall.asset}"
    return [
        f"Create asset holders holding {amount} more",
        f"Fund existing asset holders with {amount}",
    ]


def _warnings(plan: SidePlan, ref_c: int) -> list[str]:
    if plan.target_eur <= 0 or not plan.sufficient or plan.orders:
        return []
    amount = _fmt_eur(_price_cents(plan.target_eur))
    if plan.side == "ASK":
        return [
            f"The ASK amount {amount} is worth less than one {plan.asset} at the planned "
            "prices: no ASK orders."
        ]
    return [f"The BID amount {amount} does not buy one certificate at any level: no BID orders."]


def build_plan(
    *,
    market: MarketSnapshot,
    bid_amount_eur: Decimal,
    ask_amount_eur: Decimal,
    liquidity_providers: Sequence[MakerFunds],
    asset_holders: Sequence[MakerFunds],
    reference_price_override: Decimal | None = None,
    reference_outside_band: bool = False,
    ladder: Ladder = DEFAULT_LADDER,
) -> LiquidityPlan:
    """Build the liquidity plan for `market` (see the module docstring for the rules).

    `liquidity_providers` hold EUR, `asset_holders` hold certificates of `market.code`;
    pass only active ones (zero holdings are tolerated and get nothing). Their order does
    not matter. `ladder` (parsed by `liquidity.ladder.ladder_parse`) sets the levels.
    The amounts and the override come parsed (`market.core.money`: at most two places,
    in range, at least one amount positive). Raises `PlanError` for what the
    staff user can correct once the market is known (a reference price off the market's
    tick, too high, too low for the ladder's bid levels, too far from the book's without
    `reference_outside_band`, or putting a level outside the price band; an order above
    `MAX_QUANTITY` certificates) and `ValueError` for malformed input.
    """
    bid_c = _amount_cents(bid_amount_eur)
    ask_c = _amount_cents(ask_amount_eur)
    if bid_c == 0 and ask_c == 0:
        raise ValueError("a plan needs a BID or an ASK amount")
    tick_c = _cents(market.tick_size, "tick_size", positive=True)
    ref_c, source, outside_band = _reference(
        market, reference_price_override, tick_c, reference_outside_band
    )
    best_bid_c = _cents(market.best_bid, "best_bid") if market.best_bid is not None else None
    best_ask_c = _cents(market.best_ask, "best_ask") if market.best_ask is not None else None

    bid_plan = _bid_side(bid_c, ref_c, market, best_ask_c, liquidity_providers, ladder)
    ask_plan = _ask_side(ask_c, ref_c, market, best_bid_c, asset_holders, ladder)

    shortfalls = tuple(
        Shortfall(
            side=p.side,
            asset=p.asset,
            maker_type=p.maker_type,
            required=p.required,
            available=p.available,
            shortfall=p.shortfall,
        )
        for p in (bid_plan, ask_plan)
        if not p.sufficient
    )
    total_orders = bid_plan.orders_count + ask_plan.orders_count
    warnings = _warnings(bid_plan, ref_c) + _warnings(ask_plan, ref_c)
    if not shortfalls and total_orders == 0:
        warnings.append("The plan places no orders: raise the amounts.")

    spread = spread_pct = None
    best_bid, best_ask = bid_plan.best_price, ask_plan.best_price
    if best_bid is not None and best_ask is not None:
        spread_c = _price_cents(best_ask) - _price_cents(best_bid)
        spread = _eur(spread_c)
        # Hundredths of a percent of the reference price, rounded half up.
        spread_pct = _eur((spread_c * 10000 * 2 + ref_c) // (2 * ref_c))

    return LiquidityPlan(
        certificate_type=market.code,
        tick_size=_eur(tick_c),
        reference_price=_eur(ref_c),
        reference_source=source,
        reference_outside_band=outside_band,
        bid_amount_eur=_eur(bid_c),
        ask_amount_eur=_eur(ask_c),
        bid_plan=bid_plan,
        ask_plan=ask_plan,
        can_execute=not shortfalls and total_orders > 0,
        shortfalls=shortfalls,
        suggested_actions=tuple(a for s in shortfalls for a in _suggestions(s)),
        warnings=tuple(warnings),
        total_orders_count=total_orders,
        estimated_spread=spread,
        estimated_spread_pct=spread_pct,
        ladder=ladder,
    )


_ONE_CENT = Decimal("0.01")


def most_orders(
    *,
    bid_amount_eur: Decimal,
    ask_amount_eur: Decimal,
    liquidity_providers: Sequence[MakerFunds],
    asset_holders: Sequence[MakerFunds],
    ladder: Ladder = DEFAULT_LADDER,
) -> int:
    """The most orders `build_plan` can plan from these inputs, before planning: a
    maker's part of a level is one order, so at most one order per level for each maker
    that holds something (a cent; a whole certificate) on a side with an amount.

    Execution reserves this many order ids before it builds the plan, so that the
    database allocates them while the plan is computed; the ones the plan leaves unused
    are a gap in the ids, as after any rolled-back insert."""
    levels = len(ladder)
    bids = sum(1 for maker in liquidity_providers if maker.available >= _ONE_CENT)
    asks = sum(1 for maker in asset_holders if maker.available >= 1)
    return levels * ((bids if bid_amount_eur > 0 else 0) + (asks if ask_amount_eur > 0 else 0))
