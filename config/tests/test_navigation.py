"""The back office's navigation: staff see the pages they may open, the current one
marked; traders see none."""

import pytest
from django.contrib.auth.models import Permission

from market.tests import factories

pytestmark = pytest.mark.django_db


def nav_links(client, path: str) -> dict[str, bool]:
    """{title: active} of the back-office links the page's navigation shows."""
    response = client.get(path)
    assert response.status_code == 200
    return {link.title: link.active for link in response.context["backoffice_links"]}


def staff_with(*codenames):
    user = factories.StaffFactory(is_superuser=False)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


def test_staff_without_permissions_see_the_admin_only(client):
    client.force_login(staff_with())
    assert nav_links(client, "/") == {"Admin": False}
    html = client.get("/").content.decode()
    for path in (
        "/backoffice/liquidity/new/",
        "/backoffice/liquidity/",
        "/backoffice/liquidity/programs/",
        "/backoffice/market-makers/",
    ):
        assert f'href="{path}"' not in html
    assert 'href="/admin/"' in html


def test_staff_see_only_the_pages_their_permissions_open(client):
    client.force_login(staff_with("change_marketmakerclient"))
    assert nav_links(client, "/backoffice/market-makers/") == {
        "Market makers": True,
        "Admin": False,
    }
    home = client.get("/").content.decode()
    assert "Market makers" in home and "Create liquidity" not in home


def test_liquidity_staff_see_the_liquidity_pages_and_which_one_is_open(client):
    client.force_login(staff_with("manage_liquidity"))
    assert nav_links(client, "/backoffice/liquidity/new/") == {
        "Create liquidity": True,
        "Liquidity operations": False,
        "Programs": False,
        "Admin": False,
    }
    assert nav_links(client, "/backoffice/liquidity/") == {
        "Create liquidity": False,
        "Liquidity operations": True,
        "Programs": False,
        "Admin": False,
    }
    for path in ("/backoffice/liquidity/programs/", "/backoffice/liquidity/programs/new/"):
        assert nav_links(client, path) == {
            "Create liquidity": False,
            "Liquidity operations": False,
            "Programs": True,
            "Admin": False,
        }
    page = client.get("/backoffice/liquidity/").content.decode()
    assert 'href="/backoffice/liquidity/" aria-current="page"' in page


def test_superusers_see_every_page_and_traders_none(client, admin_user):
    client.force_login(admin_user)
    assert list(nav_links(client, "/")) == [
        "Create liquidity",
        "Liquidity operations",
        "Programs",
        "Market makers",
        "Admin",
    ]
    client.force_login(factories.trader().user)
    assert nav_links(client, "/") == {}
    assert "Back office" not in client.get("/").content.decode()


def test_the_programs_entry_counts_open_alerts(client):
    """A badge with the open alerts of every program (one count query); none without."""
    from django.utils import timezone

    from liquidity.models import LiquidityAlert, LiquidityProgram
    from market.models import Market

    user = staff_with("manage_liquidity")
    client.force_login(user)
    assert 'data-testid="nav-badge"' not in client.get("/").content.decode()
    for number in range(3):
        program = LiquidityProgram.objects.create(
            name=f"P{number}", market=Market.objects.get(code="CEA"), created_by=user
        )
        LiquidityAlert.objects.create(
            program=program, kind="refresh_failing", message="failing", created_at=timezone.now()
        )
    page = client.get("/").content.decode()
    assert 'data-testid="nav-badge" title="3 open alerts">3</span>' in page
    links = client.get("/").context["backoffice_links"]
    link = next(link for link in links if link.title == "Programs")
    assert link.badge == 3
