from django.http import HttpRequest

from lora_manager.roles import role_of


def app(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    return {"user_role": role_of(user) if user is not None and user.is_authenticated else ""}
