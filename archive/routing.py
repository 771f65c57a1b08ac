from django.urls import path

from archive.models import ArchiveRun
from archive.planning import ON_CONFLICT
from lora_manager.realtime.consumers import RunProgressConsumer

websocket_urlpatterns = [
    path(
        "ws/archive/runs/<int:pk>/",
        RunProgressConsumer.as_asgi(
            model=ArchiveRun,
            template="archive/_run.html",
            permission="archive.view_archiverun",
            extra_context={"on_conflict": ON_CONFLICT},
        ),
    ),
]
