"""The trader API: a trader's balances, orders and trades, by trader token or session.

Shapes follow CCXT's unified structures, so a trading client written for CCXT maps onto
them: an order's `status` is `open`, `closed` (filled) or `canceled`, with `filled`,
`remaining`, `cost` (EUR traded, before fees) and `fee`; a trade says `takerOrMaker`;
balances are `{ASSET: {free, used, total}, ..., "free": {...}, "used": {...},
"total": {...}}`. Field names are CCXT's (camelCase where CCXT's are: `clientOrderId`,
`timeInForce`, `postOnly`, `takerOrMaker`); requests take snake_case. Money, prices and
certificate amounts travel as decimal strings, times as milliseconds since the epoch
(`timestamp`) and ISO 8601 UTC (`datetime`). Ids are strings, as in CCXT.

A trader sees and touches only their own account: any other order id answers 404, as an
id that names no order does (a superuser's session too: this is the trading API, not the
back office). See docs/trader-api.md.
"""

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from ninja import Field, Query, Router, Schema, Status
from pydantic import BaseModel, ConfigDict

from config.api_auth import TRADER_AUTH
from config.api_schemas import (
    COMMON,
    HOSTILE_INPUT,
    BadRequestOut,
    ExactNumber,
    NotFoundOut,
    Out,
    RequestErrorOut,
)
from config.http import client_ip
from config.throttle import count_call
from market import selectors
from market.core.money import EUR
from market.models import Market, Order
from market.selectors_trader import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    Fill,
    last_fill_times,
    order_fills,
    trader_fills,
    trader_order,
    trader_orders,
    trader_orders_by_id,
)
from market.services.holders import trader_holder_for
from market.services.orders import (
    order_amend,
    order_cancel,
    order_place,
    order_request_parse,
    orders_cancel_all,
)
from market.validation import MAX_ID, FieldErrors, IdempotencyKeyReused

router = Router(tags=["Trading"], auth=TRADER_AUTH)

Status_ = Order.Status
# Amounts, prices and EUR costs arrive as JSON numbers (read exactly from their text) or
# decimal strings; the one strict parser checks both.
Money = ExactNumber
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
# Milliseconds since the epoch, up to the year 9999.
Millis = Annotated[int, Field(ge=0, le=253_402_300_799_999)]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

CCXT_STATUS = {
    Status_.OPEN: "open",
    Status_.PARTIALLY_FILLED: "open",
    Status_.FILLED: "closed",
    Status_.CANCELLED: "canceled",
}
STATUSES_OF = {
    "open": Order.RESTING,
    "closed": (Status_.FILLED,),
    "canceled": (Status_.CANCELLED,),
}
# The service's field names → this API's request fields.
REQUEST_FIELDS = {
    "market": "symbol",
    "order_type": "type",
    "quantity": "amount",
    "eur_budget": "cost",
    NON_FIELD_ERRORS: "__all__",
}


# --- Shapes -------------------------------------------------------------------------------


class FeeOut(Out):
    cost: str = Field(examples=["0.14"])
    currency: str = Field(examples=["EUR"])


class MyTradeOut(Out):
    """One of the trader's fills (CCXT's trade structure)."""

    id: str
    order: str = Field(description="The id of the trader's order that traded")
    timestamp: int
    datetime: str
    symbol: str = Field(examples=["CEA/EUR"])
    side: Literal["buy", "sell"]
    takerOrMaker: Literal["taker", "maker"]
    price: str
    amount: str = Field(description="Certificates")
    cost: str = Field(description="EUR, price × amount, before fees")
    fee: FeeOut


class OrderInfoOut(Out):
    """This exchange's own words for the order (CCXT's `info`)."""

    status: str = Field(examples=["PARTIALLY_FILLED"])
    status_reason: str = Field(description="Why it was cancelled, when it was")
    eur_budget: str | None = Field(description="A market buy's EUR amount")
    replaced_order_id: str | None = Field(
        description="On an amend's answer: the order this one replaced (cancel-replace), "
        "null when the order was amended in place"
    )


