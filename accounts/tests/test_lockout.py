"""The sign-in lockout (django-axes): five wrong passwords lock that username from that
address, on the site's login and the admin's, with the message on the login page."""

import pytest
from django.test import Client

from market.tests import factories

LOCKED = "Too many failed sign-ins for this username"
WRONG = "Note that both fields may be case-sensitive."


def attempt(client, username, password, path="/accounts/login/"):
    return client.post(path, {"username": username, "password": password})


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_the_fifth_wrong_password_locks_that_login(db, settings, path):
    assert settings.AXES_FAILURE_LIMIT == 5  # the documented default
    user = factories.StaffFactory()
    client = Client()
    for _ in range(4):
        response = attempt(client, user.username, "wrong", path)
        assert response.status_code == 200 and LOCKED not in response.content.decode()
        assert WRONG in response.content.decode()
    fifth = attempt(client, user.username, "wrong", path)
    assert fifth.status_code == 429
    assert LOCKED in fifth.content.decode() and "15 minutes" in fifth.content.decode()
    assert fifth["Retry-After"] == "900"
    # Even the right password is refused while it lasts, and no session is opened.
    right = attempt(client, user.username, "password", path)
    assert right.status_code == 429 and LOCKED in right.content.decode()
    assert "_auth_user_id" not in client.session
    # The page is the login page itself, with its form.
    assert 'name="password"' in right.content.decode()


def test_other_users_from_the_same_address_still_sign_in(db):
    victim, colleague = factories.UserFactory(), factories.UserFactory()
    client = Client()
    for _ in range(6):
        attempt(client, victim.username, "wrong")
    assert attempt(client, victim.username, "password").status_code == 429
    other = Client()
    assert attempt(other, colleague.username, "password").status_code == 302


def test_the_same_username_from_another_address_still_signs_in(db):
    user = factories.UserFactory()
    for _ in range(5):
        Client(REMOTE_ADDR="203.0.113.7").post(
            "/accounts/login/", {"username": user.username, "password": "wrong"}
        )
    locked = Client(REMOTE_ADDR="203.0.113.7").post(
        "/accounts/login/", {"username": user.username, "password": "password"}
    )
    assert locked.status_code == 429
    elsewhere = Client(REMOTE_ADDR="198.51.100.2").post(
        "/accounts/login/", {"username": user.username, "password": "password"}
    )
    assert elsewhere.status_code == 302


def test_a_successful_sign_in_resets_the_count(db):
    user = factories.UserFactory()
    client = Client()
    for _ in range(4):
        attempt(client, user.username, "wrong")
    assert attempt(client, user.username, "password").status_code == 302
    fresh = Client()
    for _ in range(4):
        assert attempt(fresh, user.username, "wrong").status_code == 200


def test_the_lockout_ends_after_the_cooloff(db, settings):
    from datetime import timedelta

    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    user = factories.UserFactory()
    client = Client()
    for _ in range(5):
        attempt(client, user.username, "wrong")
    from axes.models import AccessAttempt

    AccessAttempt.objects.filter(username=user.username).update(
        attempt_time=AccessAttempt.objects.get(username=user.username).attempt_time
        - timedelta(minutes=16)
    )
    assert attempt(client, user.username, "password").status_code == 302


def test_axes_reset_username_lifts_it(db):
    from django.core.management import call_command

    user = factories.UserFactory()
    client = Client()
    for _ in range(5):
        attempt(client, user.username, "wrong")
    call_command("axes_reset_username", user.username)
    assert attempt(client, user.username, "password").status_code == 302
