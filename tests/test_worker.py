"""A real Celery worker process (``celery -A app.worker:celery_app worker --pool=solo -B``) on the
embedded SQLite broker and on Redis delivers the outbox to a loopback SMTP server; and the crash
test of issue 5: 500 reminders, the worker killed with SIGKILL mid-batch, restarted — every one
arrives exactly once (counted by Message-ID = outbox key)."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from celery import Celery

from app.messaging.outbox import OUTBOX
from tests.conftest import ROOT, require_service
from tests.test_outbox import Recorder, free_port

pytestmark = pytest.mark.slow  # real Celery worker processes


class SlowRecorder(Recorder):
    """Takes a few milliseconds per message, and can hold a chosen message at a chosen point of
    the SMTP conversation while the test kills the worker.

    It behaves like a mail server (Postfix, Exim): a message is queued as soon as its final dot is
    in, and the "250" follows; a client that vanishes while waiting for the reply has still handed
    the message over. The outbox marks a message sent just before that dot for this reason. (Left
    to itself aiosmtpd would drop a message whose client disconnected before the reply.)"""

    def __init__(self) -> None:
        super().__init__()
        self.hold: tuple[str, int] | None = None  # ("RCPT" | "DATA", the n-th message of that step, from 1)
        self.seen = collections.Counter[str]()
        self.holding = threading.Event()
        self.release = threading.Event()

    async def _maybe_hold(self, step: str) -> None:
        self.seen[step] += 1
        if self.hold == (step, self.seen[step]):
            self.holding.set()
            while not self.release.is_set():
                await asyncio.sleep(0.01)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:  # noqa: N802
        await self._maybe_hold("RCPT")
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        reply = await super().handle_DATA(server, session, envelope)
        await self._maybe_hold("DATA")
        await asyncio.sleep(0.004)
        return reply


@pytest.fixture
def smtp() -> Iterator[tuple[SlowRecorder, int]]:
    recorder = SlowRecorder()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    yield recorder, port
    recorder.release.set()
    controller.stop()


def prepare(tmp: Path, broker: str, smtp_port: int, n: int) -> dict[str, str]:
    """A fresh database with the schema and ``n`` pending e-mails; the worker's environment."""
    env = {**os.environ, "CRM_DATABASE_URL": f"sqlite:///{tmp / 'crm.sqlite'}", "CRM_VAR_DIR": str(tmp), "CRM_BROKER_URL": broker,
           "CRM_SMTP_HOST": "127.0.0.1", "CRM_SMTP_PORT": str(smtp_port), "CRM_MAIL_FROM": "crm@example.cn",
           "CRM_OUTBOX_LEASE_SECONDS": "2"}
    code = "from app import create_app; from app.migrate.create import create_schema; create_schema(create_app())"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, timeout=180)  # noqa: S603
    engine = sa.create_engine(env["CRM_DATABASE_URL"])
    now = dt.datetime.now() - dt.timedelta(minutes=1)
    rows = [{"key": f"crash.{i}.X.0.a", "source": "crash", "entity": "test", "record_id": i, "occurrence": "X", "step": 0,
             "channel": "email", "recipient_address": f"r{i}@example.cn", "subject": f"提醒 {i}", "body": f"第 {i} 条",
             "status": "pending", "attempts": 0, "next_attempt_at": now, "created_on": now} for i in range(n)]
    with engine.begin() as conn:
        conn.execute(sa.insert(OUTBOX), rows)
    engine.dispose()
    return env


