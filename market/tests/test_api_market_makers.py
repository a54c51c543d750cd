"""The market-maker API: what staff can do with it, what it refuses, and that a retry
never acts twice."""

import json
import threading
from decimal import Decimal as D

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client

from accounts.models import ApiToken
from liquidity.permissions import MANAGE_LIQUIDITY
from market.models import Balance, LedgerEntry, MarketMakerClient, Order, TicketLog
from market.services.orders import order_place, order_request_parse
from market.tests import factories
from market.tests.helpers import assert_all_invariants

LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER


@pytest.fixture
def staff(db):
    return factories.StaffFactory()


@pytest.fixture
def api(staff):
    client = Client()
    client.force_login(staff)
    return client


def send(client, method, path, body=None, **headers):
    call = getattr(client, method)
    if body is None and method == "get":
        return call(f"/api/v1/market-makers{path}", **headers)
    if body is None:  # a POST without a body, as `curl -X POST` sends it
        return call(
            f"/api/v1/market-makers{path}", data="", content_type="application/json", **headers
        )
    text = body if isinstance(body, str) else json.dumps(body)
    return call(
        f"/api/v1/market-makers{path}", data=text, content_type="application/json", **headers
    )


def available(maker, asset) -> D:
    return Balance.objects.get(holder=maker.holder, asset=asset).available


def test_a_maker_is_created_funded_and_audited(api, staff):
    response = send(
        api,
        "post",
        "",
        '{"name": " LP Alpha ", "description": "Desk A", "email": "desk@example.com", '
        '"mm_type": "LIQUIDITY_PROVIDER", "initial_eur_balance": 1000.5}',
    )
    assert response.status_code == 201, response.content
    body = response.json()
    maker = MarketMakerClient.objects.get()
    assert body["id"] == maker.pk and body["code"] == maker.code
    assert body["name"] == "LP Alpha" and body["description"] == "Desk A"
    assert body["eur_balance"] == "1000.50" and body["is_active"] is True
    assert body["balances"]["EUR"] == {
        "available": "1000.50",
        "locked": "0.00",
        "total": "1000.50",
    }
    assert body["balances"]["CEA"] == {"available": "0", "locked": "0", "total": "0"}
    ticket = TicketLog.objects.get(action_type="MM_CREATED")
    assert ticket.user == staff and ticket.market_maker == maker
    assert ticket.request_payload["funding"] == {"EUR": "1000.50"}
    assert ticket.request_payload["email"] == "desk@example.com"
    assert LedgerEntry.objects.get(ticket=ticket).available_delta == D("1000.50")


def test_zero_initial_balances_ask_for_no_deposit_as_the_reference_reads_them(api):
    response = send(
        api,
        "post",
        "",
        {
            "name": "AH",
            "mm_type": "ASSET_HOLDER",
            "initial_eur_balance": 0,
            "initial_balances": {"CEA": "0", "EUA": 25},
        },
    )
    assert response.status_code == 201, response.content
    assert response.json()["balances"]["EUA"]["available"] == "25"
    assert response.json()["balances"]["CEA"]["available"] == "0"
    assert LedgerEntry.objects.count() == 1


def test_null_initial_balances_ask_for_nothing(api):
    body = {"name": "AH", "mm_type": "ASSET_HOLDER", "initial_balances": {"CEA": None}}
    response = send(api, "post", "", body)
    assert response.status_code == 201, response.content
    assert not LedgerEntry.objects.exists()


