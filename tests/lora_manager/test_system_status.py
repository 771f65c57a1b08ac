"""The status page and its staff JSON, with everything up and with Redis or SD.Next down; check_worker."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import django_rq
import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from lora_manager import system_status
from tests.conftest import InProcessWorker
from tests.standins.sdnext import SDNextStandIn

pytestmark = pytest.mark.django_db

DEAD_URL = "http://127.0.0.1:9"  # discard port: nothing listens


@pytest.fixture
def standin(settings, tmp_path):
    with SDNextStandIn(lora_dir=tmp_path) as server:  # the SD.Next STAND-IN
        settings.SDNEXT_BACKENDS = {"default": {"URL": server.url, "USER": "", "PASSWORD": ""}}
        yield server


def test_everything_up(standin, redis_conn, settings):
    status = system_status.collect()
    assert status["database"]["ok"] and status["database"]["engine"] in ("sqlite", "postgresql")
    assert status["redis"]["ok"] and status["redis"]["used_memory_bytes"] > 0
    queues = {q["name"]: q for q in status["rq"]["queues"]}
    assert set(queues) == set(settings.RQ_QUEUES) and queues["default"]["failed"] == 0
    assert status["rq"]["ok"] is False and "No RQ worker" in status["rq"]["error"]  # none started here
    backend = status["sdnext"][0]
    assert backend["ok"] and backend["busy"] is False and "stand-in" in str(backend["version"])
    assert backend["checkpoint"]
    assert status["gpu"]["summary"].startswith("CPU only") or status["gpu"]["cuda"]
    assert {d["label"] for d in status["disks"]} >= {"data", "backups"}
    assert all(d["free_bytes"] > 0 for d in status["disks"] if d["ok"])
    assert "rescan" in status["schedule"] and "embeddings" in status


def test_an_idle_sdnext_that_still_reports_its_last_progress_is_idle(standin, client, viewer, admin_user, redis_conn):
    standin.engine.state.idle_progress = 1.0  # as real SD.Next does after a job (state.job is "")
    backend = system_status.backend_status("default")
    assert backend["busy"] is False and backend["progress"] == 1.0
    client.force_login(admin_user)  # the details are staff-only (issue 14)
    page = client.get("/status/").content.decode()
    assert "Busy" not in page and '<p class="backend-state">Idle</p>' in page
    viewer_client = Client()
    viewer_client.force_login(viewer)
    assert ">busy<" not in viewer_client.get("/status/").content.decode()
    standin.engine.state.begin("txt2img", 1, 0, 20, 1)
    assert system_status.backend_status("default")["busy"] is True
    assert "Busy: txt2img" in client.get("/status/").content.decode()
    assert ">busy<" in viewer_client.get("/status/").content.decode()  # the state, without the job
    standin.engine.state.end()


def test_schedule_dates_read_as_human_dates(standin, client, admin_user, redis_conn):
    from adapters.models import ScanRun

    ScanRun.objects.create(status="succeeded", finished_at=timezone.now() - timedelta(minutes=5))
    client.force_login(admin_user)  # the schedule is a staff detail (issue 14)
    page = client.get("/status/").content.decode()
    rescan = page[page.index('id="status-rescan"') :].split("</p>", 1)[0]
    shown = re.sub(r"<[^>]+>", "", rescan)
    assert re.search(r"last (today|yesterday) \d\d:\d\d \(succeeded\)", shown), shown
    assert not re.search(r"\d{4}-\d\d-\d\dT", shown)  # no raw ISO timestamp


def test_redis_down(settings, standin):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    status = system_status.collect()
    assert status["ok"] is False and {"redis", "rq"} <= set(status["failing"])
    assert "Redis unreachable at redis://127.0.0.1:1/0" in status["redis"]["error"]
    assert "cannot read the schedule" in status["schedule"]["error"]
    assert status["database"]["ok"]  # the rest still answers


def test_sdnext_down(settings, redis_conn):
    settings.SDNEXT_BACKENDS = {
        "default": {"URL": DEAD_URL, "USER": "", "PASSWORD": ""},
        "spare": {"URL": "", "USER": "", "PASSWORD": ""},
    }
    status = system_status.collect()
    down, spare = status["sdnext"]
    assert down["ok"] is False and down["configured"] and down["error"]
    assert spare["configured"] is False and "no URL" in spare["error"]
    assert "sdnext:default" in status["failing"] and "sdnext:spare" not in status["failing"]


def test_status_page_and_json(client, viewer, admin_user, settings, redis_conn):
    settings.SDNEXT_BACKENDS = {"default": {"URL": DEAD_URL, "USER": "", "PASSWORD": ""}}
    client.force_login(viewer)
    page = client.get("/status/")
    assert page.status_code == 200
    body = page.content.decode()
    assert 'id="status-backend-default"' in body and "Needs attention" in body and "SD.Next" in body
    assert client.get("/status.json").status_code == 403
    fragment = client.get("/status/", headers={"HX-Request": "true"}).content.decode()
    assert 'id="system-status"' in fragment and "<html" not in fragment
    client.force_login(admin_user)
    answer = client.get("/status.json")
    assert answer.status_code == 503 and "sdnext:default" in answer.json()["failing"]


def test_status_page_with_redis_down(client, viewer, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.SDNEXT_BACKENDS = {"default": {"URL": "", "USER": "", "PASSWORD": ""}}
    client.force_login(viewer)
    body = client.get("/status/").content.decode()
    assert "Needs attention: Redis" in body and "Redis unreachable" not in body  # the state, not the error


def test_defect6_non_staff_see_states_without_paths_ids_or_versions(client, viewer, admin_user, standin, settings):
    """Before: /status/ showed every logged-in user the data folder, worker ids, Redis version and checkpoint."""
    import django_rq
    from rq import Worker

    worker = Worker([django_rq.get_queue("default")], connection=django_rq.get_connection("default"), name="w-4f2a9")
    worker.register_birth()
    try:
        secrets = [str(settings.DATA_DIR), "w-4f2a9", django_rq.get_connection("default").info()["redis_version"]]
        checkpoint = system_status.backend_status("default")["checkpoint"]
        client.force_login(viewer)
        body = client.get("/status/").content.decode()
        for secret in [*secrets, checkpoint]:
            assert secret and secret not in body, secret
        assert 'id="status-database"' in body and ">up<" in body and 'id="status-backend-default"' in body
        fragment = client.get("/status/", headers={"HX-Request": "true"}).content.decode()
        assert 'id="system-status"' in fragment and not any(secret in fragment for secret in secrets)
        client.force_login(admin_user)
        staff = client.get("/status/").content.decode()
        assert all(secret in staff for secret in secrets) and checkpoint in staff
    finally:
        worker.register_death()


def test_check_worker_without_a_worker(redis_conn):
    with pytest.raises(CommandError, match="no worker answered on queue 'default'"):
        call_command("check_worker", "--timeout", "0.5")


def test_check_worker_with_redis_down(settings):
    settings.RQ_QUEUES = {"default": {"URL": "redis://127.0.0.1:1/0", "DEFAULT_TIMEOUT": 60}}
    with pytest.raises(CommandError, match="cannot reach Redis"):
        call_command("check_worker", "--timeout", "0.5")


def test_check_worker_with_a_worker(redis_conn, capsys):
    stop = threading.Event()
    worker = InProcessWorker([django_rq.get_queue("default")], connection=redis_conn)

    def serve() -> None:
        while not stop.is_set():
            worker.work(burst=True)
            stop.wait(0.05)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        call_command("check_worker", "--timeout", "20")
    finally:
        stop.set()
        thread.join(timeout=10)
    assert "worker answered on queue 'default'" in capsys.readouterr().out


def test_check_worker_refuses_bad_arguments(redis_conn):
    with pytest.raises(CommandError, match="unknown queue 'nope'"):
        call_command("check_worker", "--queue", "nope")
    with pytest.raises(CommandError, match="positive"):
        call_command("check_worker", "--timeout", "0")


def test_registered_worker_is_listed(redis_conn, settings):
    settings.SDNEXT_BACKENDS = {"default": {"URL": "", "USER": "", "PASSWORD": ""}}
    worker = InProcessWorker([django_rq.get_queue("default")], connection=redis_conn)
    worker.register_birth()
    try:
        rq = system_status.rq_status()
    finally:
        worker.register_death()
    assert rq["ok"] and rq["workers"][0]["name"] == worker.name and rq["workers"][0]["queues"] == ["default"]
    assert rq["dashboard_url"] == "/admin/rq/"


def test_last_and_next_backup_and_rescan(settings, tmp_path, redis_conn):
    from archive import backups
    from lora_manager.runs import periodic

    settings.BACKUP_DIR = tmp_path / "backups"
    assert system_status.schedule_status()["backup"]["last"] is None
    settings.BACKUP_INTERVAL_HOURS = 24
    made = backups.backup_now()
    assert periodic.schedule(periodic.find("backup"))
    backup = system_status.schedule_status()["backup"]
    assert backup["last_name"] == made.path.name and backup["last"]
    assert backup["next"] > timezone.now().isoformat()
    settings.RESCAN_INTERVAL_MINUTES = 30
    assert periodic.schedule(periodic.find("rescan"))
    rescan = system_status.schedule_status()["rescan"]
    assert rescan["next"] > timezone.now().isoformat() > backup["last"]
