"""The market's forms: order entry, market makers, trader funding and market settings, for
the back-office pages and the admin alike.

Forms only shape raw input. Every amount, price and quantity stays text here (its input
shows the expected form as a placeholder) and is parsed by the one strict parser
(`market.core.money`) in the service the form ends in, or in `StrictDecimalField` where a
model form needs a number; `apply_service_errors` puts a service's `ValidationError`
next to the fields it names.
"""

import uuid
from collections.abc import Iterable
from decimal import Decimal

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from market.core.money import (
    DECIMAL_PLACEHOLDER,
    EUR,
    MAX_FEE_RATE,
    MAX_PRICE,
    WHOLE_PLACEHOLDER,
    parse_amount,
    parse_quantity,
    parse_rate,
)
from market.core.placement import OrderRequest
from market.core.statement import MAKER, TAKER
from market.models import Market, MarketMakerClient, Order
from market.selectors import asset_codes
from market.services.market_makers import market_maker_funding_parse
from market.services.markets import SETTINGS as MARKET_SETTINGS
from market.services.markets import market_settings_check
from market.services.orders import amend_inputs_parse, order_request_parse
from market.trade_history import FillFilters

AMOUNT_BY_QUANTITY = "quantity"
AMOUNT_BY_EUR = "eur"


def apply_service_errors(
    form: forms.Form, error: ValidationError, rename: dict | None = None
) -> None:
    """Attach a service's ValidationError to `form`: keyed messages go to the field of the
    same name (after `rename`), the rest above the form; a message already shown on its
    field is not repeated."""
    rename = rename or {}
    if not hasattr(error, "error_dict"):
        form.add_error(None, error.messages)
        return
    for key, messages in error.message_dict.items():
        field = rename.get(key, key)
        if field == NON_FIELD_ERRORS or field not in form.fields:
            field = None
        for message in messages:
            if field is not None and message in form.errors.get(field, ()):
                continue
            form.add_error(field, message)


def number_input(
    label: str, *, whole: bool = False, required: bool = False, help_text: str = ""
) -> forms.CharField:
    """A text input for an amount, price or quantity: parsed by the strict parser, never by
    the browser or a localised number field; its placeholder shows the expected form."""
    return forms.CharField(
        label=label,
        required=required,
        max_length=32,
        strip=True,
        help_text=help_text,
        widget=forms.TextInput(
            attrs={
                "placeholder": WHOLE_PLACEHOLDER if whole else DECIMAL_PLACEHOLDER,
                "inputmode": "numeric" if whole else "decimal",
                "autocomplete": "off",
            }
        ),
    )


def asset_amount_input(label: str, *, asset: str, required: bool = False, help_text=""):
    """`number_input` for an amount of `asset`: EUR to the cent, certificates whole."""
    return number_input(label, whole=asset != EUR, required=required, help_text=help_text)


class StrictDecimalField(forms.CharField):
    """A decimal model field's form field, parsed by the strict parser (Django's own
    DecimalField takes "1e4", "1_000" and non-ASCII digits)."""

    def __init__(self, *, parse, whole: bool = False, **kwargs):
        self.parse = parse
        kwargs.setdefault("max_length", 32)
        attrs = {"placeholder": WHOLE_PLACEHOLDER if whole else DECIMAL_PLACEHOLDER}
        kwargs.setdefault("widget", forms.TextInput(attrs={**attrs, "inputmode": "decimal"}))
        super().__init__(**kwargs)

    def prepare_value(self, value):
        return "" if value is None else str(value)

    def clean(self, value):
        value = super().clean(value)
        if value in self.empty_values:
            return None
        try:
            return self.parse(value, field="value")
        except ValidationError as error:
            raise ValidationError(error.message_dict["value"]) from None


# --- Order entry ------------------------------------------------------------------------


