"""Browser tests: Debian's chromium driven by Playwright against a live daphne and RQ worker.

The app runs in subprocesses pointed at the test database, so tests that create data use
``transactional_db`` (committed rows). A failing test leaves a screenshot in test-artifacts/.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop here

BASE_DIR = Path(__file__).resolve().parents[2]
ARTIFACTS = BASE_DIR / "test-artifacts"
CHROMIUM = os.environ.get("LORA_MANAGER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def database_url() -> str:
    config = connection.settings_dict
    if config["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{config['NAME']}"
    auth = quote(config["USER"] or "")
    if config.get("PASSWORD"):
        auth += ":" + quote(config["PASSWORD"])
    return f"postgres://{auth}@{config['HOST'] or 'localhost'}:{config['PORT'] or 5432}/{config['NAME']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def sdnext_standin(tmp_path_factory):
    """The SD.Next STAND-IN the live worker generates with; tests put LoRA files into its lora_dir."""
    from tests.standins.sdnext import SDNextStandIn

    standin = SDNextStandIn(lora_dir=tmp_path_factory.mktemp("sdnext-loras"), step_delay=0.1).start()
    yield standin
    standin.stop()


@pytest.fixture(scope="module")
def civitai_standin():
    """The Civitai STAND-IN the live app looks adapters up on; tests publish LoRAs on it (``add_lora``)."""
    from tests.standins.civitai import CivitaiStandIn

    standin = CivitaiStandIn().start()
    yield standin
    standin.stop()


@pytest.fixture(scope="module")
def live_app(django_db_setup, django_db_blocker, tmp_path_factory, sdnext_standin, civitai_standin):
    """daphne + one RQ worker in subprocesses, sharing the test database and Redis.

    Module-scoped: the worker would otherwise take jobs that later, non-browser tests queue."""
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "LORA_MANAGER_DATABASE_URL": database_url(),
            "LORA_MANAGER_REDIS_URL": settings.REDIS_URL,
            "LORA_MANAGER_DATA_DIR": str(settings.DATA_DIR),
            "LORA_MANAGER_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "LORA_MANAGER_DEBUG": "false",
            "LORA_MANAGER_RESCAN_INTERVAL_MINUTES": "0",
            "LORA_MANAGER_SDNEXT_URL": sdnext_standin.url,
            "LORA_MANAGER_CIVITAI_URL": civitai_standin.url,
            "LORA_MANAGER_CIVITAI_MIN_INTERVAL": "0.05",
            "DJANGO_SETTINGS_MODULE": "lora_manager.settings",
        }
    )
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    logs = tmp_path_factory.mktemp("live-app")
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=BASE_DIR, env=env, check=True
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "lora_manager.asgi:application"],
            cwd=BASE_DIR,
            env=env,
            stdout=(logs / "daphne.log").open("w"),
            stderr=subprocess.STDOUT,
        ),
        subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "rqworker",
                *settings.RQ_QUEUES,  # default, embeddings and generation-<backend>
                "--worker-class",
                "rq.worker.SimpleWorker",
            ],
            cwd=BASE_DIR,
            env=env,
            stdout=(logs / "worker.log").open("w"),
            stderr=subprocess.STDOUT,
        ),
    ]
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline or processes[0].poll() is not None:
                raise RuntimeError(f"daphne did not start: {(logs / 'daphne.log').read_text()}") from None
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}"
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def browser():
    """One Chromium per test: Playwright's sync API keeps an event loop running while it is open,
    which would break later tests that run their own (asyncio.run)."""
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.fail(f"Browser tests need Debian's chromium at {CHROMIUM}: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-failure.png"), full_page=True)
    context.close()


def login(page, live_app: str, username: str, password: str) -> None:
    page.goto(f"{live_app}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_app}/")  # the dashboard is the home page
    page.goto(f"{live_app}/library/")
