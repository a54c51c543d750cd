"""`manage.py liquidity_worker`: one pass refreshes the programs that are due."""

from datetime import timedelta

import pytest
from django.utils import timezone

from liquidity import programs
from liquidity.models import LiquidityProgram, ProgramRefresh
from market.models import MarketMakerClient
from market.tests import factories
from market.tests.helpers import run_command

pytestmark = pytest.mark.django_db
LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER


def program(staff, code="CEA"):
    created = programs.program_create(
        user=staff,
        data={
            "name": f"{code} program",
            "certificate_type": code,
            "bid_target_eur": "1000",
            "ask_target_eur": "1000",
        },
    )
    return programs.program_activate(program_id=created.pk, user=staff)


def test_one_pass_refreshes_the_due_programs_and_says_what_it_did():
    staff = factories.StaffFactory()
    factories.market_maker(LP, EUR="100000")
    factories.market_maker(AH, CEA=1000, EUA=1000)
    cea, eua = program(staff, "CEA"), program(staff, "EUA")
    LiquidityProgram.objects.filter(pk=eua.pk).update(
        next_refresh_at=timezone.now() + timedelta(hours=1)
    )
    output = run_command("liquidity_worker", "--once", "--name", "w1")
    assert f"#{cea.pk} Ladder placed: No ladder resting" in output
    assert f"#{eua.pk}" not in output  # not due yet
    refresh = ProgramRefresh.objects.get()
    assert (refresh.program_id, refresh.worker) == (cea.pk, "w1")
    # Due again only after its interval: a second pass does nothing.
    assert "Ladder placed" not in run_command("liquidity_worker", "--once")
    assert ProgramRefresh.objects.count() == 1


@pytest.mark.parametrize(("option", "value"), [("--poll", "0"), ("--limit", "0")])
def test_a_worker_that_would_spin_is_refused(option, value):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match=option):
        run_command("liquidity_worker", "--once", option, value)