@pytest.mark.parametrize("key", ["a\x00b", "line\nbreak", "x" * 65])
def test_an_idempotency_key_with_control_characters_or_too_long_answers_422(api, key):
    body = {"name": "LP", "mm_type": "LIQUIDITY_PROVIDER"}
    response = send(api, "post", "", body, HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 422, response.content
    assert not MarketMakerClient.objects.exists()


def test_the_type_defaults_to_asset_holder_as_the_reference(api):
    response = send(api, "post", "", {"name": "Holder", "initial_balances": {"cea": 10}})
    assert response.status_code == 201, response.content
    assert response.json()["mm_type"] == "ASSET_HOLDER"
    assert response.json()["balances"]["CEA"]["available"] == "10"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (
            {"mm_type": "ASSET_HOLDER", "initial_eur_balance": "100"},
            "initial_eur_balance",
            "ASSET_HOLDER cannot have EUR balance. An asset holder is funded in certificates",
        ),
        (
            {"mm_type": "LIQUIDITY_PROVIDER", "initial_balances": {"CEA": 10}},
            "initial_balances.CEA",
            "LIQUIDITY_PROVIDER cannot have certificate balances. A liquidity provider is",
        ),
        (
            {"mm_type": "LIQUIDITY_PROVIDER", "initial_eur_balance": 10.005},
            "initial_eur_balance",
            "Use at most 2 decimal places.",
        ),
        (
            {"mm_type": "LIQUIDITY_PROVIDER", "initial_eur_balance": -10},
            "initial_eur_balance",
            "Must be greater than zero.",
        ),
        (
            {"mm_type": "ASSET_HOLDER", "initial_balances": {"CEA": 1.5}},
            "initial_balances.CEA",
            "Certificates are whole units",
        ),
        (
            {"mm_type": "ASSET_HOLDER", "initial_balances": {"XYZ": 10}},
            "initial_balances",
            "Unknown asset 'XYZ'",
        ),
        (
            {
                "mm_type": "LIQUIDITY_PROVIDER",
                "initial_eur_balance": 5,
                "initial_balances": {"EUR": 5},
            },
            "initial_balances.EUR",
            "EUR is given twice",
        ),
        ({"mm_type": "LIQUIDITY_PROVIDER", "name": "  "}, "name", "This field is required."),
        ({"mm_type": "LIQUIDITY_PROVIDER", "description": "a\x00b"}, "description", "Null"),
        ({"mm_type": "ASSET_HOLDER", "initial_balances": {"XYZ": 0}}, "initial_balances", "XYZ"),
        ({"mm_type": "LIQUIDITY_PROVIDER", "email": "not-an-address"}, "email", "valid email"),
    ],
)
def test_bad_creation_answers_400_on_its_field_and_creates_nothing(api, body, field, message):
    response = send(api, "post", "", {"name": "Maker", **body})
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "validation_error"
    assert message in response.json()["detail"][field][0], response.json()
    assert not MarketMakerClient.objects.exists()
    assert not TicketLog.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {"name": "Maker", "initial_eur_balance": True},
        {"name": "Maker", "mm_type": "BROKER"},
        {"name": "Maker", "initial_eur_balanse": 100},  # a misspelt field is no silent no-op
        {"mm_type": "ASSET_HOLDER"},
    ],
)
def test_a_body_off_the_schema_answers_422(api, body):
    response = send(api, "post", "", body)
    assert response.status_code == 422, response.content
    assert not MarketMakerClient.objects.exists()


def test_the_list_filters_by_type_and_state_with_balances(api, django_assert_max_num_queries):
    lp = factories.market_maker(LP, EUR="500")
    ah = factories.market_maker(AH, CEA=40)
    inactive = factories.market_maker(AH, EUA=3)
    send(api, "post", f"/{inactive.pk}/deactivate")

    everyone = send(api, "get", "").json()
    assert everyone["count"] == 3 and [m["id"] for m in everyone["items"]] == [
        lp.pk,
        ah.pk,
        inactive.pk,
    ]
    holders = send(api, "get", "?mm_type=ASSET_HOLDER&is_active=true").json()
    assert [m["id"] for m in holders["items"]] == [ah.pk]
    assert holders["items"][0]["balances"]["CEA"]["available"] == "40"
    assert send(api, "get", "?is_active=false").json()["items"][0]["id"] == inactive.pk
    paged = send(api, "get", "?limit=1&offset=1").json()
    assert paged["count"] == 3 and [m["id"] for m in paged["items"]] == [ah.pk]
    assert send(api, "get", "?mm_type=BROKER").status_code == 422


@pytest.mark.parametrize("makers", [3, 30])
def test_the_list_reads_a_constant_number_of_queries(api, makers, django_assert_max_num_queries):
    for number in range(makers):
        factories.market_maker(
            LP if number % 2 else AH, **({"EUR": "10"} if number % 2 else {"CEA": 5})
        )
    # Session and user, the rate limit (read and count), the count, the page, balances,
    # resting orders, assets.
    with django_assert_max_num_queries(12):
        response = send(api, "get", "?limit=200")
    assert len(response.json()["items"]) == makers


