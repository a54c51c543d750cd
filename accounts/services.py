"""Writes on API tokens: a trader creating their own, revocation by their owner or by
staff in the admin."""

from collections.abc import Sequence
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import ApiToken
from market.models import TicketLog
from market.services.audit import ticket_record
from market.validation import MAX_ID, FieldErrors

# Active trader tokens one user may hold: enough for a few bots and machines, and a bound
# on what a stolen session can mint.
MAX_ACTIVE_TRADER_TOKENS = 10
MAX_TOKEN_NAME = 100
MAX_CREATION_KEY = 64


@dataclass(frozen=True)
class TokenCreated:
    """A trader token: the row, and the secret to show once (None when `creation_key`
    named a token this user created before: its secret was shown then and is not kept)."""

    token: ApiToken
    secret: str | None
    ticket: TicketLog | None

    @property
    def created(self) -> bool:
        return self.secret is not None


def trader_token_create(
    *, user, name: str = "", creation_key: str | None = None, ip: str | None = None
) -> TokenCreated:
    """Issue a trader-scope token to `user` (any active user: everyone signed in may
    trade), with an `API_TOKEN_CREATED` ticket. The token opens the trader endpoints of
    the API for `user`'s own account only, never the staff ones.

    `creation_key` makes a retried form submit return the token it created (without its
    secret) instead of creating another. Refuses (ValidationError keyed by field) a name
    longer than `MAX_TOKEN_NAME` or with a NUL, and a user who already holds
    `MAX_ACTIVE_TRADER_TOKENS` active trader tokens.

    Locks the user's row (`select_for_update`), so two concurrent submits neither pass
    the cap together nor both create under one key.
    """
    errors = FieldErrors()
    name = str(name or "").strip()
    if len(name) > MAX_TOKEN_NAME:
        errors.add("name", f"Give the token a name of at most {MAX_TOKEN_NAME} characters.")
    elif "\x00" in name:
        errors.add("name", "Null characters are not allowed.")
    creation_key = str(creation_key or "").strip()[:MAX_CREATION_KEY] or None
    if not user.is_active:
        errors.add("__all__", "This account is inactive.")
    errors.raise_any()
    with transaction.atomic():
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        mine = ApiToken.objects.filter(user=user)
        if creation_key is not None:
            earlier = mine.filter(creation_key=creation_key).first()
            if earlier is not None:
                return TokenCreated(token=earlier, secret=None, ticket=None)
        active = mine.filter(scope=ApiToken.Scope.TRADER, revoked_at__isnull=True).count()
        if active >= MAX_ACTIVE_TRADER_TOKENS:
            raise ValidationError(
                f"You have {active} active trader tokens, the most one account may hold: "
                "revoke one you no longer use first."
            )
        try:
            with transaction.atomic():
                row, secret = ApiToken.issue(
                    user=user,
                    name=name,
                    scope=ApiToken.Scope.TRADER,
                    creation_key=creation_key,
                )
        except IntegrityError:
            # A twin submit under the same key committed first (SQLite has no row locks).
            return TokenCreated(
                token=mine.get(creation_key=creation_key), secret=None, ticket=None
            )
        ticket = ticket_record(
            action_type="API_TOKEN_CREATED",
            entity_type="ApiToken",
            entity_id=row.pk,
            user=user,
            payload={"name": name, "scope": row.scope},
            after={"prefix": row.prefix, "scope": row.scope},
            tags=["api_token", row.prefix, user.get_username()],
            ip=ip,
        )
    return TokenCreated(token=row, secret=secret, ticket=ticket)


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
