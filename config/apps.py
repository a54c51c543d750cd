from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class ProjectConfig(AppConfig):
    """The project package itself, so that its system checks are registered."""

    name = "config"
    verbose_name = "Carbon Cash Market"

    def ready(self):
        from config import checks  # noqa: F401


class BackOfficeAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with `config.admin.BackOfficeAdminSite` as `admin.site`."""

    default = False  # named in INSTALLED_APPS; `config` itself is ProjectConfig

    default_site = "config.admin.BackOfficeAdminSite"
