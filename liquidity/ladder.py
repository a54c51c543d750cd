"""The ladder: how a side's EUR target is spread over price levels.

Pure domain code. A ladder is a tuple of levels, best first; each level is a distance from
the reference price (%, bids below it, asks above) and the share (%) of the side's target
it holds. The same ladder applies to both sides. The default is the three levels the
product started with: 0.2 / 0.4 / 0.5 % from the reference, holding 50 / 30 / 20 %.

A ladder arrives as text (`"0.2:50, 0.4:30, 0.5:20"`: distance:share pairs, the form and
the command), as a list of `{"distance_pct", "share_pct"}` objects (the API and what an
operation records), or as a `Ladder`; `ladder_parse` reads all three with one set of
rules and one set of messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import ValidationError

from market.core.money import parse_amount

__all__ = [
    "DEFAULT_LADDER",
    "MAX_DISTANCE_PCT",
    "MAX_LADDER_LEVELS",
    "MAX_LADDER_TEXT",
    "Ladder",
    "LadderLevel",
    "ladder_parse",
]

# More levels than this is a different tool (a grid); ten already spreads a side thin.
MAX_LADDER_LEVELS = 10
# A bid 50 % below the reference is no longer market making; the price band refuses
# far levels anyway, this bounds what a typo can ask for.
MAX_DISTANCE_PCT = Decimal("50")
MAX_LADDER_TEXT = 400  # characters of the text notation: ten levels with room to spare
_PLACES = 2  # hundredths of a percent: a basis point is 0.01 %
_PAIR = re.compile(r"\s*([^:\s,;]+)\s*:\s*([^:\s,;]+)\s*")
FORMAT_HELP = (
    "Levels as distance:share pairs in %, best first, separated by commas, "
    "e.g. 0.2:50, 0.4:30, 0.5:20."
)


@dataclass(frozen=True)
class LadderLevel:
    """One level: `distance_pct` from the reference (> 0), `share_pct` of the side (> 0),
    both with at most two decimals."""

    distance_pct: Decimal
    share_pct: Decimal

    @property
    def distance_bp(self) -> int:
        """The distance in basis points (hundredths of a percent), exactly."""
        return int(self.distance_pct * 100)

    @property
    def share_weight(self) -> int:
        """The share in hundredths of a percent, exactly: a weight for largest remainder."""
        return int(self.share_pct * 100)

    @property
    def share(self) -> Decimal:
        """The share as a fraction of the side (0.5 for 50 %)."""
        return self.share_pct / 100


@dataclass(frozen=True)
class Ladder:
    """Levels, best (nearest the reference) first. Build one with `ladder_parse`, which
    checks the rules; the constructor trusts its input."""

    levels: tuple[LadderLevel, ...]

    def __len__(self) -> int:
        return len(self.levels)

    def __iter__(self):
        return iter(self.levels)

    def as_text(self) -> str:
        """The form's and the command's notation: `0.2:50, 0.4:30, 0.5:20`."""
        return ", ".join(
            f"{_plain(level.distance_pct)}:{_plain(level.share_pct)}" for level in self.levels
        )

    def as_data(self) -> list[dict[str, str]]:
        """The API's and the records' notation, decimals as strings."""
        return [
            {"distance_pct": _plain(level.distance_pct), "share_pct": _plain(level.share_pct)}
            for level in self.levels
        ]

    @property
    def is_default(self) -> bool:
        return self == DEFAULT_LADDER


def _plain(number: Decimal) -> str:
    """`0.20` → "0.2", `50.00` → "50": what a person would write."""
    text = f"{number.normalize():f}"
    return text


def _refuse(message: str, field: str):
    raise ValidationError({field: message})


def _pairs(value, field: str) -> list[tuple[object, object]]:
    if isinstance(value, str):
        text = value.strip()
        if not text:
            _refuse("Enter at least one level. " + FORMAT_HELP, field)
        if len(text) > MAX_LADDER_TEXT:
            _refuse(f"Enter at most {MAX_LADDER_TEXT} characters. " + FORMAT_HELP, field)
        pairs = []
        for part in re.split(r"[,;\n]+", text):
            if not part.strip():
                continue
            match = _PAIR.fullmatch(part)
            if match is None:
                _refuse(f"Cannot read {part.strip()!r}. " + FORMAT_HELP, field)
            pairs.append((match.group(1), match.group(2)))
        return pairs
    if isinstance(value, list | tuple):
        pairs = []
        for item in value:
            if isinstance(item, LadderLevel):
                pairs.append((item.distance_pct, item.share_pct))
            elif isinstance(item, dict) and set(item) == {"distance_pct", "share_pct"}:
                pairs.append((item["distance_pct"], item["share_pct"]))
            else:
                _refuse(
                    'Each level is an object {"distance_pct": "0.2", "share_pct": "50"}.',
                    field,
                )
        return pairs
    _refuse(FORMAT_HELP, field)


def ladder_parse(value, *, field: str = "ladder") -> Ladder:
    """A validated ladder from text, a list of level objects, or a `Ladder`; None or blank
    text gives the default. Raises ValidationError keyed by `field` naming the first rule
    broken: at least one and at most `MAX_LADDER_LEVELS` levels; distances above 0, at
    most `MAX_DISTANCE_PCT`, strictly increasing; shares above 0 summing to exactly 100;
    both with at most two decimals."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return DEFAULT_LADDER
    if isinstance(value, Ladder):
        value = list(value.levels)
    pairs = _pairs(value, field)
    if not pairs:
        _refuse("Enter at least one level. " + FORMAT_HELP, field)
    if len(pairs) > MAX_LADDER_LEVELS:
        _refuse(f"At most {MAX_LADDER_LEVELS} levels per side; {len(pairs)} were given.", field)
    levels = []
    for number, (distance, share) in enumerate(pairs, start=1):
        distance_pct = _number(distance, f"Level {number}: distance", MAX_DISTANCE_PCT, field)
        share_pct = _number(share, f"Level {number}: share", Decimal(100), field)
        if levels and distance_pct <= levels[-1].distance_pct:
            _refuse(
                f"Level {number}: distance {_plain(distance_pct)} % must be greater than "
                f"level {number - 1}'s {_plain(levels[-1].distance_pct)} % "
                "(levels go outward, best first).",
                field,
            )
        levels.append(LadderLevel(distance_pct, share_pct))
    total = sum(level.share_pct for level in levels)
    if total != 100:
        _refuse(f"The shares add up to {_plain(total)} %; they must add up to 100 %.", field)
    return Ladder(tuple(levels))


def _number(value, label: str, maximum: Decimal, field: str) -> Decimal:
    try:
        return parse_amount(value, field=field, places=_PLACES, maximum=maximum)
    except ValidationError as error:
        message = error.message_dict[field][0]
        _refuse(f"{label} (%): {message[0].lower()}{message[1:]}", field)


DEFAULT_LADDER = Ladder(
    (
        LadderLevel(Decimal("0.2"), Decimal("50")),
        LadderLevel(Decimal("0.4"), Decimal("30")),
        LadderLevel(Decimal("0.5"), Decimal("20")),
    )
)
