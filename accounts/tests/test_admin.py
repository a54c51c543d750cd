"""API tokens in the admin: listed without the secret, not added or deleted there, and
revoked by an action with an audit ticket."""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from accounts.models import ApiToken
from market.models import TicketLog
from market.tests import factories

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/accounts/apitoken/"


@pytest.fixture
def admin_client_():
    client = Client()
    client.force_login(factories.StaffFactory(username="tok-root"))
    return client


def test_the_changelist_shows_prefix_user_and_dates_never_the_secret(
    admin_client_, django_assert_max_num_queries
):
    bot = factories.UserFactory(username="tok-bot", is_staff=True)
    row, secret = ApiToken.issue(user=bot, name="Nightly report")
    with django_assert_max_num_queries(12):
        response = admin_client_.get(CHANGELIST)
    html = response.content.decode()
    assert response.status_code == 200
    assert f"{row.prefix}…" in html and "Nightly report" in html and "tok-bot" in html
    assert secret not in html and row.key_hash not in html
    assert "Revoke selected API tokens" in html
    assert f"{CHANGELIST}add/" not in html  # issued by create_api_token only


def test_the_revoke_action_revokes_with_a_ticket_and_history(admin_client_):
    rows = [ApiToken.issue(user=factories.UserFactory(username=f"tok-u{i}"))[0] for i in (1, 2)]
    response = admin_client_.post(
        CHANGELIST,
        {"action": "revoke_selected", "_selected_action": [row.pk for row in rows]},
        follow=True,
    )
    html = response.content.decode()
    assert "Revoked 2 API token(s)" in html
    assert ApiToken.objects.filter(revoked_at__isnull=True).count() == 0
    assert TicketLog.objects.filter(action_type="API_TOKEN_REVOKED").count() == 2
    history = admin_client_.get(f"{CHANGELIST}{rows[0].pk}/history/").content.decode()
    assert "Revoked (TKT-" in history

    again = admin_client_.post(
        CHANGELIST, {"action": "revoke_selected", "_selected_action": [rows[0].pk]}, follow=True
    )
    assert "were revoked already" in again.content.decode()
    assert TicketLog.objects.filter(action_type="API_TOKEN_REVOKED").count() == 2


def test_the_change_page_is_read_only_and_there_is_no_delete(admin_client_):
    row, _ = ApiToken.issue(user=factories.UserFactory(username="tok-ro"))
    page = admin_client_.get(f"{CHANGELIST}{row.pk}/change/").content.decode()
    assert 'name="name"' not in page and 'name="revoked_at"' not in page
    assert admin_client_.get(f"{CHANGELIST}{row.pk}/delete/").status_code == 403
    assert admin_client_.get(f"{CHANGELIST}add/").status_code == 403


def test_staff_without_the_permission_cannot_see_or_revoke_tokens():
    row, _ = ApiToken.issue(user=factories.UserFactory(username="tok-victim"))
    staff = factories.UserFactory(username="tok-staff", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert client.get(CHANGELIST).status_code == 403
    refused = client.post(CHANGELIST, {"action": "revoke_selected", "_selected_action": [row.pk]})
    assert refused.status_code == 403
    row.refresh_from_db()
    assert row.revoked_at is None
    # With view permission only, the list shows but the action is not offered.
    staff.user_permissions.add(Permission.objects.get(codename="view_apitoken"))
    html = client.get(CHANGELIST).content.decode()
    assert "Revoke selected API tokens" not in html
