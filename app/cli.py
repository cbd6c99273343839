"""The ``crm`` command (DESIGN §5). Workbook problems become exit code 1 and one line each."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from app.cli_schedule import register as _register_schedule
from generator import WorkbookError, generate
from generator.problems import Problem


class _Settings:
    """The environment's settings (DESIGN §5), read when a command runs."""

    def __init__(self) -> None:
        from config.default import from_env

        values = from_env()
        self.CRM_WORKBOOK: str = values["CRM_WORKBOOK"]
        self.CRM_GENERATED_DIR: str = values["CRM_GENERATED_DIR"]
        self.DATABASE_URL: str = values["SQLALCHEMY_DATABASE_URI"]
        self.VAR = Path(values["CRM_VAR_DIR"])
        self.values = values


def _defaults() -> _Settings:
    return _Settings()


def _print_problems(problems: list[Problem], filename: str, lang: str) -> None:
    for p in problems:
        click.echo(p.format(filename, lang), err=True)


def _run_generate(workbook: str, out: str, check: bool) -> Any:
    try:
        result = generate(workbook, out, check=check)
    except WorkbookError as exc:
        _print_problems(exc.reported, exc.filename, exc.lang)
        n = len(exc.problems)
        raise click.ClickException(f"{n} 个问题 ({n} problem{'s' if n != 1 else ''}) — 未生成任何文件 (nothing written)") from None
    _print_problems(result.warnings, Path(workbook).name, result.spec.settings.language)
    return result


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """客户维护体系 — a CRM generated from Excel workbooks."""


@main.command()
@click.option("--workbook", "-w", default=None, help="configuration workbook (default: CRM_WORKBOOK or sheets/crm.xlsx)")
def check(workbook: str | None) -> None:
    """Validate the workbook; print every problem as `file › Sheet!Cell: message — hint`."""
    from generator import load_spec

    path = workbook or _defaults().CRM_WORKBOOK
    try:
        spec, warnings = load_spec(path)
    except WorkbookError as exc:
        _print_problems(exc.reported, exc.filename, exc.lang)
        n = len(exc.problems)
        raise click.ClickException(f"{n} 个问题 ({n} problem{'s' if n != 1 else ''})") from None
    _print_problems(warnings, Path(path).name, spec.settings.language)
    click.echo(
        f"{Path(path).name}: OK — {len(spec.entities)} entities, {sum(len(e.fields) for e in spec.entities)} fields, "
        f"{len(spec.roles)} roles"
    )


@main.command("generate")
@click.option("--workbook", "-w", default=None, help="configuration workbook")
@click.option("--out", "-o", default=None, help="target package directory (default: CRM_GENERATED_DIR)")
@click.option("--check", "check_only", is_flag=True, help="only report whether the generated files are current")
def generate_cmd(workbook: str | None, out: str | None, check_only: bool) -> None:
    """Emit the generated application (models, screens, APIs, permissions)."""
    d = _defaults()
    workbook = workbook or d.CRM_WORKBOOK
    out = out or d.CRM_GENERATED_DIR
    result = _run_generate(workbook, out, check_only)
    if check_only:
        if result.stale:
            raise click.ClickException(f"stale generated files in {out}: {', '.join(result.stale)} — run `crm generate`")
        click.echo(f"{out}: up to date")
        return
    if result.written:
        click.echo(f"wrote {', '.join(result.written)} to {out}")
    else:
        click.echo(f"{out}: already up to date")


def _ensure_admin(app: Any) -> None:
    """Create the first administrator when there is none; print how to log in."""
    from app.runtime.accounts import create_first_admin

    created = create_first_admin(app, os.environ.get("CRM_ADMIN_USER", "admin"), os.environ.get("CRM_ADMIN_PASSWORD"))
    if created is not None:
        user, password, generated_pw = created
        click.echo(
            f"管理员账号已创建 (first admin created): user '{user}'"
            + (
                f", password '{password}' (shown once; change it after logging in)"
                if generated_pw
                else ", password from CRM_ADMIN_PASSWORD"
            )
        )


def _engine() -> Any:
    import sqlalchemy as sa

    return sa.create_engine(_defaults().DATABASE_URL)