class OrderOut(Out):
    """An order (CCXT's order structure). `amount` is null for a market buy by EUR
    amount (`cost` in the request) until it trades; `price` is null for market orders;
    `trades` are listed on single-order answers, null in lists."""

    id: str
    clientOrderId: str | None
    timestamp: int
    datetime: str
    lastTradeTimestamp: int | None
    lastUpdateTimestamp: int
    status: Literal["open", "closed", "canceled"]
    symbol: str = Field(examples=["CEA/EUR"])
    type: Literal["limit", "market"]
    timeInForce: Literal["GTC", "IOC", "FOK"]
    postOnly: bool
    side: Literal["buy", "sell"]
    price: str | None
    average: str | None
    amount: str | None
    filled: str
    remaining: str | None
    cost: str
    fee: FeeOut
    trades: list[MyTradeOut] | None
    info: OrderInfoOut


class AssetBalanceOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    free: str = Field(description="Available to trade or withdraw")
    used: str = Field(description="Reserved by open orders")
    total: str


class BalancesOut(BaseModel):
    """CCXT's balance structure: one `{free, used, total}` per asset (EUR and every
    market's certificate) under its code, and the same numbers by kind."""

    model_config = ConfigDict(extra="allow", title="BalancesOut")
    __pydantic_extra__: dict[str, AssetBalanceOut]

    free: dict[str, str]
    used: dict[str, str]
    total: dict[str, str]


class OrderNotOpenOut(Out):
    """409: the order is filled or cancelled already; nothing was changed."""

    error: str = Field(examples=["order_not_open"])
    message: str
    order: OrderOut


class ClientOrderIdReusedOut(Out):
    """422 `idempotency_key_reused`: the `client_order_id` already placed a different
    order; that order stands and nothing was changed."""

    error: str = Field(examples=["idempotency_key_reused"])
    message: str


class OrderIn(Schema):
    symbol: str = Field(max_length=40, examples=["CEA/EUR"])
    type: str = Field(max_length=10, examples=["limit"], description="`limit` or `market`")
    side: str = Field(max_length=10, examples=["buy"], description="`buy` or `sell`")
    amount: Money | None = Field(
        None, examples=["2"], description="Certificates (whole units); not with `cost`"
    )
    price: Money | None = Field(None, examples=["13.90"], description="A limit order's price")
    cost: Money | None = Field(
        None,
        examples=["1000.00"],
        description="EUR to spend: a market buy by amount of money instead of `amount`",
    )
    time_in_force: str | None = Field(
        None,
        max_length=10,
        examples=["GTC"],
        description="GTC (default: rests until cancelled), IOC (trades what it can now, "
        "cancels the rest) or FOK (trades all of it now, or nothing); a market order is IOC",
    )
    post_only: bool = Field(
        False, description="A limit GTC order that only rests: refused if it would trade at once"
    )
    client_order_id: str | None = Field(
        None,
        max_length=64,
        examples=["bot-7f3a-0001"],
        description="Your id for the order, unique per account: a retried request with it "
        "returns the order it placed",
    )


class AmendIn(Schema):
    price: Money | None = Field(None, examples=["13.95"], description="The new limit price")
    amount: Money | None = Field(
        None,
        examples=["1"],
        description="The certificates still to trade (the new `remaining`)",
    )


class CancelAllIn(Schema):
    symbol: str | None = Field(
        None, max_length=40, examples=["CEA/EUR"], description="One market; all when left out"
    )


class OrdersQuery(Schema):
    symbol: str | None = Field(None, max_length=40, examples=["CEA/EUR"])
    status: Literal["open", "closed", "canceled"] | None = None
    since: Millis | None = Field(None, description="Placed at or after (ms since the epoch)")
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


class TradesQuery(Schema):
    symbol: str | None = Field(None, max_length=40, examples=["CEA/EUR"])
    since: Millis | None = Field(None, description="At or after (ms since the epoch)")
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


# --- Conversions --------------------------------------------------------------------------


def millis(moment: datetime) -> int:
    """Whole milliseconds since the epoch (exact: no float on the way)."""
    return (moment - EPOCH) // timedelta(milliseconds=1)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def since_of(value: int | None) -> datetime | None:
    return None if value is None else EPOCH + timedelta(milliseconds=value)


def symbol_of(code: str) -> str:
    return f"{code}/{EUR}"


