"""`accounts.services.api_tokens_revoke`: revoked once, with a ticket, only the owner's
when an owner is given; the API refuses the token afterwards."""

import pytest
from django.test import Client

from accounts.models import ApiToken
from accounts.services import api_tokens_revoke
from market.models import TicketLog
from market.tests import factories

pytestmark = pytest.mark.django_db


def api_status(token: str) -> int:
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client.get("/api/v1/liquidity/operations").status_code


def test_revoking_writes_one_ticket_and_the_api_refuses_the_token():
    staff = factories.StaffFactory(username="rev-staff")
    row, token = ApiToken.issue(user=staff, name="bot")
    assert api_status(token) == 200

    result = api_tokens_revoke(token_ids=[row.pk], actor=staff, ip="10.0.0.1")

    assert [t.pk for t in result.revoked] == [row.pk] and result.already_revoked == []
    row.refresh_from_db()
    assert row.revoked_at is not None
    ticket = TicketLog.objects.get(action_type="API_TOKEN_REVOKED")
    assert ticket == result.tickets[0]
    assert (ticket.entity_id, ticket.user, ticket.ip_address) == (str(row.pk), staff, "10.0.0.1")
    assert ticket.request_payload == {"by_owner": True}
    assert row.prefix in ticket.tags
    assert api_status(token) == 401


def test_revoking_again_changes_nothing():
    staff = factories.StaffFactory(username="rev-twice")
    row, _ = ApiToken.issue(user=staff)
    api_tokens_revoke(token_ids=[row.pk], actor=staff)
    row.refresh_from_db()
    first = row.revoked_at

    again = api_tokens_revoke(token_ids=[row.pk], actor=staff)

    assert again.revoked == [] and [t.pk for t in again.already_revoked] == [row.pk]
    row.refresh_from_db()
    assert row.revoked_at == first
    assert TicketLog.objects.filter(action_type="API_TOKEN_REVOKED").count() == 1


def test_an_owner_revokes_only_their_own_tokens():
    alice = factories.UserFactory(username="rev-alice")
    bob = factories.UserFactory(username="rev-bob")
    bobs, _ = ApiToken.issue(user=bob)

    result = api_tokens_revoke(token_ids=[bobs.pk], actor=alice, owner=alice)

    assert result.revoked == [] and result.already_revoked == []
    bobs.refresh_from_db()
    assert bobs.revoked_at is None
    assert not TicketLog.objects.filter(action_type="API_TOKEN_REVOKED").exists()


def test_staff_revoking_someone_elses_token_is_recorded_as_not_the_owner():
    admin = factories.StaffFactory(username="rev-admin")
    bot_user = factories.StaffFactory(username="rev-bot")
    row, _ = ApiToken.issue(user=bot_user)
    result = api_tokens_revoke(token_ids=[row.pk], actor=admin)
    assert result.tickets[0].request_payload == {"by_owner": False}
    assert result.tickets[0].user == admin


# --- trader_token_create ------------------------------------------------------------------


def test_a_trader_token_is_issued_once_per_creation_key():
    from accounts.services import trader_token_create

    user = factories.UserFactory(username="svc-trader")
    first = trader_token_create(user=user, name=" bot ", creation_key="k", ip="10.0.0.2")
    again = trader_token_create(user=user, name="other", creation_key="k")

    assert first.created and first.secret and first.token.scope == ApiToken.Scope.TRADER
    assert first.token.name == "bot"
    assert not again.created and again.secret is None and again.token.pk == first.token.pk
    assert ApiToken.objects.filter(user=user).count() == 1
    ticket = TicketLog.objects.get(action_type="API_TOKEN_CREATED")
    assert (ticket.user, ticket.ip_address) == (user, "10.0.0.2")
    # Without a key, each call is a new token.
    trader_token_create(user=user)
    assert ApiToken.objects.filter(user=user).count() == 2


def test_a_nul_in_the_name_is_refused():
    from django.core.exceptions import ValidationError

    from accounts.services import trader_token_create

    user = factories.UserFactory(username="svc-nul")
    with pytest.raises(ValidationError) as refused:
        trader_token_create(user=user, name="a\x00b")
    assert "name" in refused.value.message_dict
    assert not ApiToken.objects.exists()
