"""Liquidity operations: a batch of market-maker orders placed in one transaction."""

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
