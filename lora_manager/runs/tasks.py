import time

from lora_manager.runs.jobs import tracked


@tracked
def heartbeat(seconds: float = 0.0, token: str = "") -> str:
    """A harmless job: proves a worker answers (check_worker) and shows up in the header."""
    if seconds:
        time.sleep(seconds)
    return token