def _base_of(symbol: str) -> str | None:
    """The market code of a CCXT symbol (`CEA/EUR` → `CEA`), None for text that cannot
    name one (only a possible code reaches the database)."""
    base, slash, quote = str(symbol).strip().upper().partition("/")
    if slash and quote == EUR and base.isascii() and base.isalnum() and len(base) <= 12:
        return base
    return None


def _unknown_symbol(symbol: str) -> str:
    known = ", ".join(symbol_of(code) for code in selectors.market_codes())
    return f"Unknown symbol {symbol!r}: use one of {known}."


def market_of_symbol(symbol: str) -> Market:
    """The market a CCXT symbol (`CEA/EUR`) names; ValidationError on `symbol` otherwise."""
    base = _base_of(symbol)
    market = Market.objects.filter(code=base).first() if base else None
    if market is None:
        raise ValidationError({"symbol": _unknown_symbol(symbol)})
    return market


def asset_amount(asset: str, value) -> str:
    """A balance as a decimal string: EUR to the cent, certificates as whole numbers."""
    if asset == EUR:
        return str(value)
    return str(int(value)) if value == int(value) else str(value)


def _fill_out(fill: Fill) -> dict:
    return {
        "id": str(fill.id),
        "order": str(fill.order_id),
        "timestamp": millis(fill.created_at),
        "datetime": iso(fill.created_at),
        "symbol": symbol_of(fill.market_code),
        "side": fill.side.lower(),
        "takerOrMaker": "taker" if fill.taker else "maker",
        "price": str(fill.price),
        "amount": str(fill.quantity),
        "cost": str(fill.value),
        "fee": {"cost": str(fill.fee), "currency": EUR},
    }


def order_out(
    order: Order, *, last_trade_at: datetime | None, fills: Sequence[Fill] | None = None
) -> dict:
    amount = order.quantity
    average = order.average_price
    return {
        "id": str(order.pk),
        "clientOrderId": order.client_order_id,
        "timestamp": millis(order.created_at),
        "datetime": iso(order.created_at),
        "lastTradeTimestamp": millis(last_trade_at) if last_trade_at else None,
        "lastUpdateTimestamp": millis(order.updated_at),
        "status": CCXT_STATUS[order.status],
        "symbol": symbol_of(order.market.code),
        "type": order.order_type.lower(),
        "timeInForce": order.time_in_force,
        "postOnly": order.post_only,
        "side": order.side.lower(),
        "price": str(order.price) if order.price is not None else None,
        "average": str(average) if average is not None else None,
        "amount": str(amount) if amount is not None else None,
        "filled": str(order.filled_quantity),
        "remaining": str(amount - order.filled_quantity) if amount is not None else None,
        "cost": str(order.filled_value),
        "fee": {"cost": str(order.fee_paid), "currency": EUR},
        "trades": None if fills is None else [_fill_out(fill) for fill in fills],
        "info": {
            "status": order.status,
            "status_reason": order.status_reason,
            "eur_budget": str(order.eur_budget) if order.eur_budget is not None else None,
            "replaced_order_id": None,
        },
    }


def _one_order_out(holder, order: Order) -> dict:
    """An order with its trades: one query for them."""
    fills = order_fills(holder=holder, order_ids=[order.pk])[order.pk]
    return order_out(order, last_trade_at=fills[-1].created_at if fills else None, fills=fills)


def _orders_out(orders: Sequence[Order]) -> list[dict]:
    traded = [order.pk for order in orders if order.filled_quantity]
    times = last_fill_times(order_ids=traded)
    return [order_out(order, last_trade_at=times.get(order.pk)) for order in orders]


def _renamed(error: ValidationError, names: Mapping[str, str]) -> ValidationError:
    """A service's refusal keyed by this API's request fields."""
    if not hasattr(error, "error_dict"):
        return ValidationError({"__all__": error.messages})
    return ValidationError(
        {names.get(field, field): texts for field, texts in error.message_dict.items()}
    )


def _not_found(order_id: int):
    return Status(404, {"error": "not_found", "message": f"No order {order_id} of yours."})


# --- Endpoints ----------------------------------------------------------------------------


