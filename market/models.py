"""Holders, balances and the ledger; markets, orders and trades; market makers; audit tickets.

Markets are rows: each one trades its own certificate (an asset named by the market's
code) for EUR, and the assets a balance can hold are EUR and every market's code.
Balances change only through `market.services.ledger` (see its docstring for the locking
rules). Ledger entries and tickets are immutable once written.
"""

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from market.core import makers
from market.core.limits import DEFAULT_PRICE_BAND_PCT, DEFAULT_SLIPPAGE_PCT, previous_close_on
from market.core.money import CENT, EUR, MAX_FEE_RATE
from market.core.placement import MarketRules, average_price, reserve_asset_of

ASSET_LENGTH = 12
market_code_validator = RegexValidator(
    r"^[A-Z][A-Z0-9]{1,11}\Z",
    "A market code is 2 to 12 capital letters or digits, starting with a letter, e.g. UKA.",
)


def money_field(**kwargs):
    """A NUMERIC column wide enough for any EUR amount or certificate count we accept."""
    return models.DecimalField(max_digits=20, decimal_places=2, **kwargs)


def price_field(**kwargs):
    return models.DecimalField(max_digits=12, decimal_places=2, **kwargs)


def rate_field(**kwargs):
    return models.DecimalField(max_digits=7, decimal_places=6, **kwargs)


def pct_field(verbose_name, **kwargs):
    return models.DecimalField(
        verbose_name, max_digits=5, decimal_places=2, null=True, blank=True, **kwargs
    )


class Market(models.Model):
    """One certificate traded for EUR. The row doubles as the market's matching lock."""

    code = models.CharField(
        max_length=ASSET_LENGTH,
        unique=True,
        validators=[market_code_validator],
        help_text="Also the code of the certificate it trades, e.g. CEA.",
    )
    name = models.CharField(max_length=100, help_text="The certificate, e.g. EU Allowance.")
    tick_size = price_field(default=Decimal("0.01"))
    default_reference_price = price_field()
    buy_fee_rate = rate_field(default=Decimal("0.005"), help_text="0.005 = 0.5 %")
    sell_fee_rate = rate_field(default=Decimal("0"), help_text="0.005 = 0.5 %")
    trading_enabled = models.BooleanField(default=True)
    price_band_pct = pct_field(
        "price band (%)",
        default=DEFAULT_PRICE_BAND_PCT,
        help_text="Orders rest and trade within ± this % of the previous close, else of the "
        "default reference price; staff reference prices within ± this % of the book's. "
        "Empty: no band.",
    )
    slippage_pct = pct_field(
        "slippage limit (%)",
        default=DEFAULT_SLIPPAGE_PCT,
        help_text="A market order trades at most this % from the best price on entry; the "
        "rest is cancelled. Empty: no limit.",
    )
    max_order_quantity = models.BigIntegerField(
        null=True, blank=True, help_text="Certificates per order. Empty: no limit."
    )
    max_order_value = money_field(
        null=True, blank=True, help_text="EUR per order. Empty: no limit."
    )
    # Kept by every trade, under the market lock: the band's previous close.
    last_price = price_field(null=True, blank=True, editable=False)
    last_trade_date = models.DateField(null=True, blank=True, editable=False)
    previous_close = price_field(null=True, blank=True, editable=False)
    # Bumped in the same transaction as every change to the resting book; the ETag of
    # the order-book partial and the key of its cache.
    book_version = models.BigIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(condition=~Q(code=EUR), name="market_code_not_eur"),
            models.CheckConstraint(condition=Q(tick_size__gt=0), name="market_tick_positive"),
            models.CheckConstraint(
                condition=Q(default_reference_price__gt=0), name="market_reference_positive"
            ),
            models.CheckConstraint(
                condition=Q(price_band_pct__isnull=True)
                | Q(price_band_pct__gt=0, price_band_pct__lt=100),
                name="market_price_band_in_range",
            ),
            models.CheckConstraint(
                condition=Q(slippage_pct__isnull=True)
                | Q(slippage_pct__gt=0, slippage_pct__lt=100),
                name="market_slippage_in_range",
            ),
            models.CheckConstraint(
                condition=Q(max_order_quantity__isnull=True) | Q(max_order_quantity__gt=0),
                name="market_max_order_quantity_positive",
            ),
            models.CheckConstraint(
                condition=Q(max_order_value__isnull=True) | Q(max_order_value__gt=0),
                name="market_max_order_value_positive",
            ),
            models.CheckConstraint(
                condition=Q(buy_fee_rate__gte=0, buy_fee_rate__lt=MAX_FEE_RATE)
                & Q(sell_fee_rate__gte=0, sell_fee_rate__lt=MAX_FEE_RATE),
                name="market_fee_rates_in_range",
            ),
        ]

    def __str__(self):
        return f"{self.code} / {EUR}"

    @property
    def rules(self) -> MarketRules:
        """The settings the placement core works with, as this instance holds them."""
        return MarketRules(
            self.pk,
            self.code,
            self.tick_size,
            self.buy_fee_rate,
            self.sell_fee_rate,
            self.trading_enabled,
            self.default_reference_price,
            self.price_band_pct,
            self.slippage_pct,
            self.max_order_quantity,
            self.max_order_value,
            previous_close_on(
                timezone.now().date(),
                last_price=self.last_price,
                last_trade_date=self.last_trade_date,
                previous_close=self.previous_close,
            ),
        )

    def clean(self):
        errors = {}
        if self.code == EUR:
            errors["code"] = "EUR is the currency every market trades against."
        if self.tick_size is not None and (self.tick_size <= 0 or self.tick_size % CENT != 0):
            errors["tick_size"] = "The tick must be a positive multiple of €0.01."
        elif (
            self.tick_size
            and self.default_reference_price is not None
            and self.default_reference_price % self.tick_size != 0
        ):
            errors["default_reference_price"] = (
                f"The default reference price must be on the tick ({self.tick_size})."
            )
        if errors:
            raise ValidationError(errors)


