"""Forms of the liquidity pages. They only shape raw input; the services validate it
(amounts by the one strict parser) and `apply_service_errors` puts what a service refused
next to the field it names."""

from django import forms
from django.core.exceptions import ValidationError

from liquidity.ladder import DEFAULT_LADDER, FORMAT_HELP
from liquidity.models import LiquidityProgram, ProgramRefresh
from liquidity.selectors import OperationFilters, RefreshFilters
from liquidity.services import MAX_NOTES, liquidity_request_parse
from market.forms import apply_service_errors, number_input
from market.selectors import markets_list
from market.services.market_makers import MAX_BULK_MAKERS
from market.validation import MAX_ID


def market_choices() -> list[tuple[str, str]]:
    return [(market.code, market.code) for market in markets_list()]


# ------------------------------------------------------------------------ create liquidity


class LiquidityForm(forms.Form):
    """The Create Liquidity inputs. Blank amounts count as zero (one side only); a blank
    ladder is the default one (`liquidity.ladder`)."""

    certificate_type = forms.ChoiceField(label="Market", widget=forms.RadioSelect)
    bid_amount_eur = number_input("BID liquidity (EUR)")
    ask_amount_eur = number_input("ASK liquidity (EUR)")
    reference_price = number_input("Reference price (EUR)")
    reference_outside_band = forms.BooleanField(
        label="Use this reference price even if it lies outside the market's band",
        required=False,
    )
    ladder = forms.CharField(
        label="Ladder",
        required=False,
        strip=True,
        initial=DEFAULT_LADDER.as_text(),
        help_text=f"{FORMAT_HELP} Blank is the default ladder.",
        widget=forms.TextInput(attrs={"placeholder": DEFAULT_LADDER.as_text()}),
    )
    notes = forms.CharField(
        label="Notes", required=False, max_length=MAX_NOTES, widget=forms.Textarea
    )

    liquidity_request = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        markets = markets_list()
        self.markets = markets
        self.fields["certificate_type"].choices = [(m.code, m.code) for m in markets]
        if markets:
            self.fields["certificate_type"].initial = markets[0].code

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
                reference_outside_band=data["reference_outside_band"],
                ladder=data["ladder"],
            )
        except ValidationError as error:
            apply_service_errors(self, error)
        return data


class ExecuteForm(LiquidityForm):
    """The previewed inputs again, with the plan's fingerprint and a one-time key."""

    fingerprint = forms.CharField(max_length=64, widget=forms.HiddenInput)
    idempotency_key = forms.CharField(max_length=64, widget=forms.HiddenInput)


# ------------------------------------------------------------------------ provisioning


class ProvisionCreateForm(forms.Form):
    """Create N market makers of the short side's type, sharing a total."""

    count = number_input(
        "Number of market makers",
        whole=True,
        required=True,
        help_text=f"1 to {MAX_BULK_MAKERS}.",
    )
    total_amount = number_input("Total amount", required=True)
    name_prefix = forms.CharField(label="Name prefix", max_length=120)


class ProvisionFundForm(forms.Form):
    """Deposit into the selected market makers of the short side's type: a total split
    equally among them (the default, prefilled with the shortfall), or the same amount
    into each."""

    SPLIT_TOTAL, EACH = "total", "each"

    market_makers = forms.TypedMultipleChoiceField(
        label="Market makers", coerce=int, widget=forms.CheckboxSelectMultiple
    )
    split = forms.ChoiceField(
        label="How",
        choices=[(SPLIT_TOTAL, "Split a total among them"), (EACH, "The same amount to each")],
        required=False,
        widget=forms.RadioSelect,
    )
    amount = number_input("Amount", required=True)

    def __init__(self, *args, makers=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.makers = list(makers)
        self.fields["market_makers"].choices = [(c.maker.pk, str(c.maker)) for c in self.makers]
        self.fields["split"].initial = self.SPLIT_TOTAL

    def clean_split(self):
        return self.cleaned_data.get("split") or self.SPLIT_TOTAL

    @property
    def splits_total(self) -> bool:
        """Whether the amount is a total to split (as bound, or the default)."""
        value = self["split"].value()
        return (value or self.SPLIT_TOTAL) == self.SPLIT_TOTAL


# ------------------------------------------------------------------------ history


class OperationFiltersForm(forms.Form):
    market = forms.ChoiceField(label="Market", required=False)
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
        self.fields["market"].choices = [("", "All markets"), *market_choices()]
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


# ------------------------------------------------------------------------ program refreshes


class RefreshFiltersForm(forms.Form):
    """The filters of the program-refresh export: a program's id, an outcome, a date range
    (inclusive)."""

    program = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    outcome = forms.ChoiceField(
        required=False, choices=[("", "Any"), *ProgramRefresh.Outcome.choices]
    )
    since = forms.DateField(required=False)
    until = forms.DateField(required=False)

    def clean_program(self):
        program = self.cleaned_data["program"]
        if program is not None and not LiquidityProgram.objects.filter(pk=program).exists():
            raise forms.ValidationError(f"There is no liquidity program {program}.")
        return program

    def clean(self):
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", "The end date is before the start date.")
        return data

    def filters(self) -> RefreshFilters:
        return RefreshFilters(
            **{name: self.cleaned_data.get(name) or None for name in self.fields}
        )
