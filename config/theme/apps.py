from django.apps import AppConfig


class ThemeConfig(AppConfig):
    name = "config.theme"
    label = "theme"
