"""Ensure at least N liquidity providers and M asset holders exist ("Seed LP 1", …)."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from market.core.money import EUR
from market.management.acting import acting_user
from market.management.seeding import (
    ensure_seed_market_makers,
    market_maker_table,
    parse_seed_amount,
)
from market.permissions import MANAGE_MARKET_MAKERS
from market.selectors import market_codes

DEFAULT_CERTIFICATES = "20000"


def non_negative(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = (
        "Idempotently ensure at least N seeded liquidity providers and M seeded asset "
        "holders exist, funding only the ones it creates (amounts are per market maker), "
        "then print every market maker with its balances. Runs as --username, a staff "
        "user allowed to manage market makers, recorded on every ticket."
    )

    def add_arguments(self, parser):
        parser.add_argument("--liquidity-providers", type=non_negative, default=3, metavar="N")
        parser.add_argument("--asset-holders", type=non_negative, default=3, metavar="M")
        parser.add_argument("--eur", default="250000", help="EUR for each new LP (0: none)")
        parser.add_argument(
            "--asset",
            action="append",
            default=[],
            metavar="CODE=AMOUNT",
            help="Certificates of one market for each new AH, e.g. --asset CEA=20000 "
            f"(repeatable; a market not named gets {DEFAULT_CERTIFICATES}; 0: none)",
        )
        parser.add_argument(
            "--username",
            required=True,
            help="The staff user acting (needs market.change_marketmakerclient), recorded",
        )

    def handle(self, *args, **options):
        user = acting_user(options["username"], permission=MANAGE_MARKET_MAKERS)
        codes = market_codes()
        given = {code: DEFAULT_CERTIFICATES for code in codes}
        for item in options["asset"]:
            code, _, amount = item.partition("=")
            code = code.strip().upper()
            if code not in codes or not amount:
                raise CommandError(
                    f"--asset {item!r}: give CODE=AMOUNT with a market code of "
                    f"{', '.join(codes)}, e.g. --asset {codes[0]}=20000."
                )
            given[code] = amount
        try:
            funding = {EUR: parse_seed_amount(options["eur"], asset=EUR, option="--eur")}
            for code, amount in given.items():
                funding[code] = parse_seed_amount(amount, asset=code, option=f"--asset {code}")
        except ValueError as error:
            raise CommandError(str(error)) from None
        try:
            with transaction.atomic():
                created = ensure_seed_market_makers(
                    liquidity_providers=options["liquidity_providers"],
                    asset_holders=options["asset_holders"],
                    funding=funding,
                    created_by=user,
                )
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        if created:
            codes = ", ".join(maker.code for maker in created)
            self.stdout.write(
                self.style.SUCCESS(f"Created {len(created)} market maker(s): {codes}")
            )
        else:
            self.stdout.write("All seeded market makers already exist; nothing created.")
        self.stdout.write(market_maker_table())