def _previous_spec(out: str) -> Any:
    from generator.emit import read_previous
    from generator.spec import Spec

    text, _revisions = read_previous(Path(out))
    return Spec.from_json(text) if text else None


def _grading_changed(previous: Any, spec: Any) -> bool:
    return previous is None or previous.grading != spec.grading


def _plan(workbook: str, out: str) -> tuple[Any, list[Any], list[Any], list[Any], list[str]]:
    """(generate result (check only), pending-revision lines, regenerate lines, retired columns,
    the work big tables are still owed after an earlier upgrade's commit)."""
    from app.runtime.migrate import declared_metadata, owed_online, pending_steps, plan_lines, retired_columns
    from generator.migration import RenameColumn, RenameTable

    result = _run_generate(workbook, out, check=True)
    previous = _previous_spec(out)
    engine = _engine()
    try:
        with engine.connect() as conn:
            pending = [s for _, steps in pending_steps(out, conn) for s in steps] if (Path(out) / "versions").is_dir() else []
            pending_lines = plan_lines(pending, conn)
            regen_lines = plan_lines(result.steps, conn) if result.stale else []
            if previous is not None and _grading_changed(previous, result.spec):
                regen_lines += _grading_lines(conn, result.spec)
            if previous is not None:
                regen_lines += _validation_lines(conn, previous, result.spec)
            # what a rename of this plan moves is not left behind
            moving = {(s.table, s.old) for s in pending + result.steps if isinstance(s, RenameColumn)}
            moving |= {(s.old, None) for s in pending + result.steps if isinstance(s, RenameTable)}
            declared = declared_metadata(result.spec)
            retired = [r for r in retired_columns(conn, declared) if r[:2] not in moving]
            owed = owed_online(conn, declared)
    finally:
        engine.dispose()
    return result, pending_lines, regen_lines, retired, owed


def _grading_lines(conn: Any, spec: Any) -> list[Any]:
    """The effect of the workbook's grading rules on the records as they are stored now."""
    import sqlalchemy as sa

    from app.runtime.grading import describe_moves, graded_fields, impact
    from app.runtime.migrate import PlanLine, declared_metadata

    tables = dict(declared_metadata(spec).tables)
    lines = []
    for e in spec.entities:
        for graded in graded_fields(spec, e):
            label = f"{e.name}.{graded.field}"
            try:
                with conn.begin_nested():
                    moves = impact(conn, spec, e, graded, tables, _now())
            except sa.exc.DBAPIError:
                lines.append(PlanLine("grading", f"分级 {label}:规则用到的字段升级后才有,升级后重新分级",
                                      f"grading {label}: the rules use fields that exist after the upgrade; regraded then"))
                continue
            zh, en = describe_moves(label, moves)
            lines.append(PlanLine("grading", zh, en, sum(n for (old, new), n in moves.items() if old != new)))
    return lines


def _validation_lines(conn: Any, previous: Any, spec: Any) -> list[Any]:
    """How many stored records break each validation the workbook adds or rewrites: they stay as
    they are, and their next save asks for the correction (IT can tell the office beforehand)."""
    import sqlalchemy as sa

    from app.runtime.migrate import PlanLine, declared_metadata
    from app.runtime.sqlexpr import NotCompilable, compile_condition
    from generator.expr import SAVE_ONLY, parse

    known = {(v.entity, v.condition) for v in previous.validations}
    tables = dict(declared_metadata(spec).tables)
    lines = []
    for v in spec.validations:
        entity, expr = spec.entity(v.entity), parse(v.condition)
        if (v.entity, v.condition) in known or entity is None or set(expr.functions) & set(SAVE_ONLY):
            continue  # a rule about the save being made (changed()) has nothing to say about stored records
        table = tables[entity.name]
        try:
            broken = sa.not_(compile_condition(expr, spec, entity, table, tables, _now(), conn.dialect.name))
            with conn.begin_nested():
                ids = list(conn.execute(sa.select(table.c.id).where(broken).order_by(table.c.id).limit(5)).scalars())
                n = int(conn.execute(sa.select(sa.func.count()).select_from(table).where(broken)).scalar_one()) if ids else 0
        except (NotCompilable, sa.exc.DBAPIError):
            continue  # fields the upgrade adds, or a rule SQL cannot ask: the records meet it when next saved
        if n:
            shown = ", ".join(f"#{i}" for i in ids) + (" …" if n > len(ids) else "")
            lines.append(PlanLine("validation", f"新规则 {v.entity}「{v.message}」:已有 {n} 条记录不符合 ({shown}),记录保留,下次保存时须先改正",
                                  f"new rule on {v.entity} ({v.condition}): {n} stored record(s) break it ({shown}); they are kept "
                                  f"and must be corrected when next saved", n, examples=ids))
    return lines


