"""ops/supervise.py's configuration: how many HTTP processes, and the socket supervisord hands them."""

from __future__ import annotations

import configparser
import os

import pytest

from ops import supervise


def test_http_processes_default_to_the_cores_and_follow_the_setting():
    assert supervise.http_processes({}) == len(os.sched_getaffinity(0))
    assert supervise.http_processes({"LORA_MANAGER_HTTP_PROCESSES": "3"}) == 3
    with pytest.raises(SystemExit, match="at least 1"):
        supervise.http_processes({"LORA_MANAGER_HTTP_PROCESSES": "0"})


def test_the_web_processes_share_one_socket_supervisord_binds(tmp_path):
    text = supervise.config(supervise.programs({}), tmp_path, supervise.web_program(8123, "127.0.0.1", 3))
    conf = configparser.RawConfigParser()
    conf.read_string(text)
    web = conf["fcgi-program:web"]
    assert web["socket"] == "tcp://127.0.0.1:8123" and web["numprocs"] == "3"
    assert web["process_name"] == "web-%(process_num)d"
    assert "-m daphne --fd 0 lora_manager.asgi:application" in web["command"]  # the socket arrives as fd 0
    assert web["autorestart"] == "true" and web["stopasgroup"] == "true"
    assert conf["group:lora-manager"]["programs"] == "worker,worker-generation-default"  # web is its own group
    assert supervise.web_program(8123, "::1", 1)[1] == "socket=tcp://[::1]:8123"
