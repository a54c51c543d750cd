"""Sign-in forms: the password, the lockout and the second factor in one place, for the
site's login page and the admin's."""

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from accounts.lockout import is_locked_out, lockout_message
from accounts.two_factor import code_required_at_login, verify_code

CODE_HELP = "Only if you turned on two-factor sign-in: the 6-digit code, or a recovery code."
CODE_MISSING = "Enter the 6-digit code from your authenticator app, or a recovery code."
CODE_WRONG = (
    "That code is not valid (or was already used). Check the time on your phone, or wait a "
    "few seconds after several wrong codes."
)


class CodeField(forms.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 32)
        kwargs.setdefault("strip", True)
        kwargs.setdefault("label", "Authentication code")
        kwargs.setdefault(
            "widget",
            forms.TextInput(attrs={"autocomplete": "one-time-code", "spellcheck": "false"}),
        )
        super().__init__(**kwargs)


class SecondFactorLoginMixin:
    """A login form that refuses a locked-out username with the lockout message, and asks
    an enrolled user for a code (TOTP or recovery). The device that accepted it rides on
    the user as `otp_device`, which django-otp records in the session on login."""

    def clean(self):
        try:
            cleaned = super().clean()
        except ValidationError:
            if is_locked_out(self.request):
                raise ValidationError(lockout_message(), code="locked_out") from None
            raise
        user = self.get_user()
        if user is not None and code_required_at_login(user):
            code = cleaned.get("code") or ""
            if not code:
                self.add_error("code", CODE_MISSING)
                return cleaned
            device = verify_code(user=user, code=code)
            if device is None:
                self.add_error("code", CODE_WRONG)
                return cleaned
            user.otp_device = device
        return cleaned


class LoginForm(SecondFactorLoginMixin, AuthenticationForm):
    code = CodeField(required=False, help_text=CODE_HELP)


class AdminLoginForm(SecondFactorLoginMixin, AdminAuthenticationForm):
    code = CodeField(required=False, help_text=CODE_HELP)


class CodeForm(forms.Form):
    """One code: to verify a session, or to confirm a new authenticator."""

    code = CodeField()


class TraderTokenForm(forms.Form):
    """A new trader API token: a name to tell it apart, and the page's one-time key (a
    resubmitted form names the token it made instead of making another)."""

    name = forms.CharField(
        label="Token name",
        max_length=100,
        required=False,
        strip=True,
        help_text="What it is for, e.g. “Trading bot on my laptop”.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": "Trading bot"}),
    )
    creation_key = forms.CharField(max_length=64, required=False, widget=forms.HiddenInput)