def _now() -> Any:
    import datetime as dt

    return dt.datetime.now().replace(microsecond=0)


def _sync_permissions() -> None:
    """Roles and permissions follow the sheet; done here, once per deploy, not by every web worker."""
    import subprocess

    # a fresh interpreter: this process may already hold another generated package
    subprocess.run([sys.executable, "-c", "from app import create_app; create_app()"], check=True,  # noqa: S603
                   env={**os.environ, "CRM_SYNC_PERMISSIONS": "1"}, capture_output=True)


def _regrade_all(engine: Any, spec: Any) -> list[str]:
    from app import use_office_clock
    from app.runtime.grading import describe_moves, regrade
    from app.runtime.migrate import declared_metadata

    use_office_clock(spec.settings.timezone)  # "now" in a grade's rules is the office's

    tables = dict(declared_metadata(spec).tables)
    lines = []
    with engine.begin() as conn:
        for e in spec.entities:
            for fname, moves in regrade(conn, spec, e, tables, _now()).items():
                if all(old == new for old, new in moves):
                    continue  # nothing moved: nothing to say
                lines.append(describe_moves(f"{e.name}.{fname}", moves)[0 if spec.settings.language == "zh" else 1])
    return lines


@main.command()
@click.option("--workbook", "-w", default=None, help="configuration workbook")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def plan(workbook: str | None, as_json: bool) -> None:
    """What a regenerate + upgrade would change: schema steps, refused steps, rows affected."""
    import json

    d = _defaults()
    workbook = workbook or d.CRM_WORKBOOK
    result, pending, regen, retired, owed = _plan(workbook, d.CRM_GENERATED_DIR)
    lang = result.spec.settings.language
    if as_json:
        click.echo(json.dumps({
            "pending": [line.as_dict() for line in pending],
            "regenerate": [line.as_dict() for line in regen],
            "retired": [{"table": t, "column": c, "values": n} for t, c, n in retired],
            "refused": sum(1 for line in pending + regen if line.refused),
            "owed": owed,
        }, ensure_ascii=False, indent=1, default=str))
        return
    if not pending and not regen:
        click.echo("数据库结构已是最新 (the database schema is up to date)")
    if owed:
        click.echo("上次升级未完成的后续工作,crm upgrade 会补做,系统照常可用 (left by an earlier upgrade; crm upgrade does it, "
                   "the system stays in use):")
        for text in owed:
            click.echo(f"  - {text}")
    for title, lines in (("待执行的迁移 (generated, not yet applied)", pending), ("重新生成后的变化 (after crm generate)", regen)):
        if lines:
            click.echo(title + ":")
            for line in lines:
                click.echo(f"  - {line.text(lang)}")
    if retired:
        click.echo("已保留的旧数据 (kept; dropped only by crm upgrade --allow-destructive):")
        for t, c, n in retired:
            click.echo(f"  - {t}{'.' + c if c else ''}: {n}")
    refused = sum(1 for line in pending + regen if line.refused)
    if refused:
        click.echo(f"{refused} 个步骤将被拒绝,升级不会执行 ({refused} step(s) refused: the upgrade would not run)")


@main.command()
@click.option("--workbook", "-w", default=None, help="configuration workbook")
@click.option("--allow-destructive", is_flag=True, help="also drop retired columns and tables (after a backup)")
def upgrade(workbook: str | None, allow_destructive: bool) -> None:
    """Generate if stale and apply the migrations, all or nothing (SQLite: backup first)."""
    d = _defaults()
    workbook = workbook or d.CRM_WORKBOOK
    Path(d.VAR).mkdir(parents=True, exist_ok=True)
    _upgrade(workbook, d.CRM_GENERATED_DIR, allow_destructive)


