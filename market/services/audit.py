"""Audit tickets (SPEC §8): written for every staff action, liquidity operation and trade."""

from collections.abc import Sequence

from django.db.models import CharField, Value
from django.db.models.functions import Cast, Concat, ExtractYear, LPad

from market.models import TicketLog


def ticket_id_for(ticket: TicketLog) -> str:
    return f"TKT-{ticket.created_at.year}-{ticket.pk:06d}"


def tickets_record(tickets: Sequence[TicketLog]) -> list[TicketLog]:
    """Insert unsaved tickets in one statement and number them `TKT-YYYY-NNNNNN`.

    The number is the database's primary key, so it is unique without a shared counter
    row that every writer would queue on. Two queries whatever the number of tickets.
    """
    if not tickets:
        return []
    created = TicketLog.objects.bulk_create(tickets)
    pks = [ticket.pk for ticket in created]
    # Six digits at least; LPad would truncate a longer id, so pad only short ones.
    TicketLog.objects.filter(pk__in=pks).update(
        ticket_id=Concat(
            Value("TKT-"),
            Cast(ExtractYear("created_at"), CharField()),
            Value("-"),
            LPad(Cast("id", CharField()), 6, Value("0")),
            output_field=CharField(),
        )
    )
    long_ids = [ticket for ticket in created if ticket.pk > 999_999]
    for ticket in created:
        ticket.ticket_id = ticket_id_for(ticket)
    if long_ids:
        TicketLog.objects.bulk_update(long_ids, ["ticket_id"])
    return created


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
