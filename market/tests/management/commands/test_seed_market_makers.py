"""`manage.py seed_market_makers`: idempotent, funding only the makers it creates, as a
named staff user allowed to manage market makers, recorded on every ticket."""

from decimal import Decimal

import pytest
from django.core.management import CommandError

from market.models import LedgerEntry, MarketMakerClient, TicketLog
from market.tests import factories
from market.tests.helpers import (
    assert_all_invariants,
    maker_available,
    run_command,
    seeded_state,
)

D = Decimal
pytestmark = pytest.mark.django_db
AS_OPS = ("--username", "ops")


@pytest.fixture(autouse=True)
def ops(db):
    return factories.StaffFactory(username="ops")


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
    *AS_OPS,
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
        "seed_market_makers", "--liquidity-providers", "3", "--asset-holders", "1", *AS_OPS
    )
    assert "Created 1 market maker(s)" in output
    assert maker_available("Seed LP 1", "EUR") == before
    assert maker_available("Seed LP 3", "EUR") == D("250000.00")  # the default amount
    assert MarketMakerClient.objects.count() == 4
    assert_all_invariants()


def test_seed_market_makers_with_zero_funding_and_bad_amounts():
    run_command(
        "seed_market_makers",
        "--liquidity-providers", "1", "--asset-holders", "0", "--eur", "0", *AS_OPS,
    )  # fmt: skip
    assert maker_available("Seed LP 1", "EUR") == 0
    with pytest.raises(CommandError, match="whole"):
        run_command("seed_market_makers", "--asset", "CEA=1.5", *AS_OPS)
    with pytest.raises(CommandError, match="--eur"):
        run_command("seed_market_makers", "--eur", "-10", *AS_OPS)
    with pytest.raises(CommandError, match="no thousands separators"):
        run_command("seed_market_makers", "--eur", "250,000", *AS_OPS)
    with pytest.raises(CommandError, match="--asset CEA: Enter a whole number in digits"):
        run_command("seed_market_makers", "--asset", "CEA=1,000", *AS_OPS)
    with pytest.raises(CommandError, match="CODE=AMOUNT with a market code of CEA, EUA"):
        run_command("seed_market_makers", "--asset", "XYZ=10", *AS_OPS)
    with pytest.raises(CommandError):
        run_command("seed_market_makers", "--asset-holders", "-1", *AS_OPS)
    assert MarketMakerClient.objects.count() == 1


def test_seed_market_makers_funds_a_market_added_later_by_default(cea):
    from market.services.markets import market_create

    market_create(code="UKA", name="UK Allowance", tick_size=D("0.01"),
                  default_reference_price=D("40.00"), actor=None)  # fmt: skip
    run_command(
        "seed_market_makers", "--liquidity-providers", "0", "--asset-holders", "1", *AS_OPS
    )
    assert maker_available("Seed AH 1", "UKA") == 20000


def test_every_ticket_and_maker_records_the_acting_user(ops):
    run_command(*SEED)
    tickets = TicketLog.objects.filter(action_type="MM_CREATED")
    assert tickets.count() == 3 and {ticket.user for ticket in tickets} == {ops}
    assert {maker.created_by for maker in MarketMakerClient.objects.all()} == {ops}


@pytest.mark.parametrize(
    ("username", "message"),
    [
        ("ghost", "Unknown user 'ghost'"),
        ("clerk", "'clerk' lacks the market.change_marketmakerclient permission"),
        ("trader", "'trader' is not an active staff user"),
    ],
)
def test_a_user_who_may_not_manage_market_makers_is_refused(username, message):
    factories.UserFactory(username="clerk", is_staff=True)
    factories.UserFactory(username="trader")
    with pytest.raises(CommandError, match=message):
        run_command("seed_market_makers", "--username", username)
    with pytest.raises(CommandError, match="--username"):
        run_command("seed_market_makers")
    assert not MarketMakerClient.objects.exists() and not LedgerEntry.objects.exists()