@router.get("/balances", response={200: BalancesOut, **HOSTILE_INPUT, **COMMON})
def balances(request):
    """Every asset's balance: `free` (available), `used` (reserved by open orders) and
    `total`, as decimal strings."""
    holder = trader_holder_for(request.user)
    rows = sorted(selectors.holder_balances(holder=holder).values(), key=lambda row: row.asset)
    body: dict = {"free": {}, "used": {}, "total": {}}
    for row in rows:
        free, used, total = (
            asset_amount(row.asset, value) for value in (row.available, row.locked, row.total)
        )
        body[row.asset] = {"free": free, "used": used, "total": total}
        body["free"][row.asset], body["used"][row.asset] = free, used
        body["total"][row.asset] = total
    return body


@router.get("/orders", response={200: list[OrderOut], 400: BadRequestOut, **COMMON})
def orders_list(request, query: Query[OrdersQuery]):
    """The trader's orders, oldest first: of one `symbol`, in one `status`, placed at or
    after `since`; at most `limit` (without `since`, the latest ones)."""
    holder = trader_holder_for(request.user)
    market = market_of_symbol(query.symbol) if query.symbol is not None else None
    orders = trader_orders(
        holder=holder,
        market_id=market.pk if market else None,
        statuses=STATUSES_OF[query.status] if query.status else None,
        since=since_of(query.since),
        limit=query.limit,
    )
    return _orders_out(orders)


@router.post(
    "/orders",
    response={
        200: OrderOut,
        201: OrderOut,
        400: BadRequestOut,
        **COMMON,
        422: ClientOrderIdReusedOut | RequestErrorOut,
    },
)
def order_create(request, payload: OrderIn):
    """Place an order. 201 with the order as placed (its `trades` are the fills it
    took at once); 200 with the same order when `client_order_id` names one this account
    placed before with the same request (a retry); 422 `idempotency_key_reused` when it
    names a different one. 400 `validation_error` with a message per field for anything
    to fix: an unknown symbol, an amount or price that is not a decimal string of the
    right form, insufficient funds, a closed market..."""
    count_call(request.user, "order_place")
    holder = trader_holder_for(request.user)
    order_request = _order_request(payload)
    try:
        placement = order_place(
            owner=holder, request=order_request, actor=request.user, ip=client_ip(request)
        )
    except IdempotencyKeyReused as error:
        message = " ".join(error.messages)
        return Status(422, {"error": "idempotency_key_reused", "message": message})
    except ValidationError as error:
        raise _renamed(error, REQUEST_FIELDS) from None
    order = Order.objects.select_related("market").get(pk=placement.order.pk)
    return Status(201 if placement.created else 200, _one_order_out(holder, order))


def _order_request(payload: OrderIn):
    """The request as the placement core takes it; ValidationError keyed by this API's
    fields, with every problem at once."""
    errors = FieldErrors()
    order_request = errors.collect(
        order_request_parse,
        market_code=_base_of(payload.symbol) or "",
        side=payload.side,
        order_type=payload.type,
        quantity=payload.amount,
        price=payload.price,
        eur_budget=payload.cost,
        client_order_id=payload.client_order_id,
        time_in_force=payload.time_in_force,
        post_only=payload.post_only,
    )
    if errors.errors:
        renamed = {
            REQUEST_FIELDS.get(field, field): texts for field, texts in errors.errors.items()
        }
        if "symbol" in renamed:
            renamed["symbol"] = [_unknown_symbol(payload.symbol)]
        raise ValidationError(renamed)
    return order_request


@router.post(
    "/orders/cancel-all",
    response={200: list[OrderOut], 400: BadRequestOut, **COMMON},
)
def orders_cancel_all_endpoint(request, payload: CancelAllIn):
    """Cancel every open order of the trader (of one `symbol`, or of every market) and
    release what they reserved: 200 with the orders cancelled, now `canceled` (an empty
    list when none was open). Each market's orders go in one transaction, picked under
    the market's lock, so none placed before the call is missed."""
    count_call(request.user, "order_cancel")
    holder = trader_holder_for(request.user)
    if payload.symbol is not None:
        codes = [market_of_symbol(payload.symbol).code]
    else:
        codes = list(selectors.market_codes())
    cancelled = []
    for code in codes:
        cancelled += orders_cancel_all(user=request.user, market_code=code, ip=client_ip(request))
    orders = trader_orders_by_id(holder=holder, order_ids=[order.id for order in cancelled])
    return _orders_out(orders)


