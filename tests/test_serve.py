"""`crm serve` runs gunicorn with stateless workers; /health answers a load balancer."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # real servers (crm up, gunicorn)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(port: int, deadline: float, process: subprocess.Popen, failure: str) -> None:
    """Until /health answers 200 on ``port`` (``process`` still running, before ``deadline``)."""
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:  # noqa: S310 - loopback
                assert r.status == 200
                return
        except OSError:
            assert time.time() < deadline and process.poll() is None, failure
            time.sleep(0.5)


def test_health_answers_without_login(app: Any) -> None:
    r = app.test_client().get("/health")
    assert r.status_code == 200 and r.json == {"status": "ok"}


def test_crm_serve_runs_two_gunicorn_workers(tmp_path: Path) -> None:
    env = {**os.environ, "CRM_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.sqlite'}", "CRM_VAR_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-m", "app.cli", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", "2"], cwd=ROOT, env=env,  # noqa: S603
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        wait_healthy(port, deadline, server, "gunicorn did not come up")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=5) as r:  # noqa: S310 - loopback
            assert r.status == 200 and "客户维护体系" in r.read().decode("utf-8")
    finally:
        server.terminate()
        out = server.communicate(timeout=30)[0].decode("utf-8", "replace")
    assert out.count("Booting worker") >= 2, out[-2000:]


def _alive(pid: int) -> bool:
    """The process runs (a zombie waiting for a parent to reap it has stopped)."""
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state


def test_crm_up_stops_its_worker_when_stopped(tmp_path: Path) -> None:
    """A service manager stops `crm up` with SIGTERM: the worker it started stops with it (it
    used to live on, running the beat's reminders against a system that was stopped)."""
    import re
    import signal

    env = {**os.environ, "CRM_DATABASE_URL": f"sqlite:///{tmp_path / 'up.sqlite'}", "CRM_VAR_DIR": str(tmp_path),
           "PYTHONUNBUFFERED": "1"}
    port = free_port()
    up = subprocess.Popen([sys.executable, "-m", "app.cli", "up", "--port", str(port)], cwd=ROOT, env=env,  # noqa: S603
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    worker = None
    try:
        deadline = time.time() + 120
        for line in up.stdout:  # type: ignore[union-attr]
            found = re.search(r"worker pid (\d+)", line)
            if found:
                worker = int(found.group(1))
                break
            assert time.time() < deadline, "crm up did not start"
        assert worker is not None and _alive(worker)
        wait_healthy(port, deadline, up, "crm up did not serve")
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=60)
        deadline = time.time() + 40
        while _alive(worker) and time.time() < deadline:
            time.sleep(0.5)
        assert not _alive(worker), "the worker outlived crm up"
    finally:
        if up.poll() is None:
            up.kill()
        if worker is not None and _alive(worker):
            os.kill(worker, 9)


def test_links_point_at_the_port_the_server_was_started_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """`crm up --port 5622` mailed and noticed links to :5000; a CRM_BASE_URL IT set still wins."""
    from app.cli import _links_to

    monkeypatch.delenv("CRM_BASE_URL", raising=False)
    _links_to("0.0.0.0", 5622)  # noqa: S104 - not bound, only read
    assert os.environ["CRM_BASE_URL"] == "http://127.0.0.1:5622"
    monkeypatch.setenv("CRM_BASE_URL", "https://crm.example.cn")
    _links_to("127.0.0.1", 8000)
    assert os.environ["CRM_BASE_URL"] == "https://crm.example.cn"
