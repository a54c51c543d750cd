"""Market makers: create, edit, fund, withdraw, deactivate, reactivate; one audit ticket
per maker per action.

Every action runs in one transaction and writes a `TicketLog` (`MM_CREATED`, `MM_UPDATED`,
`MM_FUNDED`, `MM_WITHDRAWN`, `MM_DEACTIVATED`, `MM_REACTIVATED`) that is also the cause of
the ledger entries it makes, so an audit reader goes from a ticket to its money moves
directly. Money moves go through the ledger's `BalanceSheet`.

Funding is type-specific (`market.core.makers`): a liquidity provider is funded in EUR, an
asset holder in certificates (any market's). Withdrawing is allowed for any asset the
maker holds (a provider whose bids were filled holds certificates) but only from available
funds. An inactive maker cannot be funded; it can be withdrawn from, so staff can empty it.

Locks, in the order of `market.services.ledger`: market rows (deactivation, which cancels
orders), then market-maker rows, then orders, then balance rows.

Bad input raises `ValidationError` keyed by field, before anything is written.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction
from django.db.models import Case, CharField, Value, When
from django.db.models.functions import Cast, Concat, LPad

from market.core import makers as rules
from market.core.money import ZERO, describe, parse_quantity, split_evenly, unit_of
from market.core.placement import DEPOSIT, WITHDRAWAL, Move
from market.models import Holder, Market, MarketMakerClient, Order, TicketLog
from market.selectors import asset_codes, market_codes
from market.services.audit import keyed_action, ticket_for_key, ticket_record, tickets_record
from market.services.holders import holders_create
from market.services.ledger import BalanceSheet, parse_transfer
from market.services.orders import orders_cancel, released_by_asset
from market.validation import FieldErrors

Type = MarketMakerClient.Type
ENTITY = "MarketMakerClient"
NO_FUNDING: Mapping[str, Decimal | str] = MappingProxyType({})
MAX_BULK_MAKERS = 500
NAME_MAX = MarketMakerClient._meta.get_field("name").max_length
DEACTIVATION_REASON = "market maker deactivated"


@dataclass(frozen=True)
class MarketMakerCreated:
    """A maker just created, and the `MM_CREATED` ticket of its creation and funding;
    `replayed` when an earlier call with the same idempotency key created it."""

    market_maker: MarketMakerClient
    ticket: TicketLog
    replayed: bool = False


# ---------------------------------------------------------------------------- validation


def funding_refusal(mm_type: str, asset: str) -> str | None:
    """Why `asset` may not be deposited into a maker of `mm_type`, or None if it may."""
    if rules.may_hold(mm_type, asset):
        return None
    return rules.funding_refusal(mm_type, asset, certificates=market_codes())


def fund_refusal(maker: MarketMakerClient) -> str | None:
    """Why `maker` cannot be funded now (it is inactive), or None. Pages and the admin
    show it instead of a form; the funding services refuse with it."""
    if maker.is_active:
        return None
    return f"{maker.code} is inactive, so it cannot be funded: reactivate it first."


def deactivate_refusal(maker: MarketMakerClient) -> str | None:
    """Why `maker` cannot be deactivated (it already is), or None."""
    if maker.is_active:
        return None
    return f"{maker.code} is already inactive: there is nothing to deactivate."


def reactivate_refusal(maker: MarketMakerClient) -> str | None:
    """Why `maker` cannot be reactivated (it is active), or None."""
    if not maker.is_active:
        return None
    return f"{maker.code} is already active."


def _mm_type(mm_type) -> str:
    if mm_type not in Type.values:
        raise ValidationError(
            {"mm_type": f"Choose a market-maker type: {', '.join(Type.values)}."}
        )
    return str(mm_type)


def _description(description) -> str:
    description = str(description or "").strip()
    if "\x00" in description:  # PostgreSQL refuses it in any text
        raise ValidationError({"description": "Null characters are not allowed."})
    return description


def _name(name, field: str = "name", max_length: int = NAME_MAX) -> str:
    name = str(name or "").strip()
    if not name:
        raise ValidationError({field: "This field is required."})
    if len(name) > max_length:
        raise ValidationError({field: f"At most {max_length} characters."})
    if "\x00" in name:  # PostgreSQL refuses it in any text
        raise ValidationError({field: "Null characters are not allowed."})
    return name


def market_maker_funding_parse(
    *, mm_type: str, funding: Mapping[str, Decimal | str | int | None]
) -> dict[str, Decimal]:
    """Validate initial funding `{asset: amount}` for a new maker of `mm_type`.

    Keys are asset codes (any case); empty amounts (None, "") are skipped. Errors are keyed
    by the lower-case asset code (`eur`, `cea`, `eua`) — the funding fields of a form —
    and list every problem at once. Returns `{asset: amount}` with the amounts to deposit.
    """
    errors = FieldErrors()
    amounts: dict[str, Decimal] = {}
    known = asset_codes()
    for key, raw in funding.items():
        asset = str(key).upper()
        if asset not in known:
            errors.add("funding", f"Unknown asset {key!r}: choose {', '.join(known)}.")
            continue
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            continue
        field = asset.lower()
        refusal = funding_refusal(mm_type, asset)
        if refusal:
            errors.add(field, refusal)
            continue
        try:
            amounts[asset] = parse_transfer(asset, raw)
        except ValidationError as error:
            for messages in error.message_dict.values():
                errors.errors[field].extend(messages)
    errors.raise_any()
    return amounts


# ---------------------------------------------------------------------------- helpers


def _code_expression():
    """`MM-001` from the primary key, computed by the database (unique like the key)."""
    digits = Cast("id", CharField())
    return Case(
        When(id__lte=999, then=Concat(Value("MM-"), LPad(digits, 3, Value("0")))),
        default=Concat(Value("MM-"), digits),
        output_field=CharField(),
    )


def _assign_codes(makers: Sequence[MarketMakerClient]) -> None:
    """Number freshly inserted makers: one UPDATE whatever their number."""
    MarketMakerClient.objects.filter(pk__in=[maker.pk for maker in makers]).update(
        code=_code_expression()
    )
    for maker in makers:
        maker.code = f"MM-{maker.pk:03d}"


def _row_state(row) -> dict[str, str]:
    return {"available": str(row.available), "locked": str(row.locked)}


def _sheet_state(sheet: BalanceSheet, holder_id: int, assets: Iterable[str]) -> dict:
    return {asset: _row_state(sheet.balance(holder_id, asset)) for asset in assets}


def _state_after(before: dict, moves: Mapping[str, Decimal]) -> dict:
    after = {asset: dict(state) for asset, state in before.items()}
    for asset, delta in moves.items():
        after[asset]["available"] = str(Decimal(after[asset]["available"]) + delta)
    return after


def _maker_state(maker: MarketMakerClient) -> dict:
    return {
        "code": maker.code,
        "name": maker.name,
        "mm_type": maker.mm_type,
        "is_active": maker.is_active,
    }


def _ticket(
    *,
    action_type: str,
    maker: MarketMakerClient,
    user,
    payload: dict,
    before: dict,
    after: dict,
    tags: Sequence[str],
    ip: str | None,
) -> TicketLog:
    """An unsaved ticket for `tickets_record`."""
    return TicketLog(
        action_type=action_type,
        entity_type=ENTITY,
        entity_id=str(maker.pk),
        user=user,
        market_maker=maker,
        request_payload=payload,
        before_state=before,
        after_state=after,
        tags=list(tags),
        ip_address=ip,
    )


def _insert_makers(
    *, names: Sequence[str], mm_type: str, description: str, created_by
) -> list[MarketMakerClient]:
    """Holders, their balance rows and the makers, numbered: a constant number of
    statements for any number of makers (within the database's batch size)."""
    holders = holders_create(kind=Holder.Kind.MARKET_MAKER, names=names)
    makers = MarketMakerClient.objects.bulk_create(
        [
            MarketMakerClient(
                holder=holder,
                name=name,
                description=description,
                mm_type=mm_type,
                created_by=created_by,
            )
            for holder, name in zip(holders, names, strict=True)
        ]
    )
    _assign_codes(makers)
    return makers


# ---------------------------------------------------------------------------- create


def market_maker_create(
    *,
    name: str,
    mm_type: str,
    description: str = "",
    funding: Mapping[str, Decimal | str] = NO_FUNDING,
    created_by,
    ip: str | None = None,
    extra_payload: Mapping[str, str] = MappingProxyType({}),
    idempotency_key: str | None = None,
) -> MarketMakerCreated:
    """Create a market maker (its holder, balance rows and `MM-NNN` code) and deposit its
    initial funding, with one `MM_CREATED` ticket.

    `funding` is `{asset: amount}`, type-specific (see `market_maker_funding_parse`):
    EUR into an asset holder or certificates into a liquidity provider is refused and
    nothing is created. `extra_payload` is recorded on the ticket as sent (the API's
    contact e-mail).

    With `idempotency_key` (per user): a retry of the same request returns the maker the
    first call created (`replayed`), writing nothing; another request under the key raises
    `IdempotencyKeyReused`.
    """
    errors = FieldErrors()
    name = errors.collect(lambda: _name(name))
    description = errors.collect(lambda: _description(description))
    valid_type = errors.collect(lambda: _mm_type(mm_type))
    amounts = (
        errors.collect(lambda: market_maker_funding_parse(mm_type=mm_type, funding=funding))
        if valid_type
        else None
    )
    errors.raise_any()
    payload = {
        "name": name,
        "mm_type": mm_type,
        "description": description,
        "funding": {asset: str(amount) for asset, amount in amounts.items()},
        **extra_payload,
    }

    def create() -> MarketMakerCreated:
        with transaction.atomic():
            (maker,) = _insert_makers(
                names=[name], mm_type=mm_type, description=description, created_by=created_by
            )
            sheet = BalanceSheet.lock((maker.holder_id, asset) for asset in amounts)
            balances = _sheet_state(sheet, maker.holder_id, amounts)
            ticket = ticket_record(
                action_type="MM_CREATED",
                entity_type=ENTITY,
                entity_id=maker.pk,
                user=created_by,
                market_maker=maker,
                payload=payload,
                after={**_maker_state(maker), "balances": _state_after(balances, amounts)},
                tags=["market_maker", mm_type],
                ip=ip,
                idempotency_key=idempotency_key,
            )
            sheet.apply(
                _deposit(maker.holder_id, asset, amount, ticket)
                for asset, amount in amounts.items()
            )
            sheet.flush()
        return MarketMakerCreated(maker, ticket)

    def replay() -> MarketMakerCreated | None:
        ticket = ticket_for_key(
            user=created_by,
            idempotency_key=idempotency_key,
            action_type="MM_CREATED",
            payload=payload,
        )
        return MarketMakerCreated(ticket.market_maker, ticket, True) if ticket else None

    return keyed_action(create, replay=replay)[0]


def _deposit(holder_id: int, asset: str, amount: Decimal, ticket: TicketLog) -> Move:
    return Move(holder_id, asset, DEPOSIT, amount, ZERO, ticket_id=ticket.pk)


def _withdrawal(holder_id: int, asset: str, amount: Decimal, ticket: TicketLog) -> Move:
    return Move(holder_id, asset, WITHDRAWAL, -amount, ZERO, ticket_id=ticket.pk)


def market_makers_create_bulk(
    *,
    count: int,
    mm_type: str,
    asset: str,
    total_amount: Decimal | str,
    name_prefix: str,
    created_by,
    ip: str | None = None,
) -> list[MarketMakerCreated]:
    """Create `count` makers named `"{name_prefix} 1"` … sharing `total_amount` of `asset`
    exactly (EUR to the cent, certificates whole; earlier makers get the remainder).

    Constant number of queries whatever `count` (up to MAX_BULK_MAKERS): bulk inserts of
    holders, balances and makers, one UPDATE for the codes, one batch of `MM_CREATED`
    tickets, one ledger batch.
    """
    errors = FieldErrors()
    count = errors.collect(parse_quantity, count, field="count", maximum=10**9)
    if count is not None and not 1 <= count <= MAX_BULK_MAKERS:
        errors.add("count", f"Create between 1 and {MAX_BULK_MAKERS} market makers at once.")
        count = None
    mm_type = errors.collect(lambda: _mm_type(mm_type))
    suffix = len(f" {MAX_BULK_MAKERS}")
    name_prefix = errors.collect(lambda: _name(name_prefix, "name_prefix", NAME_MAX - suffix))
    total = errors.collect(lambda: parse_transfer(asset, total_amount))
    if mm_type and total is not None and (refusal := funding_refusal(mm_type, asset)):
        errors.add("asset", refusal)
    shares = (
        errors.collect(equal_shares, total=total, count=count, asset=asset)
        if total is not None and count
        else None
    )
    errors.raise_any()
    names = [f"{name_prefix} {index}" for index in range(1, count + 1)]
    with transaction.atomic():
        makers = _insert_makers(
            names=names, mm_type=mm_type, description="", created_by=created_by
        )
        sheet = BalanceSheet.lock((maker.holder_id, asset) for maker in makers)
        tickets = tickets_record(
            [
                _ticket(
                    action_type="MM_CREATED",
                    maker=maker,
                    user=created_by,
                    payload={
                        "name": maker.name,
                        "mm_type": mm_type,
                        "funding": {asset: str(share)},
                        "bulk": {"count": count, "asset": asset, "total_amount": str(total)},
                    },
                    before={},
                    after={
                        **_maker_state(maker),
                        "balances": _state_after(
                            _sheet_state(sheet, maker.holder_id, [asset]), {asset: share}
                        ),
                    },
                    tags=["market_maker", mm_type, "bulk"],
                    ip=ip,
                )
                for maker, share in zip(makers, shares, strict=True)
            ]
        )
        sheet.apply(
            _deposit(maker.holder_id, asset, share, ticket)
            for maker, share, ticket in zip(makers, shares, tickets, strict=True)
        )
        sheet.flush()
    return [
        MarketMakerCreated(maker, ticket) for maker, ticket in zip(makers, tickets, strict=True)
    ]


def market_maker_update(
    *, market_maker: MarketMakerClient, name: str, description: str, actor, ip: str | None = None
) -> TicketLog:
    """Rename a maker or change its description (its holder keeps the same name); one
    `MM_UPDATED` ticket with the fields before and after. Its type and funds are not
    editable."""
    name = _name(name)
    description = _description(description)
    with transaction.atomic():
        maker = MarketMakerClient.objects.select_for_update().get(pk=market_maker.pk)
        before = {"name": maker.name, "description": maker.description}
        maker.name, maker.description = name, description
        maker.save(update_fields=["name", "description", "updated_at"])
        Holder.objects.filter(pk=maker.holder_id).update(name=name)
        after = {"name": name, "description": description}
        ticket = ticket_record(
            action_type="MM_UPDATED",
            entity_type=ENTITY,
            entity_id=maker.pk,
            user=actor,
            market_maker=maker,
            payload={key: value for key, value in after.items() if before[key] != value},
            before=before,
            after=after,
            tags=["market_maker"],
            ip=ip,
        )
    market_maker.name, market_maker.description = name, description
    return ticket


# ---------------------------------------------------------------------------- fund / withdraw


def market_makers_fund_bulk(
    *,
    market_makers: Iterable[MarketMakerClient | int],
    asset: str,
    amount_each: Decimal | str | None = None,
    total_amount: Decimal | str | None = None,
    actor,
    ip: str | None = None,
    idempotency_key: str | None = None,
) -> list[TicketLog]:
    """Deposit `asset` into every listed (active) maker: `amount_each` into each, or
    `total_amount` split equally among them (EUR to the cent, certificates whole; the
    makers first in primary-key order get the remainder). Exactly one of the two.

    One `MM_FUNDED` ticket per maker (its payload holds the maker's own amount and, for a
    split, the total), returned in primary-key order. Locks the maker rows, then their
    balance rows. Constant number of queries. An inactive maker in the list refuses the
    whole call (`fund_refusal`), before anything is written. `idempotency_key` (one
    maker only, see `market_maker_fund`) is recorded on the ticket."""
    ids = list(
        dict.fromkeys(
            maker.pk if isinstance(maker, MarketMakerClient) else int(maker)
            for maker in market_makers
        )
    )
    if not ids:
        raise ValidationError({NON_FIELD_ERRORS: "Select at least one market maker."})
    if len(ids) > MAX_BULK_MAKERS:
        raise ValidationError(
            {NON_FIELD_ERRORS: f"Fund at most {MAX_BULK_MAKERS} market makers at once."}
        )
    if idempotency_key and len(ids) > 1:
        raise ValueError("An idempotency key names the funding of one market maker.")
    shares = fund_amounts(
        asset=asset, count=len(ids), amount_each=amount_each, total_amount=total_amount
    )
    split = (
        {"total_amount": str(sum(shares)), "makers": len(ids)} if total_amount is not None else {}
    )
    with transaction.atomic():
        makers = list(
            MarketMakerClient.objects.select_for_update().filter(pk__in=ids).order_by("pk")
        )
        if len(makers) != len(ids):
            raise ValidationError({NON_FIELD_ERRORS: "Unknown market maker."})
        inactive = [refusal for maker in makers if (refusal := fund_refusal(maker))]
        if inactive:
            raise ValidationError({NON_FIELD_ERRORS: inactive})
        refused = sorted(
            {
                refusal
                for mm_type in {maker.mm_type for maker in makers}
                if (refusal := funding_refusal(mm_type, asset))
            }
        )
        if refused:
            raise ValidationError({"asset": refused})
        sheet = BalanceSheet.lock((maker.holder_id, asset) for maker in makers)
        tickets = []
        for maker, share in zip(makers, shares, strict=True):
            before = _sheet_state(sheet, maker.holder_id, [asset])
            tickets.append(
                _ticket(
                    action_type="MM_FUNDED",
                    maker=maker,
                    user=actor,
                    payload={
                        "asset": asset,
                        "amount": str(share),
                        "bulk": len(makers) > 1,
                        **({"split": split} if split else {}),
                    },
                    before={"balances": before},
                    after={"balances": _state_after(before, {asset: share})},
                    tags=["market_maker", "funding", asset],
                    ip=ip,
                )
            )
        tickets[0].idempotency_key = idempotency_key or None
        tickets = tickets_record(tickets)
        sheet.apply(
            _deposit(maker.holder_id, asset, share, ticket)
            for maker, share, ticket in zip(makers, shares, tickets, strict=True)
        )
        sheet.flush()
    return tickets


def fund_amounts(
    *,
    asset: str,
    count: int,
    amount_each: Decimal | str | None = None,
    total_amount: Decimal | str | None = None,
) -> list[Decimal]:
    """What each of `count` makers receives when funded with `amount_each` of `asset`,
    or with `total_amount` split equally (`equal_shares`). Exactly one of the two; bad
    input raises ValidationError on `amount` or `total_amount`. Writes nothing."""
    if (amount_each is None) == (total_amount is None):
        raise TypeError("Pass exactly one of amount_each and total_amount.")
    if amount_each is not None:
        return [parse_transfer(asset, amount_each)] * count
    try:
        total = parse_transfer(asset, total_amount)
    except ValidationError as error:  # the amount's messages belong to the total's field
        errors = error.message_dict
        errors["total_amount"] = errors.pop("amount", [])
        raise ValidationError({key: value for key, value in errors.items() if value}) from None
    return equal_shares(total=total, count=count, asset=asset)


def equal_shares(*, total: Decimal, count: int, asset: str) -> list[Decimal]:
    """`total` of `asset` split equally among `count` makers in whole units (cents,
    certificates), adding up to it exactly; refused when a maker would get nothing."""
    if total < unit_of(asset) * count:
        raise ValidationError(
            {
                "total_amount": f"{describe(asset, total)} cannot give each of {count} "
                f"market makers at least {describe(asset, unit_of(asset))}."
            }
        )
    return split_evenly(total, count, asset=asset)


def market_maker_fund(
    *,
    market_maker: MarketMakerClient,
    asset: str,
    amount: Decimal | str,
    actor,
    ip: str | None = None,
    idempotency_key: str | None = None,
) -> TicketLog:
    """Deposit into one active maker (type-specific asset); returns its `MM_FUNDED` ticket.

    With `idempotency_key` (per user): a retry of the same deposit returns the first
    call's ticket with `replayed` set and deposits nothing; another request under the key
    raises `IdempotencyKeyReused`."""
    amount = parse_transfer(asset, amount)
    payload = {"asset": asset, "amount": str(amount), "bulk": False}

    def fund() -> TicketLog:
        return market_makers_fund_bulk(
            market_makers=[market_maker],
            asset=asset,
            amount_each=amount,
            actor=actor,
            ip=ip,
            idempotency_key=idempotency_key,
        )[0]

    return _replayable(
        fund,
        actor=actor,
        idempotency_key=idempotency_key,
        action_type="MM_FUNDED",
        payload=payload,
        maker=market_maker,
    )


def _replayable(act, *, actor, idempotency_key, action_type, payload, maker) -> TicketLog:
    """`act()`'s ticket, or the ticket an earlier call under `idempotency_key` recorded
    for the same request on `maker`; either way marked with `replayed`."""

    def replay():
        return ticket_for_key(
            user=actor,
            idempotency_key=idempotency_key,
            action_type=action_type,
            payload=payload,
            entity_id=maker.pk,
        )

    ticket, replayed = keyed_action(act, replay=replay)
    ticket.replayed = replayed
    return ticket


def market_maker_withdraw(
    *,
    market_maker: MarketMakerClient,
    asset: str,
    amount: Decimal | str,
    actor,
    ip: str | None = None,
    idempotency_key: str | None = None,
) -> TicketLog:
    """Withdraw available funds of any asset (also from an inactive maker); locked funds
    stay behind their orders. Returns the `MM_WITHDRAWN` ticket. `idempotency_key` as for
    `market_maker_fund`."""
    amount = parse_transfer(asset, amount)
    payload = {"asset": asset, "amount": str(amount)}

    def withdraw() -> TicketLog:
        with transaction.atomic():
            maker = MarketMakerClient.objects.get(pk=market_maker.pk)
            sheet = BalanceSheet.lock([(maker.holder_id, asset)])
            row = sheet.balance(maker.holder_id, asset)
            if row.available < amount:
                locked = (
                    f"; {describe(asset, row.locked)} is locked behind open orders"
                    if row.locked
                    else ""
                )
                raise ValidationError(
                    {
                        "amount": f"{maker.code} has only {describe(asset, row.available)} "
                        f"available to withdraw, not {describe(asset, amount)}{locked}."
                    }
                )
            before = _sheet_state(sheet, maker.holder_id, [asset])
            ticket = ticket_record(
                action_type="MM_WITHDRAWN",
                entity_type=ENTITY,
                entity_id=maker.pk,
                user=actor,
                market_maker=maker,
                payload=payload,
                before={"balances": before},
                after={"balances": _state_after(before, {asset: -amount})},
                tags=["market_maker", "funding", asset],
                ip=ip,
                idempotency_key=idempotency_key,
            )
            sheet.apply([_withdrawal(maker.holder_id, asset, amount, ticket)], field="amount")
            sheet.flush()
        return ticket

    return _replayable(
        withdraw,
        actor=actor,
        idempotency_key=idempotency_key,
        action_type="MM_WITHDRAWN",
        payload=payload,
        maker=market_maker,
    )


# ---------------------------------------------------------------------------- deactivate


def market_maker_deactivate(
    *,
    market_maker: MarketMakerClient,
    actor,
    cancel_open_orders: bool,
    ip: str | None = None,
) -> TicketLog:
    """Deactivate a maker so it is no longer used for liquidity.

    With resting orders, refuses (ValidationError on `cancel_open_orders` saying how many)
    unless `cancel_open_orders` confirms; then cancels them, releasing their reservations,
    in the same transaction. Updates `market_maker.is_active`; returns the `MM_DEACTIVATED`
    ticket (its after-state lists the cancelled orders and released amounts).
    """
    with transaction.atomic():
        # The book of every market is locked first, so no order of this maker can be
        # placed between the count below and the deactivation.
        list(Market.objects.select_for_update().order_by("pk"))
        maker = MarketMakerClient.objects.select_for_update().get(pk=market_maker.pk)
        if refusal := deactivate_refusal(maker):
            raise ValidationError({NON_FIELD_ERRORS: refusal})
        open_ids = list(
            Order.objects.filter(owner_id=maker.holder_id, status__in=Order.RESTING)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if open_ids and not cancel_open_orders:
            count = len(open_ids)
            raise ValidationError(
                {
                    "cancel_open_orders": ValidationError(
                        f"{maker.code} has {count} open order{'s' if count != 1 else ''}; "
                        "confirm cancelling them to deactivate it.",
                        code="open_orders",
                        params={"count": count},
                    )
                }
            )
        cancelled = orders_cancel(orders=open_ids, reason=DEACTIVATION_REASON) if open_ids else []
        maker.is_active = False
        maker.save(update_fields=["is_active", "updated_at"])
        ticket = ticket_record(
            action_type="MM_DEACTIVATED",
            entity_type=ENTITY,
            entity_id=maker.pk,
            user=actor,
            market_maker=maker,
            payload={"cancel_open_orders": bool(cancel_open_orders)},
            before={"is_active": True, "open_orders": len(open_ids)},
            after={
                "is_active": False,
                "cancelled_order_ids": [order.id for order in cancelled],
                "released": {
                    asset: str(amount) for asset, amount in released_by_asset(cancelled).items()
                },
            },
            tags=["market_maker", "deactivation"],
            ip=ip,
        )
    market_maker.is_active = False
    return ticket


# ---------------------------------------------------------------------------- reactivate


def market_maker_reactivate(
    *,
    market_maker: MarketMakerClient,
    actor,
    ip: str | None = None,
) -> TicketLog:
    """Make a deactivated maker available for liquidity again.

    Refuses (ValidationError) if it is already active. Updates `market_maker.is_active`;
    returns the `MM_REACTIVATED` ticket. Its balances are untouched.
    """
    with transaction.atomic():
        maker = MarketMakerClient.objects.select_for_update().get(pk=market_maker.pk)
        if refusal := reactivate_refusal(maker):
            raise ValidationError({NON_FIELD_ERRORS: refusal})
        maker.is_active = True
        maker.save(update_fields=["is_active", "updated_at"])
        ticket = ticket_record(
            action_type="MM_REACTIVATED",
            entity_type=ENTITY,
            entity_id=maker.pk,
            user=actor,
            market_maker=maker,
            payload={},
            before={"is_active": False},
            after={"is_active": True},
            tags=["market_maker", "reactivation"],
            ip=ip,
        )
    market_maker.is_active = True
    return ticket