class OrderEntryForm(forms.Form):
    """The cash market's order entry: raw input → `OrderRequest`, errors next to fields.

    Parsing is `order_request_parse`; this form only picks which of the amount inputs
    counts (quantity, or the EUR amount of a market buy)."""

    # Service error keys that have no input of their own on this form.
    NON_FIELD_KEYS = frozenset({"market", "client_order_id", NON_FIELD_ERRORS})

    side = forms.ChoiceField(choices=Order.Side.choices, initial=Order.Side.BUY)
    order_type = forms.ChoiceField(choices=Order.Type.choices, initial=Order.Type.LIMIT)
    amount_mode = forms.ChoiceField(
        choices=[(AMOUNT_BY_QUANTITY, "Quantity"), (AMOUNT_BY_EUR, "EUR amount")],
        initial=AMOUNT_BY_QUANTITY,
        required=False,
    )
    price = number_input("Limit price")
    quantity = number_input("Quantity", whole=True)
    eur_budget = number_input("Amount")
    client_order_id = forms.CharField(
        required=False, max_length=64, widget=forms.HiddenInput, strip=True
    )
    time_in_force = forms.ChoiceField(
        label="Time in force",
        choices=Order.TimeInForce.choices,
        initial=Order.TimeInForce.GTC,
        required=False,
    )
    post_only = forms.BooleanField(label="Post-only", required=False)

    def __init__(self, *args, market_code: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.market_code = market_code
        self.order_request: OrderRequest | None = None
        if not self.is_bound:
            self.initial.setdefault("client_order_id", uuid.uuid4().hex)

    def value(self, name: str) -> str:
        """The submitted (or initial) value of a field, as text."""
        value = self[name].value()
        return "" if value is None else str(value)

    @property
    def chosen_side(self) -> str:
        return self.value("side").upper() or Order.Side.BUY

    @property
    def chosen_type(self) -> str:
        return self.value("order_type").upper() or Order.Type.LIMIT

    @property
    def by_eur(self) -> bool:
        """A market buy sized by an EUR amount rather than a quantity."""
        return (
            self.chosen_side == Order.Side.BUY
            and self.chosen_type == Order.Type.MARKET
            and self.value("amount_mode") == AMOUNT_BY_EUR
        )

    @property
    def amount_field(self) -> str:
        return "eur_budget" if self.by_eur else "quantity"

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        by_eur = self.by_eur
        limit = cleaned.get("order_type") == Order.Type.LIMIT
        try:
            self.order_request = order_request_parse(
                market_code=self.market_code,
                side=cleaned.get("side"),
                order_type=cleaned.get("order_type"),
                # Only the inputs the chosen order uses count; the hidden ones may hold
                # leftovers from another order type.
                quantity=None if by_eur else cleaned.get("quantity"),
                eur_budget=cleaned.get("eur_budget") if by_eur else None,
                price=cleaned.get("price") if limit else None,
                client_order_id=cleaned.get("client_order_id") or None,
                # A market order is IOC by nature: its form hides these inputs.
                time_in_force=cleaned.get("time_in_force") if limit else None,
                post_only=bool(cleaned.get("post_only")) and limit,
            )
        except ValidationError as error:
            self.add_service_error(error)
        return cleaned

    def add_service_error(self, error: ValidationError) -> None:
        """Show a service's ValidationError next to the fields it names."""
        rename = dict.fromkeys(self.NON_FIELD_KEYS, NON_FIELD_ERRORS)
        apply_service_errors(self, error, rename=rename)
        self.order_request = None

    def renew_key(self) -> None:
        """The same inputs under a new idempotency key: after a refused reused key, the
        trader's next submit places them as a new order."""
        self.data = self.data.copy()
        self.data["client_order_id"] = uuid.uuid4().hex

    def fresh(self) -> "OrderEntryForm":
        """An empty form for the next order that keeps the trader's side, type, amount
        mode and price, with a new idempotency key."""
        keep = {name: self.value(name) for name in ("side", "order_type", "amount_mode")}
        if self.chosen_type == Order.Type.LIMIT:
            keep["price"] = self.value("price")
            keep["time_in_force"] = self.value("time_in_force") or Order.TimeInForce.GTC
            keep["post_only"] = bool(self["post_only"].value())
        return OrderEntryForm(market_code=self.market_code, initial=keep)


class OrderAmendForm(forms.Form):
    """Amend a resting limit order: a new limit price and/or open quantity (what is still
    to trade). Parsing is `amend_inputs_parse`; empty keeps the order's own."""

    price = number_input("Limit price")
    quantity = number_input("Open quantity", whole=True)

    def __init__(self, *args, order: Order, **kwargs):
        super().__init__(*args, **kwargs)
        self.order = order
        self.amend_inputs: tuple | None = None
        if not self.is_bound:
            self.initial.setdefault("price", str(order.price))
            self.initial.setdefault("quantity", str(order.remaining_quantity))

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            self.amend_inputs = amend_inputs_parse(
                order=self.order, price=cleaned.get("price"), quantity=cleaned.get("quantity")
            )
        except ValidationError as error:
            apply_service_errors(self, error)
        return cleaned

    def add_service_error(self, error: ValidationError) -> None:
        apply_service_errors(self, error)
        self.amend_inputs = None


# --- Market makers ------------------------------------------------------------------------


class MarketMakerCreateForm(forms.ModelForm):
    """Identity plus type-specific initial funding: one optional input per asset, named
    after it (`eur`, `cea`, …). The back office's page and the admin's add view."""

    class Meta:
        model = MarketMakerClient
        fields = ("name", "mm_type", "description")
        widgets = {"mm_type": forms.RadioSelect, "description": forms.Textarea(attrs={"rows": 2})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["mm_type"].initial = MarketMakerClient.Type.LIQUIDITY_PROVIDER
        self.fields["mm_type"].choices = MarketMakerClient.Type.choices
        self.assets = asset_codes()
        for asset in self.assets:
            self.fields[asset.lower()] = asset_amount_input(
                f"Initial {asset}",
                asset=asset,
                help_text="Liquidity providers only."
                if asset == EUR
                else "Asset holders only, whole certificates.",
            )

    @property
    def eur_field(self):
        return self[EUR.lower()]

    @property
    def certificate_fields(self) -> list:
        """The bound funding inputs of every market's certificate."""
        return [self[asset.lower()] for asset in self.assets if asset != EUR]

    @property
    def certificate_errors(self) -> bool:
        return any(field.errors for field in self.certificate_fields)

    def funding(self) -> dict[str, str]:
        """{asset: amount as typed} for every funding input that was filled in."""
        return {
            asset: self.cleaned_data[asset.lower()]
            for asset in self.assets
            if self.cleaned_data.get(asset.lower())
        }

    def clean(self):
        """The service's own checks of what it would create (type-specific funding), so
        a refusal shows next to its input before anything is written."""
        cleaned = super().clean()
        if cleaned.get("mm_type") in MarketMakerClient.Type.values:
            try:
                market_maker_funding_parse(mm_type=cleaned["mm_type"], funding=self.funding())
            except ValidationError as error:
                apply_service_errors(self, error)
        return cleaned


class MarketMakerEditForm(forms.ModelForm):
    """What may change once a maker exists: its name and description."""

    class Meta:
        model = MarketMakerClient
        fields = ("name", "description")


class AssetAmountForm(forms.Form):
    """An amount of one asset: funding or withdrawing a market maker, or a trader."""

    asset = forms.ChoiceField(label="Asset")
    amount = number_input(
        "Amount", required=True, help_text="EUR with at most two decimals; certificates whole."
    )

    def __init__(self, *args, assets: Iterable[str], amount_label: str = "Amount", **kwargs):
        super().__init__(*args, **kwargs)
        assets = list(assets)
        self.fields["asset"].choices = [(asset, asset) for asset in assets]
        self.fields["amount"].label = amount_label
        if len(assets) == 1:
            self.fields["asset"].initial = assets[0]


class HolderTransferForm(AssetAmountForm):
    """A staff deposit into, or withdrawal from, a trader's available balance."""

    note = forms.CharField(
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Why: a bank transfer reference, a correction… Kept on the audit ticket.",
    )


class MarketMakerDeactivateForm(forms.Form):
    cancel_open_orders = forms.BooleanField(
        label="Cancel its open orders and release their funds",
        required=False,
        help_text="Needed when a market maker has open orders.",
    )


# --- Markets ------------------------------------------------------------------------------


def _rate(value, *, field):
    return parse_rate(value, field=field, maximum=MAX_FEE_RATE)


def _price(value, *, field):
    return parse_amount(value, field=field, maximum=MAX_PRICE)


def _pct(value, *, field):
    pct = parse_amount(value, field=field, maximum=Decimal(100))
    if pct >= 100:
        raise ValidationError({field: "Must be below 100 %."})
    return pct


class MarketForm(forms.ModelForm):
    """A market's settings (and, for a new market, its code and name). Numbers are parsed
    strictly; `market.services.markets` checks what depends on the book."""

    tick_size = StrictDecimalField(parse=_price, label="Tick size", help_text="EUR, e.g. 0.01")
    default_reference_price = StrictDecimalField(
        parse=_price, label="Default reference price", help_text="EUR per certificate"
    )
    buy_fee_rate = StrictDecimalField(parse=_rate, label="Buy fee rate", help_text="0.005 = 0.5 %")
    sell_fee_rate = StrictDecimalField(
        parse=_rate, label="Sell fee rate", help_text="0.005 = 0.5 %"
    )

    price_band_pct = StrictDecimalField(
        parse=_pct,
        required=False,
        label="Price band (%)",
        help_text="Orders rest and trade within ± this % of the previous close (else the "
        "default reference price). Empty: no band.",
    )
    slippage_pct = StrictDecimalField(
        parse=_pct,
        required=False,
        label="Slippage limit (%)",
        help_text="A market order trades at most this % from the best price on entry. "
        "Empty: no limit.",
    )
    max_order_quantity = StrictDecimalField(
        parse=parse_quantity,
        whole=True,
        required=False,
        label="Maximum order quantity",
        help_text="Certificates per order. Empty: no limit.",
    )
    max_order_value = StrictDecimalField(
        parse=parse_amount,
        required=False,
        label="Maximum order value",
        help_text="EUR per order. Empty: no limit.",
    )

    SETTINGS = MARKET_SETTINGS

    class Meta:
        model = Market
        fields = ("code", "name", *MARKET_SETTINGS)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            # A market's code is its asset's code in every balance and ledger entry.
            self.fields["code"].disabled = True
        for name in ("tick_size", "default_reference_price"):
            self.fields[name].required = True
        self.fields["buy_fee_rate"].required = self.fields["sell_fee_rate"].required = True

    def clean_code(self):
        code = self.cleaned_data["code"]
        return code.upper() if isinstance(code, str) and not self.instance.pk else code

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk and cleaned.get("tick_size") is not None:
            try:
                market_settings_check(
                    market=self.instance, changes={"tick_size": cleaned["tick_size"]}
                )
            except ValidationError as error:
                apply_service_errors(self, error)
        return cleaned


class MarketMakerFiltersForm(forms.Form):
    mm_type = forms.ChoiceField(
        label="Type",
        required=False,
        choices=[("", "All types"), *MarketMakerClient.Type.choices],
    )
    active = forms.ChoiceField(
        label="Status",
        required=False,
        choices=[("", "Active and inactive"), ("yes", "Active"), ("no", "Inactive")],
    )

    def queryset_filters(self) -> dict:
        data = self.cleaned_data if self.is_valid() else {}
        filters = {}
        if data.get("mm_type"):
            filters["mm_type"] = data["mm_type"]
        if data.get("active"):
            filters["is_active"] = data["active"] == "yes"
        return filters


# --- a trader's history: My trades and the account statement -------------------------------


def _date_input(label: str, *, required: bool = False) -> forms.DateField:
    return forms.DateField(
        label=label, required=required, widget=forms.DateInput(attrs={"type": "date"})
    )


class TradeFiltersForm(forms.Form):
    """The filters of My trades (page and CSV): market, side, maker or taker, a date range
    (UTC, inclusive). Every field is optional; `filters()` is only for a valid form."""

    market = forms.ChoiceField(label="Market", required=False)
    side = forms.ChoiceField(
        label="Side", required=False, choices=[("", "Buy and sell"), *Order.Side.choices]
    )
    role = forms.ChoiceField(
        label="Maker / taker",
        required=False,
        choices=[("", "Maker and taker"), (MAKER, "Maker"), (TAKER, "Taker")],
    )
    date_from = _date_input("From")
    date_to = _date_input("To")

    def __init__(self, *args, market_codes: Iterable[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["market"].choices = [
            ("", "All markets"),
            *((code, f"{code} / {EUR}") for code in market_codes),
        ]

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date is before the start date.")
        return data

    def filters(self) -> FillFilters:
        data = self.cleaned_data
        return FillFilters(
            market=data.get("market") or None,
            side=data.get("side") or None,
            role=data.get("role") or None,
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
        )


class StatementFiltersForm(forms.Form):
    """The period of an account statement: two dates (UTC, inclusive), the first not in
    the future."""

    date_from = _date_input("From", required=True)
    date_to = _date_input("To", required=True)

    def __init__(self, *args, today, **kwargs):
        super().__init__(*args, **kwargs)
        self.today = today

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and start > self.today:
            self.add_error("date_from", "The period cannot start in the future.")
        elif start and end and start > end:
            self.add_error("date_to", "The end date is before the start date.")
        return data
