"""What each kind of market maker holds and does. Pure.

A liquidity provider holds EUR and places BUY orders: the BID side of the book. An asset
holder holds certificates (of any market) and places SELL orders: the ASK side. Every
place that needs this mapping (funding rules, the liquidity plan, the provisioning of a
short side) asks here.
"""

from market.core.money import EUR

LIQUIDITY_PROVIDER, ASSET_HOLDER = "LIQUIDITY_PROVIDER", "ASSET_HOLDER"
BID, ASK = "BID", "ASK"

_SIDE_OF = {LIQUIDITY_PROVIDER: BID, ASSET_HOLDER: ASK}
_ORDER_SIDE_OF = {BID: "BUY", ASK: "SELL"}


def book_side_of(mm_type: str) -> str:
    """BID for a liquidity provider, ASK for an asset holder."""
    return _SIDE_OF[mm_type]


def maker_type_for(book_side: str) -> str:
    """The kind of market maker that provides a book side (BID or ASK)."""
    return LIQUIDITY_PROVIDER if book_side == BID else ASSET_HOLDER


def order_side_for(book_side: str) -> str:
    """BUY for the BID side, SELL for the ASK side."""
    return _ORDER_SIDE_OF[book_side]


def side_asset(book_side: str, market_code: str) -> str:
    """What a book side is provided with: EUR for bids, the market's certificates for asks."""
    return EUR if book_side == BID else market_code


def may_hold(mm_type: str, asset: str) -> bool:
    """Whether a maker of `mm_type` may be funded with `asset`."""
    return (asset == EUR) == (mm_type == LIQUIDITY_PROVIDER)


def funding_refusal(mm_type: str, asset: str, *, certificates: tuple[str, ...]) -> str | None:
    """Why `asset` may not be deposited into a maker of `mm_type`, or None if it may.
    `certificates` names the markets' assets, for the message."""
    if may_hold(mm_type, asset):
        return None
    if mm_type == LIQUIDITY_PROVIDER:
        return f"A liquidity provider is funded in EUR only; {asset} cannot be deposited into it."
    return (
        f"An asset holder is funded in certificates ({', '.join(certificates)}) only; "
        "EUR cannot be deposited into it."
    )
