"""JSON API for market makers, mounted at /api/v1/market-makers: list, read, create (with
initial funding), fund, withdraw, deactivate and reactivate.

Staff holding the market-maker permission, as on the back-office pages (the router's
auth, `config.api`), whether or not they manage liquidity; the same services
(`market.services.market_makers`) and audit tickets. A maker carries the reference plan's
`MarketMakerResponse` fields (`id`, `name`, `description`, `mm_type`, `eur_balance`,
`is_active`, `created_at`) beside the project's own (`code`, balances per asset, open
orders). Creating takes the reference's fields: `initial_eur_balance` for a liquidity
provider, `initial_balances` `{"CEA": ...}` for an asset holder.
"""

import re
from typing import Literal

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from ninja import Field, Header, Query, Router, Schema, Status

from config.api_schemas import (
    COMMON,
    HOSTILE_INPUT,
    KEY_PATTERN,
    ConflictOut,
    ExactNumber,
    Id,
    IdempotencyKeyReusedOut,
    In,
    NotFoundOut,
    Out,
    RequestErrorOut,
    ValidationErrorOut,
)
from config.http import client_ip
from market.core.money import EUR, unit_of
from market.models import MarketMakerClient
from market.selectors import MarketMakerRow, market_maker_rows
from market.services.market_makers import (
    deactivate_refusal,
    funding_refusal,
    market_maker_create,
    market_maker_deactivate,
    market_maker_fund,
    market_maker_reactivate,
    market_maker_withdraw,
    reactivate_refusal,
)
from market.validation import IdempotencyKeyReused

router = Router(tags=["Market makers"])

MakerType = Literal["LIQUIDITY_PROVIDER", "ASSET_HOLDER"]
LP, AH = "LIQUIDITY_PROVIDER", "ASSET_HOLDER"
# The reference plan's refusals of the wrong kind of initial funding, said first.
WRONG_FUNDING = {
    LP: "LIQUIDITY_PROVIDER cannot have certificate balances",
    AH: "ASSET_HOLDER cannot have EUR balance",
}
IDEMPOTENCY_KEY = Header(
    None,
    alias="Idempotency-Key",
    max_length=64,
    pattern=KEY_PATTERN,
    description="Per user: a retry with the same key and request answers what the first "
    "call did, and does nothing again; another request under the key answers 422.",
)
_ZERO_TEXT = re.compile(r"\s*-?(?:0+(?:\.0*)?|\.0+)\s*")


# --- requests ---------------------------------------------------------------------------


class MarketMakerIn(In):
    name: str = Field(examples=["LP Alpha"], max_length=1000)
    mm_type: MakerType = Field(
        AH, description="ASSET_HOLDER (the default, as the reference's) or LIQUIDITY_PROVIDER"
    )
    description: str | None = Field(None, max_length=10_000)
    email: str | None = Field(
        None,
        max_length=254,
        description="A contact address, as the reference's clients send it: recorded on the "
        "creation's audit ticket (market makers have no sign-in of their own here).",
    )
    initial_eur_balance: ExactNumber | None = Field(
        None,
        examples=["200000.00"],
        description="A liquidity provider's initial EUR (to the cent); 0 or null: none.",
    )
    initial_balances: dict[str, ExactNumber | None] | None = Field(
        None,
        examples=[{"CEA": "10000"}],
        description="An asset holder's initial certificates per market (whole); 0: none.",
    )


class TransferIn(In):
    asset: str = Field(examples=["EUR"], max_length=32)
    amount: ExactNumber = Field(examples=["1000.00"])


class DeactivateIn(In):
    cancel_open_orders: bool = Field(
        False, description="Confirm cancelling the maker's resting orders (else 400 if any)"
    )


class MarketMakerFiltersIn(Schema):
    mm_type: MakerType | None = None
    is_active: bool | None = None
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=1_000_000)


# --- responses --------------------------------------------------------------------------


class BalanceOut(Out):
    available: str
    locked: str = Field(description="Reserved behind resting orders")
    total: str


class MarketMakerOut(Out):
    id: int
    code: str = Field(examples=["MM-001"])
    name: str
    description: str
    mm_type: MakerType
    eur_balance: str = Field(
        description="Available EUR, as the reference's field (what the maker can still "
        "commit); every asset's available and locked amounts are in `balances`"
    )
    is_active: bool
    created_at: str
    updated_at: str
    open_orders: int
    balances: dict[str, BalanceOut] = Field(description="Per asset: EUR and each market's")


class MarketMakersOut(Out):
    count: int
    items: list[MarketMakerOut]


class ActionOut(Out):
    success: bool
    ticket_id: str = Field(description="The action's audit ticket")
    market_maker: MarketMakerOut


class DeactivatedOut(ActionOut):
    orders_cancelled: int


# --- helpers ----------------------------------------------------------------------------


def _maker(maker_id: int) -> MarketMakerClient | None:
    return MarketMakerClient.objects.filter(pk=maker_id).first()


