"""`manage.py create_api_token`: a bearer token for the staff API, printed once; only its
hash is kept."""

import json

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.models import ApiToken
from market.models import MarketMakerClient
from market.tests import factories

LP = MarketMakerClient.Type.LIQUIDITY_PROVIDER
REQUEST = {"certificate_type": "CEA", "bid_amount_eur": "100000", "ask_amount_eur": "50000"}


def post(client, path, body, **headers):
    return client.post(
        f"/api/v1/liquidity/{path}",
        data=json.dumps(body),
        content_type="application/json",
        **headers,
    )


def test_bearer_token_from_the_command(db, capsys):
    staff = factories.StaffFactory()
    call_command("create_api_token", username=staff.username)
    token = capsys.readouterr().out.strip().splitlines()[-1]
    client = Client(enforce_csrf_checks=True)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    assert client.get("/api/v1/liquidity/operations", **headers).status_code == 200
    factories.market_maker(LP, EUR="200000")
    assert post(client, "preview", REQUEST, **headers).status_code == 200
    wrong = {"HTTP_AUTHORIZATION": "Bearer not-a-token"}
    assert client.get("/api/v1/liquidity/operations", **wrong).status_code == 401


def test_token_command_refuses_a_trader(db):
    trader = factories.UserFactory()
    with pytest.raises(CommandError, match="staff"):
        call_command("create_api_token", username=trader.username)


def test_only_the_hash_is_stored(db, capsys):
    staff = factories.StaffFactory()
    call_command("create_api_token", username=staff.username, name="scripts")
    token = capsys.readouterr().out.strip().splitlines()[-1]
    row = ApiToken.objects.get(user=staff)
    assert row.key_hash == ApiToken.hash(token) and token not in row.key_hash
    assert (row.prefix, row.name) == (token[:8], "scripts")
    with pytest.raises(CommandError, match="No user named"):
        call_command("create_api_token", username="nobody")


# --- two-factor sign-in -----------------------------------------------------------------


def test_where_staff_need_two_factor_the_token_needs_the_owners_code(db, capsys, settings):
    from accounts.tests.helpers import code_for, enrol

    settings.STAFF_2FA_REQUIRED = True
    staff = factories.StaffFactory()
    with pytest.raises(CommandError, match="no two-factor sign-in yet"):
        call_command("create_api_token", username=staff.username)
    device, recovery = enrol(staff)
    with pytest.raises(CommandError, match="Give --code"):
        call_command("create_api_token", username=staff.username)
    with pytest.raises(CommandError, match="not valid"):
        call_command("create_api_token", username=staff.username, code="000000")
    assert not ApiToken.objects.exists()
    device.throttle_reset()
    call_command("create_api_token", username=staff.username, code=code_for(device))
    call_command("create_api_token", username=staff.username, code=recovery[0])
    assert ApiToken.objects.filter(user=staff).count() == 2


def test_under_the_demo_a_staff_token_needs_no_code(db, capsys, settings):
    settings.STAFF_2FA_REQUIRED = False
    staff = factories.StaffFactory()
    call_command("create_api_token", username=staff.username)
    assert ApiToken.objects.filter(user=staff).exists()


def test_a_trader_token_from_the_command_opens_the_trader_api_only(db, capsys):
    trader = factories.trader("cmd-trader", EUR="100")
    call_command("create_api_token", username=trader.user.username, scope="trader")
    token = capsys.readouterr().out.strip().splitlines()[-1]
    row = ApiToken.objects.get(user=trader.user)
    assert row.scope == ApiToken.Scope.TRADER and row.key_hash == ApiToken.hash(token)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/v1/balances").json()["EUR"]["free"] == "100.00"
    assert client.get("/api/v1/liquidity/operations").status_code == 403


def test_a_staff_token_is_still_refused_to_a_trader(db):
    trader = factories.trader("cmd-trader-2")
    with pytest.raises(CommandError, match="must be an active staff user"):
        call_command("create_api_token", username=trader.user.username)
    assert not ApiToken.objects.exists()
