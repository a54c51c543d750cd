"""Demo data for local development: logins, a funded trader, funded market makers and a
first liquidity operation per market. It uses both apps, so it lives in neither."""

from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from liquidity.models import LiquidityOperation
from liquidity.services import InsufficientAssets, liquidity_execute, liquidity_request_parse
from market.core.money import describe
from market.management.seeding import ensure_seed_market_makers
from market.models import LedgerEntry
from market.services.holders import trader_holder_for
from market.services.ledger import deposit

TRADER_FUNDING = {"EUR": Decimal("100000.00"), "CEA": Decimal("1000"), "EUA": Decimal("500")}
MARKET_MAKER_FUNDING = {
    "EUR": Decimal("250000.00"),
    "CEA": Decimal("20000"),
    "EUA": Decimal("5000"),
}
LIQUIDITY_PROVIDERS = 3
ASSET_HOLDERS = 3
LOGINS = (
    ("Back office (Django admin)", "/admin/", "admin", "admin"),
    ("Trader", "/", "trader", "trader"),
)


DEMO_LIQUIDITY = {"CEA": ("100000", "50000"), "EUA": ("200000", "100000")}


def seed_liquidity(stdout) -> None:
    """One liquidity operation per market that has none yet, so a newcomer sees a live
    book. Placed by the demo `admin` through the same service staff use."""
    admin = get_user_model().objects.get(username="admin")
    for code, (bid, ask) in DEMO_LIQUIDITY.items():
        if LiquidityOperation.objects.filter(market__code=code).exists():
            stdout.write(f"Liquidity in {code}: already seeded.")
            continue
        request = liquidity_request_parse(
            market_code=code, bid_amount_eur=bid, ask_amount_eur=ask, notes="Demo liquidity"
        )
        try:
            operation = liquidity_execute(request=request, user=admin)
        except InsufficientAssets as error:
            stdout.write(f"Liquidity in {code}: not seeded ({error.messages[0]})")
            continue
        stdout.write(
            f"Liquidity in {code}: {operation.orders_created} orders around "
            f"{operation.reference_price} ({operation.ticket.ticket_id})."
        )


def describe_funding(funding) -> str:
    return ", ".join(describe(asset, amount) for asset, amount in funding.items())


def ensure_user(username: str, password: str, *, superuser: bool = False):
    """The user, created with `password` if missing; an existing one is left unchanged."""
    User = get_user_model()
    user = User.objects.filter(username=username).first()
    if user is not None:
        return user, False
    if superuser:
        return User.objects.create_superuser(username, f"{username}@example.com", password), True
    return User.objects.create_user(username, f"{username}@example.com", password), True


class Command(BaseCommand):
    help = (
        "Load demo data (DEMO=True only, idempotent): admin/admin staff superuser, trader/trader "
        "with funds, seeded market makers; prints the demo logins."
    )

    def handle(self, *args, **options):
        if not settings.DEMO:
            raise CommandError(
                "seed_demo creates well-known logins (admin/admin, trader/trader) and runs "
                "only with DEMO=True (in .env, as .env.example has it); never in production."
            )
        with transaction.atomic():
            admin, admin_created = ensure_user("admin", "admin", superuser=True)
            trader, trader_created = ensure_user("trader", "trader")
            holder = trader_holder_for(trader)
            # Funded once: a trader who ever received a deposit is left as it is.
            funded = LedgerEntry.objects.filter(
                holder=holder, kind=LedgerEntry.Kind.DEPOSIT
            ).exists()
            if not funded:
                for asset, amount in TRADER_FUNDING.items():
                    deposit(
                        holder=holder, asset=asset, amount=amount, actor=admin, note="seed_demo"
                    )
            makers = ensure_seed_market_makers(
                liquidity_providers=LIQUIDITY_PROVIDERS,
                asset_holders=ASSET_HOLDERS,
                funding=MARKET_MAKER_FUNDING,
                created_by=admin,
            )
        self.stdout.write(f"User admin: {'created' if admin_created else 'exists'}.")
        self.stdout.write(
            f"User trader: {'created' if trader_created else 'exists'}, "
            + ("already funded." if funded else f"funded with {describe_funding(TRADER_FUNDING)}.")
        )
        self.stdout.write(f"Market makers created: {len(makers)}.")
        seed_liquidity(self.stdout)
        self.stdout.write(self.style.SUCCESS("Demo logins:"))
        for label, url, username, password in LOGINS:
            self.stdout.write(f"  {label:<28} {url:<8} {username} / {password}")