def _not_found(maker_id: int):
    return Status(404, {"error": "not_found", "message": f"No market maker {maker_id}."})


def _amount(asset: str, amount) -> str:
    """EUR to the cent, certificates in whole units."""
    return str(amount.quantize(unit_of(asset)))


def maker_json(row: MarketMakerRow) -> dict:
    maker = row.maker
    return {
        "id": maker.pk,
        "code": maker.code,
        "name": maker.name,
        "description": maker.description,
        "mm_type": maker.mm_type,
        "eur_balance": _amount(EUR, row.balance(EUR).available),
        "is_active": maker.is_active,
        "created_at": maker.created_at.isoformat(),
        "updated_at": maker.updated_at.isoformat(),
        "open_orders": row.open_orders,
        "balances": {
            balance.asset: {
                "available": _amount(balance.asset, balance.available),
                "locked": _amount(balance.asset, balance.locked),
                "total": _amount(balance.asset, balance.total),
            }
            for balance in row.balances
        },
    }


def _maker_body(maker_id: int) -> dict:
    return maker_json(market_maker_rows([MarketMakerClient.objects.get(pk=maker_id)])[0])


def _asks_for_funds(value) -> bool:
    """Whether an initial balance asks for a deposit: null, "" and zero ask for none, as
    the reference reads them."""
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip()) and not _ZERO_TEXT.fullmatch(value)
    return value != 0  # a Decimal or an int


def _funding(payload: MarketMakerIn) -> tuple[dict, dict[str, str]]:
    """The service's `{asset: amount}` from the reference's two fields, and the API field
    each asset came from (for the errors). Zero and null ask for nothing: they reach the
    service as None, which still checks that the asset exists. EUR sent in both answers
    400."""
    funding, fields = {}, {}
    if _asks_for_funds(payload.initial_eur_balance):
        funding[EUR], fields[EUR] = payload.initial_eur_balance, "initial_eur_balance"
    for asset, amount in (payload.initial_balances or {}).items():
        key = str(asset).strip().upper()
        if key in funding and _asks_for_funds(amount):
            raise ValidationError(
                {f"initial_balances.{key}": f"{key} is given twice: send it once."}
            )
        if key not in funding:
            funding[key] = amount if _asks_for_funds(amount) else None
            fields[key] = f"initial_balances.{key}"
    return funding, fields


def _creation_errors(error: ValidationError, *, mm_type: str, fields: dict) -> dict:
    """The service's errors keyed by the API's fields; a refused kind of funding says the
    reference's message first."""
    detail: dict[str, list[str]] = {}
    for key, messages in error.message_dict.items():
        asset = key.upper()
        field = "initial_balances" if key == "funding" else fields.get(asset, key)
        if asset in fields and funding_refusal(mm_type, asset):
            messages = [f"{WRONG_FUNDING[mm_type]}. {message}" for message in messages]
        detail.setdefault(field, []).extend(messages)
    return detail


def _reused(error: IdempotencyKeyReused):
    return Status(422, {"error": "idempotency_key_reused", "message": error.messages[0]})


# --- endpoints --------------------------------------------------------------------------


@router.get("", response={200: MarketMakersOut, **HOSTILE_INPUT, **COMMON})
def market_makers(request, filters: Query[MarketMakerFiltersIn]):
    """Market makers in code order, with every asset's available and locked balance and
    their open orders (constant queries per page)."""
    queryset = MarketMakerClient.objects.order_by("pk")
    if filters.mm_type:
        queryset = queryset.filter(mm_type=filters.mm_type)
    if filters.is_active is not None:
        queryset = queryset.filter(is_active=filters.is_active)
    page = queryset[filters.offset : filters.offset + filters.limit]
    return {
        "count": queryset.count(),
        "items": [maker_json(row) for row in market_maker_rows(page)],
    }


@router.post(
    "",
    response={
        201: MarketMakerOut,
        200: MarketMakerOut,
        400: ValidationErrorOut,
        **COMMON,
        422: IdempotencyKeyReusedOut | RequestErrorOut,
    },
)
def create_market_maker(
    request, payload: MarketMakerIn, idempotency_key: str | None = IDEMPOTENCY_KEY
):
    """Create a market maker and deposit its initial funding, with one `MM_CREATED`
    ticket: a liquidity provider with `initial_eur_balance`, an asset holder with
    `initial_balances`. The wrong kind answers 400 with the reference's message
    ("ASSET_HOLDER cannot have EUR balance"), and nothing is created. A retry under the
    same `Idempotency-Key` answers 200 with the maker the first call created."""
    funding, fields = _funding(payload)
    extra = {}
    if payload.email:
        try:
            validate_email(payload.email)
        except ValidationError as error:
            raise ValidationError({"email": error.messages}) from None
        extra["email"] = payload.email
    try:
        created = market_maker_create(
            name=payload.name,
            mm_type=payload.mm_type,
            description=payload.description or "",
            funding=funding,
            extra_payload=extra,
            created_by=request.user,
            ip=client_ip(request),
            idempotency_key=idempotency_key,
        )
    except IdempotencyKeyReused as error:
        return _reused(error)
    except ValidationError as error:
        detail = _creation_errors(error, mm_type=payload.mm_type, fields=fields)
        return Status(400, {"error": "validation_error", "detail": detail})
    return Status(200 if created.replayed else 201, _maker_body(created.market_maker.pk))


