from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from django.views.generic import RedirectView

from lora_manager import views
from lora_manager.dashboard import views as dashboard_views

admin.autodiscover()  # not at start-up: lora_manager/lazy_admin.py
admin.site.site_header = "LoRA Manager administration"
admin.site.site_title = "LoRA Manager admin"

urlpatterns = [
    path("", dashboard_views.home, name="home"),
    path("favicon.ico", login_not_required(RedirectView.as_view(url="/static/icons/icon-192.png")), name="favicon"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("admin/rq/", include("django_rq.urls")),
    path("admin/", admin.site.urls),
    path("library/", include("adapters.urls")),
    path("recommendations/", include("recommendations.urls")),
    path("generate/", include("generation.urls")),
    path("status/", dashboard_views.status_page, name="system_status"),
    path("status.json", dashboard_views.status_json, name="status_json"),
    path("suggestions/accepted", dashboard_views.suggestion_accepted, name="suggestion_accepted"),
    path("api/", include("api.urls")),
    path("archive/", include("archive.urls")),
]
