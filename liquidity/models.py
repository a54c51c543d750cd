"""Liquidity operations (a batch of market-maker orders placed in one transaction) and
liquidity programs (a standing target per market that workers keep placed)."""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from market.models import Market, Order, TicketLog, money_field, price_field


class LiquidityOperation(models.Model):
    """What one "Create liquidity" placed. Actual amounts are summed from the orders placed,
    never copied from the targets. Its orders are those its ticket placed (`Order.ticket`):
    the market app knows nothing of liquidity."""

    ticket = models.OneToOneField(
        TicketLog, on_delete=models.PROTECT, related_name="liquidity_operation"
    )
    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="+")
    reference_price = price_field()
    reference_source = models.CharField(max_length=20, blank=True)
    # Staff used a reference price further from the book's than the market's band allows.
    reference_outside_band = models.BooleanField(default=False)
    # The ladder placed (`liquidity.ladder.Ladder.as_data`).
    ladder = models.JSONField(default=list, blank=True)
    # Set when a program's refresh placed it; None for one-shot operations.
    program = models.ForeignKey(
        "LiquidityProgram",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="operations",
    )
    target_bid_eur = money_field()
    target_ask_eur = money_field()
    actual_bid_eur = money_field(default=Decimal("0"))
    actual_ask_eur = money_field(default=Decimal("0"))
    actual_ask_quantity = models.BigIntegerField(default=0)
    market_makers_used = models.JSONField(default=list, blank=True)
    orders_created = models.PositiveIntegerField(default=0)
    notes = models.TextField(blank=True)
    plan_fingerprint = models.CharField(max_length=64, blank=True)
    idempotency_key = models.CharField(max_length=64, null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="liquidity_operations"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    withdrawn_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )

    # Not stored: `liquidity_execute` sets it when an idempotent retry returned this
    # operation, made before, instead of a new one.
    replayed = False

    class Meta:
        ordering = ["-id"]
        permissions = [("manage_liquidity", "Can preview, create and withdraw liquidity")]
        constraints = [
            models.UniqueConstraint(
                fields=["created_by", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="liquidity_idempotency_key_per_user",
            ),
            models.CheckConstraint(
                condition=Q(target_bid_eur__gte=0, target_ask_eur__gte=0),
                name="liquidity_targets_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(actual_bid_eur__gte=0, actual_ask_eur__gte=0),
                name="liquidity_actuals_non_negative",
            ),
        ]

    def __str__(self):
        return f"{self.ticket} {self.market}"

    @property
    def orders(self):
        """The orders this operation placed."""
        return Order.objects.filter(ticket_id=self.ticket_id)


class LiquidityProgram(models.Model):
    """A standing liquidity target for one market: workers keep its ladder placed,
    re-centre it when the reference moves, and top it up after fills
    (`liquidity.programs`; the decision of each tick is `liquidity.program_rules`).

    The ladder resting now is `operation`'s; `ladder_reference` is the reference it was
    placed around. At most one program per market is active or paused: two would trade
    against each other's makers and fight over the same reference."""

    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        STOPPED = "stopped", "Stopped"

    class ReferenceMode(models.TextChoices):
        BOOK = "book", "The book's reference"
        FIXED = "fixed", "A fixed price"

    name = models.CharField(max_length=100)
    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="+")
    state = models.CharField(max_length=8, choices=State.choices, default=State.DRAFT)
    bid_target_eur = money_field(default=Decimal("0"))
    ask_target_eur = money_field(default=Decimal("0"))
    ladder = models.JSONField(default=list, blank=True)
    reference_mode = models.CharField(
        max_length=8, choices=ReferenceMode.choices, default=ReferenceMode.BOOK
    )
    fixed_reference_price = price_field(null=True, blank=True)
    refresh_interval_seconds = models.PositiveIntegerField(default=60)
    refresh_tolerance_pct = models.DecimalField(
        max_digits=5, decimal_places=2, default=Decimal("0.50")
    )
    replenish_threshold_pct = models.DecimalField(
        max_digits=5, decimal_places=2, default=Decimal("30.00")
    )
    replenish_delay_seconds = models.PositiveIntegerField(default=30)
    price_floor = price_field(null=True, blank=True)
    price_ceiling = price_field(null=True, blank=True)
    max_imbalance_eur = money_field(null=True, blank=True)
    # Active hours, in `timezone`; no times means around the clock. ISO weekdays, 1 = Monday.
    active_from = models.TimeField(null=True, blank=True)
    active_until = models.TimeField(null=True, blank=True)
    active_weekdays = models.CharField(max_length=7, default="1234567")
    timezone = models.CharField(max_length=64, default="UTC")
    # Alerts: a maker whose available funds are worth less than this at the reference,
    # and how many refreshes in a row a side may be short or a refresh may fail.
    low_funds_eur = money_field(null=True, blank=True)
    alert_after_refreshes = models.PositiveSmallIntegerField(default=3)
    notes = models.TextField(blank=True)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The staff user whose activation the worker's refreshes act for (audit tickets).
    activated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    last_refresh_at = models.DateTimeField(null=True, blank=True)
    next_refresh_at = models.DateTimeField(null=True, blank=True, db_index=True)
    operation = models.ForeignKey(
        LiquidityOperation, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    ladder_reference = price_field(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    short_refreshes = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["market"],
                condition=Q(state__in=["active", "paused"]),
                name="liquidity_one_running_program_per_market",
            ),
            models.CheckConstraint(
                condition=Q(bid_target_eur__gte=0, ask_target_eur__gte=0),
                name="liquidity_program_targets_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(refresh_interval_seconds__gte=5),
                name="liquidity_program_interval_at_least_5s",
            ),
            models.CheckConstraint(
                condition=Q(price_floor__isnull=True)
                | Q(price_ceiling__isnull=True)
                | Q(price_floor__lt=models.F("price_ceiling")),
                name="liquidity_program_floor_below_ceiling",
            ),
            models.CheckConstraint(
                condition=~Q(reference_mode="fixed") | Q(fixed_reference_price__isnull=False),
                name="liquidity_program_fixed_reference_has_price",
            ),
        ]

    def __str__(self):
        return f"{self.name} ({self.market})"