@router.get(
    "/orders/{order_id}",
    response={200: OrderOut, 404: NotFoundOut, **HOSTILE_INPUT, **COMMON},
)
def order_detail(request, order_id: Id):
    """One of the trader's orders, with its trades."""
    holder = trader_holder_for(request.user)
    order = trader_order(holder=holder, order_id=order_id)
    if order is None:
        return _not_found(order_id)
    return _one_order_out(holder, order)


@router.delete(
    "/orders/{order_id}",
    response={200: OrderOut, 404: NotFoundOut, 409: OrderNotOpenOut, **HOSTILE_INPUT, **COMMON},
)
def order_delete(request, order_id: Id):
    """Cancel one of the trader's open orders and release what it reserved: 200 with the
    order, now `canceled`. An order that is filled or cancelled already answers 409
    `order_not_open` with the order as it is, and nothing changes."""
    count_call(request.user, "order_cancel")
    holder = trader_holder_for(request.user)
    order = trader_order(holder=holder, order_id=order_id)
    if order is None:
        return _not_found(order_id)
    if not order.is_resting:
        return _not_open(holder, order)
    try:
        order_cancel(order_id=order.pk, user=request.user, ip=client_ip(request))
    except ValidationError:
        # It traded away or was cancelled between the read and the lock.
        return _not_open(holder, trader_order(holder=holder, order_id=order_id))
    return _one_order_out(holder, trader_order(holder=holder, order_id=order_id))


def _not_open(holder, order: Order):
    message = f"Order {order.pk} is {order.get_status_display().lower()}; nothing was changed."
    return Status(
        409,
        {"error": "order_not_open", "message": message, "order": _one_order_out(holder, order)},
    )


@router.patch(
    "/orders/{order_id}",
    response={
        200: OrderOut,
        400: BadRequestOut,
        404: NotFoundOut,
        409: OrderNotOpenOut,
        **COMMON,
    },
)
def order_patch(request, order_id: Id, payload: AmendIn):
    """Amend one of the trader's open limit orders: a new `price` and/or `amount` (the
    certificates still to trade). Only a smaller amount at the same price keeps the
    order (and its place in the queue); anything else cancels it and places a new order
    in its place, atomically, with its funds (it may trade at once, and keeps post-only):
    the answer is the order as it now stands, with `info.replaced_order_id` naming the
    old one. 400 `validation_error` for input to fix or a new order that would be
    refused (nothing changes); 409 `order_not_open` for an order that is no longer open."""
    count_call(request.user, "order_place")
    holder = trader_holder_for(request.user)
    order = trader_order(holder=holder, order_id=order_id)
    if order is None:
        return _not_found(order_id)
    if not order.is_resting:
        return _not_open(holder, order)
    try:
        amended = order_amend(
            order_id=order.pk,
            user=request.user,
            price=payload.price,
            quantity=payload.amount,
            ip=client_ip(request),
        )
    except ValidationError as error:
        order = trader_order(holder=holder, order_id=order_id)
        if not order.is_resting:  # it traded away or was cancelled meanwhile
            return _not_open(holder, order)
        raise _renamed(error, REQUEST_FIELDS) from None
    body = _one_order_out(holder, trader_order(holder=holder, order_id=amended.order.pk))
    if amended.replaced_id is not None:
        body["info"]["replaced_order_id"] = str(amended.replaced_id)
    return body


@router.get("/trades", response={200: list[MyTradeOut], 400: BadRequestOut, **COMMON})
def trades_list(request, query: Query[TradesQuery]):
    """The trader's fills, oldest first: of one `symbol`, at or after `since`; at most
    `limit` (without `since`, the latest ones). `takerOrMaker` says whether the trader's
    order took liquidity or rested."""
    holder = trader_holder_for(request.user)
    market = market_of_symbol(query.symbol) if query.symbol is not None else None
    fills = trader_fills(
        holder=holder,
        market_id=market.pk if market else None,
        since=since_of(query.since),
        limit=query.limit,
    )
    return [_fill_out(fill) for fill in fills]