def test_fund_and_withdraw_move_money_once_with_a_ticket_each(api, staff):
    maker = factories.market_maker(LP, EUR="100")
    funded = send(api, "post", f"/{maker.pk}/fund", '{"asset": "eur", "amount": 50.25}')
    assert funded.status_code == 200, funded.content
    assert funded.json()["market_maker"]["eur_balance"] == "150.25"
    withdrawn = send(api, "post", f"/{maker.pk}/withdraw", {"asset": "EUR", "amount": "0.25"})
    assert withdrawn.status_code == 200, withdrawn.content
    assert available(maker, "EUR") == D("150.00")
    tickets = TicketLog.objects.filter(market_maker=maker, user=staff)
    assert sorted(tickets.values_list("action_type", flat=True)) == ["MM_FUNDED", "MM_WITHDRAWN"]
    assert withdrawn.json()["ticket_id"] == tickets.get(action_type="MM_WITHDRAWN").ticket_id
    assert_all_invariants()


@pytest.mark.parametrize(
    ("action", "body", "field", "message"),
    [
        ("fund", {"asset": "CEA", "amount": 5}, "asset", "funded in EUR only"),
        ("fund", {"asset": "EUR", "amount": "1,000"}, "amount", "Use a point for decimals"),
        ("fund", {"asset": "EUR", "amount": 0}, "amount", "Must be greater than zero."),
        ("fund", {"asset": "XYZ", "amount": 5}, "asset", "Unknown asset"),
        ("withdraw", {"asset": "EUR", "amount": 100.01}, "amount", "has only €100.00 available"),
    ],
)
def test_bad_transfers_answer_400_and_move_nothing(api, action, body, field, message):
    maker = factories.market_maker(LP, EUR="100")
    response = send(api, "post", f"/{maker.pk}/{action}", body)
    assert response.status_code == 400, response.content
    assert message in response.json()["detail"][field][0], response.json()
    assert available(maker, "EUR") == D("100.00")
    assert LedgerEntry.objects.count() == 1  # the initial deposit


def test_an_inactive_maker_cannot_be_funded_but_can_be_emptied(api):
    maker = factories.market_maker(LP, EUR="100")
    assert send(api, "post", f"/{maker.pk}/deactivate").status_code == 200
    refused = send(api, "post", f"/{maker.pk}/fund", {"asset": "EUR", "amount": 5})
    assert refused.status_code == 400
    assert "inactive" in refused.json()["detail"]["__all__"][0]
    emptied = send(api, "post", f"/{maker.pk}/withdraw", {"asset": "EUR", "amount": 100})
    assert emptied.status_code == 200 and emptied.json()["market_maker"]["eur_balance"] == "0.00"


def test_deactivation_asks_to_confirm_cancelling_open_orders_then_cancels_them(api):
    maker = factories.market_maker(AH, CEA=100)
    order_place(
        owner=maker.holder,
        request=order_request_parse(
            market_code="CEA", side="SELL", order_type="LIMIT", price="14.00", quantity=10
        ),
    )
    refused = send(api, "post", f"/{maker.pk}/deactivate", {})
    assert refused.status_code == 400
    assert "1 open order" in refused.json()["detail"]["cancel_open_orders"][0]
    assert MarketMakerClient.objects.get(pk=maker.pk).is_active

    done = send(api, "post", f"/{maker.pk}/deactivate", {"cancel_open_orders": True})
    assert done.status_code == 200, done.content
    assert done.json()["orders_cancelled"] == 1
    assert done.json()["market_maker"]["is_active"] is False
    assert done.json()["market_maker"]["balances"]["CEA"] == {
        "available": "100",
        "locked": "0",
        "total": "100",
    }
    assert not Order.objects.filter(status__in=Order.RESTING).exists()

    again = send(api, "post", f"/{maker.pk}/deactivate", {"cancel_open_orders": True})
    assert again.status_code == 409 and "already inactive" in again.json()["message"]
    back = send(api, "post", f"/{maker.pk}/reactivate")
    assert back.status_code == 200 and back.json()["market_maker"]["is_active"] is True
    twice = send(api, "post", f"/{maker.pk}/reactivate")
    assert twice.status_code == 409 and twice.json() == {
        "error": "conflict",
        "message": f"{maker.code} is already active.",
    }
    assert TicketLog.objects.filter(market_maker=maker, action_type="MM_REACTIVATED").count() == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/{id}"),
        ("post", "/{id}/fund"),
        ("post", "/{id}/withdraw"),
        ("post", "/{id}/deactivate"),
        ("post", "/{id}/reactivate"),
    ],
)
def test_an_unknown_maker_answers_404(api, method, path):
    body = {"asset": "EUR", "amount": 1} if path.endswith(("fund", "withdraw")) else None
    response = send(api, method, path.format(id=987654), body)
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "message": "No market maker 987654."}


