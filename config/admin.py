"""The admin site: the site's lockout and second factor on its login, no admin page for
staff who still owe the second factor (they are sent to it), and a 400 for a bulk action
on rows that are not row ids."""

from functools import wraps

from django.contrib import admin
from django.contrib.admin import helpers
from django.core.exceptions import BadRequest
from django.shortcuts import redirect
from django.urls import reverse

from accounts.forms import AdminLoginForm
from accounts.two_factor import second_factor_missing, second_factor_url
from market.validation import MAX_ID


class BackOfficeAdminSite(admin.AdminSite):
    login_form = AdminLoginForm
    login_template = "admin/login_second_factor.html"

    def admin_view(self, view, cacheable=False):
        """Every admin view, refusing a bulk action posted with selected rows that are not
        ids: Django would pass them to the database and answer 500. Every model here has
        an integer primary key."""

        @wraps(view)
        def checked(request, *args, **kwargs):
            selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
            if request.method == "POST" and not all(
                value.isascii() and value.isdigit() and int(value) <= MAX_ID for value in selected
            ):
                raise BadRequest("The selected rows are not row ids.")
            return view(request, *args, **kwargs)

        return super().admin_view(checked, cacheable)

    def has_permission(self, request):
        return super().has_permission(request) and not second_factor_missing(request)

    def login(self, request, extra_context=None):
        if request.method == "GET" and second_factor_missing(request):
            next_url = request.GET.get("next") or reverse("admin:index", current_app=self.name)
            return redirect(second_factor_url(request.user, next_url))
        return super().login(request, extra_context)
