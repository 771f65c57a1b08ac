from django.urls import path

from generation.consumers import JobConsumer, JobsConsumer

websocket_urlpatterns = [
    path("ws/generation/jobs/", JobsConsumer.as_asgi()),
    path("ws/generation/jobs/<int:pk>/", JobConsumer.as_asgi()),
]