def test_staff_without_the_market_maker_permission_are_refused(db):
    """Liquidity staff who may not manage market makers (on the pages) may not here
    either, nor provision them through the liquidity API."""
    user = factories.UserFactory(is_staff=True)
    app, codename = MANAGE_LIQUIDITY.split(".")
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label=app, codename=codename)
    )
    _, token = ApiToken.issue(user=user)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    maker = factories.market_maker(LP, EUR="10")
    for method, path, body in [
        ("get", "", None),
        ("get", f"/{maker.pk}", None),
        ("post", "", {"name": "X", "mm_type": "LIQUIDITY_PROVIDER"}),
        ("post", f"/{maker.pk}/fund", {"asset": "EUR", "amount": 1}),
        ("post", f"/{maker.pk}/deactivate", {}),
    ]:
        response = send(client, method, path, body)
        assert response.status_code == 403, (path, response.content)
        assert response.json() == {
            "detail": "This token's user is not staff with the market-maker permission."
        }
    provision = client.post(
        "/api/v1/liquidity/provision",
        data=json.dumps(
            {"action": "create_new", "mm_type": "LIQUIDITY_PROVIDER", "amount": "100", "count": 2}
        ),
        content_type="application/json",
    )
    assert provision.status_code == 403
    assert MarketMakerClient.objects.count() == 1 and MarketMakerClient.objects.get().is_active
    # With the permission the same token works.
    app, codename = "market", "change_marketmakerclient"
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label=app, codename=codename)
    )
    assert send(client, "get", "").status_code == 200


def test_market_maker_staff_without_the_liquidity_permission_use_these_endpoints(db):
    """The pages' permission, and only it: such staff manage market makers by session
    or token, and still may not plan liquidity."""
    user = factories.UserFactory(is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(
            content_type__app_label="market", codename="change_marketmakerclient"
        )
    )
    maker = factories.market_maker(LP, EUR="10")
    session = Client()
    session.force_login(user)
    _, token = ApiToken.issue(user=user)
    for client in (session, Client(HTTP_AUTHORIZATION=f"Bearer {token}")):
        assert send(client, "get", f"/{maker.pk}").status_code == 200
        funded = send(client, "post", f"/{maker.pk}/fund", {"asset": "EUR", "amount": 1})
        assert funded.status_code == 200, funded.content
        preview = client.post(
            "/api/v1/liquidity/preview",
            data=json.dumps({"certificate_type": "CEA", "bid_amount_eur": 1, "ask_amount_eur": 1}),
            content_type="application/json",
        )
        assert preview.status_code == 403
    assert available(maker, "EUR") == D("12.00")


# --- retries ----------------------------------------------------------------------------


