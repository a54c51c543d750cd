"""URL configuration of the carbon cash market."""

from django.contrib import admin
from django.urls import include, path

from config.views import home

admin.site.site_header = "Carbon Cash Market back office"
admin.site.site_title = "Carbon Cash Market back office"
admin.site.index_title = "Administration"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", home, name="home"),
]
