"""Audit tickets: one for every staff action, liquidity operation and trade. Read-only
once written, everywhere.

A staff action sent with an idempotency key records the key on its ticket (unique per
user), so the ticket is also the action's receipt: `keyed_action` finds it for a retry
instead of acting twice."""

from collections.abc import Callable, Sequence
from typing import TypeVar

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from market.db.bulk import insert_rows
from market.db.pipeline import allocate_ids
from market.models import TicketLog
from market.validation import IdempotencyKeyReused

Result = TypeVar("Result")

COLUMNS = (
    "id",
    "ticket_id",
    "action_type",
    "entity_type",
    "entity_id",
    "user_id",
    "market_maker_id",
    "status",
    "request_payload",
    "before_state",
    "after_state",
    "related_ticket_ids",
    "tags",
    "ip_address",
    "created_at",
    "idempotency_key",
)


def ticket_number(pk: int, year: int) -> str:
    return f"TKT-{year}-{pk:06d}"


def tickets_record(
    tickets: Sequence[TicketLog], *, ids: Sequence[int] | None = None
) -> list[TicketLog]:
    """Insert unsaved tickets in one statement, numbered `TKT-YYYY-NNNNNN` from their
    primary keys: `ids` allocated ahead by the caller (e.g. sent in the same round trip as
    its locks), else allocated here.

    The number is the database's primary key, so it is unique without a shared counter
    row that every writer would queue on. No RETURNING: in a pipelined transaction the
    insert is queued with the other writes.
    """
    if not tickets:
        return []
    with transaction.atomic(savepoint=False):
        if ids is None:
            ids = allocate_ids({TicketLog: len(tickets)}).take(TicketLog)
        now = timezone.now()
        for ticket, pk in zip(tickets, ids, strict=True):
            ticket.pk = pk
            ticket.created_at = ticket.created_at or now
            ticket.ticket_id = ticket_number(pk, ticket.created_at.year)
        ticket_rows_insert(
            [tuple(getattr(ticket, name) for name in COLUMNS) for ticket in tickets]
        )
    for ticket in tickets:
        ticket._state.adding, ticket._state.db = False, connection.alias
    return list(tickets)


def ticket_rows_insert(rows: Sequence[tuple]) -> None:
    """Insert tickets given as rows of `COLUMNS` (ids and numbers included), in one
    statement: the hot path's way, without model instances."""
    insert_rows(TicketLog, COLUMNS, rows)


def ticket_record(
    *,
    action_type: str,
    entity_type: str,
    entity_id: object = "",
    user=None,
    market_maker=None,
    payload: dict | None = None,
    before: dict | None = None,
    after: dict | None = None,
    related: Sequence[str] = (),
    tags: Sequence[str] = (),
    ip: str | None = None,
    status: str = TicketLog.Status.SUCCESS,
    idempotency_key: str | None = None,
    pk: int | None = None,
) -> TicketLog:
    """Write one audit ticket and return it with its ticket id; `pk`, if given, is its
    primary key allocated ahead by the caller (`allocate_ids`), else one is allocated."""
    ticket = TicketLog(
        action_type=action_type,
        entity_type=entity_type,
        entity_id=str(entity_id or ""),
        user=user,
        market_maker=market_maker,
        request_payload=payload or {},
        before_state=before or {},
        after_state=after or {},
        related_ticket_ids=list(related),
        tags=list(tags),
        ip_address=ip,
        status=status,
        idempotency_key=idempotency_key or None,
    )
    return tickets_record([ticket], ids=None if pk is None else [pk])[0]


def ticket_for_key(
    *, user, idempotency_key: str | None, action_type: str, payload: dict, entity_id=None
) -> TicketLog | None:
    """The ticket `user` recorded under `idempotency_key` if it records this action
    (`action_type`, `payload`, and `entity_id` unless None): the action was done. None if
    the key is new (or not given). `IdempotencyKeyReused` if the key recorded another
    action or request."""
    if not idempotency_key:
        return None
    ticket = (
        TicketLog.objects.select_related("market_maker")
        .filter(user=user, idempotency_key=idempotency_key)
        .first()
    )
    if ticket is None:
        return None
    same = ticket.action_type == action_type and ticket.request_payload == payload
    if entity_id is not None:
        same = same and ticket.entity_id == str(entity_id)
    if not same:
        raise IdempotencyKeyReused(
            message=f"{ticket.ticket_id} was already recorded with this idempotency key, "
            "for a different request; nothing was changed. Send a new key for a new request."
        )
    return ticket


def keyed_action(
    act: Callable[[], Result], *, replay: Callable[[], Result | None]
) -> tuple[Result, bool]:
    """`(act(), False)`, or `(replay(), True)` when `replay` finds the result of an earlier
    call under the same idempotency key: looked up first, and again when `act` fails (its
    transaction rolled back, it wrote nothing). A twin may have committed meanwhile: then
    `act` hits the key's unique index, or a check the twin's own effect now fails (a
    withdrawal of what the twin took), and the answer is the twin's result, not an error."""
    if (earlier := replay()) is not None:
        return earlier, True
    try:
        return act(), False
    except IdempotencyKeyReused:
        raise
    except (IntegrityError, ValidationError):
        if (earlier := replay()) is not None:
            return earlier, True
        raise
