"""The cash market for traders: /market/<code>/ for each market, and its HTMX partials."""

from django.urls import path

from market.views import cash_market as views
from market.views import my_trades

app_name = "market"

urlpatterns = [
    path("", views.index, name="index"),
    # A hyphen: no market code can shadow these (codes are capital letters and digits).
    path("my-trades/", my_trades.my_trades, name="my_trades"),
    path("my-trades/export.csv", my_trades.my_trades_csv, name="my_trades_csv"),
    path("my-trades/statement.csv", my_trades.statement_csv, name="statement_csv"),
    path("my-trades/notices/", my_trades.fill_notices, name="fill_notices"),
    path("<str:code>/", views.cash_market, name="cash_market"),
    path("<str:code>/book/", views.order_book, name="order_book"),
    path("<str:code>/chart/", views.price_chart, name="price_chart"),
    path("<str:code>/balances/", views.balances, name="balances"),
    path("<str:code>/orders/", views.my_orders, name="my_orders"),
    path("<str:code>/orders/new/", views.place_order, name="place_order"),
    path("<str:code>/orders/preview/", views.order_preview, name="order_preview"),
    path("<str:code>/orders/<int:order_id>/cancel/", views.cancel_order, name="cancel_order"),
    path("<str:code>/orders/<int:order_id>/amend/", views.amend_order, name="amend_order"),
    path("<str:code>/orders/cancel-all/", views.cancel_all_orders, name="cancel_all_orders"),
]