@router.get(
    "/{maker_id}", response={200: MarketMakerOut, 404: NotFoundOut, **HOSTILE_INPUT, **COMMON}
)
def market_maker(request, maker_id: Id):
    if _maker(maker_id) is None:
        return _not_found(maker_id)
    return _maker_body(maker_id)


def _transfer(request, maker_id: int, payload: TransferIn, idempotency_key, service):
    maker = _maker(maker_id)
    if maker is None:
        return _not_found(maker_id)
    try:
        ticket = service(
            market_maker=maker,
            asset=payload.asset.strip().upper(),
            amount=payload.amount,
            actor=request.user,
            ip=client_ip(request),
            idempotency_key=idempotency_key,
        )
    except IdempotencyKeyReused as error:
        return _reused(error)
    return {"success": True, "ticket_id": ticket.ticket_id, "market_maker": _maker_body(maker_id)}


TRANSFER_RESPONSES = {
    200: ActionOut,
    400: ValidationErrorOut,
    404: NotFoundOut,
    **COMMON,
    422: IdempotencyKeyReusedOut | RequestErrorOut,
}


@router.post("/{maker_id}/fund", response=TRANSFER_RESPONSES)
def fund(
    request,
    maker_id: Id,
    payload: TransferIn,
    idempotency_key: str | None = IDEMPOTENCY_KEY,
):
    """Deposit into an active maker: EUR (to the cent) into a liquidity provider,
    certificates (whole) into an asset holder. One `MM_FUNDED` ticket."""
    return _transfer(request, maker_id, payload, idempotency_key, market_maker_fund)


@router.post("/{maker_id}/withdraw", response=TRANSFER_RESPONSES)
def withdraw(
    request,
    maker_id: Id,
    payload: TransferIn,
    idempotency_key: str | None = IDEMPOTENCY_KEY,
):
    """Withdraw available funds of any asset (also from an inactive maker); what is locked
    behind resting orders stays. One `MM_WITHDRAWN` ticket."""
    return _transfer(request, maker_id, payload, idempotency_key, market_maker_withdraw)


@router.post(
    "/{maker_id}/deactivate",
    response={
        200: DeactivatedOut,
        400: ValidationErrorOut,
        404: NotFoundOut,
        409: ConflictOut,
        **COMMON,
    },
)
def deactivate(request, maker_id: Id, payload: DeactivateIn | None = None):
    """Stop using the maker for liquidity. With resting orders it answers 400 on
    `cancel_open_orders` (how many) unless that is true; then they are cancelled and their
    funds released in the same transaction. Already inactive: 409."""
    maker = _maker(maker_id)
    if maker is None:
        return _not_found(maker_id)
    if refusal := deactivate_refusal(maker):
        return Status(409, {"error": "conflict", "message": refusal})
    try:
        ticket = market_maker_deactivate(
            market_maker=maker,
            actor=request.user,
            cancel_open_orders=payload.cancel_open_orders if payload else False,
            ip=client_ip(request),
        )
    except ValidationError:
        maker.refresh_from_db()
        if refusal := deactivate_refusal(maker):  # deactivated meanwhile by someone else
            return Status(409, {"error": "conflict", "message": refusal})
        raise
    return {
        "success": True,
        "ticket_id": ticket.ticket_id,
        "orders_cancelled": len(ticket.after_state.get("cancelled_order_ids", [])),
        "market_maker": _maker_body(maker_id),
    }


@router.post(
    "/{maker_id}/reactivate",
    response={200: ActionOut, 404: NotFoundOut, 409: ConflictOut, **HOSTILE_INPUT, **COMMON},
)
def reactivate(request, maker_id: Id):
    """Use a deactivated maker for liquidity again; its balances are untouched. Already
    active: 409."""
    maker = _maker(maker_id)
    if maker is None:
        return _not_found(maker_id)
    if refusal := reactivate_refusal(maker):
        return Status(409, {"error": "conflict", "message": refusal})
    try:
        ticket = market_maker_reactivate(
            market_maker=maker, actor=request.user, ip=client_ip(request)
        )
    except ValidationError:
        maker.refresh_from_db()
        if refusal := reactivate_refusal(maker):
            return Status(409, {"error": "conflict", "message": refusal})
        raise
    return {"success": True, "ticket_id": ticket.ticket_id, "market_maker": _maker_body(maker_id)}