class Holder(models.Model):
    """Anyone who can own balances and orders: a trader, a market maker or the house."""

    class Kind(models.TextChoices):
        TRADER = "TRADER", "Trader"
        MARKET_MAKER = "MARKET_MAKER", "Market maker"
        HOUSE = "HOUSE", "House fee account"

    kind = models.CharField(max_length=12, choices=Kind.choices)
    name = models.CharField(max_length=150)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="holder",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # The highest trade id up to which this holder has been told of its passive (maker)
    # fills: each one toasts once on the cash market page (`market.services.fill_notices`).
    fills_notified_through = models.BigIntegerField(default=0, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["kind"], condition=Q(kind="HOUSE"), name="holder_single_house"
            ),
            models.CheckConstraint(
                condition=~Q(kind="TRADER") | Q(user__isnull=False),
                name="holder_trader_has_user",
            ),
        ]

    def __str__(self):
        return self.name


class Balance(models.Model):
    """What a holder has of one asset: available to use, and locked behind open orders."""

    holder = models.ForeignKey(Holder, on_delete=models.PROTECT, related_name="balances")
    asset = models.CharField(max_length=ASSET_LENGTH, help_text="EUR or a market's code")
    available = money_field(default=Decimal("0"))
    locked = money_field(default=Decimal("0"))

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["holder", "asset"], name="balance_unique_asset"),
            models.CheckConstraint(
                condition=Q(available__gte=0), name="balance_available_non_negative"
            ),
            models.CheckConstraint(condition=Q(locked__gte=0), name="balance_locked_non_negative"),
        ]

    def __str__(self):
        return f"{self.holder} {self.asset}"

    @property
    def total(self) -> Decimal:
        return self.available + self.locked