def start_worker(env: dict[str, str], tmp: Path, name: str) -> subprocess.Popen[bytes]:
    log = open(tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
    argv = [sys.executable, "-m", "celery", "-A", "app.worker:celery_app", "worker", "--pool=solo", "--concurrency=1", "-B",
            "--loglevel=INFO", "-n", f"{name}@%h"]
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # noqa: S603


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def dispatch(broker: str) -> None:
    sender = Celery(broker=broker)
    sender.conf.broker_connection_retry_on_startup = True
    sender.send_task("app.tasks.deliver_task")
    sender.close()


def statuses(env: dict[str, str]) -> dict[str, int]:
    engine = sa.create_engine(env["CRM_DATABASE_URL"])
    with engine.connect() as conn:
        out = {s: int(n) for s, n in conn.execute(sa.select(OUTBOX.c.status, sa.func.count()).group_by(OUTBOX.c.status))}
    engine.dispose()
    return out


def wait_for(check: Any, timeout: float, what: str, tmp: Path, state: Any = lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in tmp.glob("*.log"))
    raise AssertionError(f"timed out waiting for {what}: {state()}\n{logs}")


def redis_url() -> str:
    url = os.environ.get("CRM_TEST_REDIS_URL", "")
    ok, reason = bool(url), "set CRM_TEST_REDIS_URL"
    if url:
        try:
            import redis

            redis.Redis.from_url(url, socket_connect_timeout=2).ping()
        except Exception as exc:  # noqa: BLE001 - any failure means "not available"
            ok, reason = False, str(exc)
    require_service("Redis", ok, reason)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw"):  # each pytest-xdist worker its own Redis database: no worker takes another test's task
        url = re.sub(r"(/\d*)?$", f"/{int(worker[2:]) + 1}", url, count=1)
    return url


def run_delivery(tmp: Path, broker: str, smtp: tuple[SlowRecorder, int], n: int) -> None:
    recorder, port = smtp
    env = prepare(tmp, broker, port, n)
    worker = start_worker(env, tmp, "w1")
    try:
        dispatch(broker)
        wait_for(lambda: statuses(env).get("sent", 0) == n, 90, f"{n} sent", tmp)
    finally:
        stop(worker)
    assert sorted(recorder.ids()) == sorted(f"crash.{i}.X.0.a" for i in range(n))


def test_worker_on_embedded_sqlite_broker(tmp_path: Path, smtp: tuple[SlowRecorder, int]) -> None:
    run_delivery(tmp_path, f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}", smtp, 25)


def test_worker_on_redis(tmp_path: Path, smtp: tuple[SlowRecorder, int]) -> None:
    run_delivery(tmp_path, redis_url(), smtp, 25)


@pytest.mark.parametrize(("step", "recorded_at_kill"), [("DATA", 121), ("RCPT", 120)], ids=["after-the-dot", "before-the-dot"])
def test_kill_9_mid_batch_every_message_exactly_once(tmp_path: Path, smtp: tuple[SlowRecorder, int], step: str,
                                                     recorded_at_kill: int) -> None:
    """SIGKILL lands on the 121st message at a known point of the SMTP conversation, on either side
    of the outbox's commit point: waiting for the reply to its final dot (the server has the
    message; it must not be sent again), or waiting for the reply to RCPT (nothing is handed over;
    it must be sent after the restart). A kill at a random moment would also land, now and then,
    in the gap of a few microseconds between marking a message sent and writing its dot: the one
    place the outbox's "never twice" choice loses a message (module docstring of app.messaging.outbox)."""
    recorder, port = smtp
    recorder.hold = (step, 121)
    broker = f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}"
    env = prepare(tmp_path, broker, port, 500)
    first = start_worker(env, tmp_path, "first")
    try:
        dispatch(broker)
        wait_for(recorder.holding.is_set, 90, f"the first worker to reach {step} of the 121st message", tmp_path)
    finally:
        stop(first, signal.SIGKILL)
    assert len(recorder.ids()) == recorded_at_kill
    assert statuses(env).get("sent", 0) == recorded_at_kill, "what the server has is what is marked sent, no more, no less"
    recorder.release.set()
    second = start_worker(env, tmp_path, "second")
    try:
        dispatch(broker)
        wait_for(lambda: statuses(env).get("sent", 0) == 500, 60, "all 500 sent after the restart", tmp_path, lambda: statuses(env))
        time.sleep(1)
    finally:
        stop(second)
    seen = collections.Counter(recorder.ids())
    assert set(seen) == {f"crash.{i}.X.0.a" for i in range(500)}
    assert [k for k, n in seen.items() if n != 1] == [], "each message exactly once"
    assert statuses(env) == {"sent": 500}
