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


# --- creating a trader token ------------------------------------------------------------


def create(client, name="Trading bot", key="key-1"):
    return client.post("/accounts/tokens/new/", {"name": name, "creation_key": key})


def secret_on(response) -> str:
    html = response.content.decode()
    marker = 'data-testid="new-token-secret"'
    assert marker in html
    tag = html[html.index("<input", html.rindex("<", 0, html.index(marker))) :]
    return tag.split('value="', 1)[1].split('"', 1)[0]


def test_a_trader_token_is_created_shown_once_and_opens_the_trader_api(alice_client, alice):
    response = create(alice_client)

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    secret = secret_on(response)
    row = ApiToken.objects.get(user=alice)
    assert (row.scope, row.name, row.prefix) == ("trader", "Trading bot", secret[:8])
    assert row.key_hash == ApiToken.hash(secret)
    html = response.content.decode()
    assert f"Token {row.prefix}… created (TKT-" in html and "Trader API" in html
    ticket = TicketLog.objects.get(action_type="API_TOKEN_CREATED")
    assert ticket.user == alice and ticket.entity_id == str(row.pk)
    assert secret not in str(ticket.request_payload) + str(ticket.after_state)

    bearer = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert bearer.get("/api/v1/balances").status_code == 200
    assert bearer.get("/api/v1/liquidity/operations").status_code == 403  # not staff's
    # Never again: the list shows its prefix only.
    assert secret not in alice_client.get("/accounts/tokens/").content.decode()


def test_a_resubmitted_form_creates_no_second_token_and_shows_no_secret(alice_client, alice):
    first = create(alice_client)
    again = create(alice_client, name="Trading bot")

    assert ApiToken.objects.filter(user=alice).count() == 1
    assert again.status_code == 302 and again["Location"] == "/accounts/tokens/"
    page = alice_client.get(again["Location"]).content.decode()
    assert "already created token" in page and secret_on(first) not in page
    assert 'data-testid="new-token-secret"' not in page


def test_the_page_carries_a_fresh_creation_key_each_time(alice_client):
    def key():
        html = alice_client.get("/accounts/tokens/").content.decode()
        return html.split('name="creation_key"', 1)[1].split('value="', 1)[1].split('"')[0]

    first, second = key(), key()
    assert first and second and first != second


def test_a_name_too_long_is_refused_next_to_the_field(alice_client, alice):
    response = create(alice_client, name="x" * 101)
    html = response.content.decode()
    assert 'data-testid="error-name"' in html and "at most 100 characters" in html
    assert not ApiToken.objects.filter(user=alice).exists()


def test_past_ten_active_trader_tokens_a_new_one_is_refused(alice_client, alice):
    for number in range(10):
        ApiToken.issue(user=alice, scope=ApiToken.Scope.TRADER, name=f"bot {number}")
    response = create(alice_client)
    assert "revoke one you no longer use first" in response.content.decode()
    assert ApiToken.objects.filter(user=alice).count() == 10


def test_tokens_are_listed_with_their_scope(alice_client, alice):
    ApiToken.issue(user=alice, name="Liquidity report")
    ApiToken.issue(user=alice, name="Bot", scope=ApiToken.Scope.TRADER)
    html = alice_client.get("/accounts/tokens/").content.decode()
    assert html.count('data-testid="token-scope"') == 2
    assert "Staff API" in html and "Trader API" in html


def test_creating_needs_a_post_with_the_csrf_token(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.get("/accounts/tokens/new/").status_code == 405
    assert client.post("/accounts/tokens/new/", {"name": "x"}).status_code == 403
    assert not ApiToken.objects.filter(user=alice).exists()
