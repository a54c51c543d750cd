"""The two-factor rules: who owes a second factor, codes, recovery codes, enrolment."""

import django_otp
import pytest
from django.test import RequestFactory
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import two_factor
from accounts.tests.helpers import code_for, enrol
from market.tests import factories


def request_for(user, client):
    """A request of `user`'s session in `client` (so the session is the real one)."""
    request = RequestFactory().get("/")
    request.user = user
    request.session = client.session
    return request


@pytest.mark.parametrize("required", [True, False])
def test_unverified_staff_owe_the_second_factor_only_where_it_is_required(
    db, client, settings, required
):
    settings.STAFF_2FA_REQUIRED = required
    staff, trader = factories.StaffFactory(), factories.UserFactory()
    assert two_factor.second_factor_missing(request_for(staff, client)) is required
    assert two_factor.second_factor_missing(request_for(trader, client)) is False


def test_a_verified_session_owes_nothing_until_its_device_is_removed(db, client, settings):
    settings.STAFF_2FA_REQUIRED = True
    staff = factories.StaffFactory()
    device, _ = enrol(staff)
    request = request_for(staff, client)
    django_otp.login(request, device)
    assert not two_factor.second_factor_missing(request)
    device.delete()  # the admin removed a lost phone
    assert two_factor.second_factor_missing(request)


def test_another_users_device_in_the_session_does_not_verify_it(db, client, settings):
    settings.STAFF_2FA_REQUIRED = True
    staff, other = factories.StaffFactory(), factories.StaffFactory()
    device, _ = enrol(other)
    request = request_for(staff, client)
    request.session[django_otp.DEVICE_ID_SESSION_KEY] = device.persistent_id
    assert two_factor.session_device(request) is None
    assert two_factor.second_factor_missing(request)


def test_codes_and_single_use_recovery_codes(db):
    user = factories.UserFactory()
    device, codes = enrol(user)
    assert len(set(codes)) == two_factor.RECOVERY_CODE_COUNT
    assert two_factor.verify_code(user=user, code=code_for(device)) == device
    assert two_factor.verify_code(user=user, code=code_for(device)) is None  # used once
    assert two_factor.verify_code(user=user, code="000000") is None
    recovery = two_factor.verify_code(user=user, code=f" {codes[0].upper()} ")
    assert recovery is not None and recovery.name == two_factor.RECOVERY
    assert two_factor.verify_code(user=user, code=codes[0]) is None  # spent
    assert two_factor.recovery_codes_left(user) == two_factor.RECOVERY_CODE_COUNT - 1
    assert two_factor.verify_code(user=user, code="") is None


def test_someone_elses_code_is_not_yours(db):
    alice, bob = factories.UserFactory(), factories.UserFactory()
    alice_device, alice_codes = enrol(alice)
    enrol(bob)
    assert two_factor.verify_code(user=bob, code=code_for(alice_device)) is None
    assert two_factor.verify_code(user=bob, code=alice_codes[0]) is None


def test_new_recovery_codes_replace_the_old_ones(db):
    user = factories.UserFactory()
    _, old = enrol(user)
    new = two_factor.issue_recovery_codes(user=user)
    assert not set(old) & set(new)
    assert two_factor.verify_code(user=user, code=old[0]) is None
    assert StaticToken.objects.filter(device__user=user).count() == len(new)


def test_wrong_codes_hold_the_device_back_for_a_while(db):
    """django-otp's throttle: after a wrong code even the right one waits (1 s, 2 s, 4 s…)."""
    user = factories.UserFactory()
    device, _ = enrol(user)
    assert two_factor.verify_code(user=user, code="000000") is None
    assert two_factor.verify_code(user=user, code=code_for(device)) is None


def test_enrolment_confirms_the_pending_device_with_its_first_code(db, client, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # the wrong code below holds nothing back
    user = factories.UserFactory()
    pending = two_factor.pending_authenticator(user=user)
    assert two_factor.pending_authenticator(user=user) == pending  # a reload keeps it
    assert not two_factor.has_authenticator(user)
    request = request_for(user, client)
    assert two_factor.enrol_authenticator(request=request, device=pending, code="000000") is None
    assert not two_factor.has_authenticator(user)
    enrolment = two_factor.enrol_authenticator(
        request=request, device=pending, code=code_for(pending)
    )
    assert enrolment is not None and len(enrolment.recovery_codes) == 10
    assert two_factor.has_authenticator(user)
    assert two_factor.session_device(request) == pending


def test_qr_code_and_typed_secret_carry_the_key(db):
    user = factories.UserFactory(username="alice")
    device = two_factor.pending_authenticator(user=user)
    svg = two_factor.qr_code_svg(device)
    assert svg.startswith("<svg") and "<script" not in svg
    secret = two_factor.secret_for_typing(device).replace(" ", "")
    assert f"secret={secret}" in device.config_url
    assert "issuer=Carbon%20Cash%20Market" in device.config_url


def test_turning_off_removes_every_device(db, client):
    user = factories.UserFactory()
    device, _ = enrol(user)
    request = request_for(user, client)
    django_otp.login(request, device)
    two_factor.turn_off(request=request)
    assert not TOTPDevice.objects.filter(user=user).exists()
    assert two_factor.recovery_codes_left(user) == 0
    assert two_factor.session_device(request) is None
