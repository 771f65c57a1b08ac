from django.urls import path

from generation.consumers import JobConsumer, JobsConsumer, QueueConsumer, SweepConsumer

websocket_urlpatterns = [
    path("ws/generation/jobs/", JobsConsumer.as_asgi()),
    path("ws/generation/queue/", QueueConsumer.as_asgi()),
    path("ws/generation/jobs/<int:pk>/", JobConsumer.as_asgi()),
    path("ws/generation/sweeps/<int:pk>/", SweepConsumer.as_asgi()),
]
