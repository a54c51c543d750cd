"""The form of a liquidity program's settings (create and edit). It only shapes raw input:
`liquidity.programs.program_values_parse` (through `program_create` / `program_update`)
validates it, and `apply_service_errors` puts what it refused next to the field it names.

The fields are grouped as the page shows them (`GROUPS`); each has help text that says
what the setting does in plain words."""

from django import forms

from liquidity.ladder import FORMAT_HELP, MAX_LADDER_TEXT
from liquidity.models import LiquidityProgram
from liquidity.programs import MAX_NAME, MAX_NOTES, SETTINGS, program_ladder
from market.forms import number_input
from market.selectors import markets_list

WEEKDAYS = [
    ("1", "Mon"),
    ("2", "Tue"),
    ("3", "Wed"),
    ("4", "Thu"),
    ("5", "Fri"),
    ("6", "Sat"),
    ("7", "Sun"),
]

# (legend, what the group is about, its fields), in the order of the page.
GROUPS = (
    (
        "Targets & ladder",
        "How much to keep resting on each side, and how it is spread over price levels.",
        ("bid_target_eur", "ask_target_eur", "ladder"),
    ),
    (
        "Reference",
        "The price the ladder is placed around.",
        ("reference_mode", "fixed_reference_price"),
    ),
    (
        "Refresh & replenish",
        "When a worker looks at the program again, re-centres the ladder or tops it up.",
        (
            "refresh_interval_seconds",
            "refresh_tolerance_pct",
            "replenish_threshold_pct",
            "replenish_delay_seconds",
        ),
    ),
    (
        "Limits",
        "Prices and exposure beyond which a side is withheld.",
        ("price_floor", "price_ceiling", "max_imbalance_eur"),
    ),
    (
        "Active hours",
        "When the ladder rests; outside these hours it is withdrawn. Blank times: all day.",
        ("active_from", "active_until", "active_weekdays", "timezone"),
    ),
    (
        "Alerts",
        "When staff are alerted (on the page and by mail).",
        ("low_funds_eur", "alert_after_refreshes"),
    ),
)

# Shown inside the input, on the right (or the left for €).
PREFIX = {
    "bid_target_eur": "€",
    "ask_target_eur": "€",
    "fixed_reference_price": "€",
    "price_floor": "€",
    "price_ceiling": "€",
    "max_imbalance_eur": "€",
    "low_funds_eur": "€",
}
SUFFIX = {
    "refresh_interval_seconds": "s",
    "replenish_delay_seconds": "s",
    "refresh_tolerance_pct": "%",
    "replenish_threshold_pct": "%",
    "alert_after_refreshes": "refreshes",
}
# Where the widget's own placeholder (a price) would mislead.
PLACEHOLDER = {"max_imbalance_eur": "5000.00", "low_funds_eur": "1000.00"}
OPTIONAL = {
    "fixed_reference_price",
    "price_floor",
    "price_ceiling",
    "max_imbalance_eur",
    "active_from",
    "active_until",
    "low_funds_eur",
}


def _text(label: str, help_text: str, *, max_length: int = 64, **attrs) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        max_length=max_length,
        strip=True,
        help_text=help_text,
        widget=forms.TextInput(attrs={"autocomplete": "off", **attrs}),
    )


