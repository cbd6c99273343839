"""The ``crm`` command (DESIGN §5). Workbook problems become exit code 1 and one line each."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from generator import WorkbookError, generate
from generator.problems import Problem


def _defaults() -> Any:
    import config.default as defaults

    return defaults


def _print_problems(problems: list[Problem], filename: str, lang: str) -> None:
    for p in problems:
        click.echo(p.format(filename, lang), err=True)


def _run_generate(workbook: str, out: str, check: bool) -> Any:
    try:
        result = generate(workbook, out, check=check)
    except WorkbookError as exc:
        _print_problems(exc.problems, exc.filename, exc.lang)
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
        _print_problems(exc.problems, exc.filename, exc.lang)
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


def _ensure_generated(workbook: str, out: str) -> None:
    result = _run_generate(workbook, out, check=True)
    if result.stale:
        _run_generate(workbook, out, check=False)
        click.echo(f"generated {out} from {Path(workbook).name}")


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


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def up(host: str, port: int) -> None:
    """Check, generate if stale, create the database, the first admin, and serve."""
    d = _defaults()
    Path(d.VAR).mkdir(parents=True, exist_ok=True)
    _ensure_generated(d.CRM_WORKBOOK, d.CRM_GENERATED_DIR)
    from app import create_app
    from app.runtime.schema import create_schema

    app = create_app()
    create_schema(app)
    _ensure_admin(app)
    click.echo(f"serving on http://{host}:{port}/ — Ctrl+C to stop")
    from werkzeug.serving import run_simple

    run_simple(host, port, app, threaded=True, use_reloader=False)


@main.command("demo-data")
@click.option("--customers", default=200, show_default=True, type=int, help="rows of the first (main) entity")
@click.option("--seed", default=1, show_default=True, type=int)
def demo_data(customers: int, seed: int) -> None:
    """Fill every entity with realistic Chinese sample data."""
    from app import create_app
    from app.runtime.demo import make_demo_data
    from app.runtime.schema import create_schema

    d = _defaults()
    Path(d.VAR).mkdir(parents=True, exist_ok=True)
    app = create_app()
    create_schema(app)
    counts = make_demo_data(app, customers, seed=seed)
    for entity, n in counts.items():
        click.echo(f"{entity}: {n}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
