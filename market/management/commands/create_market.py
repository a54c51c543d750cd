"""Create a market: one more certificate traded for EUR, as a row (`market_create`)."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from market.core.money import MAX_FEE_RATE, MAX_PRICE, parse_amount, parse_rate
from market.management.acting import acting_user
from market.permissions import CREATE_MARKETS
from market.services.markets import market_create
from market.validation import one_line


class Command(BaseCommand):
    help = (
        "Create a market trading a new certificate for EUR; every holder gets a zero "
        "balance of it. Example: manage.py create_market --code UKA --name 'UK Allowance' "
        "--reference-price 40.00 --username admin"
    )

    def add_arguments(self, parser):
        parser.add_argument("--code", required=True, help="The certificate's code, e.g. UKA")
        parser.add_argument("--name", required=True, help="e.g. UK Allowance")
        parser.add_argument("--reference-price", required=True, help="EUR, e.g. 40.00")
        parser.add_argument("--tick", default="0.01", help="EUR (default 0.01)")
        parser.add_argument("--buy-fee", default="0.005", help="0.005 = 0.5 %% (default)")
        parser.add_argument("--sell-fee", default="0", help="default 0")
        parser.add_argument("--paused", action="store_true", help="Create it with trading off")
        parser.add_argument(
            "--username", required=True, help="Staff user allowed to manage markets, recorded"
        )

    def handle(self, *args, **options):
        user = acting_user(options["username"], permission=CREATE_MARKETS)
        try:
            market, ticket = market_create(
                code=options["code"],
                name=options["name"],
                tick_size=parse_amount(options["tick"], field="--tick", maximum=MAX_PRICE),
                default_reference_price=parse_amount(
                    options["reference_price"], field="--reference-price", maximum=MAX_PRICE
                ),
                buy_fee_rate=parse_rate(
                    options["buy_fee"], field="--buy-fee", maximum=MAX_FEE_RATE
                ),
                sell_fee_rate=parse_rate(
                    options["sell_fee"], field="--sell-fee", maximum=MAX_FEE_RATE
                ),
                trading_enabled=not options["paused"],
                actor=user,
            )
        except ValidationError as error:
            raise CommandError(one_line(error)) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Created market {market} ({market.name}) at /market/{market.code}/: tick "
                f"{market.tick_size}, reference {market.default_reference_price} "
                f"({ticket.ticket_id})."
            )
        )
