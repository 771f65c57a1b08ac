from django.urls import path

from adapters.consumers import CivitaiProgressConsumer, ScanProgressConsumer

websocket_urlpatterns = [
    path("ws/scans/<int:pk>/", ScanProgressConsumer.as_asgi()),
    path("ws/civitai/<int:pk>/", CivitaiProgressConsumer.as_asgi()),
]
