"""Browser tests: Debian's chromium driven by Playwright against a live daphne and RQ worker.

The app runs in subprocesses pointed at the test database, so tests that create data use
``transactional_db`` (committed rows). A failing test leaves a screenshot in test-artifacts/.

Two shared pieces every journey uses:

- ``scanned_library``: a library of 300+ real ``.safetensors`` files with every sidecar style, several base
  models and network types, nested folders and a few broken files (tests/factories/library.py), put into
  the catalog BY THE SCANNER. The files are written and scanned once per session; each test gets the
  scanner's rows back (the transactional tests flush the database after every test).
- the page watcher: every page made by the ``page`` fixture or ``new_page`` records console errors,
  uncaught exceptions, failed requests and HTTP error responses, and the test FAILS if any occurred.
  A test that provokes an error on purpose says so with ``allow_problem(page, pattern, reason)``; nothing
  is allowed silently.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import django_rq
import pytest
from django.conf import settings
from django.db import connection

from tests.factories.library import Library, write_library

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
def live_app_env() -> dict[str, str]:
    """Extra environment for the module's live app (a module overrides this, e.g. to configure library dirs)."""
    return {}


@pytest.fixture(scope="module")
def live_app_starts_worker() -> bool:
    """Whether live_app starts an RQ worker (a module that starts its own, as ``make run`` does, says no)."""
    return True


def live_env(sdnext_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment the live app's processes run with: the test database, Redis and data directory."""
    env = dict(os.environ)
    env.update(
        {
            "LORA_MANAGER_DATABASE_URL": database_url(),
            "LORA_MANAGER_REDIS_URL": settings.REDIS_URL,
            "LORA_MANAGER_DATA_DIR": str(settings.DATA_DIR),
            "LORA_MANAGER_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "LORA_MANAGER_DEBUG": "false",
            "LORA_MANAGER_RESCAN_INTERVAL_MINUTES": "0",
            "LORA_MANAGER_SDNEXT_URL": sdnext_url,
            "DJANGO_SETTINGS_MODULE": "lora_manager.settings",
        }
    )
    env.update(extra or {})
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    return env


@pytest.fixture(scope="module")
def live_app(
    django_db_setup,
    django_db_blocker,
    tmp_path_factory,
    sdnext_standin,
    civitai_standin,
    live_app_env,
    live_app_starts_worker,
):
    """daphne + one RQ worker in subprocesses, sharing the test database and Redis.

    Module-scoped: the worker would otherwise take jobs that later, non-browser tests queue."""
    port = free_port()
    civitai = {"LORA_MANAGER_CIVITAI_URL": civitai_standin.url, "LORA_MANAGER_CIVITAI_MIN_INTERVAL": "0.05"}
    env = live_env(sdnext_standin.url, {**civitai, **live_app_env})
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
    ]
    if live_app_starts_worker:
        processes.append(
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
            )
        )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline or processes[0].poll() is not None:
                raise RuntimeError(f"daphne did not start: {(logs / 'daphne.log').read_text()}") from None
            time.sleep(0.2)
    if live_app_starts_worker:
        wait_for_worker(processes[1], logs / "worker.log")
    yield f"http://127.0.0.1:{port}"
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_for_worker(process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    """Until the RQ worker ``process`` has registered: a loaded machine takes long to import the worker, and a
    test whose first job waited on it (Civitai's lookup, 30 s) failed before the worker had started."""
    from rq import Worker

    connection = django_rq.get_connection("default")
    deadline = time.monotonic() + timeout
    while not any(worker.pid == process.pid for worker in Worker.all(connection=connection)):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the RQ worker did not start: {log.read_text()[-4000:]}")
        time.sleep(0.2)


@pytest.fixture
def browser():
    """One Chromium per test: Playwright's sync API keeps an event loop running while it is open,
    which would break later tests that run their own (asyncio.run)."""
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.fail(f"Browser tests need Debian's chromium at {CHROMIUM}: apt-get install chromium")
    from playwright.sync_api import expect, sync_playwright

    # Assertions wait as long as actions (expect's own default is 5 s): a gallery refresh after a bulk undo
    # on the 300-adapter library took just over 5 s on a loaded 2-core machine.
    expect.set_options(timeout=10_000)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


# --- the page watcher ------------------------------------------------------------------------------------

WATCHERS = pytest.StashKey[list]()


class PageProblems:
    """Console errors, uncaught page exceptions, failed requests and HTTP error responses of one page."""

    def __init__(self, page) -> None:
        self.page = page
        self.problems: list[str] = []
        self.allowed: list[tuple[re.Pattern, str]] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"uncaught exception: {error}"))
        page.on("requestfailed", self._request_failed)
        page.on("response", self._response)

    def _console(self, message) -> None:
        if message.type == "error":
            where = message.location.get("url", "")
            self.problems.append(f"console error: {message.text} ({where}, on {self.page.url})")

    def _request_failed(self, request) -> None:
        failure = request.failure or ""
        # ERR_ABORTED is the browser cancelling a request itself: the page navigated away, htmx dropped an
        # older request for a newer one, or a swap removed an <img> still loading. It is not an app error;
        # a server that fails answers with an HTTP error status (caught in _response) or another net:: error
        # (empty response, connection refused), which are all reported.
        if "ERR_ABORTED" in failure:
            return
        self.problems.append(f"request failed: {request.method} {request.url} ({failure})")

    def _response(self, response) -> None:
        if response.status >= 400:
            self.problems.append(f"HTTP {response.status}: {response.request.method} {response.url}")

    def allow(self, pattern: str, reason: str) -> None:
        if not reason.strip():
            raise ValueError("say why this problem is expected")
        self.allowed.append((re.compile(pattern), reason))

    def unexpected(self) -> list[str]:
        return [p for p in self.problems if not any(rx.search(p) for rx, _ in self.allowed)]


