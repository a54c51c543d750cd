"""Forms of the back-office pages. They only shape raw input; the services validate it.

Each form that ends in a service call keeps the service's `ValidationError` messages:
`apply_errors` puts them on the matching fields (or above the form when no field matches),
so the page shows exactly what the service refused.
"""

from django import forms
from django.core.exceptions import ValidationError

from liquidity.selectors import OperationFilters
from liquidity.services import MAX_NOTES, liquidity_request_parse
from market.models import Asset, MarketCode, MarketMakerClient
from market.services.market_makers import MAX_BULK_MAKERS

LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER


def apply_errors(form: forms.Form, error: ValidationError, rename: dict | None = None) -> None:
    """Attach a service's ValidationError to `form`: keyed messages go to the field of the
    same name (after `rename`), the rest above the form."""
    rename = rename or {}
    if not hasattr(error, "error_dict"):
        form.add_error(None, error.messages)
        return
    for key, messages in error.message_dict.items():
        field = rename.get(key, key)
        if field not in form.fields:
            field = None
        for message in messages:
            if field is not None and field in form.errors and message in form.errors[field]:
                continue
            form.add_error(field, message)


def side_maker_type(side: str) -> str:
    return LP if side == "BID" else AH


def side_asset(side: str, market_code: str) -> str:
    return Asset.EUR if side == "BID" else market_code


# ------------------------------------------------------------------------ create liquidity


class LiquidityForm(forms.Form):
    """The Create Liquidity inputs. Blank amounts count as zero (one side only)."""

    certificate_type = forms.ChoiceField(
        label="Market",
        choices=[(MarketCode.EUA, "EUA"), (MarketCode.CEA, "CEA")],
        initial=MarketCode.CEA,
        widget=forms.RadioSelect,
    )
    bid_amount_eur = forms.CharField(label="BID liquidity (EUR)", required=False, max_length=32)
    ask_amount_eur = forms.CharField(label="ASK liquidity (EUR)", required=False, max_length=32)
    reference_price = forms.CharField(label="Reference price (EUR)", required=False, max_length=32)
    notes = forms.CharField(
        label="Notes", required=False, max_length=MAX_NOTES, widget=forms.Textarea
    )

    liquidity_request = None

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            self.liquidity_request = liquidity_request_parse(
                market_code=data["certificate_type"],
                bid_amount_eur=data["bid_amount_eur"].strip() or "0",
                ask_amount_eur=data["ask_amount_eur"].strip() or "0",
                reference_price=data["reference_price"].strip() or None,
                notes=data["notes"],
            )
        except ValidationError as error:
            apply_errors(self, error)
        return data


class ExecuteForm(LiquidityForm):
    """The previewed inputs again, with the plan's fingerprint and a one-time key."""

    fingerprint = forms.CharField(max_length=64, widget=forms.HiddenInput)
    idempotency_key = forms.CharField(max_length=64, widget=forms.HiddenInput)


# ------------------------------------------------------------------------ provisioning


class ProvisionCreateForm(forms.Form):
    """Create N market makers of the short side's type, sharing a total."""

    count = forms.IntegerField(
        label="Number of market makers", min_value=1, max_value=MAX_BULK_MAKERS, initial=1
    )
    total_amount = forms.CharField(label="Total amount", max_length=32)
    name_prefix = forms.CharField(label="Name prefix", max_length=120)


class ProvisionFundForm(forms.Form):
    """Deposit the same amount into each selected market maker of the short side's type."""

    market_makers = forms.TypedMultipleChoiceField(
        label="Market makers", coerce=int, widget=forms.CheckboxSelectMultiple
    )
    amount_each = forms.CharField(label="Amount each", max_length=32)

    def __init__(self, *args, makers=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.makers = list(makers)
        self.fields["market_makers"].choices = [(m.pk, str(m)) for m in self.makers]


# ------------------------------------------------------------------------ history


class OperationFiltersForm(forms.Form):
    market = forms.ChoiceField(
        label="Market", required=False, choices=[("", "All markets"), *MarketCode.choices]
    )
    date_from = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    created_by = forms.TypedChoiceField(
        label="Created by", required=False, coerce=int, empty_value=None
    )

    def __init__(self, *args, creators=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["created_by"].choices = [("", "Anyone")] + [
            (user.pk, user.get_username()) for user in creators
        ]

    def filters(self) -> OperationFilters:
        """The valid filters; a field with an error is ignored (and shown as an error)."""
        data = self.cleaned_data if self.is_valid() else getattr(self, "cleaned_data", {})
        return OperationFilters(
            market=data.get("market") or None,
            created_by=data.get("created_by"),
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
        )

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date is before the start date.")
        return data


# ------------------------------------------------------------------------ market makers


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


class MarketMakerCreateForm(forms.Form):
    name = forms.CharField(label="Name", max_length=150)
    mm_type = forms.ChoiceField(
        label="Type",
        choices=MarketMakerClient.Type.choices,
        initial=LP,
        widget=forms.RadioSelect,
    )
    description = forms.CharField(label="Description", required=False, widget=forms.Textarea)
    eur = forms.CharField(label="EUR", required=False, max_length=32)
    cea = forms.CharField(label="CEA", required=False, max_length=32)
    eua = forms.CharField(label="EUA", required=False, max_length=32)

    def funding(self) -> dict[str, str]:
        return {
            asset: self.cleaned_data[asset.lower()]
            for asset in Asset.values
            if self.cleaned_data.get(asset.lower())
        }


class MarketMakerFundForm(forms.Form):
    asset = forms.ChoiceField(label="Asset")
    amount = forms.CharField(label="Amount", max_length=32)

    def __init__(self, *args, assets=Asset.values, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["asset"].choices = [(asset, asset) for asset in assets]
        if len(assets) == 1:
            self.fields["asset"].initial = assets[0]


class MarketMakerDeactivateForm(forms.Form):
    cancel_open_orders = forms.BooleanField(
        label="Cancel its open orders and release their funds", required=False
    )
