"""Project-level pages: the landing page."""

from django.shortcuts import render

from market.selectors import markets_list


def home(request):
    """Landing page: links to the markets (and, for staff, the back-office pages they
    may open: `config.navigation`)."""
    return render(
        request,
        "home.html",
        {"markets": markets_list()},
    )