def _upgrade(workbook: str, out: str, allow_destructive: bool = False) -> None:
    from app.runtime.migrate import UpgradeRunning, one_upgrade_at_a_time

    engine = _engine()  # its own: the lock's connection outlives the others' engine
    try:
        with one_upgrade_at_a_time(engine):
            _upgrade_alone(workbook, out, allow_destructive)
    except UpgradeRunning as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()


def _upgrade_alone(workbook: str, out: str, allow_destructive: bool) -> None:
    from app.runtime.migrate import (
        UPGRADE_LOCK_TIMEOUT_MS,
        BusyUpgrade,
        RefusedUpgrade,
        declared_metadata,
        finish_online,
        upgrade_database,
    )
    from generator.emit import restore_files, save_files

    result, pending, regen, _retired, _owed = _plan(workbook, out)
    lang = result.spec.settings.language
    refused = [line for line in pending + regen if line.refused]
    if refused:
        for line in refused:
            click.echo(f"  - {line.text(lang)}", err=True)
        raise click.ClickException(f"升级被拒绝,没有任何改动 (upgrade refused, nothing changed): {len(refused)} step(s)")
    regrade_after = _grading_changed(_previous_spec(out), result.spec)
    # what this run generates is only kept with the database change it declares: refused or
    # failed, the revision and the updated spec go too, or the next run would trip over them
    saved = save_files(sorted(result.files), Path(out)) if result.stale else {}
    engine = _engine()
    try:
        try:
            if result.stale:
                _run_generate(workbook, out, check=False)
            d = _defaults()
            done = upgrade_database(engine, out, d.VAR / "backups", declared_metadata(result.spec), allow_destructive,
                                    d.values.get("CRM_UPGRADE_LOCK_TIMEOUT_MS", UPGRADE_LOCK_TIMEOUT_MS))
        except BaseException:
            restore_files(saved, Path(out))
            raise
        for line in done.lines + done.dropped + [x for x in regen if x.kind == "validation"]:
            click.echo(f"  - {line.text(lang)}")
        if done.applied:
            click.echo(f"已应用迁移 (applied) {', '.join(done.applied)}" + (f"; 备份 (backup) {done.backup}" if done.backup else ""))
        else:
            click.echo("数据库结构已是最新 (the database schema is up to date)")
        _sync_permissions()  # committed, its files kept: the rights now, not after the long work below
        # what big tables need after the commit, the system in use (PostgreSQL), before the
        # regrade, which must see the defaults filled in (also those an interrupted run left)
        finish_online(engine, done, progress=lambda text: click.echo(f"  … {text} (系统照常可用 the system stays in use)"))
        graded = _regrade_all(engine, result.spec) if regrade_after or done.applied or done.filled else []
    except RefusedUpgrade as exc:
        for line in exc.lines:
            click.echo(f"  - {line.text(lang)}", err=True)
        raise click.ClickException("升级被拒绝,没有任何改动 (upgrade refused, nothing changed)") from None
    except BusyUpgrade as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()
    for text in graded + done.finished:
        click.echo(f"  - {text}")
    for text in done.unfinished:
        click.echo(f"  ! 未完成,系统照常可用,再次运行 crm upgrade 补做 (not done; the system works, and crm upgrade "
                   f"does it when run again): {text}", err=True)


