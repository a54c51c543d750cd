"""Fill notices: a trader is told once when someone else fills one of its resting orders.

Each holder keeps a marker, `Holder.fills_notified_through`: the highest trade id up to
which its maker (passive) fills have been notified. A poll of the cash market page claims
the maker fills above it and moves the marker past them with one compare-and-set UPDATE
(`WHERE fills_notified_through = <the value read>`): of two polls at once (two tabs, two
devices) only the one whose UPDATE matched shows them, so every fill toasts exactly once.
Taker fills are never notified: the trader placed that order and saw its outcome.

Trades of one market are written under its lock, so their ids follow their commits; a
trade of another market committed in the very instant of a claim with a lower id than a
claimed one would not toast (it still shows in My trades).
"""

from dataclasses import dataclass

from market.models import Holder
from market.trade_history import Fill, maker_fills_after

MAX_NOTICES = 3  # toasts per poll; more fills at once are summed up in one line


@dataclass(frozen=True)
class FillNotices:
    fills: tuple[Fill, ...] = ()  # newest first, at most MAX_NOTICES
    more: bool = False  # more fills were claimed than are listed

    def __bool__(self) -> bool:
        return bool(self.fills)


def fill_notices_claim(*, holder: Holder) -> FillNotices:
    """Claim `holder`'s maker fills not notified yet (as of `holder` as loaded). One query
    when there is none; two (the read, the compare-and-set) when there are. Empty when
    another request claimed them first."""
    marker = holder.fills_notified_through
    fills = maker_fills_after(holder=holder, trade_id=marker, limit=MAX_NOTICES + 1)
    if not fills:
        return FillNotices()
    newest = fills[0].trade_id
    claimed = Holder.objects.filter(pk=holder.pk, fills_notified_through=marker).update(
        fills_notified_through=newest
    )
    if not claimed:
        return FillNotices()
    holder.fills_notified_through = newest
    return FillNotices(tuple(fills[:MAX_NOTICES]), more=len(fills) > MAX_NOTICES)
