from django.urls import path

from archive.consumers import ArchiveRunConsumer

websocket_urlpatterns = [
    path("ws/archive/runs/<int:pk>/", ArchiveRunConsumer.as_asgi()),
]
