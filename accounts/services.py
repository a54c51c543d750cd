"""Writes on API tokens: revocation, by their owner or by staff in the admin."""

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from accounts.models import ApiToken
from market.models import TicketLog
from market.services.audit import ticket_record
from market.validation import MAX_ID


@dataclass(frozen=True)
class TokensRevoked:
    """The tokens this call revoked, each with its audit ticket (in the same order); the
    ones that were revoked already are left as they were and listed apart."""

    revoked: list[ApiToken]
    tickets: list[TicketLog]
    already_revoked: list[ApiToken]


def api_tokens_revoke(
    *, token_ids: Sequence[int], actor, owner=None, ip: str | None = None
) -> TokensRevoked:
    """Revoke the tokens `token_ids` (only `owner`'s, when given: a user revoking their
    own; ids of anyone else's are not found), each with an `API_TOKEN_REVOKED` ticket
    by `actor`.

    Locks: the token rows (`select_for_update`), so two revocations of one token write
    one ticket. Invariant: a revoked token stays revoked, its `revoked_at` never changes
    again; the API refuses it from the moment this transaction commits (`config.api`).
    """
    with transaction.atomic():
        # Ids beyond a 64-bit key name no row (and overflow SQLite's integer).
        ids = [pk for pk in token_ids if 0 < pk <= MAX_ID]
        tokens = ApiToken.objects.select_for_update(of=("self",)).filter(pk__in=ids)
        if owner is not None:
            tokens = tokens.filter(user=owner)
        tokens = list(tokens.select_related("user").order_by("pk"))
        already = [token for token in tokens if token.revoked_at is not None]
        to_revoke = [token for token in tokens if token.revoked_at is None]
        now = timezone.now()
        tickets = []
        for token in to_revoke:
            token.revoked_at = now
            token.save(update_fields=["revoked_at"])
            tickets.append(
                ticket_record(
                    action_type="API_TOKEN_REVOKED",
                    entity_type="ApiToken",
                    entity_id=token.pk,
                    user=actor,
                    payload={"by_owner": actor is not None and actor.pk == token.user_id},
                    before={"revoked_at": None},
                    after={"revoked_at": now.isoformat()},
                    tags=["api_token", token.prefix, token.user.get_username()],
                    ip=ip,
                )
            )
    return TokensRevoked(revoked=to_revoke, tickets=tickets, already_revoked=already)