def _links_to(host: str, port: int) -> None:
    """Links in notices and mails point at the server being started, unless CRM_BASE_URL says
    where people reach it (a proxy, a name): on --port 5622 they pointed at :5000. The
    worker started here inherits it."""
    if not os.environ.get("CRM_BASE_URL"):
        shown = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host  # noqa: S104 - compared, not bound
        os.environ["CRM_BASE_URL"] = f"http://{shown}:{port}"


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def up(host: str, port: int) -> None:
    """Check, generate if stale, create the database, the first admin, and serve."""
    _links_to(host, port)
    d = _defaults()
    Path(d.VAR).mkdir(parents=True, exist_ok=True)
    _upgrade(d.CRM_WORKBOOK, d.CRM_GENERATED_DIR)
    from app import create_app

    app = create_app({"CRM_WEB_PROCESS": True})
    _ensure_admin(app)
    import signal
    import subprocess

    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)  # leave the server loop through ``finally``: the worker stops too

    for signum in (signal.SIGTERM, signal.SIGHUP):  # a service manager's stop, a closed terminal
        signal.signal(signum, stop)
    # the worker with its beat: reminders, escalations, surveys, deliveries (embedded broker: one worker)
    worker = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"])  # noqa: S603 - our own command
    click.echo(f"serving on http://{host}:{port}/ (worker pid {worker.pid}) — Ctrl+C to stop")
    from werkzeug.serving import run_simple

    try:
        run_simple(host, port, app, threaded=True, use_reloader=False)
    finally:
        worker.terminate()  # a warm shutdown: the task in hand finishes (its outbox rows stay exactly-once)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


@main.command()
def regrade() -> None:
    """Recompute every grade from the grading rules, set-based, with history."""
    from generator import load_spec

    d = _defaults()
    spec, _warnings = load_spec(d.CRM_WORKBOOK)
    engine = _engine()
    try:
        lines = _regrade_all(engine, spec)
    finally:
        engine.dispose()
    for text in lines or ["所有等级均与规则一致,没有变化 (every grade already follows the rules)"]:
        click.echo(text)


def _acting_user(app: Any, username: str | None, entity: str = "", right: str = "") -> Any:
    """The person an import or export acts as (scope, ownership); default: the first administrator.
    With ``right``: a person whose roles give that right on ``entity``, as the screen asks."""
    crm = app.extensions["crm"]
    sm = crm.appbuilder.sm
    if username:
        user = sm.find_user(username=username)
        if user is None:
            raise click.ClickException(f"no user {username!r}")
        roles = {r.name for r in user.roles}
        if right and crm.admin_role not in roles and not any(
                p.entity == entity and p.role in roles and right in p.rights for p in crm.spec.permissions):
            raise click.ClickException(f"用户 {username} 没有 {entity} 的{ {'import': '导入', 'export': '导出'}[right] }权限,"
                                       f"没有任何改动 ({username} has no {right} right on {entity}; nothing changed)")
        return user
    role = sm.find_role(app.config["AUTH_ROLE_ADMIN"])
    admins = [u for u in sm.get_all_users() if role in u.roles]
    if not admins:
        raise click.ClickException("no administrator yet: run `crm up` once or pass --as USER")
    return admins[0]


@main.command("import")
@click.argument("entity")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--mode", type=click.Choice(["insert", "upsert"]), default="insert", show_default=True)
@click.option("--key", default=None, help="field that identifies a record (upsert)")
@click.option("--map", "mapping", multiple=True, metavar="'HEADER=FIELD'",
              help="fill FIELD from the column HEADER ('HEADER=' ignores it); repeatable")
@click.option("--dry-run", is_flag=True, help="check everything, change nothing")
@click.option("--skip-bad-rows", is_flag=True, help="import the good rows even when some are bad")
@click.option("--as", "as_user", default=None, help="act as this user (scope, owner); default: the first administrator")
@click.option("--report", default=None, help="where to write the error workbook")
def import_cmd(entity: str, file: str, mode: str, key: str | None, mapping: tuple[str, ...], dry_run: bool, skip_bad_rows: bool,
               as_user: str | None, report: str | None) -> None:
    """Import an .xlsx/.csv into ENTITY with the forms' rules; all or nothing unless --skip-bad-rows."""
    from app import create_app
    from app.runtime.importcolumns import parse_mapping
    from app.runtime.importer import ImportFileError, import_file

    try:
        columns = parse_mapping(mapping)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    app = create_app()
    with app.test_request_context(), _ImportProgress() as progress:
        user = _acting_user(app, as_user, entity, "import")
        try:
            result = import_file(app, entity, file, mode=mode, key=key, dry_run=dry_run, skip_bad_rows=skip_bad_rows, user=user,
                                 report_path=report, mapping=columns, progress=progress)
        except ImportFileError as exc:
            progress.close()
            for p in exc.problems:
                click.echo(p, err=True)
            raise click.ClickException("文件无法导入,没有任何改动 (the file cannot be imported; nothing changed)") from None
    for note in result.notes:
        click.echo(note)
    click.echo(result.summary())
    if result.report_path:
        click.echo(f"错误报告 (error report): {result.report_path}")
    if result.failed and not skip_bad_rows:
        raise click.ClickException("有错误的行,没有导入任何数据 (rows with errors: nothing was imported)")


