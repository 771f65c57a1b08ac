import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lora_manager.settings")
django_asgi_app = get_asgi_application()  # first: sets up Django before consumers import models

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from archive.uploads import limit_upload_size  # noqa: E402
from lora_manager.realtime.routing import websocket_urlpatterns  # noqa: E402
from lora_manager.upload_gate import upload_gate  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": upload_gate(limit_upload_size(django_asgi_app)),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
