"""`manage.py create_liquidity`: the plan as a table, then placed (or a dry run); its
amounts parsed by the one strict parser; run as a named staff user holding the liquidity
permission, recorded on the ticket; confirmed on a terminal, or by `--yes`."""

import re
from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command

from liquidity.models import LiquidityOperation
from market.models import MarketMakerClient, Order, TicketLog
from market.tests import factories

LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER
ARGS = ["--market", "CEA", "--bid-eur", "100000", "--ask-eur", "50000"]


class Terminal(StringIO):
    """Standard input typed on a terminal: the answer to "Execute? [y/N]"."""

    def isatty(self):
        return True


class Pipe(StringIO):
    def isatty(self):
        return False


@pytest.fixture
def funded(db):
    factories.market_maker(LP, EUR="200000")
    factories.market_maker(AH, CEA=10000)


def run(*args, stdin=None) -> str:
    out = StringIO()
    call_command("create_liquidity", *args, stdout=out, stdin=stdin or Pipe())
    return out.getvalue()


def nothing_placed():
    return not Order.objects.exists() and not LiquidityOperation.objects.exists()


def test_dry_run_then_execute_with_yes_records_the_acting_user(funded):
    ops = factories.StaffFactory(username="ops")
    factories.StaffFactory(username="first-superuser")  # never chosen in ops's place
    output = run(*ARGS, "--username", "ops", "--dry-run")
    assert "Total orders: 6" in output and "Dry run" in output
    assert nothing_placed()

    output = run(*ARGS, "--username", "ops", "--yes")
    assert "Placed 6 orders" in output and "by ops" in output
    operation = LiquidityOperation.objects.get()
    assert operation.created_by == ops and operation.ticket.user == ops
    assert operation.ticket.action_type == "LIQUIDITY_CREATED"


def test_on_a_terminal_it_prints_the_plan_and_asks(funded):
    factories.StaffFactory(username="ops")
    output = run(*ARGS, "--username", "ops", stdin=Terminal("n\n"))
    assert "Total orders: 6" in output and "Execute? [y/N]" in output
    assert "Not confirmed: nothing placed." in output
    assert nothing_placed()

    output = run(*ARGS, "--username", "ops", stdin=Terminal(""))  # Enter alone: No
    assert "Not confirmed" in output and nothing_placed()

    output = run(*ARGS, "--username", "ops", stdin=Terminal("y\n"))
    assert output.index("Total orders") < output.index("Execute? [y/N]")
    assert "Placed 6 orders" in output
    assert LiquidityOperation.objects.count() == 1


def test_without_a_terminal_and_without_yes_it_refuses(funded):
    factories.StaffFactory(username="ops")
    with pytest.raises(CommandError, match=r"Not a terminal.*Pass --yes"):
        run(*ARGS, "--username", "ops", stdin=Pipe("y\n"))  # a piped "y" is no answer
    assert nothing_placed()


@pytest.mark.parametrize(
    ("username", "message"),
    [
        (None, "Pass --username"),
        ("ghost", "Unknown user 'ghost'"),
        ("clerk", "'clerk' lacks the liquidity.manage_liquidity permission"),
        ("trader", "'trader' is not an active staff user"),
        ("gone", "'gone' is not an active staff user"),
    ],
)
def test_a_user_who_may_not_manage_liquidity_is_refused_before_any_plan(funded, username, message):
    factories.UserFactory(username="clerk", is_staff=True)
    factories.UserFactory(username="trader")
    factories.StaffFactory(username="gone", is_active=False)
    out = StringIO()
    args = [*ARGS, "--yes", *(["--username", username] if username else [])]
    with pytest.raises(CommandError, match=message):
        call_command("create_liquidity", *args, stdout=out)
    assert out.getvalue() == ""  # not even the plan
    assert nothing_placed() and not TicketLog.objects.filter(action_type__startswith="LIQ")


def test_staff_holding_only_the_liquidity_permission_may_place(funded):
    clerk = factories.UserFactory(username="clerk", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="manage_liquidity"))
    assert "Placed 6 orders" in run(*ARGS, "--username", "clerk", "--yes")
    assert LiquidityOperation.objects.get().ticket.user == clerk


def test_shortfalls_and_bad_input_are_refused(db):
    factories.StaffFactory(username="ops")
    with pytest.raises(CommandError, match="Insufficient"):
        run("--market", "CEA", "--bid-eur", "1000", "--username", "ops", "--yes")
    with pytest.raises(CommandError, match="bid_amount_eur"):
        run("--market", "CEA", "--bid-eur", "-1", "--username", "ops", "--yes")
    assert nothing_placed()


@pytest.mark.parametrize(
    ("option", "text", "message"),
    [
        ("--bid-eur", "100,000", "bid_amount_eur: Use a point for decimals"),
        ("--bid-eur", "1e5", "bid_amount_eur: Use a point for decimals"),
        ("--ask-eur", "５０", "ask_amount_eur: Use a point for decimals"),
        ("--reference-price", "14,00", "reference_price: Use a point for decimals"),
    ],
)
def test_amounts_are_parsed_strictly(funded, option, text, message):
    factories.StaffFactory(username="ops")
    args = {"--bid-eur": "1000", "--ask-eur": "1000", option: text}
    with pytest.raises(CommandError, match=message):
        run("--market", "CEA", *[x for kv in args.items() for x in kv], "--username", "ops")
    assert nothing_placed()


def test_a_ladder_is_printed_and_placed(funded):
    factories.StaffFactory(username="ops")
    output = run(*ARGS, "--ladder", "0.1:60, 0.3:40", "--username", "ops", "--dry-run")
    assert "Ladder: 0.1:60, 0.3:40\n" in output
    assert "distance   share" in output
    assert "€13.98     -0.1%     60%" in output and "€14.05     +0.3%     40%" in output
    assert "Total orders: 4" in output and nothing_placed()

    run(*ARGS, "--ladder", "0.1:60, 0.3:40", "--username", "ops", "--yes")
    operation = LiquidityOperation.objects.get()
    assert operation.ladder == [
        {"distance_pct": "0.1", "share_pct": "60"},
        {"distance_pct": "0.3", "share_pct": "40"},
    ]
    assert sorted({str(order.price) for order in operation.orders.all()}) == [
        "13.95", "13.98", "14.02", "14.05"
    ]  # fmt: skip


def test_without_a_ladder_the_default_is_printed(funded):
    factories.StaffFactory(username="ops")
    output = run(*ARGS, "--username", "ops", "--dry-run")
    assert "Ladder: 0.2:50, 0.4:30, 0.5:20 (default)" in output
    assert "-0.5%     20%" in output


@pytest.mark.parametrize(
    ("ladder", "message"),
    [
        ("0.2:50, 0.4:30", "ladder: The shares add up to 80 %; they must add up to 100 %."),
        ("0.4:50, 0.2:50", "ladder: Level 2: distance 0.2 % must be greater than"),
        (", ".join(f"0.{n}:10" for n in range(1, 10)) + ", 1:5, 2:5", "ladder: At most 10 levels"),
        ("50", "ladder: Cannot read '50'"),
    ],
)
def test_a_bad_ladder_is_refused_before_any_plan(funded, ladder, message):
    factories.StaffFactory(username="ops")
    out = StringIO()
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command(
            "create_liquidity", *ARGS, "--ladder", ladder, "--username", "ops", "--yes", stdout=out
        )
    assert out.getvalue() == "" and nothing_placed()
