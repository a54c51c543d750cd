"""Preview a liquidity plan and place it, as a named staff user allowed to manage
liquidity (the rule the pages keep), after confirmation."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from liquidity.ladder import DEFAULT_LADDER, FORMAT_HELP
from liquidity.permissions import MANAGE_LIQUIDITY
from liquidity.plan import LiquidityPlan
from liquidity.services import (
    InsufficientAssets,
    liquidity_execute,
    liquidity_preview,
    liquidity_request_parse,
)
from market.core.money import format_eur, format_quantity
from market.management.acting import acting_user, confirmed
from market.validation import one_line


class Command(BaseCommand):
    help = (
        "Preview a liquidity plan as a table and place it (unless --dry-run) as --username, "
        "a staff user with the liquidity.manage_liquidity permission, after asking "
        "'Execute? [y/N]' on a terminal (--yes: without asking; required without a "
        "terminal). Example: manage.py create_liquidity --market CEA --bid-eur 100000 "
        '--ask-eur 50000 --ladder "0.2:50, 0.4:30, 0.5:20" --username admin'
    )
    # Tests hand in a fake terminal (or pipe) to answer the confirmation.
    stealth_options = ("stdin",)

    def add_arguments(self, parser):
        parser.add_argument("--market", required=True, help="A market's code, e.g. CEA")
        parser.add_argument("--bid-eur", default="0", help="EUR of buy orders to place")
        parser.add_argument("--ask-eur", default="0", help="EUR value of sell orders to place")
        parser.add_argument("--reference-price", default=None, help="Override the reference")
        parser.add_argument(
            "--reference-outside-band",
            action="store_true",
            help="Use --reference-price even if it lies outside the market's band (recorded)",
        )
        parser.add_argument(
            "--ladder",
            default=None,
            help=f"The price levels: {FORMAT_HELP} Default: {DEFAULT_LADDER.as_text()}",
        )
        parser.add_argument("--notes", default="", help="Recorded with the operation")
        parser.add_argument(
            "--username",
            default=None,
            help="Required: the staff user acting (needs liquidity.manage_liquidity), "
            "recorded on the operation and its ticket",
        )
        parser.add_argument("--dry-run", action="store_true", help="Preview only")
        parser.add_argument("--yes", action="store_true", help="Execute without asking")

    def handle(self, *args, **options):
        # Who acts is settled before anything is shown: an unknown or unauthorised user
        # sees no plan.
        user = acting_user(options["username"], permission=MANAGE_LIQUIDITY)
        try:
            request = liquidity_request_parse(
                market_code=options["market"],
                bid_amount_eur=options["bid_eur"],
                ask_amount_eur=options["ask_eur"],
                reference_price=options["reference_price"],
                notes=options["notes"],
                reference_outside_band=options["reference_outside_band"],
                ladder=options["ladder"],
            )
            plan = liquidity_preview(request=request)
        except ValidationError as error:
            raise CommandError(one_line(error)) from None
        self.print_plan(plan)
        if options["dry_run"]:
            self.stdout.write("Dry run: nothing placed.")
            return
        if not plan.can_execute:
            raise CommandError(InsufficientAssets(plan).messages[0])
        if not confirmed(self, yes=options["yes"], stdin=options.get("stdin")):
            self.stdout.write("Not confirmed: nothing placed.")
            return
        try:
            operation = liquidity_execute(
                request=request, user=user, fingerprint=plan.fingerprint()
            )
        except InsufficientAssets as error:
            raise CommandError(error.messages[0]) from None
        except ValidationError as error:
            raise CommandError(one_line(error)) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Placed {operation.orders_created} orders as operation {operation.pk} "
                f"({operation.ticket.ticket_id}, by {user.get_username()}): "
                f"bids {format_eur(operation.actual_bid_eur)}, "
                f"asks {format_quantity(operation.actual_ask_quantity)} {operation.market.code} "
                f"worth {format_eur(operation.actual_ask_eur)}."
            )
        )

    def print_plan(self, plan: LiquidityPlan):
        out = self.stdout.write
        out(
            f"{plan.certificate_type}: reference {format_eur(plan.reference_price)} "
            f"({plan.reference_source_label})"
        )
        default = " (default)" if plan.ladder.is_default else ""
        out(f"Ladder: {plan.ladder.as_text()}{default}")
        for side in (plan.bid_plan, plan.ask_plan):
            if not side.levels:
                continue
            needs = f"{side.asset} required {side.required}, available {side.available}"
            out(f"\n{side.side} — {needs}")
            header = (
                ("price", 12),
                ("distance", 8),
                ("share", 6),
                ("target", 10),
                ("planned", 10),
                ("EUR", 16),
            )
            out("  " + "  ".join(f"{title:>{width}}" for title, width in header) + "  orders")
            sign = "-" if side.side == "BID" else "+"
            for level in side.levels:
                distance = f"{sign}{_percent(level.distance_pct)}"
                out(
                    f"  {format_eur(level.price):>12}  {distance:>8}  "
                    f"{_percent(level.share * 100):>6}  "
                    f"{format_quantity(level.target_quantity):>10}  "
                    f"{format_quantity(level.quantity):>10}  {format_eur(level.value_eur):>16}  "
                    f"{level.orders_count:>6}"
                )
            for allocation in side.allocations:
                out(
                    f"  {allocation.code:<10} {allocation.name[:24]:<24} "
                    f"{format_quantity(allocation.quantity):>10} certificates  "
                    f"{format_eur(allocation.value_eur):>16}  {allocation.orders_count} orders"
                )
        spread = format_eur(plan.estimated_spread) if plan.estimated_spread else "—"
        out(f"\nTotal orders: {plan.total_orders_count}; estimated spread {spread}")
        for shortfall in plan.shortfalls:
            out(
                self.style.WARNING(
                    f"SHORT {shortfall.side}: {shortfall.asset} required {shortfall.required}, "
                    f"available {shortfall.available}, shortfall {shortfall.shortfall}"
                )
            )
        for action in plan.suggested_actions:
            out(f"  → {action}")
        for warning in plan.warnings:
            out(self.style.WARNING(warning))
        status = "can execute" if plan.can_execute else "cannot execute"
        out(f"Status: {status}")


def _percent(number) -> str:
    """0.20 → "0.2%", 33.33 → "33.33%": as the ladder was written."""
    return f"{number.normalize():f}%"
