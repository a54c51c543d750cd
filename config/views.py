"""Project-level pages: the landing page."""

from django.shortcuts import render
from django.urls import reverse_lazy

from market.selectors import markets_list

BACKOFFICE_LINKS = (
    {
        "title": "Create liquidity",
        "description": "Plan and place bid and ask ladders for a market.",
        "url": reverse_lazy("liquidity:create"),
    },
    {
        "title": "Liquidity operations",
        "description": "Past operations, their orders, and withdrawal.",
        "url": reverse_lazy("liquidity:operations"),
    },
    {
        "title": "Market makers",
        "description": "Balances, funding and withdrawals of market-maker accounts.",
        "url": reverse_lazy("market_makers:list"),
    },
    {
        "title": "Admin",
        "description": "Markets, fees, users, orders, trades and the audit trail.",
        "url": reverse_lazy("admin:index"),
    },
)


def home(request):
    """Landing page: links to the markets (and, for staff, the back office)."""
    return render(
        request,
        "home.html",
        {"markets": markets_list(), "backoffice_links": BACKOFFICE_LINKS},
    )
