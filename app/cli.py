"""The ``crm`` command (DESIGN §5). Workbook problems become exit code 1 and one line each."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from app.cli_schedule import register as _register_schedule
from app.messages import NOTHING_CHANGED, msg
from generator import WorkbookError
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


class _Commands(click.Group):
    """The commands' one error boundary: an operation's refusal (:class:`app.ops.OpsError`), a
    setting that cannot be used (:class:`config.default.ConfigError`) or a generated application
    missing is its message and exit code 1, never a traceback (workbook problems: :func:`_load`)."""

    def invoke(self, ctx: click.Context) -> Any:
        from app.loader import GeneratedAppError
        from app.ops import OpsError
        from config.default import ConfigError

        try:
            return super().invoke(ctx)
        except (OpsError, ConfigError, GeneratedAppError) as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """客户维护体系 — a CRM generated from Excel workbooks."""


@main.command()
@click.option("--workbook", "-w", default=None, help="configuration workbook (default: CRM_WORKBOOK or sheets/crm.xlsx)")
def check(workbook: str | None) -> None:
    """Validate the workbook; print every problem as `file › Sheet!Cell: message — hint`."""
    path = workbook or _defaults().CRM_WORKBOOK
    spec = _load(path)
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
    from generator import generate_spec

    d = _defaults()
    workbook = workbook or d.CRM_WORKBOOK
    out = out or d.CRM_GENERATED_DIR
    spec = _load(workbook)
    state = _database_state(out, adopt_legacy=not check_only)  # revisions start where the database stands
    result = generate_spec(spec, out, check=check_only, base=state.base if state is not None else None)
    if check_only:
        if result.stale:
            raise click.ClickException(f"stale generated files in {out}: {', '.join(result.stale)} — run `crm generate`")
        click.echo(f"{out}: up to date")
        return
    if result.dropped:
        click.echo(f"removed {', '.join(result.dropped)} (generated, never applied to the database; replaced)")
    if result.written:
        click.echo(f"wrote {', '.join(result.written)} to {out}")
    elif not result.dropped:
        click.echo(f"{out}: already up to date")


def _ensure_admin(app: Any) -> None:
    """Create the first administrator when there is none; print how to log in."""
    from app.access.accounts import create_first_admin

    created = create_first_admin(app, os.environ.get("CRM_ADMIN_USER", "admin"), os.environ.get("CRM_ADMIN_PASSWORD"))
    if created is not None:
        user, password, generated_pw = created
        click.echo(
            f"{msg('管理员账号已创建')}: user '{user}'"
            + (
                f", password '{password}' (shown once; change it after logging in)"
                if generated_pw
                else ", password from CRM_ADMIN_PASSWORD"
            )
        )


def _engine() -> Any:
    import sqlalchemy as sa

    return sa.create_engine(_defaults().DATABASE_URL)


def _database_state(out: str, adopt_legacy: bool) -> Any:
    """Where the configured database stands, when ``out`` is the generated folder it runs (another
    folder is another application: its own history decides). None without a database to ask: a
    SQLite file not made yet, or a server that does not answer (said, then the folder decides)."""
    import sqlalchemy as sa

    from app.migrate.applied import adopt, read_applied
    from app.migrate.retire import sqlite_path

    d = _defaults()
    if Path(out).resolve() != Path(d.CRM_GENERATED_DIR).resolve():
        return None
    url = sa.engine.make_url(d.DATABASE_URL)
    database = sqlite_path(url)
    if url.get_backend_name() == "sqlite" and (database is None or not database.exists()):
        return None
    engine = sa.create_engine(url)
    try:
        if adopt_legacy:
            return adopt(engine, out)
        with engine.connect() as conn:
            return read_applied(conn, out)
    except sa.exc.OperationalError as exc:
        click.echo(f"{msg('数据库无法连接,按生成目录里的历史生成')}: {str(exc).splitlines()[0]}", err=True)
        return None
    finally:
        engine.dispose()


def _load(workbook: str) -> Any:
    """The workbook's spec (read and validated once per command); problems → one line each, then
    exit 1 with nothing changed."""
    from generator import load_spec

    try:
        spec, warnings = load_spec(workbook)
    except WorkbookError as exc:
        _print_problems(exc.reported, exc.filename, exc.lang)
        n = len(exc.problems)
        raise click.ClickException(f"{msg('%(count)s 个问题', count=n)} — {NOTHING_CHANGED}") from None
    _print_problems(warnings, Path(workbook).name, spec.settings.language)
    return spec


@main.command()
@click.option("--workbook", "-w", default=None, help="configuration workbook")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def plan(workbook: str | None, as_json: bool) -> None:
    """What a regenerate + upgrade would change: schema steps, refused steps, rows affected."""
    import json

    from app.ops import evolution

    d = _defaults()
    spec = _load(workbook or d.CRM_WORKBOOK)
    engine = _engine()
    try:
        found = evolution.make_plan(engine, spec, d.CRM_GENERATED_DIR)
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps(found.as_dict(), ensure_ascii=False, indent=1, default=str))
        return
    lang = spec.settings.language
    if not found.pending and not found.regenerate:
        click.echo(msg("数据库结构已是最新"))
    if found.owed:
        click.echo(f"{msg('上次升级未完成的后续工作,crm upgrade 会补做,系统照常可用')}:")
        for text in found.owed:
            click.echo(f"  - {text}")
    for title, lines in ((msg("待执行的迁移"), found.pending), (msg("升级将做的改动"), found.regenerate)):
        if lines:
            click.echo(title + ":")
            _print_lines(lines, lang)
    if found.retired:
        click.echo(f"{msg('已保留的旧数据')}:")
        for t, c, n in found.retired:
            click.echo(f"  - {t}{'.' + c if c else ''}: {n}")
    refused = len(found.refused)
    if refused:
        click.echo(msg("%(n)s 个步骤将被拒绝,升级不会执行", n=refused))


def _print_lines(lines: list[Any], lang: str, err: bool = False) -> None:
    for line in lines:
        click.echo(f"  - {line.text(lang)}", err=err)
        for detail in line.details(lang):
            click.echo(f"      {detail}", err=err)


@main.command()
@click.option("--workbook", "-w", default=None, help="configuration workbook")
@click.option("--allow-destructive", is_flag=True, help="also drop retired columns and tables (after a backup)")
def upgrade(workbook: str | None, allow_destructive: bool) -> None:
    """Generate if stale and apply the migrations, all or nothing (SQLite: backup first)."""
    d = _defaults()
    workbook = workbook or d.CRM_WORKBOOK
    Path(d.VAR).mkdir(parents=True, exist_ok=True)
    _upgrade(workbook, d.CRM_GENERATED_DIR, allow_destructive)


def _upgrade(workbook: str, out: str, allow_destructive: bool = False, sync: bool = True) -> None:
    from app.access.installkeys import install_secrets
    from app.ops.keys import move_off_public_key
    from app.ops.upgrade import UpgradeRefused, upgrade

    spec = _load(workbook)
    lang = spec.settings.language
    d = _defaults()

    def committed(report: Any) -> None:
        _print_lines(report.lines, lang)
        if report.applied:
            click.echo(f"{msg('已应用迁移')} {', '.join(report.applied)}" + (f"; {msg('备份')} {report.backup}" if report.backup else ""))
        else:
            click.echo(msg("数据库结构已是最新"))

    install_secrets(d.values)  # development: the install's keys made (and said) here, before a child process needs them
    engine = _engine()  # its own: the lock's connection outlives the others' engine
    try:
        options = {"lock_timeout_ms": d.values["CRM_UPGRADE_LOCK_TIMEOUT_MS"]} if d.values.get("CRM_UPGRADE_LOCK_TIMEOUT_MS") else {}
        report = upgrade(engine, spec, out, d.VAR, allow_destructive, committed=committed, sync=sync,
                         progress=lambda text: click.echo(f"  … {text} (系统照常可用 the system stays in use)"), **options)
        moved = move_off_public_key(engine, spec, d.values)  # a development install's first start on its own keys
    except UpgradeRefused as exc:
        _print_lines(exc.lines, lang, err=True)
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()
    if moved:
        click.echo(msg("原用公开开发密钥加密的值已用本机密钥重新加密:%(n)s 个", n=moved))
    for text in report.graded + report.finished:
        click.echo(f"  - {text}")
    for text in report.unfinished:
        click.echo(f"  ! {msg('未完成,系统照常可用,再次运行 crm upgrade 补做')}: {text}", err=True)


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
    _upgrade(d.CRM_WORKBOOK, d.CRM_GENERATED_DIR, sync=False)  # the app started here syncs the rights
    from app import create_app

    app = create_app({"CRM_WEB_PROCESS": True, "CRM_SYNC_PERMISSIONS": "always"})
    _ensure_admin(app)
    import signal
    import subprocess

    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)  # leave the server loop through ``finally``: the worker stops too

    for signum in (signal.SIGTERM, signal.SIGHUP):  # a service manager's stop, a closed terminal
        signal.signal(signum, stop)
    # the worker with its beat: reminders, escalations, surveys, deliveries (embedded broker: one worker)
    worker = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"])  # noqa: S603 - our own command
    click.echo(f"serving on http://{host}:{port}/ (worker pid {worker.pid}) — Ctrl+C to stop; in production: crm serve")
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
    from app.ops.evolution import regrade_all

    spec = _load(_defaults().CRM_WORKBOOK)
    engine = _engine()
    try:
        lines = regrade_all(engine, spec)
    finally:
        engine.dispose()
    for text in lines or [msg("所有等级均与规则一致,没有变化")]:
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
            raise click.ClickException(msg("用户 %(user)s 没有 %(entity)s 的%(right)s权限,没有任何改动", user=username, entity=entity,
                                           right={"import": "导入", "export": "导出"}[right], right_en=right))
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
@click.option("--header-row", type=click.IntRange(min=1), default=None,
              help="the row the headers are on (default: found below any title rows)")
def import_cmd(entity: str, file: str, mode: str, key: str | None, mapping: tuple[str, ...], dry_run: bool, skip_bad_rows: bool,
               as_user: str | None, report: str | None, header_row: int | None) -> None:
    """Import an .xlsx/.csv into ENTITY with the forms' rules; all or nothing unless --skip-bad-rows."""
    from app import create_app
    from app.io.importcolumns import parse_mapping
    from app.io.importer import ImportFileError, import_file
    from app.web.i18n import speaking

    try:
        columns = parse_mapping(mapping)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    app = create_app()
    with app.app_context(), speaking(app.config["BABEL_DEFAULT_LOCALE"]), _ImportProgress() as progress:
        user = _acting_user(app, as_user, entity, "import")
        try:
            result = import_file(app, entity, file, mode=mode, key=key, dry_run=dry_run, skip_bad_rows=skip_bad_rows, user=user,
                                 report_path=report, mapping=columns, progress=progress, header_row=header_row)
        except ImportFileError as exc:
            progress.close()
            for p in exc.problems:
                click.echo(p, err=True)
            raise click.ClickException(msg("文件无法导入,没有任何改动")) from None
    for note in result.notes:
        click.echo(note)
    if result.header_row > 1:
        click.echo(msg("表头在第 %(row)s 行(其上的标题行未导入)", row=result.header_row))
    click.echo(result.summary())
    for line in result.first_errors() if result.failed else ():  # the first rows' errors, beside the workbook that has them all
        click.echo(line)
    if result.report_path:
        click.echo(f"{msg('错误报告')}: {result.report_path}")
    if result.failed and not skip_bad_rows:
        raise click.ClickException(msg("有错误的行,没有导入任何数据"))


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
            label = msg("检查") if phase == "checking" else msg("写入")
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
    from app import create_app
    from app.web.export import export_entity
    from app.web.i18n import speaking

    app = create_app()
    with app.app_context(), speaking(app.config["BABEL_DEFAULT_LOCALE"]):
        n = export_entity(app, entity, Path(file), _acting_user(app, as_user, entity, "export"))
    click.echo(f"{msg('已导出')} {n} rows to {file}")


