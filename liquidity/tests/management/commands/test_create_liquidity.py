"""`manage.py create_liquidity`: the plan as a table, then placed (or a dry run); its
amounts parsed by the one strict parser."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from liquidity.models import LiquidityOperation
from market.models import MarketMakerClient, Order
from market.tests import factories

LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER


@pytest.mark.django_db
def test_create_liquidity_command_dry_run_then_execute():
    factories.StaffFactory()
    factories.market_maker(LP, EUR="200000")
    factories.market_maker(AH, CEA=10000)
    out = StringIO()
    args = ["--market", "CEA", "--bid-eur", "100000", "--ask-eur", "50000"]
    call_command("create_liquidity", *args, "--dry-run", stdout=out)
    assert "Total orders: 6" in out.getvalue() and "Dry run" in out.getvalue()
    assert not Order.objects.exists()

    out = StringIO()
    call_command("create_liquidity", *args, stdout=out)
    assert "Placed 6 orders" in out.getvalue()
    assert LiquidityOperation.objects.count() == 1


@pytest.mark.django_db
def test_create_liquidity_command_reports_shortfalls_and_bad_input():
    factories.StaffFactory()
    with pytest.raises(CommandError, match="Insufficient"):
        call_command("create_liquidity", "--market", "CEA", "--bid-eur", "1000")
    with pytest.raises(CommandError, match="bid_amount_eur"):
        call_command("create_liquidity", "--market", "CEA", "--bid-eur", "-1")
    assert not Order.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("option", "text", "message"),
    [
        ("--bid-eur", "100,000", "bid_amount_eur: Use a point for decimals"),
        ("--bid-eur", "1e5", "bid_amount_eur: Use a point for decimals"),
        ("--ask-eur", "５０", "ask_amount_eur: Use a point for decimals"),
        ("--reference-price", "14,00", "reference_price: Use a point for decimals"),
    ],
)
def test_create_liquidity_command_parses_amounts_strictly(option, text, message):
    factories.StaffFactory()
    factories.market_maker(LP, EUR="200000")
    factories.market_maker(AH, CEA=10000)
    args = {"--bid-eur": "1000", "--ask-eur": "1000", option: text}
    with pytest.raises(CommandError, match=message):
        call_command(
            "create_liquidity", "--market", "CEA", *[x for kv in args.items() for x in kv]
        )
    assert not Order.objects.exists() and not LiquidityOperation.objects.exists()