def test_a_retried_creation_answers_the_first_maker_and_creates_one(api):
    body = {"name": "LP", "mm_type": "LIQUIDITY_PROVIDER", "initial_eur_balance": 100}
    first = send(api, "post", "", body, HTTP_IDEMPOTENCY_KEY="create-1")
    again = send(api, "post", "", body, HTTP_IDEMPOTENCY_KEY="create-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert MarketMakerClient.objects.count() == 1
    assert available(MarketMakerClient.objects.get(), "EUR") == D("100.00")

    other = send(
        api, "post", "", {**body, "initial_eur_balance": 200}, HTTP_IDEMPOTENCY_KEY="create-1"
    )
    assert other.status_code == 422
    assert other.json()["error"] == "idempotency_key_reused"
    assert MarketMakerClient.objects.count() == 1
    # Without a key, or with a new one, it is a new maker.
    assert send(api, "post", "", body, HTTP_IDEMPOTENCY_KEY="create-2").status_code == 201
    assert MarketMakerClient.objects.count() == 2


def test_a_retried_deposit_deposits_once_and_a_key_names_one_action(api):
    maker = factories.market_maker(LP, EUR="100")
    deposit = {"asset": "EUR", "amount": 25}
    first = send(api, "post", f"/{maker.pk}/fund", deposit, HTTP_IDEMPOTENCY_KEY="fund-7")
    again = send(api, "post", f"/{maker.pk}/fund", deposit, HTTP_IDEMPOTENCY_KEY="fund-7")
    assert first.status_code == again.status_code == 200
    assert first.json()["ticket_id"] == again.json()["ticket_id"]
    assert available(maker, "EUR") == D("125.00")
    # The same key for a withdrawal, another amount or another maker: refused, unchanged.
    other = factories.market_maker(LP, EUR="10")
    for path, body in [
        (f"/{maker.pk}/withdraw", deposit),
        (f"/{maker.pk}/fund", {"asset": "EUR", "amount": 26}),
        (f"/{other.pk}/fund", deposit),
    ]:
        response = send(api, "post", path, body, HTTP_IDEMPOTENCY_KEY="fund-7")
        assert response.status_code == 422, (path, response.content)
    assert available(maker, "EUR") == D("125.00") and available(other, "EUR") == D("10.00")
    withdraw = {"asset": "EUR", "amount": "5"}
    for _ in range(2):
        response = send(api, "post", f"/{maker.pk}/withdraw", withdraw, HTTP_IDEMPOTENCY_KEY="w-1")
        assert response.status_code == 200
    assert available(maker, "EUR") == D("120.00")
    assert_all_invariants()


def test_keys_are_per_user(api, staff):
    body = {"name": "LP", "mm_type": "LIQUIDITY_PROVIDER"}
    assert send(api, "post", "", body, HTTP_IDEMPOTENCY_KEY="shared").status_code == 201
    other = Client()
    other.force_login(factories.StaffFactory())
    assert send(other, "post", "", body, HTTP_IDEMPOTENCY_KEY="shared").status_code == 201
    assert MarketMakerClient.objects.count() == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_twin_withdrawals_under_one_key_withdraw_once_and_both_answer_it(migrated_rows):
    """The twin waits on the balance row; when it gets it the money is gone, and it
    answers the first call's withdrawal, not "not enough available"."""
    staff = factories.StaffFactory()
    _, token = ApiToken.issue(user=staff)
    maker = factories.market_maker(LP, EUR="100")
    barrier = threading.Barrier(2)
    answers = []

    def call():
        client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
        barrier.wait()
        try:
            answers.append(
                send(
                    client,
                    "post",
                    f"/{maker.pk}/withdraw",
                    {"asset": "EUR", "amount": 100},
                    HTTP_IDEMPOTENCY_KEY="twin-withdrawal",
                )
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [answer.status_code for answer in answers] == [200, 200], [a.content for a in answers]
    assert len({answer.json()["ticket_id"] for answer in answers}) == 1
    assert available(maker, "EUR") == D("0.00")
    assert TicketLog.objects.filter(action_type="MM_WITHDRAWN").count() == 1
    assert_all_invariants()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_twin_creations_under_one_key_make_one_maker(migrated_rows):
    """Two calls with the same key at the same moment: one creates, the other answers
    the same maker (the key's unique index decides), and nothing is deposited twice."""
    staff = factories.StaffFactory()
    _, token = ApiToken.issue(user=staff)
    body = {"name": "Twin", "mm_type": "LIQUIDITY_PROVIDER", "initial_eur_balance": 500}
    barrier = threading.Barrier(2)
    answers = []

    def call():
        client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
        barrier.wait()
        try:
            answers.append(send(client, "post", "", body, HTTP_IDEMPOTENCY_KEY="twin"))
        finally:
            connection.close()

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answer.status_code for answer in answers) == [200, 201]
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert MarketMakerClient.objects.count() == 1
    assert available(MarketMakerClient.objects.get(), "EUR") == D("500.00")
    assert_all_invariants()
