from django.urls import path

from adapters.models import ScanRun
from lora_manager.consumers import RunProgressConsumer

websocket_urlpatterns = [
    path(
        "ws/scans/<int:pk>/",
        RunProgressConsumer.as_asgi(
            model=ScanRun,
            template="adapters/_scan_progress.html",
            context_name="scan",
            permission="adapters.view_adapter",
        ),
    ),
]
