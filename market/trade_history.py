"""Reads for a trader's own history: the fills of My trades (page and CSV), the maker fills
the cash market page toasts, and the account statement.

Everything here reads one holder's rows only: a fill is a trade whose buyer or seller is
the holder (never both: self-trades are refused), a statement line one of its ledger
entries. Every function runs a fixed number of queries, whatever the number of rows
(pinned by `market/tests/test_trade_history.py`): `fills_for` builds one queryset (the
page counts it and reads one page: two), `fill_values` reads its rows in chunks of one
query, `maker_fills_after` is one query, `statement` two (the opening balances, then the
period's entries, in chunks) plus the asset codes.

Periods are dates in UTC, both ends inclusive: [from 00:00, the day after to 00:00).
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Case, IntegerField, Q, QuerySet, Sum, Value, When
from django.utils import timezone

from market.core.money import unit_of
from market.core.statement import (
    BUY,
    MAKER,
    SELL,
    LedgerLine,
    Position,
    StatementLine,
    fill_kinds,
    role_of,
    statement_lines,
)
from market.models import Holder, LedgerEntry, Trade
from market.selectors import asset_codes

CHUNK = 500
CENT = Decimal("0.01")


def day_start(day: date) -> datetime:
    """Midnight UTC at the start of `day`."""
    return datetime.combine(day, time.min, tzinfo=UTC)


def period_bounds(date_from: date | None, date_to: date | None) -> tuple:
    """[start, end) of the days from `date_from` to `date_to` inclusive (None: open; so is
    the last day a date can be, whose next midnight no datetime holds)."""
    start = day_start(date_from) if date_from else None
    end = day_start(date_to + timedelta(days=1)) if date_to and date_to < date.max else None
    return start, end


# --- fills ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FillFilters:
    market: str | None = None  # a market code
    side: str | None = None  # BUY or SELL
    role: str | None = None  # MAKER or TAKER
    date_from: date | None = None
    date_to: date | None = None


@dataclass(frozen=True)
class Fill:
    """One trade as one of its two holders sees it."""

    trade_id: int
    created_at: datetime
    market_code: str
    side: str  # the holder's side: BUY or SELL
    role: str  # MAKER (the holder's order was resting) or TAKER
    price: Decimal
    quantity: int
    value: Decimal  # EUR, price × quantity
    fee: Decimal  # EUR, what the holder paid on this trade
    order_id: int  # the holder's order

    @property
    def is_buy(self) -> bool:
        return self.side == BUY


FILL_FIELDS = (
    "id",
    "created_at",
    "market__code",
    "buyer_id",
    "aggressor_side",
    "price",
    "quantity",
    "value",
    "buyer_fee",
    "seller_fee",
    "buy_order_id",
    "sell_order_id",
)


def _party(holder_id: int, side: str) -> Q:
    return Q(buyer_id=holder_id) if side == BUY else Q(seller_id=holder_id)


def _kinds_q(holder_id: int, kinds) -> Q:
    """Trades where the holder is on `side` and the aggressor on `aggressor`, for each
    (side, aggressor) pair."""
    matched = Q(pk__in=[])
    for side, aggressor in kinds:
        matched |= _party(holder_id, side) & Q(aggressor_side=aggressor)
    return matched


def fills_for(*, holder: Holder, filters: FillFilters = FillFilters()) -> QuerySet:
    """`holder`'s fills matching `filters`, newest first, as `FILL_FIELDS` value rows (turn
    them into `Fill`s with `fill_of`)."""
    if filters.side is None and filters.role is None:
        matched = Q(buyer_id=holder.pk) | Q(seller_id=holder.pk)
    else:
        matched = _kinds_q(holder.pk, fill_kinds(side=filters.side, role=filters.role))
    queryset = Trade.objects.filter(matched)
    if filters.market:
        queryset = queryset.filter(market__code=filters.market)
    start, end = period_bounds(filters.date_from, filters.date_to)
    if start:
        queryset = queryset.filter(created_at__gte=start)
    if end:
        queryset = queryset.filter(created_at__lt=end)
    return queryset.order_by("-id").values_list(*FILL_FIELDS)


def fill_of(holder_id: int, row: tuple) -> Fill:
    """A `fills_for` row as the holder `holder_id` sees it."""
    (
        trade_id,
        created_at,
        market_code,
        buyer_id,
        aggressor,
        price,
        quantity,
        value,
        buyer_fee,
        seller_fee,
        buy_order_id,
        sell_order_id,
    ) = row
    side = BUY if buyer_id == holder_id else SELL
    return Fill(
        trade_id=trade_id,
        created_at=created_at,
        market_code=market_code,
        side=side,
        role=role_of(side, aggressor),
        price=price,
        quantity=int(quantity),
        value=value,
        fee=buyer_fee if side == BUY else seller_fee,
        order_id=buy_order_id if side == BUY else sell_order_id,
    )


def fill_values(*, holder: Holder, filters: FillFilters = FillFilters()) -> Iterator[Fill]:
    """Every fill of `holder` matching `filters`, newest first, read in chunks (an export of
    any size in one query, never one per row)."""
    for row in fills_for(holder=holder, filters=filters).iterator(chunk_size=CHUNK):
        yield fill_of(holder.pk, row)


def maker_fills_after(*, holder: Holder, trade_id: int, limit: int) -> list[Fill]:
    """`holder`'s maker (passive) fills of trades after `trade_id`, newest first, at most
    `limit`. One query."""
    queryset = Trade.objects.filter(
        _kinds_q(holder.pk, fill_kinds(role=MAKER)), id__gt=trade_id
    ).order_by("-id")
    return [fill_of(holder.pk, row) for row in queryset.values_list(*FILL_FIELDS)[:limit]]


# --- the account statement -------------------------------------------------------------------


@dataclass(frozen=True)
class Statement:
    date_from: date
    date_to: date
    start: datetime
    end: datetime  # the end of the period, or now if that is earlier
    lines: Iterator[StatementLine]


def _amount(asset: str, value) -> Decimal:
    """A summed amount as stored: EUR to the cent, certificates whole. SQLite adds NUMERIC
    columns as floating point; the quantize restores the exact value."""
    return Decimal(value or 0).quantize(unit_of(asset))


def _ledger_lines(holder: Holder, start: datetime, end: datetime, assets) -> Iterator[LedgerLine]:
    # Grouped by asset in `assets` order (EUR first, then the markets by code), oldest first.
    rank = Case(
        *(When(asset=asset, then=Value(index)) for index, asset in enumerate(assets)),
        default=Value(len(assets)),
        output_field=IntegerField(),
    )
    rows = (
        LedgerEntry.objects.filter(holder=holder, created_at__gte=start, created_at__lt=end)
        .annotate(asset_rank=rank)
        .order_by("asset_rank", "id")
        .values_list(
            "id",
            "asset",
            "created_at",
            "kind",
            "available_delta",
            "locked_delta",
            "order_id",
            "trade_id",
            "ticket__ticket_id",
        )
    )
    labels = dict(LedgerEntry.Kind.choices)
    for pk, asset, created_at, kind, available, locked, order, trade, ticket in rows.iterator(
        chunk_size=CHUNK
    ):
        yield LedgerLine(
            entry_id=pk,
            asset=asset,
            created_at=created_at,
            kind=labels.get(kind, kind),
            available_delta=_amount(asset, available),
            locked_delta=_amount(asset, locked),
            order_id=order,
            trade_id=trade,
            ticket=ticket,
        )


def statement(
    *, holder: Holder, date_from: date, date_to: date, now: datetime | None = None
) -> Statement:
    """`holder`'s account statement for the days `date_from` to `date_to` (inclusive,
    UTC): per asset (EUR, then each market's certificate) the balance at the start of the
    period, every ledger entry in it with the balance after it, and the balance at its end
    (or now, for a period that has not ended). The lines are read lazily: three queries
    (the assets, the opening balances summed in SQL, the entries in chunks)."""
    now = now or timezone.now()
    start, end = period_bounds(date_from, date_to)
    end = max(start, min(end or now, now))
    assets = list(asset_codes())  # EUR first, then each market's certificate
    sums = (
        LedgerEntry.objects.filter(holder=holder, created_at__lt=start)
        .values("asset")
        .annotate(available=Sum("available_delta"), locked=Sum("locked_delta"))
        .values_list("asset", "available", "locked")
    )
    opening = {
        asset: Position(_amount(asset, available), _amount(asset, locked))
        for asset, available, locked in sums
    }
    lines = statement_lines(
        assets=assets,
        opening=opening,
        entries=_ledger_lines(holder, start, end, assets),
        start=start,
        end=end,
    )
    return Statement(date_from, date_to, start, end, lines)