class ImmutableModel(models.Model):
    """Rows written once and never changed or deleted (ledger, tickets, trades)."""

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValidationError(f"{type(self).__name__} rows are immutable.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValidationError(f"{type(self).__name__} rows are immutable.")


class TicketLog(ImmutableModel):
    """The audit trail: one row per staff action, liquidity operation and trade."""

    class Status(models.TextChoices):
        SUCCESS = "SUCCESS", "Success"
        FAILED = "FAILED", "Failed"

    # TKT-YYYY-NNNNNN: the year and the primary key, allocated before the row is written.
    ticket_id = models.CharField(max_length=32, unique=True, null=True, editable=False)
    action_type = models.CharField(max_length=40, db_index=True)
    entity_type = models.CharField(max_length=40)
    entity_id = models.CharField(max_length=40, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="tickets",
    )
    market_maker = models.ForeignKey(
        "MarketMakerClient",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="tickets",
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.SUCCESS)
    request_payload = models.JSONField(default=dict, blank=True)
    before_state = models.JSONField(default=dict, blank=True)
    after_state = models.JSONField(default=dict, blank=True)
    related_ticket_ids = models.JSONField(default=list, blank=True)
    tags = models.JSONField(default=list, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    # The client's `Idempotency-Key` of the staff action this ticket records (API calls):
    # a retry with the same key finds this ticket instead of acting twice.
    idempotency_key = models.CharField(max_length=64, null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="ticket_idempotency_key_per_user",
            )
        ]

    def __str__(self):
        return self.ticket_id or f"ticket #{self.pk}"


class MarketMakerClient(models.Model):
    """A house account that provides liquidity. LPs hold EUR and bid; AHs hold certificates
    and offer."""

    class Type(models.TextChoices):
        LIQUIDITY_PROVIDER = makers.LIQUIDITY_PROVIDER, "Liquidity provider"
        ASSET_HOLDER = makers.ASSET_HOLDER, "Asset holder"

    holder = models.OneToOneField(Holder, on_delete=models.PROTECT, related_name="market_maker")
    # MM-001, derived from the primary key by the database right after insert.
    code = models.CharField(max_length=16, unique=True, null=True, editable=False)
    name = models.CharField(max_length=150)
    description = models.TextField(blank=True)
    mm_type = models.CharField("type", max_length=20, choices=Type.choices)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]
        verbose_name = "market maker"

    def __str__(self):
        return f"{self.code} {self.name}"

    def may_hold(self, asset: str) -> bool:
        """Whether this maker may be funded with `asset`: EUR for providers, certificates
        for asset holders."""
        return makers.may_hold(self.mm_type, asset)


