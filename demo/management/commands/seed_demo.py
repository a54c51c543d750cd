"""Demo data for local development: logins, a funded trader, funded market makers and an
active liquidity program per market, its first ladder placed. It uses both apps, so it
lives in neither."""

from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from liquidity.models import LiquidityProgram
from liquidity.programs import program_activate, program_create, program_refresh
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
# Quick enough to watch: the worker looks every 10 s, re-centres when the reference moved
# 0.2 %, and tops a side up 10 s after fills took 30 % of it.
DEMO_PROGRAM = {
    "refresh_interval_seconds": 10,
    "refresh_tolerance_pct": "0.2",
    "replenish_threshold_pct": "30",
    "replenish_delay_seconds": 10,
    "notes": "Demo program (seed_demo)",
}


def seed_liquidity(stdout) -> None:
    """One active liquidity program per market that has none yet, so a newcomer sees a
    live book that re-centres after trading; its first ladder is placed here, the worker
    (`make run` starts it) keeps it. Created by the demo `admin` through the services
    staff use."""
    admin = get_user_model().objects.get(username="admin")
    for code, (bid, ask) in DEMO_LIQUIDITY.items():
        if LiquidityProgram.objects.filter(market__code=code).exists():
            stdout.write(f"Liquidity program in {code}: already seeded.")
            continue
        program = program_create(
            user=admin,
            data={
                "name": f"{code} standing liquidity",
                "certificate_type": code,
                "bid_target_eur": bid,
                "ask_target_eur": ask,
                **DEMO_PROGRAM,
            },
        )
        program_activate(program_id=program.pk, user=admin)
        refresh = program_refresh(program_id=program.pk, worker="seed_demo")
        if refresh is None or refresh.operation is None:
            reason = refresh.reason if refresh is not None else "nothing placed"
            stdout.write(f"Liquidity program in {code}: active, ladder not placed ({reason})")
            continue
        stdout.write(
            f"Liquidity program in {code}: active, {refresh.orders_placed} orders around "
            f"{refresh.reference_price} ({refresh.operation.ticket.ticket_id})."
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
        "with funds, seeded market makers, an active liquidity program per market; prints the "
        "demo logins."
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
