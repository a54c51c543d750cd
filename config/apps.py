from django.apps import AppConfig


class ProjectConfig(AppConfig):
    """The project package itself, so that its system checks are registered."""

    name = "config"
    verbose_name = "Carbon Cash Market"

    def ready(self):
        from config import checks  # noqa: F401
