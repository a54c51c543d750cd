"""`manage.py seed_market_makers`: idempotent, funding only the makers it creates."""

from decimal import Decimal

import pytest
from django.core.management import CommandError

from market.models import MarketMakerClient, TicketLog
from market.tests.helpers import (
    assert_all_invariants,
    maker_available,
    run_command,
    seeded_state,
)

D = Decimal
pytestmark = pytest.mark.django_db


SEED = (
    "seed_market_makers",
    "--liquidity-providers",
    "2",
    "--asset-holders",
    "1",
    "--eur",
    "250000",
    "--asset",
    "CEA=20000",
    "--asset",
    "eua=5000",
)


def test_seed_market_makers_twice_gives_the_same_makers_and_balances():
    output = run_command(*SEED)
    assert "Created 3 market maker(s)" in output
    assert MarketMakerClient.objects.filter(mm_type="LIQUIDITY_PROVIDER").count() == 2
    assert MarketMakerClient.objects.filter(mm_type="ASSET_HOLDER").count() == 1
    assert maker_available("Seed LP 1", "EUR") == D("250000.00")
    assert maker_available("Seed LP 2", "CEA") == 0  # certificates only go to asset holders
    assert (maker_available("Seed AH 1", "CEA"), maker_available("Seed AH 1", "EUA")) == (
        20000,
        5000,
    )
    assert maker_available("Seed AH 1", "EUR") == 0
    # The summary table lists every maker with its balances.
    for maker in MarketMakerClient.objects.all():
        assert maker.code in output and maker.name in output
    assert "€250,000.00" in output and "20,000" in output and "EUA locked" in output
    assert TicketLog.objects.filter(action_type="MM_CREATED").count() == 3

    first = seeded_state()
    output = run_command(*SEED)
    assert "nothing created" in output
    assert seeded_state() == first
    assert_all_invariants()


def test_seed_market_makers_tops_up_the_count_and_funds_only_new_ones():
    run_command(*SEED)
    before = maker_available("Seed LP 1", "EUR")
    output = run_command(
        "seed_market_makers", "--liquidity-providers", "3", "--asset-holders", "1"
    )
    assert "Created 1 market maker(s)" in output
    assert maker_available("Seed LP 1", "EUR") == before
    assert maker_available("Seed LP 3", "EUR") == D("250000.00")  # the default amount
    assert MarketMakerClient.objects.count() == 4
    assert_all_invariants()


def test_seed_market_makers_with_zero_funding_and_bad_amounts():
    run_command(
        "seed_market_makers", "--liquidity-providers", "1", "--asset-holders", "0", "--eur", "0"
    )
    assert maker_available("Seed LP 1", "EUR") == 0
    with pytest.raises(CommandError, match="whole"):
        run_command("seed_market_makers", "--asset", "CEA=1.5")
    with pytest.raises(CommandError, match="--eur"):
        run_command("seed_market_makers", "--eur", "-10")
    with pytest.raises(CommandError, match="no thousands separators"):
        run_command("seed_market_makers", "--eur", "250,000")
    with pytest.raises(CommandError, match="--asset CEA: Enter a whole number in digits"):
        run_command("seed_market_makers", "--asset", "CEA=1,000")
    with pytest.raises(CommandError, match="CODE=AMOUNT with a market code of CEA, EUA"):
        run_command("seed_market_makers", "--asset", "XYZ=10")
    with pytest.raises(CommandError):
        run_command("seed_market_makers", "--asset-holders", "-1")
    assert MarketMakerClient.objects.count() == 1


def test_seed_market_makers_funds_a_market_added_later_by_default(cea):
    from market.services.markets import market_create

    market_create(code="UKA", name="UK Allowance", tick_size=D("0.01"),
                  default_reference_price=D("40.00"), actor=None)  # fmt: skip
    run_command("seed_market_makers", "--liquidity-providers", "0", "--asset-holders", "1")
    assert maker_available("Seed AH 1", "UKA") == 20000
