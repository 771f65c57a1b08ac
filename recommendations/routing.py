from django.urls import path

from recommendations.consumers import EmbeddingProgressConsumer

websocket_urlpatterns = [
    path("ws/recommendations/embeddings/<int:pk>/", EmbeddingProgressConsumer.as_asgi()),
]
