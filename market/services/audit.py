"""Audit tickets (SPEC §8): written for every staff action, liquidity operation and trade."""

from collections.abc import Sequence

from django.db import transaction
from django.utils import timezone

from market.bulk import insert_objects
from market.models import TicketLog
from market.sql import allocate_ids


def ticket_id_for(ticket: TicketLog) -> str:
    return f"TKT-{ticket.created_at.year}-{ticket.pk:06d}"


def tickets_record(
    tickets: Sequence[TicketLog], *, ids: Sequence[int] | None = None
) -> list[TicketLog]:
    """Insert unsaved tickets in one statement, numbered `TKT-YYYY-NNNNNN` from their
    primary keys: `ids` allocated ahead by the caller (`sql.allocate_ids`, e.g. sent in
    the same round trip as its locks), else allocated here.

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
            ticket.created_at = ticket.created_at or now  # the year of its number
            ticket.ticket_id = ticket_id_for(ticket)
        insert_objects(TicketLog, tickets)
    return list(tickets)


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
