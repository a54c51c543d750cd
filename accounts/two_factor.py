"""Two-factor sign-in (django-otp): who needs a second factor, enrolment, recovery codes.

A user's second factor is a TOTP authenticator app (`TOTPDevice` named `AUTHENTICATOR`),
enrolled by scanning a QR code, plus ten single-use recovery codes (a `StaticDevice`
named `RECOVERY`). A session is *verified* once it has passed one of them
(`django_otp.login` records the device in the session).

The rules, in one place:
- Anyone with a confirmed authenticator passes it at every sign-in (the login form asks
  for the code), staff and traders alike; traders may enrol of their own accord.
- Where `settings.STAFF_2FA_REQUIRED` (production: the demo is off), staff must also have
  enrolled and verified the session before the admin, the back office, the API by session
  and token creation (`second_factor_missing`); under the demo a password alone will do.
"""

from base64 import b32encode
from dataclasses import dataclass
from urllib.parse import urlencode

import django_otp
import segno
from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

AUTHENTICATOR = "Authenticator app"
RECOVERY = "Recovery codes"
RECOVERY_CODE_COUNT = 10


def staff_2fa_required() -> bool:
    """Whether staff must pass a second factor (off under the demo, see settings)."""
    return settings.STAFF_2FA_REQUIRED


def has_authenticator(user) -> bool:
    """Whether `user` has enrolled an authenticator app (so every sign-in asks for it)."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def session_device(request) -> Device | None:
    """The device this session was verified with, if it still exists and is the user's."""
    persistent_id = request.session.get(django_otp.DEVICE_ID_SESSION_KEY)
    if not persistent_id:
        return None
    device = Device.from_persistent_id(persistent_id)
    if device is None or device.user_id != request.user.pk or not device.confirmed:
        return None
    return device


def second_factor_missing(request) -> bool:
    """Whether the signed-in user must still pass a second factor before staff-only
    ground (admin, back office, API by session): staff, where 2FA is required, whose
    session is not verified. Costs no query when 2FA is not required."""
    user = request.user
    if not (user.is_authenticated and user.is_staff and staff_2fa_required()):
        return False
    return session_device(request) is None


def verify_code(*, user, code: str) -> Device | None:
    """The device of `user` that accepts `code` (a TOTP code or an unused recovery code,
    which is then spent), else None. django-otp throttles each device after failures."""
    code = "".join(code.split()).lower()
    if not code:
        return None
    # Six digits go to the authenticator, anything else to the recovery codes, so a
    # recovery code never counts as a failure against the authenticator (and back).
    model = TOTPDevice if code.isdigit() and len(code) == 6 else StaticDevice
    with transaction.atomic():
        for device in model.objects.select_for_update().filter(user=user, confirmed=True):
            if device.verify_token(code):
                return device
    return None


def code_required_at_login(user) -> bool:
    """Whether the login form must have a code for `user`: any enrolled user."""
    return has_authenticator(user)


def pending_authenticator(*, user) -> TOTPDevice:
    """The authenticator being enrolled: the user's unconfirmed one, or a new one (so a
    reload of the QR page keeps the code already scanned)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=AUTHENTICATOR, confirmed=False)
    return device


@dataclass(frozen=True)
class Enrolment:
    device: TOTPDevice
    recovery_codes: list[str]


def enrol_authenticator(*, request, device: TOTPDevice, code: str) -> Enrolment | None:
    """Confirm the pending `device` with the first `code` it shows: the user's other
    authenticators go, fresh recovery codes are issued (shown once) and the session is
    verified. None if the code is wrong (nothing changes)."""
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().get(pk=device.pk, user=request.user)
        if not device.verify_token("".join(code.split())):
            return None
        TOTPDevice.objects.filter(user=request.user).exclude(pk=device.pk).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        codes = issue_recovery_codes(user=request.user)
    django_otp.login(request, device)
    return Enrolment(device=device, recovery_codes=codes)


def issue_recovery_codes(*, user) -> list[str]:
    """Replace the user's recovery codes with `RECOVERY_CODE_COUNT` new single-use ones;
    returns them (only their rows are kept, shown to the user once)."""
    with transaction.atomic():
        StaticDevice.objects.filter(user=user).delete()
        device = StaticDevice.objects.create(user=user, name=RECOVERY, confirmed=True)
        codes = [StaticToken.random_token() for _ in range(RECOVERY_CODE_COUNT)]
        StaticToken.objects.bulk_create(StaticToken(device=device, token=c) for c in codes)
    return codes


def recovery_codes_left(user) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def may_turn_off(user) -> bool:
    """Traders (and staff where 2FA is not required) may turn their second factor off."""
    return not (user.is_staff and staff_2fa_required())


def turn_off(*, request) -> None:
    """Remove every device of the signed-in user; the session is no longer verified."""
    with transaction.atomic():
        TOTPDevice.objects.filter(user=request.user).delete()
        StaticDevice.objects.filter(user=request.user).delete()
    request.session.pop(django_otp.DEVICE_ID_SESSION_KEY, None)


def qr_code_svg(device: TOTPDevice) -> str:
    """The device's `otpauth://` URL as an inline SVG QR code (no image request, no
    script: the Content-Security-Policy stays as it is)."""
    return segno.make(device.config_url, error="m").svg_inline(
        scale=5, border=2, dark="#0f172a", light="#ffffff", svgclass="h-auto w-56"
    )


def secret_for_typing(device: TOTPDevice) -> str:
    """The secret in base32, in groups of four, for apps that cannot scan."""
    secret = b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def second_factor_url(user, next_url: str) -> str:
    """Where a user who owes the second factor goes: the code, or the enrolment if they
    have no authenticator yet; then on to `next_url` (a path of this site)."""
    name = "two_factor:verify" if has_authenticator(user) else "two_factor:setup"
    return f"{reverse(name)}?{urlencode({'next': next_url})}"
