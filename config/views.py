"""Project-level pages: the landing page."""

from django.shortcuts import render
from django.urls import reverse_lazy

MARKETS = (
    {"code": "CEA", "name": "China Emission Allowance", "url": "/market/CEA/"},
    {"code": "EUA", "name": "EU Allowance", "url": "/market/EUA/"},
)

BACKOFFICE_LINKS = (
    {
        "title": "Create liquidity",
        "description": "Plan and place bid and ask ladders for a market.",
        "url": "/backoffice/liquidity/new/",
    },
    {
        "title": "Liquidity operations",
        "description": "Past operations, their orders, and withdrawal.",
        "url": "/backoffice/liquidity/",
    },
    {
        "title": "Market makers",
        "description": "Balances, funding and withdrawals of market-maker accounts.",
        "url": "/backoffice/market-makers/",
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
        {"markets": MARKETS, "backoffice_links": BACKOFFICE_LINKS},
    )
