"""Sign-in and the two-factor pages: status, enrolment (QR code), verification, recovery
codes, turning it off. The rules are in `accounts.two_factor`."""

import django_otp
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts import two_factor
from accounts.forms import CODE_WRONG, CodeForm, LoginForm
from config.http import posted, safe_next


class LoginView(auth_views.LoginView):
    """Django's login with the lockout and the second factor (`LoginForm`). Staff who
    still owe the second factor go to it first, then on to where they were going."""

    authentication_form = LoginForm

    def get_success_url(self):
        url = super().get_success_url()
        if two_factor.second_factor_missing(self.request):
            return two_factor.second_factor_url(self.request.user, url)
        return url


def _context(request, **extra) -> dict:
    user = request.user
    return {
        "enrolled": two_factor.has_authenticator(user),
        "verified": two_factor.session_device(request) is not None,
        "required": user.is_staff and two_factor.staff_2fa_required(),
        "may_turn_off": two_factor.may_turn_off(user),
        "recovery_left": two_factor.recovery_codes_left(user),
        "next": safe_next(request, ""),
        **extra,
    }


@login_required
def status(request):
    """Whether two-factor sign-in is on, and what can be done about it."""
    return render(request, "accounts/two_factor.html", _context(request))


@login_required
def setup(request):
    """Enrolment: scan the QR code (or type the secret), confirm with the first code; the
    recovery codes are shown once. Replacing an authenticator needs a verified session."""
    if two_factor.has_authenticator(request.user) and two_factor.session_device(request) is None:
        return redirect(two_factor.second_factor_url(request.user, reverse("two_factor:setup")))
    device = two_factor.pending_authenticator(user=request.user)
    form = CodeForm(posted(request))
    if form.is_bound and form.is_valid():
        enrolment = two_factor.enrol_authenticator(
            request=request, device=device, code=form.cleaned_data["code"]
        )
        if enrolment is not None:
            return render(
                request,
                "accounts/two_factor_codes.html",
                _context(request, codes=enrolment.recovery_codes, just_enrolled=True),
            )
        form.add_error("code", CODE_WRONG)
    return render(
        request,
        "accounts/two_factor_setup.html",
        _context(
            request,
            form=form,
            qr_svg=two_factor.qr_code_svg(device),
            secret=two_factor.secret_for_typing(device),
        ),
    )


@login_required
def verify(request):
    """The second factor for a session that has not passed it yet."""
    next_url = safe_next(request, reverse("home"))
    if not two_factor.has_authenticator(request.user):
        return redirect(two_factor.second_factor_url(request.user, next_url))
    if two_factor.session_device(request) is not None:
        return redirect(next_url)
    form = CodeForm(posted(request))
    if form.is_bound and form.is_valid():
        device = two_factor.verify_code(user=request.user, code=form.cleaned_data["code"])
        if device is not None:
            django_otp.login(request, device)
            return redirect(next_url)
        form.add_error("code", CODE_WRONG)
    return render(request, "accounts/two_factor_verify.html", _context(request, form=form))


def _verified_or_redirect(request):
    if two_factor.session_device(request) is None:
        return redirect(two_factor.second_factor_url(request.user, reverse("two_factor:status")))
    return None


@login_required
@require_POST
def recovery_codes(request):
    """New recovery codes (the old ones stop working), shown once."""
    refusal = _verified_or_redirect(request)
    if refusal:
        return refusal
    codes = two_factor.issue_recovery_codes(user=request.user)
    return render(request, "accounts/two_factor_codes.html", _context(request, codes=codes))


@login_required
@require_POST
def turn_off(request):
    """Turn two-factor sign-in off (not for staff where it is required)."""
    refusal = _verified_or_redirect(request)
    if refusal:
        return refusal
    if not two_factor.may_turn_off(request.user):
        messages.error(request, "Two-factor sign-in is required for staff: it stays on.")
        return redirect("two_factor:status")
    two_factor.turn_off(request=request)
    messages.success(request, "Two-factor sign-in is off: your password alone signs you in.")
    return redirect("two_factor:status")
