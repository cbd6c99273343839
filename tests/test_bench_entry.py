"""Every bench runs as a file (``python bench/regrade.py``) and as a module (``python -m
bench.regrade``): asked for its usage both ways, from another directory and without PYTHONPATH for
the file, each answers it (a bench that could not import ``bench`` or ``app`` fails here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHES = sorted(p.stem for p in (ROOT / "bench").glob("*.py") if p.stem not in ("__init__", "common"))


@pytest.mark.parametrize("name", BENCHES)
def test_a_bench_runs_as_a_file_and_as_a_module(name: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    as_file = subprocess.run([sys.executable, str(ROOT / "bench" / f"{name}.py"), "--help"], cwd=tmp_path, env=env,  # noqa: S603
                             capture_output=True, text=True, timeout=120)
    assert as_file.returncode == 0 and "usage:" in as_file.stdout, as_file.stderr[-2000:]
    as_module = subprocess.run([sys.executable, "-m", f"bench.{name}", "--help"], cwd=ROOT, env=env,  # noqa: S603
                               capture_output=True, text=True, timeout=120)
    assert as_module.returncode == 0 and "usage:" in as_module.stdout, as_module.stderr[-2000:]
