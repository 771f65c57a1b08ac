"""Run a benchmark's measuring function in a freshly spawned interpreter, as a web process would be.

Kept free of Django imports at module level: a spawned child imports this module before Django is set up.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os


def _child(target: str, args: tuple, queue) -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lora_manager.settings")
    django.setup()
    module, name = target.rsplit(":", 1)
    try:
        queue.put(("ok", getattr(importlib.import_module(module), name)(*args)))
    except BaseException as exc:
        queue.put(("error", repr(exc)))
        raise


def in_fresh_process(target: str, *args):
    """Call ``module:function(*args)`` in a spawned process and return its result (it must be picklable)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(target, args, queue))
    process.start()
    status, result = queue.get()
    process.join()
    if status != "ok":
        raise RuntimeError(f"{target} failed in its process: {result}")
    return result
