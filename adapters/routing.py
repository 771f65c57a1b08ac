from django.urls import path

from adapters.consumers import CivitaiProgressConsumer
from adapters.models import ScanRun
from lora_manager.realtime.consumers import RunProgressConsumer

websocket_urlpatterns = [
    path(
        "ws/scans/<int:pk>/",
        RunProgressConsumer.as_asgi(
            model=ScanRun,
            template="adapters/_scan_status.html",
            context_name="scan",
            permission="adapters.view_adapter",
            close_when_finished=True,  # the page's gallery refreshes when the socket closes (gallery.js)
        ),
    ),
    path("ws/civitai/<int:pk>/", CivitaiProgressConsumer.as_asgi()),
]