class Order(models.Model):
    class Side(models.TextChoices):
        BUY = "BUY", "Buy"
        SELL = "SELL", "Sell"

    class Type(models.TextChoices):
        LIMIT = "LIMIT", "Limit"
        MARKET = "MARKET", "Market"

    class TimeInForce(models.TextChoices):
        GTC = "GTC", "Good till cancelled"
        IOC = "IOC", "Immediate or cancel"
        FOK = "FOK", "Fill or kill"

    class Status(models.TextChoices):
        OPEN = "OPEN", "Open"
        PARTIALLY_FILLED = "PARTIALLY_FILLED", "Partially filled"
        FILLED = "FILLED", "Filled"
        CANCELLED = "CANCELLED", "Cancelled"

    RESTING = (Status.OPEN, Status.PARTIALLY_FILLED)

    # No single-column indexes on owner and market: `order_owner_idx` leads with the owner
    # and `order_book_idx` with the market (two markets: an index on market alone would
    # never be chosen); each one more is maintained by every insert (see Meta.indexes).
    owner = models.ForeignKey(
        Holder, on_delete=models.PROTECT, related_name="orders", db_index=False
    )
    market = models.ForeignKey(
        Market, on_delete=models.PROTECT, related_name="orders", db_index=False
    )
    side = models.CharField(max_length=4, choices=Side.choices)
    order_type = models.CharField("type", max_length=6, choices=Type.choices)
    price = price_field(null=True, blank=True, help_text="Limit price, EUR per certificate")
    quantity = models.BigIntegerField(
        null=True, blank=True, help_text="Certificates; a market buy by EUR budget sets it on fill"
    )
    eur_budget = money_field(null=True, blank=True, help_text="Market buy by EUR amount")
    filled_quantity = models.BigIntegerField(default=0)
    filled_value = money_field(default=Decimal("0"), help_text="EUR traded, before fees")
    fee_rate = rate_field(default=Decimal("0"))
    fee_paid = money_field(default=Decimal("0"))
    # What is still locked for this order: EUR for a buy, certificates for a sell.
    reserved = money_field(default=Decimal("0"))
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    status_reason = models.CharField(max_length=255, blank=True)
    # The audited staff action that placed the order (a liquidity operation's ticket);
    # none for the orders traders place themselves.
    ticket = models.ForeignKey(
        TicketLog,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="placed_orders",
        db_index=False,  # partial index in Meta: traders' orders have none
    )
    client_order_id = models.CharField(max_length=64, null=True, blank=True)
    # How long the order may rest (`market.core.placement.POLICIES`): a market order is
    # always IOC; post-only is a limit GTC that never takes.
    # Defaults in the database too: bulk inserts name only the columns they set.
    time_in_force = models.CharField(
        max_length=3,
        choices=TimeInForce.choices,
        default=TimeInForce.GTC,
        db_default=TimeInForce.GTC,
    )
    post_only = models.BooleanField(default=False, db_default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "client_order_id"],
                condition=Q(client_order_id__isnull=False),
                name="order_idempotency_key_per_owner",
            ),
            models.CheckConstraint(
                condition=Q(quantity__isnull=True) | Q(quantity__gt=0),
                name="order_quantity_positive",
            ),
            models.CheckConstraint(
                condition=Q(filled_quantity__gte=0)
                & (Q(quantity__isnull=True) | Q(filled_quantity__lte=F("quantity"))),
                name="order_filled_within_quantity",
            ),
            models.CheckConstraint(
                condition=Q(price__isnull=True) | Q(price__gt=0), name="order_price_positive"
            ),
            models.CheckConstraint(
                condition=~Q(order_type="LIMIT") | Q(price__isnull=False, quantity__isnull=False),
                name="order_limit_has_price_and_quantity",
            ),
            models.CheckConstraint(
                condition=Q(reserved__gte=0, fee_paid__gte=0, filled_value__gte=0),
                name="order_amounts_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["OPEN", "PARTIALLY_FILLED"]) | Q(reserved=0),
                name="order_closed_reserves_nothing",
            ),
            models.CheckConstraint(
                condition=Q(order_type="LIMIT") | Q(time_in_force="IOC"),
                name="order_market_is_ioc",
            ),
            models.CheckConstraint(
                condition=Q(post_only=False) | Q(order_type="LIMIT", time_in_force="GTC"),
                name="order_post_only_rests",
            ),
            # Only a GTC order ever rests.
            models.CheckConstraint(
                condition=Q(time_in_force="GTC") | ~Q(status__in=["OPEN", "PARTIALLY_FILLED"]),
                name="order_only_gtc_rests",
            ),
        ]
        indexes = [
            # The book: resting orders by market, side and price, oldest first, as the
            # walk reads them. The levels' sums are rows of their own (`BookLevel`).
            models.Index(
                fields=["market", "side", "price", "id"],
                condition=Q(status__in=["OPEN", "PARTIALLY_FILLED"]),
                name="order_book_idx",
            ),
            models.Index(fields=["owner", "status", "-id"], name="order_owner_idx"),
            # Only orders placed by a staff action have a ticket; a lookup implies NOT NULL.
            models.Index(
                fields=["ticket"], condition=Q(ticket__isnull=False), name="order_ticket_idx"
            ),
        ]

    def __str__(self):
        return f"#{self.pk} {self.side} {self.market_id}"

    @property
    def remaining_quantity(self) -> int:
        return (self.quantity or 0) - self.filled_quantity

    @property
    def is_resting(self) -> bool:
        return self.status in self.RESTING

    @property
    def reserve_asset(self) -> str:
        return reserve_asset_of(self.side, self.market.code)

    @property
    def average_price(self) -> Decimal | None:
        return average_price(self.filled_value, self.filled_quantity)


class BookLevel(models.Model):
    """One price level of a market's resting book: the certificates still open at the price
    and the number of orders holding them.

    Written only by the database: triggers on `market_order` (migration 0011) apply every
    insert, update and delete of an order to its level in the same statement, whoever
    writes it (a placement, a fill, a cancel, an amendment, a ladder, a bulk load), and
    drop a level when its last order leaves. So the book reads its best levels as rows,
    however many orders rest at them, and the levels can never disagree with the orders
    they sum. Read-only in Django."""

    market = models.ForeignKey(
        Market, on_delete=models.CASCADE, related_name="book_levels", db_index=False
    )
    side = models.CharField(max_length=4, choices=Order.Side.choices)
    price = price_field()
    quantity = models.BigIntegerField(help_text="Certificates still open at the price")
    order_count = models.IntegerField()

    class Meta:
        ordering = ["market", "side", "price"]
        constraints = [
            # Also the book's read: one side of a market by price, either way.
            models.UniqueConstraint(fields=["market", "side", "price"], name="book_level_key"),
            models.CheckConstraint(
                condition=Q(quantity__gte=0, order_count__gte=0),
                name="book_level_non_negative",
            ),
        ]

    def __str__(self):
        return f"{self.market_id} {self.side} {self.price}: {self.quantity} in {self.order_count}"


