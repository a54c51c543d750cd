"""The admin site: the site's lockout and second factor on its login, and no admin page
for staff who still owe the second factor (they are sent to it)."""

from django.contrib import admin
from django.shortcuts import redirect
from django.urls import reverse

from accounts.forms import AdminLoginForm
from accounts.two_factor import second_factor_missing, second_factor_url


class BackOfficeAdminSite(admin.AdminSite):
    login_form = AdminLoginForm
    login_template = "admin/login_second_factor.html"

    def has_permission(self, request):
        return super().has_permission(request) and not second_factor_missing(request)

    def login(self, request, extra_context=None):
        if request.method == "GET" and second_factor_missing(request):
            next_url = request.GET.get("next") or reverse("admin:index", current_app=self.name)
            return redirect(second_factor_url(request.user, next_url))
        return super().login(request, extra_context)