class _ImportProgress:
    """A progress bar on stderr (rows checked, then rows written); silent when stderr is not a terminal."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.phase = ""

    def __enter__(self) -> _ImportProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.render_finish()
            self.bar = None

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        if phase != self.phase:
            self.close()
            self.phase = phase
            label = "检查 (checking)" if phase == "checking" else "写入 (writing)"
            self.bar = click.progressbar(length=max(total or done, 1), label=label, show_pos=True, show_eta=True, file=sys.stderr)
            self.bar.render_progress()
        if total is not None and total > self.bar.length:
            self.bar.length = total
        self.bar.update(done - self.bar.pos)


@main.command("export")
@click.argument("entity")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--as", "as_user", default=None, help="export what this user may see; default: the first administrator")
def export_cmd(entity: str, file: str, as_user: str | None) -> None:
    """Export ENTITY to an .xlsx (Chinese headers; the user's row scope and hidden fields apply)."""
    from flask import g

    from app import create_app
    from app.runtime.views import export_entity

    app = create_app()
    with app.test_request_context():
        g.user = _acting_user(app, as_user, entity, "export")
        n = export_entity(app, entity, Path(file))
    click.echo(f"已导出 (exported) {n} rows to {file}")


@main.command("rotate-key")
def rotate_key() -> None:
    """Re-encrypt every encrypted field with CRM_ENCRYPTION_KEY (old values read with CRM_OLD_ENCRYPTION_KEY)."""
    import sqlalchemy as sa

    from app.runtime import crypto
    from generator import load_spec

    old = os.environ.get("CRM_OLD_ENCRYPTION_KEY", "")
    if not old:
        raise click.ClickException("set CRM_OLD_ENCRYPTION_KEY to the key the data is encrypted with now")
    from config.default import from_env

    crypto.configure(from_env()["CRM_ENCRYPTION_KEY"], old)
    spec, _warnings = load_spec(_defaults().CRM_WORKBOOK)
    engine = _engine()
    total = 0
    try:
        with engine.begin() as conn:
            for e in spec.entities:
                for f in e.fields:
                    if not f.encrypted:
                        continue
                    t = sa.table(e.name, sa.column("id"), sa.column(f.column))
                    rows = conn.execute(sa.select(t.c.id, t.c[f.column]).where(t.c[f.column].is_not(None))).all()
                    updates = [{"_pk": pk, "_v": crypto.encrypt(crypto.decrypt(v) if crypto.is_encrypted(v) else str(v))} for pk, v in rows]
                    if updates:
                        conn.execute(sa.update(t).where(t.c.id == sa.bindparam("_pk")).values({f.column: sa.bindparam("_v")}), updates)
                    total += len(updates)
            # the audit trail keeps old and new values of those fields, encrypted the same way
            from app.runtime.audit import AuditRow, reseal

            trail = AuditRow.__table__
            sealed = conn.execute(sa.select(trail.c.id, trail.c.changes).where(trail.c.changes.contains(crypto.PREFIX))).all()
            again = [{"_pk": pk, "_v": reseal(text)} for pk, text in sealed]
            if again:
                conn.execute(sa.update(trail).where(trail.c.id == sa.bindparam("_pk")).values(changes=sa.bindparam("_v")), again)
            total += len(again)
    finally:
        engine.dispose()
    click.echo(f"已用新密钥重新加密 (re-encrypted) {total} values")


@main.group()
def sheets() -> None:
    """Authoring help for the configuration workbooks."""


@sheets.command("new")
@click.argument("file", type=click.Path(dir_okay=False))
def sheets_new(file: str) -> None:
    """Write a blank configuration workbook: every sheet, explained headers, dropdowns."""
    from generator.author import write_sheets

    if Path(file).exists():
        raise click.ClickException(f"{file} exists already")
    write_sheets(Path(file), {})
    click.echo(f"wrote {file}")


@sheets.command("dump")
@click.argument("workbook", type=click.Path(exists=True, dir_okay=False))
def sheets_dump(workbook: str) -> None:
    """Print a workbook as plain text in a stable order (review changes with diff)."""
    from generator.author import dump

    click.echo(dump(Path(workbook)), nl=False)


@sheets.command("export")
@click.argument("file", type=click.Path(dir_okay=False))
def sheets_export(file: str) -> None:
    """Write the running configuration (the generated app's) back to a workbook."""
    from generator.author import spec_rows, write_sheets
    from generator.spec import Spec

    spec_file = Path(_defaults().CRM_GENERATED_DIR) / "spec.json"
    if not spec_file.exists():
        raise click.ClickException(f"no generated application in {spec_file.parent}: run `crm generate` first")
    write_sheets(Path(file), spec_rows(Spec.from_json(spec_file.read_text(encoding="utf-8"))))
    click.echo(f"wrote the running configuration to {file}")


@main.group()
def user() -> None:
    """People who log in."""


@user.command("add")
@click.argument("username")
@click.option("--role", "roles", multiple=True, required=True, help="a role of the roles sheet (repeatable)")
@click.option("--password", default=None, help="default: prompt (or a generated one, printed once)")
@click.option("--department", "departments", multiple=True, help="department (what team scope means; repeatable)")
@click.option("--email", default="")
def user_add(username: str, roles: tuple[str, ...], password: str | None, departments: tuple[str, ...], email: str) -> None:
    """Create a user: crm user add NAME --role 业务员 --department 销售一部."""
    import secrets

    from app import create_app
    from app.runtime.accounts import add_user

    generated = password is None
    password = password or secrets.token_urlsafe(12)
    app = create_app()
    try:
        add_user(app, username, list(roles), password, email=email, departments=list(departments))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"用户已创建 (user created): {username}" + (f", password '{password}' (shown once)" if generated else ""))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
