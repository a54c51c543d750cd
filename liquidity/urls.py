"""Back-office pages of liquidity, mounted at /backoffice/."""

from django.urls import path

from liquidity import exports, views, views_programs

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
    # Standing liquidity programs (views_programs).
    path("liquidity/programs/", views_programs.program_list, name="program-list"),
    path("liquidity/programs/new/", views_programs.program_new, name="program-new"),
    path("liquidity/programs/kill/", views_programs.programs_kill, name="programs-kill"),
    path("liquidity/programs/<int:pk>/", views_programs.program_detail, name="program"),
    path("liquidity/programs/<int:pk>/edit/", views_programs.program_edit, name="program-edit"),
    path(
        "liquidity/programs/<int:pk>/activate/",
        views_programs.program_activate,
        name="program-activate",
    ),
    path("liquidity/programs/<int:pk>/pause/", views_programs.program_pause, name="program-pause"),
    path("liquidity/programs/<int:pk>/stop/", views_programs.program_stop, name="program-stop"),
]
