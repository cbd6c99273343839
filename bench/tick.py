"""Benchmark (issue 5): one full scheduling pass over 200k customers, 50k maintenance contracts
and 100k service calls of the shipped workbook on SQLite (target < 5 s), and reminders per
second delivered to a loopback SMTP server (aiosmtpd).

    python -m bench.tick [--customers 200000] [--contracts 50000] [--calls 100000] [--mails 2000]

The first pass writes every reminder the generated history makes due within the settings'
catch_up_days (a cold start; older ones are not sent late, but the pass still has to skip them); the second
is the steady state a beat runs every minute; a day and a week later new periods start and
escalations ripen, and the pass a minute after that is the steady state over a week of history.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import socket
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a file (python bench/x.py) as well as a module

from bench.common import fresh_app  # noqa: E402

NOW = dt.datetime(2026, 11, 2, 10, 0)


def fill(app: Any, entity_name: str, n: int, maker: Any) -> None:
    from flask_appbuilder import Model

    from app.record.rules import rules_for

    crm = app.extensions["crm"]
    spec, session = crm.spec, crm.db.session
    entity = spec.entity(entity_name)
    table = Model.metadata.tables[entity_name]
    rules = rules_for(spec, entity)
    rng = random.Random(3)
    for start in range(0, n, 20_000):
        batch = []
        for i in range(start, min(n, start + 20_000)):
            try:
                row = maker.valid_row(entity, rules, i)
            except RuntimeError:  # cross-field rules random values rarely meet: plain values, times in field order
                row = {f.column: maker.value(entity, f, i) for f in entity.fields}
                stamps = sorted(v for v in row.values() if isinstance(v, dt.datetime))
                for f in entity.fields:
                    if isinstance(row[f.column], dt.datetime):
                        row[f.column] = stamps.pop(0)
            created = NOW - dt.timedelta(minutes=rng.randint(0, 60 * 24 * 720))
            row.update(created_on=created, changed_on=created)
            if entity.numbering:
                row["code"] = f"B-{entity_name}-{i:07d}"
            for f in entity.fields:
                if f.required and row[f.column] is None:
                    row[f.column] = {"string": f"{f.label}{i}", "date": NOW.date(), "datetime": NOW}.get(f.type, 0)
            batch.append(row)
        session.execute(sa.insert(table), batch)
    session.commit()
    maker.ids[entity_name] = list(session.execute(sa.select(table.c.id)).scalars())


def delivery_rate(app: Any, mails: int) -> float:
    from aiosmtpd.controller import Controller

    from app.messaging.channels import SmtpSettings
    from app.messaging.outbox import Channels, deliver_due, enqueue

    received: list[int] = []

    class Sink:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            received.append(1)
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with app.app_context():
            session = app.extensions["crm"].db.session
            from app.messaging.outbox import OUTBOX

            session.execute(sa.update(OUTBOX).where(OUTBOX.c.status == "pending").values(status="held"))  # measure only ours
            enqueue(session, [{"key": f"bench.{i}", "source": "bench", "entity": "x", "record_id": i, "occurrence": "X", "channel": "email",
                               "recipient_address": f"r{i}@example.cn", "subject": f"提醒 {i}", "body": "正文" * 40,
                               "next_attempt_at": NOW} for i in range(mails)])
            session.commit()
            start = time.perf_counter()
            d = deliver_due(session, mails, NOW, Channels(SmtpSettings("127.0.0.1", port, "crm@example.cn")))
            elapsed = time.perf_counter() - start
    finally:
        controller.stop()
    assert d.sent == mails == len(received), (d, len(received))
    return mails / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--contracts", type=int, default=50_000)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--mails", type=int, default=2_000)
    args = parser.parse_args()
    app = fresh_app()

    from app.messaging.schedules import tick
    from app.ops.demo import _Maker, ensure_demo_users

    with app.app_context():
        maker = _Maker(app.extensions["crm"].spec, random.Random(5), NOW, ensure_demo_users(app, 2))
        first = app.extensions["crm"].spec.entities[0].name
        for name, n in ((first, args.customers), ("maintenance_contract", args.contracts), ("service_call", args.calls)):
            t = time.perf_counter()
            fill(app, name, n, maker)
            print(f"inserted {n} {name} in {time.perf_counter() - t:.1f} s", flush=True)
    timings = []
    week = NOW + dt.timedelta(days=7)
    for label, moment in (("first pass (cold start)", NOW), ("second pass (steady state)", NOW + dt.timedelta(minutes=1)),
                          ("third pass (a day later)", NOW + dt.timedelta(days=1)), ("fourth pass (a week later)", week),
                          ("fifth pass (steady state, a week of history)", week + dt.timedelta(minutes=1))):
        t = time.perf_counter()
        result = tick(app, moment)
        elapsed = time.perf_counter() - t
        timings.append(elapsed)
        print(f"tick {label}: {elapsed:.2f} s — {result['enqueued']} enqueued, {result['escalated']} escalated, {result['skipped']} skipped")
    rate = delivery_rate(app, args.mails)
    print(f"steady-state tick: {timings[1]:.2f} s, with a week of history {timings[4]:.2f} s (target < 5 s)")
    print(f"SMTP delivery to loopback aiosmtpd: {rate:.0f} reminders/s ({args.mails} messages, one claim per 50, one commit per message)")


if __name__ == "__main__":
    main()
