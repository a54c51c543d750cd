"""The cash market for traders: /market/<code>/ for each market, and its HTMX partials."""

from django.urls import path

from market.views import cash_market as views

app_name = "market"

urlpatterns = [
    path("", views.index, name="index"),
    path("<str:code>/", views.cash_market, name="cash_market"),
    path("<str:code>/book/", views.order_book, name="order_book"),
    path("<str:code>/balances/", views.balances, name="balances"),
    path("<str:code>/orders/", views.my_orders, name="my_orders"),
    path("<str:code>/orders/new/", views.place_order, name="place_order"),
    path("<str:code>/orders/preview/", views.order_preview, name="order_preview"),
    path("<str:code>/orders/<int:order_id>/cancel/", views.cancel_order, name="cancel_order"),
    path("<str:code>/orders/<int:order_id>/amend/", views.amend_order, name="amend_order"),
    path("<str:code>/orders/cancel-all/", views.cancel_all_orders, name="cancel_all_orders"),
]