class ProgramRefresh(models.Model):
    """One refresh of a program, run or refused: what it withdrew and placed, or why it
    could not run. A refresh that placed a ladder links the operation it recorded."""

    class Outcome(models.TextChoices):
        PLACED = "placed", "Ladder placed"
        RECENTRED = "recentred", "Re-centred"
        REPLENISHED = "replenished", "Replenished"
        WITHDRAWN = "withdrawn", "Withdrawn"
        FAILED = "failed", "Could not run"

    program = models.ForeignKey(
        LiquidityProgram, on_delete=models.PROTECT, related_name="refreshes"
    )
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    reason = models.CharField(max_length=255)
    operation = models.OneToOneField(
        LiquidityOperation, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The audit ticket of the refresh (a kill switch's one ticket covers all its programs).
    ticket = models.ForeignKey(
        TicketLog, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reference_price = price_field(null=True, blank=True)
    orders_withdrawn = models.PositiveIntegerField(default=0)
    orders_placed = models.PositiveIntegerField(default=0)
    bid_placed_eur = money_field(default=Decimal("0"))
    ask_placed_eur = money_field(default=Decimal("0"))
    worker = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"{self.program} {self.get_outcome_display()} {self.created_at:%Y-%m-%d %H:%M}"


class LiquidityAlert(models.Model):
    """Something staff should act on: a maker low on funds, a side short for several
    refreshes, a refresh failing repeatedly. One open alert per program, kind and maker;
    it is resolved when the condition clears."""

    class Kind(models.TextChoices):
        MAKER_LOW_FUNDS = "maker_low_funds", "Market maker low on funds"
        SIDE_SHORT = "side_short", "Side below target"
        REFRESH_FAILING = "refresh_failing", "Refresh failing"

    program = models.ForeignKey(LiquidityProgram, on_delete=models.PROTECT, related_name="alerts")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # The maker (low funds) or the side ("BID"/"ASK", side short) it concerns, else blank.
    subject = models.CharField(max_length=32, blank=True)
    message = models.CharField(max_length=255)
    created_at = models.DateTimeField(db_index=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["program", "kind", "subject"],
                condition=Q(resolved_at__isnull=True),
                name="liquidity_one_open_alert_per_subject",
            )
        ]

    def __str__(self):
        return self.message