class ProgramForm(forms.Form):
    name = forms.CharField(
        label="Name",
        required=False,
        max_length=MAX_NAME,
        help_text="A name staff recognise, e.g. “Standing liquidity, day desk”.",
    )
    certificate_type = forms.ChoiceField(
        label="Market",
        help_text="The market it keeps liquidity in. A running program cannot move.",
    )
    bid_target_eur = number_input(
        "BID target (EUR)",
        help_text="EUR of buy orders to keep resting, drawn from liquidity providers. 0 for none.",
    )
    ask_target_eur = number_input(
        "ASK target (EUR)",
        help_text="EUR value of certificates to keep offered, drawn from asset holders. "
        "0 for none.",
    )
    ladder = _text(
        "Ladder",
        f"{FORMAT_HELP} Each pair is how far from the reference a level rests and what "
        "share of the side's target it holds; the same ladder for both sides.",
        placeholder="0.2:50, 0.4:30, 0.5:20",
        max_length=MAX_LADDER_TEXT,  # ten levels; `ladder_parse` says what is wrong
    )
    reference_mode = forms.ChoiceField(
        label="Reference price",
        choices=LiquidityProgram.ReferenceMode.choices,
        widget=forms.RadioSelect,
        help_text="The book's: the mid (else best bid, best ask, last trade, the market "
        "default), leaving out the program's own orders. Fixed: always the price below.",
    )
    fixed_reference_price = number_input(
        "Fixed reference price (EUR)",
        help_text="Only with a fixed reference: the price the ladder is centred on.",
    )
    refresh_interval_seconds = number_input(
        "Refresh every",
        whole=True,
        help_text="How often a worker looks at the program (seconds, at least 5).",
    )
    refresh_tolerance_pct = number_input(
        "Re-centre tolerance",
        help_text="Re-centre when the reference moved more than this from the ladder's.",
    )
    replenish_threshold_pct = number_input(
        "Replenish after fills of",
        help_text="Top a side up again once fills took more than this share of its target.",
    )
    replenish_delay_seconds = number_input(
        "Replenish delay",
        whole=True,
        help_text="Wait this long after the last fill before topping up (seconds), so a "
        "taker sweeping the book is not fed at once.",
    )
    price_floor = number_input(
        "Price floor (EUR)",
        help_text="No asks while the reference is below this price. Blank: no floor.",
    )
    price_ceiling = number_input(
        "Price ceiling (EUR)",
        help_text="No bids while the reference is above this price. Blank: no ceiling.",
    )
    max_imbalance_eur = number_input(
        "Maximum imbalance (EUR)",
        help_text="When the makers bought (or sold) more than this since the start, the "
        "side that would grow it further is withheld. Blank: no limit.",
    )
    active_from = _text(
        "Active from", "Local time the ladder is placed (HH:MM).", placeholder="08:00"
    )
    active_until = _text(
        "Active until",
        "Local time it is withdrawn (HH:MM); before the start spans midnight.",
        placeholder="18:00",
    )
    active_weekdays = forms.MultipleChoiceField(
        label="Weekdays",
        required=False,
        choices=WEEKDAYS,
        widget=forms.CheckboxSelectMultiple,
        help_text="The days it trades on (a span over midnight counts on its start day).",
    )
    timezone = _text(
        "Time zone",
        "The zone of the times above, e.g. Europe/Berlin or UTC.",
        placeholder="UTC",
    )
    low_funds_eur = number_input(
        "Low funds alert (EUR)",
        help_text="Alert when a market maker's available funds are worth less than this at "
        "the reference. Blank: no alert.",
    )
    alert_after_refreshes = number_input(
        "Alert after",
        whole=True,
        help_text="Alert when a side stays below its target, or refreshes keep failing, "
        "this many refreshes in a row.",
    )
    notes = forms.CharField(
        label="Notes",
        required=False,
        max_length=MAX_NOTES,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="For staff: why it runs, who to call.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["certificate_type"].choices = [(m.code, m.code) for m in markets_list()]

    def groups(self) -> list[dict]:
        """The groups as the template draws them: legend, description and, per field, the
        bound field with how to show it (`kind`: text, radio or weekdays)."""
        kinds = {"reference_mode": "radio", "active_weekdays": "weekdays"}
        return [
            {
                "legend": legend,
                "description": text,
                "fields": [
                    {
                        "field": self[name],
                        "kind": kinds.get(name, "text"),
                        "prefix": PREFIX.get(name, ""),
                        "suffix": SUFFIX.get(name, ""),
                        "optional": name in OPTIONAL,
                        "whole": name.endswith(("_seconds", "_refreshes")),
                        "placeholder": PLACEHOLDER.get(name, ""),
                    }
                    for name in names
                ],
            }
            for legend, text, names in GROUPS
        ]

    def values(self) -> dict:
        """The raw settings, keyed as the services name them (every one of `SETTINGS`)."""
        data = self.cleaned_data
        values = {key: data.get(key, "") for key in SETTINGS}
        values["active_weekdays"] = "".join(data.get("active_weekdays") or [])
        return values


def _plain(value) -> str:
    if value is None:
        return ""
    if hasattr(value, "strftime"):
        return value.strftime("%H:%M")
    return f"{value:f}" if not isinstance(value, int | str) else str(value)


def program_initial(program: LiquidityProgram | None = None) -> dict:
    """The form's values for `program`, or the model's defaults for a new one."""
    shown = program or LiquidityProgram()
    initial = {
        key: _plain(getattr(shown, key))
        for key in SETTINGS
        if key not in ("certificate_type", "ladder", "active_weekdays", "reference_mode")
    }
    initial["ladder"] = program_ladder(shown).as_text()
    initial["active_weekdays"] = list(shown.active_weekdays)
    initial["reference_mode"] = shown.reference_mode
    if program is not None:
        initial["certificate_type"] = program.market.code
    return initial
