"""The signed-in user's API tokens, mounted at /accounts/tokens/."""

from django.urls import path

from accounts import views_tokens as views

app_name = "accounts"

urlpatterns = [
    path("", views.api_tokens, name="api_tokens"),
    path("new/", views.api_token_create, name="api_token_create"),
    path("<int:pk>/revoke/", views.api_token_revoke, name="api_token_revoke"),
]