@main.command("rotate-key")
def rotate_key() -> None:
    """Re-encrypt every encrypted field with CRM_ENCRYPTION_KEY (old values read with CRM_OLD_ENCRYPTION_KEY)."""
    from app.access.installkeys import install_secrets
    from app.ops.keys import rotate_keys

    old = os.environ.get("CRM_OLD_ENCRYPTION_KEY", "")
    if not old:
        raise click.ClickException("set CRM_OLD_ENCRYPTION_KEY to the key the data is encrypted with now")
    d = _defaults()
    spec = _load(d.CRM_WORKBOOK)
    key = d.values["CRM_ENCRYPTION_KEY"] or install_secrets(d.values).get("CRM_ENCRYPTION_KEY")  # development: the install's
    if not key:
        raise click.ClickException(f"CRM_ENV={d.values['CRM_ENV']}: set CRM_ENCRYPTION_KEY to the new key")
    engine = _engine()
    try:
        total = rotate_keys(engine, spec, key, old)
    finally:
        engine.dispose()
    click.echo(f"{msg('已用新密钥重新加密')} {total} values")


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
    from app.spec.model import Spec
    from generator.author import spec_rows, write_sheets

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
    from app.access.accounts import add_user

    generated = password is None
    password = password or secrets.token_urlsafe(12)
    app = create_app()
    try:
        add_user(app, username, list(roles), password, email=email, departments=list(departments))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{msg('用户已创建')}: {username}" + (f", password '{password}' (shown once)" if generated else ""))


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
    from app.ops.demo import demo_plan, make_demo_data

    d = _defaults()
    Path(d.VAR).mkdir(parents=True, exist_ok=True)
    _upgrade(d.CRM_WORKBOOK, d.CRM_GENERATED_DIR, sync=False)  # the app made here syncs the rights
    app = create_app({"CRM_SYNC_PERMISSIONS": "always"})
    total = sum(n for _, n in demo_plan(app.extensions["crm"].spec, customers, related))
    started = time.perf_counter()
    with click.progressbar(length=total, label=msg("示例数据"), show_pos=True, show_eta=True) as bar:
        counts = make_demo_data(app, customers, seed=seed, related=related, progress=lambda _e, n: bar.update(n))
    spec = app.extensions["crm"].spec
    for entity, n in counts.items():
        e = spec.entity(entity)
        click.echo(f"{e.label if e is not None else entity} ({entity}): {n}")
    click.echo(f"{sum(counts.values())} rows in {time.perf_counter() - started:.1f} s")
    _print_demo_logins(app)


def _print_demo_logins(app: Any) -> None:
    """Each demo login with its role and department, and the password they share."""
    from app.ops.demo import DEMO_PASSWORD, demo_logins

    with app.app_context():
        logins = demo_logins(app)
    click.echo(msg("示例登录,密码均为 %(password)s", password=DEMO_PASSWORD))
    width = max((len(login.username) for login in logins), default=0)
    for login in logins:
        role = f"{login.role} ({login.label})" if login.label and login.label != login.role else login.role
        click.echo(f"  {login.username.ljust(width)}  {role} · {login.department}")


_register_schedule(main)  # crm tick, crm worker

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
