"""Markets are data: a third market, created by a command, works everywhere with no code
change: the trader's page, its book and poll, the API, the back office, liquidity, the
admin and balances."""

import re
from decimal import Decimal as D
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from liquidity.models import LiquidityOperation
from market.models import Balance, Holder, Market, MarketMakerClient, Order, Trade
from market.tests import factories
from market.tests.helpers import assert_all_invariants, assert_matching_invariants

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}
LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER


def test_a_third_market_is_created_by_a_command_and_works_everywhere():
    staff = factories.StaffFactory(username="ops")
    trader = factories.trader("ukbuyer", EUR="5000")
    out = StringIO()
    call_command(
        "create_market",
        "--code", "uka", "--name", "UK Allowance", "--reference-price", "40.00",
        "--username", "ops", stdout=out,
    )  # fmt: skip
    assert "Created market UKA / EUR (UK Allowance) at /market/UKA/" in out.getvalue()
    market = Market.objects.get(code="UKA")
    # Every holder, the house and the trader included, holds a zero balance of it.
    assert Balance.objects.filter(asset="UKA").count() == Holder.objects.count()

    back_office = Client()
    back_office.force_login(staff)
    # Market makers for it: an asset holder funded in UKA, a provider in EUR.
    response = back_office.post(
        "/backoffice/market-makers/new/", {"name": "UK holder", "mm_type": AH, "uka": "2000"}
    )
    assert response.status_code == 302
    back_office.post(
        "/backoffice/market-makers/new/", {"name": "UK bidder", "mm_type": LP, "eur": "50000"}
    )
    page = back_office.get("/backoffice/market-makers/").content.decode()
    assert "UKA <span" in page

    # Liquidity on it, through the Create Liquidity page.
    request = {"certificate_type": "UKA", "bid_amount_eur": "20000", "ask_amount_eur": "20000"}
    preview = back_office.post("/backoffice/liquidity/preview/", request).content.decode()
    assert "UKA" in preview and "€40.00" in preview  # the market's default reference
    fingerprint = re.search(r'name="fingerprint" value="([0-9a-f]+)"', preview).group(1)
    key = re.search(r'name="idempotency_key" value="([0-9a-f]+)"', preview).group(1)
    response = back_office.post(
        "/backoffice/liquidity/execute/",
        {**request, "fingerprint": fingerprint, "idempotency_key": key},
    )
    assert response.status_code == 302
    operation = LiquidityOperation.objects.get(market=market)
    assert operation.orders.count() == operation.orders_created == 6

    # A trader trades it on its own page, polls its book, and sees its balance.
    client = Client()
    client.force_login(trader.user)
    page = client.get("/market/UKA/").content.decode()
    assert 'href="/market/UKA/"' in page and 'aria-current="page"' in page
    assert 'data-testid="balance-UKA"' in page
    response = client.post(
        "/market/UKA/orders/new/",
        {"side": "BUY", "order_type": "MARKET", "amount_mode": "quantity", "quantity": "10"},
        follow=True,
    )
    assert "Order #" in response.content.decode() and "10 UKA at avg €40.0800" in (
        response.content.decode()
    )
    assert Trade.objects.filter(market=market).count() == 1
    assert Balance.objects.get(holder=trader, asset="UKA").available == 10
    poll = client.get("/market/UKA/book/", headers=HTMX)
    assert poll.status_code == 200
    assert client.get(
        "/market/UKA/book/", headers={**HTMX, "If-None-Match": poll["ETag"]}
    ).status_code == 304  # fmt: skip

    # The API and the admin know it too.
    api = back_office.get("/api/v1/market/UKA/book").json()
    assert api["market"] == "UKA" and api["last_price"] == "40.08"
    admin = back_office.get("/admin/market/marketmakerclient/").content.decode()
    assert "UKA available / locked" in admin
    assert "UKA" in back_office.get("/").content.decode()
    assert Order.objects.filter(market=market).count() == 7
    assert_all_invariants()
    assert_matching_invariants()


def test_the_command_refuses_bad_input_and_users_without_the_permission():
    factories.StaffFactory(username="ops")
    factories.UserFactory(username="clerk", is_staff=True)

    def create(*args):
        call_command("create_market", *args, stdout=StringIO())

    base = ["--code", "UKA", "--name", "UK Allowance", "--reference-price", "40.00"]
    with pytest.raises(CommandError, match="permission"):
        create(*base, "--username", "clerk")
    with pytest.raises(CommandError, match="no thousands separators"):
        create(
            "--code", "UKA", "--name", "UK", "--reference-price", "1,000.00", "--username", "ops"
        )
    with pytest.raises(CommandError, match="already exists"):
        create("--code", "CEA", "--name", "again", "--reference-price", "1", "--username", "ops")
    with pytest.raises(CommandError, match="EUR is the currency"):
        create("--code", "EUR", "--name", "no", "--reference-price", "1", "--username", "ops")
    assert not Market.objects.filter(code="UKA").exists()
    assert not Balance.objects.filter(asset="UKA").exists()


def test_a_market_created_after_holders_exist_gives_each_a_balance_and_new_holders_too():
    before = factories.trader("early")
    call_command(
        "create_market",
        "--code", "NZU", "--name", "NZ Unit", "--reference-price", "30.00",
        "--username", factories.StaffFactory().username, stdout=StringIO(),
    )  # fmt: skip
    after = factories.trader("late")
    maker = factories.market_maker(AH, NZU=5)
    for holder in (before, after, maker.holder):
        assert Balance.objects.filter(holder=holder, asset="NZU").exists()
    assert D(Balance.objects.get(holder=maker.holder, asset="NZU").available) == 5
