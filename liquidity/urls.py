"""Back-office pages of liquidity, mounted at /backoffice/."""

from django.urls import path

from liquidity import exports, views

app_name = "liquidity"

urlpatterns = [
    path("liquidity/", views.operations, name="operations"),
    path("liquidity/operations.csv", exports.operations_csv, name="operations-csv"),
    path(
        "liquidity/programs/refreshes.csv",
        exports.program_refreshes_csv,
        name="program-refreshes-csv",
    ),
    path("liquidity/new/", views.liquidity_new, name="create"),
    path("liquidity/preview/", views.liquidity_preview_view, name="preview"),
    path("liquidity/execute/", views.liquidity_execute_view, name="execute"),
    path("liquidity/provision/create/", views.provision_create, name="provision-create"),
    path("liquidity/provision/fund/", views.provision_fund, name="provision-fund"),
    path(
        "liquidity/provision/fund/summary/",
        views.provision_fund_summary,
        name="provision-fund-summary",
    ),
    path("liquidity/<int:pk>/", views.operation_detail, name="operation"),
    path("liquidity/<int:pk>/withdraw/", views.operation_withdraw, name="withdraw"),
]
