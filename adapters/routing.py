from django.urls import path

from adapters.consumers import ScanProgressConsumer

websocket_urlpatterns = [
    path("ws/scans/<int:pk>/", ScanProgressConsumer.as_asgi()),
]
