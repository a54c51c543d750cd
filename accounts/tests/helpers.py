"""What a phone's authenticator app does, for tests: the code a device shows now."""

import time

from django_otp.oath import TOTP

from accounts import two_factor


def code_for(device, *, steps_ahead: int = 0) -> str:
    """The 6-digit code `device` shows, `steps_ahead` 30-second steps from now (a code is
    accepted once, so a second sign-in in the same step uses the next one)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():06d}"


def enrol(user) -> tuple[object, list[str]]:
    """`user` with a confirmed authenticator and recovery codes, as the setup page leaves
    them; returns (device, recovery codes)."""
    device = two_factor.pending_authenticator(user=user)
    device.confirmed = True
    device.save()
    return device, two_factor.issue_recovery_codes(user=user)


def login_with_code(client, user, device, *, password="password", steps_ahead=0, path=None):
    """Sign in through the login form (the site's, or `path`) with the current code."""
    return client.post(
        path or "/accounts/login/",
        {
            "username": user.username,
            "password": password,
            "code": code_for(device, steps_ahead=steps_ahead),
        },
    )
