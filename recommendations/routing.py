from django.urls import path

from lora_manager.realtime.consumers import RunProgressConsumer
from recommendations.models import EmbeddingRun

websocket_urlpatterns = [
    path(
        "ws/recommendations/embeddings/<int:pk>/",
        RunProgressConsumer.as_asgi(
            model=EmbeddingRun, template="recommendations/_embed_progress.html", permission="adapters.view_adapter"
        ),
    ),
]
