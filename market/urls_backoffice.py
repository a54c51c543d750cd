"""Back-office pages of market makers, mounted at /backoffice/market-makers/."""

from django.urls import path

from market.views import market_makers as views

app_name = "market_makers"

urlpatterns = [
    path("", views.market_makers, name="list"),
    path("export.csv", views.market_makers_csv, name="csv"),
    path("new/", views.market_maker_new, name="create"),
    path("<int:pk>/fund/", views.market_maker_fund_view, name="fund"),
    path("<int:pk>/withdraw/", views.market_maker_withdraw_view, name="withdraw"),
    path("<int:pk>/deactivate/", views.market_maker_deactivate_view, name="deactivate"),
]
