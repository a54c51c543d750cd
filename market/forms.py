"""The cash market's order-entry form: raw input → `OrderRequest`, errors next to fields.

Parsing is `market.services.orders.order_request_parse`; this form only picks which of
the amount inputs counts (quantity, or the EUR amount of a market buy) and maps the
service's field-keyed `ValidationError`s onto its fields.
"""

import uuid

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from market.models import Order
from market.services.orders import OrderRequest, order_request_parse

AMOUNT_BY_QUANTITY = "quantity"
AMOUNT_BY_EUR = "eur"
# Service error keys that have no input of their own on this form.
NON_FIELD_KEYS = {"market", "client_order_id", NON_FIELD_ERRORS}


class OrderEntryForm(forms.Form):
    side = forms.ChoiceField(choices=Order.Side.choices, initial=Order.Side.BUY)
    order_type = forms.ChoiceField(choices=Order.Type.choices, initial=Order.Type.LIMIT)
    amount_mode = forms.ChoiceField(
        choices=[(AMOUNT_BY_QUANTITY, "Quantity"), (AMOUNT_BY_EUR, "EUR amount")],
        initial=AMOUNT_BY_QUANTITY,
        required=False,
    )
    # Text, not number fields: the service parses them (whole certificates, the tick, no
    # floats) and its messages say what is wrong.
    price = forms.CharField(label="Limit price", required=False, max_length=32, strip=True)
    quantity = forms.CharField(label="Quantity", required=False, max_length=32, strip=True)
    eur_budget = forms.CharField(label="Amount", required=False, max_length=32, strip=True)
    client_order_id = forms.CharField(
        required=False, max_length=64, widget=forms.HiddenInput, strip=True
    )

    def __init__(self, *args, market_code: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.market_code = market_code
        self.order_request: OrderRequest | None = None
        if not self.is_bound:
            self.initial.setdefault("client_order_id", uuid.uuid4().hex)

    # --- what the inputs mean --------------------------------------------------------

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

    # --- validation ------------------------------------------------------------------

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
            )
        except ValidationError as error:
            self.add_service_error(error)
        return cleaned

    def add_service_error(self, error: ValidationError) -> None:
        """Show a service's ValidationError next to the fields it names."""
        if not hasattr(error, "error_dict"):
            self.add_error(None, error.messages)
            return
        for key, messages in error.message_dict.items():
            field = None if key in NON_FIELD_KEYS or key not in self.fields else key
            for message in messages:
                self.add_error(field, message)
        self.order_request = None

    def fresh(self) -> "OrderEntryForm":
        """An empty form for the next order that keeps the trader's side, type, amount
        mode and price, with a new idempotency key."""
        keep = {name: self.value(name) for name in ("side", "order_type", "amount_mode")}
        if self.chosen_type == Order.Type.LIMIT:
            keep["price"] = self.value("price")
        return OrderEntryForm(market_code=self.market_code, initial=keep)
