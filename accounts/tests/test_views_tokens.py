"""The user's own API tokens page: their tokens only (never the secret), a Revoke button
that posts (CSRF) and revokes only their own."""

import pytest
from django.test import Client

from accounts.models import ApiToken
from market.models import TicketLog
from market.tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice():
    return factories.StaffFactory(username="tok-alice")


@pytest.fixture
def alice_client(alice):
    client = Client()
    client.force_login(alice)
    return client


def test_the_page_lists_the_users_tokens_and_no_one_elses(
    alice, alice_client, django_assert_max_num_queries
):
    mine, secret = ApiToken.issue(user=alice, name="Trading bot")
    revoked, _ = ApiToken.issue(user=alice, name="Old laptop")
    ApiToken.objects.filter(pk=revoked.pk).update(revoked_at=revoked.created_at)
    theirs, _ = ApiToken.issue(user=factories.UserFactory(username="tok-bob"), name="Bob's")

    with django_assert_max_num_queries(4):
        response = alice_client.get("/accounts/tokens/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "Trading bot" in html and f"{mine.prefix}…" in html
    assert "Old laptop" in html and "Revoked" in html
    assert "Bob's" not in html and theirs.prefix not in html
    assert secret not in html and mine.key_hash not in html
    # One Revoke button: the active token's.
    assert html.count('data-testid="revoke-token"') == 1
    assert f'action="/accounts/tokens/{mine.pk}/revoke/"' in html
    assert "no-store" in response["Cache-Control"]


def test_a_user_without_tokens_is_told_so(alice_client):
    response = alice_client.get("/accounts/tokens/")
    assert "You have no API tokens." in response.content.decode()


def test_the_navigation_links_to_the_page(alice_client):
    html = alice_client.get("/").content.decode()
    assert 'href="/accounts/tokens/"' in html


def test_revoke_says_so_and_the_api_refuses_the_token(alice, alice_client):
    row, token = ApiToken.issue(user=alice)
    response = alice_client.post(f"/accounts/tokens/{row.pk}/revoke/", follow=True)
    html = response.content.decode()
    assert f"Token {row.prefix}… revoked (TKT-" in html
    row.refresh_from_db()
    assert row.revoked_at is not None
    bearer = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert bearer.get("/api/v1/liquidity/operations").status_code == 401

    again = alice_client.post(f"/accounts/tokens/{row.pk}/revoke/", follow=True)
    assert "was revoked already" in again.content.decode()
    assert TicketLog.objects.filter(action_type="API_TOKEN_REVOKED").count() == 1


def test_someone_elses_token_is_not_found_and_stays_active(alice_client):
    theirs, _ = ApiToken.issue(user=factories.UserFactory(username="tok-carol"))
    response = alice_client.post(f"/accounts/tokens/{theirs.pk}/revoke/")
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_revoke_needs_a_post_with_the_csrf_token(alice):
    row, _ = ApiToken.issue(user=alice)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.get(f"/accounts/tokens/{row.pk}/revoke/").status_code == 405
    assert client.post(f"/accounts/tokens/{row.pk}/revoke/").status_code == 403
    row.refresh_from_db()
    assert row.revoked_at is None


def test_anonymous_users_are_sent_to_the_login_page(client):
    response = client.get("/accounts/tokens/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/accounts/tokens/")


def test_a_token_id_beyond_any_row_is_not_found(alice_client):
    assert alice_client.post("/accounts/tokens/99999999999999999999/revoke/").status_code == 404
