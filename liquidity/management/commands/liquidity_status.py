"""Print the status of liquidity programs, as their back-office status page shows it:
the header (state, reference, ladder reference, refreshes), the ladder resting, the
makers' inventory, fills and P&L since start, warnings and open alerts.

Read-only (`liquidity.program_status`): it changes nothing and needs no user.

    manage.py liquidity_status               every program
    manage.py liquidity_status --program 3   one
"""

from django.core.management.base import BaseCommand, CommandError

from liquidity.program_status import program_status, programs_list
from liquidity.programs import program_ladder
from market.core.money import EUR, format_eur, format_quantity

MAKERS_PRINTED = 10


def _eur(value) -> str:
    return format_eur(value) if value is not None else "—"


def _amount(value, asset: str) -> str:
    return format_eur(value) if asset == EUR else format_quantity(value)


def _time(value) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S} UTC" if value else "—"


def _table(headers: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [
        max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)
    ]

    def line(cells):
        return "  ".join(
            str(cell).rjust(width) if index in right else str(cell).ljust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(headers), line(["-" * width for width in widths]), *map(line, rows)]


def status_lines(status) -> list[str]:
    """The status of one program as plain text lines."""
    program = status.program
    code = program.market.code
    lines = [
        f"Program #{program.pk} {program.name} — {code} / EUR — {program.get_state_display()}",
        f"  Reference now      {_eur(status.reference)}"
        + (" (fixed)" if program.reference_mode == "fixed" else " (the book's)"),
        f"  Ladder reference   {_eur(status.ladder_reference)}",
        f"  Targets            BID {_eur(program.bid_target_eur)}, "
        f"ASK {_eur(program.ask_target_eur)}; ladder {program_ladder(program).as_text()}",
        f"  Resting            BID {_eur(status.bid_resting_eur)}, "
        f"ASK {_eur(status.ask_resting_eur)}",
        f"  Active hours       {status.hours}" + ("" if status.in_hours else " (outside now)"),
        f"  Last refresh       {_time(program.last_refresh_at)}",
        f"  Next refresh       {_time(status.next_refresh_at)}",
        "",
        "Ladder:",
    ]
    if status.ladder:
        rows = [
            [
                row.side,
                str(row.level),
                _eur(row.price),
                f"{row.distance_pct} %" if row.distance_pct is not None else "—",
                format_quantity(row.quantity),
                _eur(row.value_eur),
                str(row.orders),
                _time(row.placed_at),
            ]
            for row in status.ladder
        ]
        headers = ["Side", "Level", "Price", "Distance", "Size", "Value", "Orders", "Placed"]
        lines += ["  " + text for text in _table(headers, rows, right={1, 2, 3, 4, 5, 6})]
    else:
        lines.append("  nothing resting")

    lines += ["", f"Inventory ({status.makers_count} market maker balances):"]
    reference = status.reference
    for asset, (available, locked) in sorted(status.inventory_totals.items()):
        held = available + locked
        value = held if asset == EUR else (held * reference if reference else None)
        lines.append(
            f"  Total {asset}: available {_amount(available, asset)}, "
            f"locked {_amount(locked, asset)}, value {_eur(value)}"
        )
    shown = status.makers[:MAKERS_PRINTED]
    if shown:
        rows = [
            [
                maker.code,
                maker.asset,
                _amount(maker.available, maker.asset),
                _amount(maker.locked, maker.asset),
                _eur(maker.value_eur),
            ]
            for maker in shown
        ]
        headers = ["Maker", "Asset", "Available", "Locked", "Value"]
        lines += ["  " + text for text in _table(headers, rows, right={2, 3, 4})]
    more = status.makers_count - len(shown)
    if more > 0:
        lines.append(f"  and {more} more")

    position, pnl = status.position, status.pnl
    lines += [
        "",
        "Fills and P&L since start:",
        f"  Bought {format_quantity(position.bought_quantity)} {code} for "
        f"{_eur(position.bought_eur)}; sold {format_quantity(position.sold_quantity)} {code} "
        f"for {_eur(position.sold_eur)}; fees {_eur(position.fees_eur)}",
    ]
    if pnl is not None:
        lines.append(
            f"  Cash {_eur(pnl.cash_eur)}, inventory {_eur(pnl.inventory_eur)} at "
            f"{_eur(pnl.reference)}, P&L {_eur(pnl.pnl_eur)}"
        )
    if status.warnings:
        lines += ["", "Warnings:", *[f"  ! {warning}" for warning in status.warnings]]
    if status.alerts:
        lines += [
            "",
            "Open alerts:",
            *[f"  * {alert.message} (since {_time(alert.created_at)})" for alert in status.alerts],
        ]
    if status.refreshes:
        lines += ["", "Last refreshes:"]
        lines += [
            f"  {_time(refresh.created_at)}  {refresh.get_outcome_display()}: {refresh.reason} "
            f"(withdrawn {refresh.orders_withdrawn}, placed {refresh.orders_placed})"
            for refresh in status.refreshes[:5]
        ]
    return lines


class Command(BaseCommand):
    help = (
        "Print the status of liquidity programs (ladder, inventory, fills and P&L, "
        "warnings, alerts), as the back-office status page shows it. Changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--program", type=int, help="Only this program (its id).")

    def handle(self, *args, **options):
        if options["program"] is not None:
            ids = [options["program"]]
        else:
            ids = list(programs_list().values_list("pk", flat=True))
            if not ids:
                self.stdout.write("No liquidity programs.")
                return
        for number, program_id in enumerate(ids):
            status = program_status(program_id=program_id)
            if status is None:
                raise CommandError(f"No liquidity program #{program_id}.")
            if number:
                self.stdout.write("")
                self.stdout.write("=" * 72)
                self.stdout.write("")
            self.stdout.write("\n".join(status_lines(status)))
