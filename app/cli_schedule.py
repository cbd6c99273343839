"""``crm tick`` and ``crm worker`` (DESIGN §5), kept apart from app/cli.py; ``register(main)``
adds them to the ``crm`` group."""

from __future__ import annotations

import datetime as dt

import click


@click.command()
@click.option("--now", "now_text", default=None, help="ISO time of the pass, e.g. 2026-11-02T10:00 (default: the clock)")
@click.option("--no-deliver", is_flag=True, help="only write the outbox, do not send")
def tick(now_text: str | None, no_deliver: bool) -> None:
    """One scheduling pass at that moment, then deliver what is due."""
    from app import create_app
    from app.messaging.outbox import counts, deliver_due
    from app.messaging.schedules import tick as run_tick

    try:
        now = dt.datetime.fromisoformat(now_text) if now_text else dt.datetime.now()
    except ValueError:
        raise click.BadParameter(f"not an ISO time: {now_text}", param_hint="--now") from None
    app = create_app()
    result = run_tick(app, now)
    click.echo(f"tick {now:%Y-%m-%d %H:%M}: {result['enqueued']} enqueued, {result['escalated']} escalated, {result['skipped']} skipped")
    for source, n in sorted(result["by_source"].items()):
        click.echo(f"  {source}: {n}")
    if no_deliver:
        return
    with app.app_context():
        session = app.extensions["crm"].db.session
        d = deliver_due(session, limit=1_000_000, now=now)
        click.echo(f"delivered: {d.sent} sent, {d.recorded} recorded (not sent), {d.retry} to retry, {d.failed} failed")
        click.echo("outbox: " + ", ".join(f"{k} {v}" for k, v in sorted(counts(session).items())))


@click.command()
@click.option("--loglevel", default="INFO", show_default=True)
@click.option("--no-beat", is_flag=True, help="do not embed the beat (run `celery beat` separately)")
def worker(loglevel: str, no_beat: bool) -> None:
    """Run a Celery worker with the beat (embedded broker: one solo worker)."""
    from app import create_app
    from app.messaging.queue import celery_app_for

    app = create_app()
    celery = celery_app_for(app)
    argv = ["worker", f"--loglevel={loglevel}"]
    if str(celery.conf.broker_url).startswith("sqla+"):
        argv += ["--pool=solo", "--concurrency=1"]
    if not no_beat:
        argv.append("-B")
    celery.worker_main(argv)


def register(main: click.Group) -> None:
    """Add ``tick`` and ``worker`` to the ``crm`` group."""
    main.add_command(tick)
    main.add_command(worker)
