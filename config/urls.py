"""URL configuration of the carbon cash market."""

from django.contrib import admin
from django.urls import include, path

from accounts.views import LoginView
from config.api import api
from config.views import home

admin.site.site_header = "Carbon Cash Market back office"
admin.site.site_title = "Carbon Cash Market back office"
admin.site.index_title = "Administration"

urlpatterns = [
    path("admin/", admin.site.urls),
    # Before Django's own: the login with the lockout and the second factor.
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("accounts/two-factor/", include("accounts.urls")),
    path("accounts/tokens/", include("accounts.urls_tokens")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/v1/", api.urls),
    path("market/", include("market.urls")),
    path("backoffice/market-makers/", include("market.urls_backoffice")),
    path("backoffice/", include("liquidity.urls")),
    path("", home, name="home"),
]