def serve(host: str, port: int, workers: int) -> None:
    """Production web server: gunicorn with N stateless workers (run `crm upgrade` first)."""
    import shutil

    gunicorn = shutil.which("gunicorn") or str(Path(sys.executable).with_name("gunicorn"))
    cmd = [gunicorn, "--workers", str(workers), "--bind", f"{host}:{port}", "--access-logfile", "-", "app.wsgi:application"]
    click.echo(" ".join(cmd))
    _links_to(host, port)
    env = {**os.environ, "CRM_SYNC_PERMISSIONS": "0"}  # `crm upgrade` synchronised them; workers must not race
    os.execve(gunicorn, cmd, env)  # noqa: S606 - become gunicorn, so signals reach its master directly


@main.command("demo-data")
@click.option("--customers", default=200, show_default=True, type=int, help="rows of the first (main) entity")
@click.option("--related", default=None, type=int, help="rows of the other entities together [default: half the main rows each]")
@click.option("--seed", default=1, show_default=True, type=int)
def demo_data(customers: int, related: int | None, seed: int) -> None:
    """Fill every entity with realistic Chinese sample data (bulk loaded, with a progress bar)."""
    import time

    from app import create_app
    from app.runtime.demo import demo_plan, make_demo_data

    d = _defaults()
    Path(d.VAR).mkdir(parents=True, exist_ok=True)
    _upgrade(d.CRM_WORKBOOK, d.CRM_GENERATED_DIR)
    app = create_app()
    total = sum(n for _, n in demo_plan(app.extensions["crm"].spec, customers, related))
    started = time.perf_counter()
    with click.progressbar(length=total, label="示例数据 (demo data)", show_pos=True, show_eta=True) as bar:
        counts = make_demo_data(app, customers, seed=seed, related=related, progress=lambda _e, n: bar.update(n))
    for entity, n in counts.items():
        click.echo(f"{entity}: {n}")
    click.echo(f"{sum(counts.values())} rows in {time.perf_counter() - started:.1f} s")


_register_schedule(main)  # crm tick, crm worker

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
