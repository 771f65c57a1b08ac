from django.urls import path

from adapters.routing import websocket_urlpatterns as adapter_patterns
from lora_manager.consumers import ActivityConsumer

websocket_urlpatterns = [
    path("ws/activity/", ActivityConsumer.as_asgi()),
    *adapter_patterns,
]