def watch(page, request) -> PageProblems:
    """Record ``page``'s problems; the running test fails on any (see pytest_runtest_call below)."""
    problems = PageProblems(page)
    page._lora_manager_problems = problems
    request.node.stash.setdefault(WATCHERS, []).append(problems)
    return problems


def allow_problem(page, pattern: str, reason: str) -> None:
    """Let one expected problem (a regex over the recorded line, e.g. ``r"HTTP 409: POST .*/scan/"``) pass."""
    page._lora_manager_problems.allow(pattern, reason)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield  # a test that failed already keeps its own failure
    found = [problem for watcher in item.stash.get(WATCHERS, []) for problem in watcher.unexpected()]
    if found:
        raise AssertionError("the page reported problems:\n  " + "\n  ".join(dict.fromkeys(found)))
    return result


def _screenshot_on_failure(page, request) -> None:
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-failure.png"), full_page=True)


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    watch(page, request)
    yield page
    _screenshot_on_failure(page, request)
    context.close()


@pytest.fixture
def new_page(browser, request):
    """``new_page(**context_options)``: a watched page in its own context (dark theme, phone size, ...)."""
    made = []

    def make(**options):
        options.setdefault("viewport", {"width": 1280, "height": 900})
        context = browser.new_context(**options)
        page = context.new_page()
        page.set_default_timeout(10_000)
        watch(page, request)
        made.append((context, page))
        return page

    yield make
    for context, page in made:
        _screenshot_on_failure(page, request)
        context.close()


# --- the shared library -------------------------------------------------------------------------------------

SNAPSHOT_MODELS = ("adapters.LibraryRoot", "adapters.Tag", "adapters.Adapter", "adapters.AdapterFile")


@pytest.fixture(scope="session")
def library_files(tmp_path_factory) -> Library:
    """The generated files (300 readable LoRAs, a text "preview", three broken files), written once."""
    return write_library(tmp_path_factory.mktemp("library") / "Lora")


@pytest.fixture(scope="session")
def _library_snapshot(django_db_setup, django_db_blocker, library_files):
    """Scan the files once with the real scanner (scan, hash, thumbnails) and keep the rows it wrote."""
    from django.apps import apps

    from adapters import scan_runs
    from adapters.models import Adapter, ScanRun
    from recommendations.models import EmbeddingRun

    with django_db_blocker.unblock():
        run = scan_runs.execute(ScanRun.objects.create(roots=[str(library_files.root)]))
        assert run.status == ScanRun.Status.SUCCEEDED, run.message
        snapshot = {label: list(apps.get_model(label).objects.all()) for label in SNAPSHOT_MODELS}
        snapshot["tag links"] = list(Adapter.tags.through.objects.all())
        snapshot["scan run"] = [run]
        for label in reversed(SNAPSHOT_MODELS):
            apps.get_model(label).objects.all().delete()
        ScanRun.objects.all().delete()
        EmbeddingRun.objects.all().delete()  # the scan asked for one; each test's worker starts clean
    import django_rq

    django_rq.get_connection("default").flushdb()
    return snapshot


@pytest.fixture
def scanned_library(_library_snapshot, library_files, transactional_db) -> Library:
    """The shared library in the catalog, as the scanner left it (rows restored for this test)."""
    from django.apps import apps

    from adapters.models import Adapter, ScanRun

    for label in SNAPSHOT_MODELS:
        apps.get_model(label).objects.bulk_create(_library_snapshot[label])
    Adapter.tags.through.objects.bulk_create(_library_snapshot["tag links"])
    ScanRun.objects.bulk_create(_library_snapshot["scan run"])
    return library_files


def login(page, live_app: str, username: str, password: str) -> None:
    page.goto(f"{live_app}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_app}/")  # the dashboard is the home page
    page.goto(f"{live_app}/library/")


@pytest.fixture
def idle_queues_after(redis_conn):
    """Let the live worker finish the background work a test caused (re-embedding after edits, scans)
    before the next module starts."""
    yield
    deadline = time.monotonic() + 180
    for name in ("default", "embeddings"):
        queue = django_rq.get_queue(name)
        while queue.count or queue.started_job_registry.count:
            if time.monotonic() > deadline:
                pytest.fail(f"background jobs still pending on {name!r} after 3 minutes")
            time.sleep(0.5)
