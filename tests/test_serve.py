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

from tests.conftest import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:  # noqa: S310 - loopback
                    assert r.status == 200
                    break
            except OSError:
                assert time.time() < deadline and server.poll() is None, "gunicorn did not come up"
                time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=5) as r:  # noqa: S310 - loopback
            assert r.status == 200 and "客户维护体系" in r.read().decode("utf-8")
    finally:
        server.terminate()
        out = server.communicate(timeout=30)[0].decode("utf-8", "replace")
    assert out.count("Booting worker") >= 2, out[-2000:]
