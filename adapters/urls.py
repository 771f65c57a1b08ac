from django.urls import path

from adapters import views

app_name = "adapters"

urlpatterns = [
    path("", views.library, name="library"),
    path("scans/", views.start_scan, name="start_scan"),
    path("scans/<int:pk>/", views.scan_status, name="scan_status"),
    path("<int:pk>/preview/<str:size>", views.preview, name="preview"),
]
