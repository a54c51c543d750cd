"""`manage.py seed_demo`: demo logins, funds, market makers and an active liquidity
program per market with its first ladder; idempotent, and only with the DEMO setting (not
DEBUG)."""

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError
from django.test import override_settings

from liquidity.models import LiquidityOperation, LiquidityProgram
from market.models import Balance, Holder, Market, MarketMakerClient, TicketLog
from market.selectors import order_book
from market.tests.helpers import (
    assert_all_invariants,
    run_command,
    seeded_state,
)

D = Decimal
pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("debug", [False, True])
def test_seed_demo_refuses_without_demo_even_with_debug(debug):
    with override_settings(DEMO=False, DEBUG=debug), pytest.raises(CommandError, match="DEMO"):
        run_command("seed_demo")
    assert not get_user_model().objects.exists()
    assert not MarketMakerClient.objects.exists()


@override_settings(DEMO=True, DEBUG=False)
def test_seed_demo_is_idempotent_and_prints_the_logins():
    output = run_command("seed_demo")
    assert "admin / admin" in output and "trader / trader" in output
    # One active program per market, its first ladder placed, so the book is live.
    running = LiquidityProgram.objects.filter(state="active")
    assert sorted(running.values_list("market__code", flat=True)) == ["CEA", "EUA"]
    operations = LiquidityOperation.objects.all()
    assert sorted(operations.values_list("market__code", flat=True)) == ["CEA", "EUA"]
    assert all(operation.program is not None for operation in operations)
    for code in ("CEA", "EUA"):
        book = order_book(market=Market.objects.get(code=code))
        assert book.bids and book.asks and book.best_bid < book.best_ask

    User = get_user_model()
    admin = User.objects.get(username="admin")
    trader = User.objects.get(username="trader")
    assert admin.is_staff and admin.is_superuser and admin.check_password("admin")
    assert not trader.is_staff and trader.check_password("trader")
    holder = Holder.objects.get(user=trader)
    balances = dict(Balance.objects.filter(holder=holder).values_list("asset", "available"))
    assert balances == {"EUR": D("100000.00"), "CEA": D("1000"), "EUA": D("500")}
    makers = MarketMakerClient.objects.all()
    assert makers.filter(mm_type="LIQUIDITY_PROVIDER").count() == 3
    assert makers.filter(mm_type="ASSET_HOLDER").count() == 3
    assert all(maker.created_by == admin for maker in makers)
    lp = Balance.objects.get(holder__market_maker__name="Seed LP 2", asset="EUR")
    assert lp.available + lp.locked == D("250000.00") and lp.locked > 0

    first = seeded_state()
    output = run_command("seed_demo")
    assert seeded_state() == first
    assert "already funded" in output and "already seeded" in output
    assert LiquidityOperation.objects.count() == 2
    assert_all_invariants()


@override_settings(DEMO=True, DEBUG=False)
def test_seed_demo_leaves_an_existing_admin_password_alone():
    User = get_user_model()
    User.objects.create_superuser("admin", "a@example.com", "something-else")
    run_command("seed_demo")
    assert User.objects.get(username="admin").check_password("something-else")


@override_settings(DEMO=True, DEBUG=False)
def test_seed_demo_records_the_demo_admin_on_every_ticket_it_writes():
    run_command("seed_demo")
    admin = get_user_model().objects.get(username="admin")
    tickets = TicketLog.objects.all()
    assert tickets.filter(action_type="LIQUIDITY_PROGRAM_REFRESH").count() == 2
    assert tickets.exists() and set(tickets.values_list("user", flat=True)) == {admin.pk}
