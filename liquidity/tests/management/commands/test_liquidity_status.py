"""`manage.py liquidity_status`: what the status page shows, as plain text, for every
program or one; read-only, with a constant number of queries per program."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from liquidity import programs
from liquidity.models import LiquidityAlert, LiquidityProgram
from market.models import MarketMakerClient, Order, TicketLog
from market.services.orders import order_place, order_request_parse
from market.tests import factories

LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER
pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(db):
    return factories.StaffFactory()


@pytest.fixture
def makers(db):
    return [factories.market_maker(LP, EUR="100000"), factories.market_maker(AH, CEA=10000)]


def create(staff, **settings):
    data = {
        "name": "CEA desk",
        "certificate_type": "CEA",
        "bid_target_eur": "10000",
        "ask_target_eur": "10000",
        **settings,
    }
    return programs.program_create(user=staff, data=data)


def run(*args) -> str:
    out = StringIO()
    call_command("liquidity_status", *args, stdout=out)
    return out.getvalue()


def test_no_programs():
    assert run().strip() == "No liquidity programs."


def test_prints_the_status_of_a_running_program(staff, makers):
    program = create(staff)
    programs.program_activate(program_id=program.pk, user=staff)
    programs.program_refresh(program_id=program.pk, worker="test")
    trader = factories.trader(EUR="100000")
    order_place(
        owner=trader,
        request=order_request_parse(
            market_code="CEA", side="BUY", order_type="MARKET", quantity="100"
        ),
    )
    LiquidityAlert.objects.create(
        program=program,
        kind=LiquidityAlert.Kind.SIDE_SHORT,
        subject="ASK",
        message="The ASK side was short for 3 refreshes.",
        created_at=timezone.now(),
    )
    before = (TicketLog.objects.count(), Order.objects.count())
    out = run("--program", str(program.pk))
    assert (TicketLog.objects.count(), Order.objects.count()) == before  # read-only
    assert f"Program #{program.pk} CEA desk — CEA / EUR — Active" in out
    assert "Reference now      €14.03 (the book's)" in out
    assert "Ladder reference   €14.00" in out
    assert "ladder 0.2:50, 0.4:30, 0.5:20" in out
    assert "Last refresh       20" in out and "Next refresh       20" in out
    ladder = out.split("Ladder:")[1].split("Inventory")[0]
    assert ladder.count("\n  BID") == 3 and ladder.count("\n  ASK") == 3
    assert "€13.97" in ladder and "0.43 %" in ladder
    assert "Total CEA: available 9,289, locked 611, value €138,897.00" in out
    assert "Total EUR: available" in out
    assert "Sold 100 CEA for €1,403.00" in out.replace("sold", "Sold")
    assert "P&L €0.00" in out
    assert "Open alerts:\n  * The ASK side was short for 3 refreshes. (since" in out
    assert "Ladder placed: No ladder resting: placing one." in out


def test_every_program_and_the_warnings_of_each(staff, makers):
    paused = create(staff)
    programs.program_activate(program_id=paused.pk, user=staff)
    programs.program_refresh(program_id=paused.pk, worker="test")
    programs.program_pause(program_id=paused.pk, user=staff)
    create(staff, name="EUA draft", certificate_type="EUA", ask_target_eur="0")
    out = run()
    assert "CEA desk — CEA / EUR — Paused" in out and "EUA draft — EUA / EUR — Draft" in out
    assert "! Paused: its orders stay in the book" in out
    assert "nothing resting" in out  # the draft's ladder
    assert out.count("=" * 72) == 1


def test_makers_beyond_the_first_ten_are_counted(staff, makers):
    for _ in range(12):
        factories.market_maker(LP, EUR="1000")
    program = create(staff)
    out = run("--program", str(program.pk))
    assert "Inventory (14 market maker balances):" in out
    assert "and 4 more" in out


def test_an_unknown_program_is_an_error():
    with pytest.raises(CommandError, match=r"No liquidity program #999\."):
        run("--program", "999")


def test_queries_do_not_grow_with_makers(staff, makers):
    program = create(staff)
    programs.program_activate(program_id=program.pk, user=staff)
    programs.program_refresh(program_id=program.pk, worker="test")

    def queries():
        with CaptureQueriesContext(connection) as captured:
            run("--program", str(program.pk))
        return len(captured)

    few = queries()
    for _ in range(20):
        factories.market_maker(LP, EUR="1000")
        factories.market_maker(AH, CEA=100)
    assert queries() == few
    assert LiquidityProgram.objects.count() == 1
