"""The back office's pages as the navigation and the landing page list them: each with
the permission its views require, so staff see only the pages they may open."""

from collections.abc import Callable
from dataclasses import dataclass

from django.urls import ResolverMatch, reverse

from liquidity.permissions import MANAGE_LIQUIDITY
from liquidity.program_status import open_alerts_count
from market.permissions import MANAGE_MARKET_MAKERS


@dataclass(frozen=True)
class BackofficePage:
    title: str
    description: str
    url_name: str
    permission: str | None  # None: any staff user
    shows: Callable[[ResolverMatch], bool]  # is the current page this one (or under it)?
    badge: Callable[[], int] | None = None  # a count shown beside the title (one query)


def _view(name: str) -> Callable[[ResolverMatch], bool]:
    return lambda match: match.view_name == name


def _app(name: str, *, but: str = "") -> Callable[[ResolverMatch], bool]:
    return lambda match: match.app_name == name and match.view_name != but


def _programs(match: ResolverMatch) -> bool:
    return match.view_name.startswith(("liquidity:program", "liquidity:programs"))


def _operations(match: ResolverMatch) -> bool:
    return _app("liquidity", but="liquidity:create")(match) and not _programs(match)


PAGES = (
    BackofficePage(
        "Create liquidity",
        "Plan and place bid and ask ladders for a market.",
        "liquidity:create",
        MANAGE_LIQUIDITY,
        _view("liquidity:create"),
    ),
    BackofficePage(
        "Liquidity operations",
        "Past operations, their orders, and withdrawal.",
        "liquidity:operations",
        MANAGE_LIQUIDITY,
        _operations,
    ),
    BackofficePage(
        "Programs",
        "Standing liquidity programs, their status, and the kill switch.",
        "liquidity:program-list",
        MANAGE_LIQUIDITY,
        _programs,
        badge=open_alerts_count,
    ),
    BackofficePage(
        "Market makers",
        "Balances, funding and withdrawals of market-maker accounts.",
        "market_makers:list",
        MANAGE_MARKET_MAKERS,
        _app("market_makers"),
    ),
    BackofficePage(
        "Admin",
        "Markets, fees, users, orders, trades and the audit trail.",
        "admin:index",
        None,
        _app("admin"),
    ),
)


@dataclass(frozen=True)
class BackofficeLink:
    title: str
    description: str
    url: str
    active: bool
    badge: int = 0


def backoffice_links(request) -> dict:
    """Context processor: `backoffice_links`, the back-office pages this user may open
    (none for anyone but staff), the current one marked `active`."""
    user = getattr(request, "user", None)
    if user is None or not user.is_staff:
        return {"backoffice_links": ()}
    match = request.resolver_match
    return {
        "backoffice_links": tuple(
            BackofficeLink(
                page.title,
                page.description,
                reverse(page.url_name),
                active=match is not None and page.shows(match),
                badge=page.badge() if page.badge is not None else 0,
            )
            for page in PAGES
            if page.permission is None or user.has_perm(page.permission)
        )
    }