class Trade(ImmutableModel):
    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="trades")
    buy_order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="buy_trades")
    sell_order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="sell_trades")
    buyer = models.ForeignKey(Holder, on_delete=models.PROTECT, related_name="+")
    seller = models.ForeignKey(Holder, on_delete=models.PROTECT, related_name="+")
    price = price_field()
    quantity = models.BigIntegerField()
    value = money_field(help_text="price × quantity, EUR")
    buyer_fee = money_field(default=Decimal("0"))
    seller_fee = money_field(default=Decimal("0"))
    aggressor_side = models.CharField(max_length=4, choices=Order.Side.choices)
    ticket = models.OneToOneField(
        TicketLog, null=True, on_delete=models.PROTECT, related_name="trade"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["market", "-id"], name="trade_market_recent_idx"),
            models.Index(fields=["market", "created_at"], name="trade_market_time_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(price__gt=0, quantity__gt=0, value__gt=0), name="trade_positive"
            ),
            models.CheckConstraint(condition=~Q(buyer=F("seller")), name="trade_no_self_trade"),
        ]

    def __str__(self):
        return f"{self.quantity} {self.market_id} @ {self.price}"


class LedgerEntry(ImmutableModel):
    """One movement of one holder's asset. A balance is the sum of its entries."""

    class Kind(models.TextChoices):
        DEPOSIT = "DEPOSIT", "Deposit"
        WITHDRAWAL = "WITHDRAWAL", "Withdrawal"
        RESERVE = "RESERVE", "Reserve"
        RELEASE = "RELEASE", "Release"
        TRADE_DEBIT = "TRADE_DEBIT", "Trade debit"
        TRADE_CREDIT = "TRADE_CREDIT", "Trade credit"
        FEE = "FEE", "Fee"
        ADJUSTMENT = "ADJUSTMENT", "Adjustment"

    # Indexed by `ledger_holder_asset_idx` (holder first). Each cause is indexed only where
    # present (partial indexes in Meta): every entry names one or two causes, and a lookup
    # by cause (`= x`, `IN (…)`) implies NOT NULL, so NULLs need no index entries.
    holder = models.ForeignKey(
        Holder, on_delete=models.PROTECT, related_name="ledger_entries", db_index=False
    )
    asset = models.CharField(max_length=ASSET_LENGTH)
    kind = models.CharField(max_length=12, choices=Kind.choices)
    available_delta = money_field(default=Decimal("0"))
    locked_delta = money_field(default=Decimal("0"))
    order = models.ForeignKey(
        Order,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="ledger_entries",
        db_index=False,
    )
    trade = models.ForeignKey(
        Trade,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="ledger_entries",
        db_index=False,
    )
    ticket = models.ForeignKey(
        TicketLog,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="ledger_entries",
        db_index=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "ledger entries"
        indexes = [
            models.Index(fields=["holder", "asset"], name="ledger_holder_asset_idx"),
            *(
                models.Index(
                    fields=[cause],
                    condition=Q(**{f"{cause}__isnull": False}),
                    name=f"ledger_{cause}_idx",
                )
                for cause in ("order", "trade", "ticket")
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(available_delta=0) | ~Q(locked_delta=0), name="ledger_moves_something"
            ),
            models.CheckConstraint(
                condition=Q(order__isnull=False)
                | Q(trade__isnull=False)
                | Q(ticket__isnull=False),
                name="ledger_names_its_cause",
            ),
        ]

    def __str__(self):
        return f"{self.kind} {self.asset} {self.available_delta:+}/{self.locked_delta:+}"
