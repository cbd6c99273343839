"""A marked-data app (tests/page_world.py) for the shipped workbook or the second-domain one
(tests/workbooks.py ``library_sheets``), built in a fresh interpreter: its environment, and a
server process started from it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.workbooks import library_sheets, write_workbook

ROOT = Path(__file__).resolve().parent.parent
WORKBOOKS = ("shipped", "library")


def world_env(which: str, tmp: Path) -> dict[str, str]:
    """The environment of a fresh app of ``which`` workbook under ``tmp`` (the library's app generated there)."""
    env = {"CRM_DATABASE_URL": f"sqlite:///{tmp / 'pages.sqlite'}", "CRM_VAR_DIR": str(tmp / "var")}
    if which == "library":
        from generator import generate

        workbook = write_workbook(tmp / "library.xlsx", library_sheets())
        generate(workbook, tmp / "library_app")
        env |= {"CRM_WORKBOOK": str(workbook), "CRM_GENERATED_DIR": str(tmp / "library_app")}
    return env


def run_world(command: str, env: dict[str, str], timeout: int = 300) -> Any:
    proc = subprocess.run([sys.executable, "-m", "tests.page_world", command], cwd=ROOT, env={**os.environ, **env},  # noqa: S603
                          capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"page_world {command} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


@contextmanager
def served(env: dict[str, str]) -> Iterator[dict[str, Any]]:
    """``{"url", "pages", "password"}`` of a served world, stopped afterwards."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.page_world", "serve"], cwd=ROOT, env={**os.environ, **env},  # noqa: S603
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the app may say things first (keys made for the install …)
            if line.startswith('{"url"'):
                break
        else:
            raise AssertionError(f"the page world did not start (exit {proc.wait(timeout=10)})")
        yield json.loads(line)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
