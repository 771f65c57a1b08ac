"""The NinjaAPI instance: version 1 of the JSON API, its auth, its error shape and its routers."""

from __future__ import annotations

from django.conf import settings
from ninja import NinjaAPI, Swagger

from api import errors
from api.auth import AUTH
from api.routes_adapters import router as adapters_router
from api.routes_civitai import router as civitai_router
from api.routes_generation import router as generation_router
from api.routes_recipes import router as recipes_router
from api.routes_system import router as system_router


class LocalSwagger(Swagger):
    """The Swagger UI from our own static files (the CSP allows no CDN). ninja picks its CDN page unless "ninja"
    is in INSTALLED_APPS, which it is not (importing it cost every manage.py command; settings.NINJA_DIR)."""

    template_cdn = str(settings.NINJA_DIR / "templates" / "ninja" / "swagger.html")


api = NinjaAPI(
    title="LoRA Manager API",
    version="1",
    description=(
        "Authenticate with a personal token (`Authorization: Bearer lm_...`, made on /api/tokens/ or with "
        "`manage.py create_api_token USER`) or with the browser session (send X-CSRFToken on writes). "
        'Errors are JSON: `{"detail": "..."}`.'
    ),
    auth=AUTH,
    docs=LocalSwagger(),
    urls_namespace="api-v1",
)
errors.install(api)
api.add_router("", adapters_router)
api.add_router("", civitai_router)
api.add_router("", generation_router)
api.add_router("", recipes_router)
api.add_router("", system_router)
