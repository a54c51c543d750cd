"""Audit tickets: one for every staff action, liquidity operation and trade. Read-only
once written, everywhere."""

from collections.abc import Sequence

from django.db import connection, transaction
from django.utils import timezone

from market.db.bulk import insert_rows
from market.db.pipeline import allocate_ids
from market.models import TicketLog

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
) -> TicketLog:
    """Write one audit ticket and return it with its ticket id."""
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
    )
    return tickets_record([ticket])[0]
