from django.urls import path

from api import views
from api.main import api


def _public(patterns):
    """The API authenticates by itself (token or session): skip LoginRequiredMiddleware's redirect to the
    login page, which would answer a script with HTML instead of a JSON 401."""
    for pattern in patterns:
        if hasattr(pattern, "url_patterns"):
            _public(pattern.url_patterns)
        else:
            pattern.callback.login_required = False
    return patterns


v1 = api.urls
urlpatterns = [
    path("v1/", v1),
    path("tokens/", views.tokens_page, name="api_tokens"),
    path("tokens/<int:pk>/revoke", views.revoke, name="api_token_revoke"),
]
_public(v1[0])
