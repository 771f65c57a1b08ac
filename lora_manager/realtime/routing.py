from django.urls import path

from adapters.routing import websocket_urlpatterns as adapter_patterns
from archive.routing import websocket_urlpatterns as archive_patterns
from generation.routing import websocket_urlpatterns as generation_patterns
from lora_manager.realtime.consumers import ActivityConsumer
from recommendations.routing import websocket_urlpatterns as recommendation_patterns

websocket_urlpatterns = [
    path("ws/activity/", ActivityConsumer.as_asgi()),
    *adapter_patterns,
    *generation_patterns,
    *recommendation_patterns,
    *archive_patterns,
]
