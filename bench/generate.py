"""Benchmark: the generator pipeline (read + validate + render + emit) against a bare openpyxl
read-only load of the same workbook, on the shipped workbook and a synthetic 200 × 20 one.

    python -m bench.generate

Targets (issue 2): shipped workbook < 1 s; 200 × 20 workbook ratio ≤ 3.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from openpyxl import load_workbook

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from generator import generate  # noqa: E402
from tests.workbooks import write_workbook  # noqa: E402

TYPES = ["string", "text", "integer", "money", "date", "datetime", "boolean", "choice", "email", "phone"]


def synthetic(path: Path, entities: int = 200, fields: int = 20) -> Path:
    ents, flds, choices = [], [], []
    for c in range(5):
        choices.append({"list": "status", "value": f"s{c}", "label": f"状态{c}", "order": c})
    for i in range(entities):
        name = f"entity_{i:03d}"
        ents.append({"name": name, "label": f"实体{i}", "label_en": f"Entity {i}", "menu": f"菜单{i % 10}",
                     "title_field": "f00"})
        for j in range(fields):
            ftype = "string" if j == 0 else TYPES[j % len(TYPES)]
            row = {"entity": name, "name": f"f{j:02d}", "label": f"字段{j}", "type": ftype, "required": "yes" if j == 0 else "no",
                   "list": "yes" if j < 5 else "no", "search": "yes" if j == 0 else "no", "help": f"第{j}个字段的说明"}
            if ftype == "choice":
                row["choices"] = "status"
            flds.append(row)
        if i:
            flds.append({"entity": name, "name": "parent", "label": "上级", "type": "link", "link": f"entity_{i - 1:03d}"})
    return write_workbook(path, {"entities": ents, "fields": flds, "choices": choices})


def bare_read(path: Path) -> None:
    wb = load_workbook(path, read_only=True)
    for ws in wb.worksheets:
        for _row in ws.iter_rows(values_only=True):
            pass
    wb.close()


def timed(fn: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()  # --help, no options
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "gen"
        shipped = ROOT / "sheets" / "crm.xlsx"
        runs = iter(range(1000))  # a fresh directory each run, so every run really writes its files
        t_ship = timed(lambda: generate(shipped, out / f"shipped{next(runs)}"))
        t_ship_bare = timed(lambda: bare_read(shipped))
        print(f"shipped workbook: pipeline {t_ship * 1000:.0f} ms, bare openpyxl read {t_ship_bare * 1000:.0f} ms, "
              f"ratio {t_ship / t_ship_bare:.2f} (target: pipeline < 1000 ms)")
        big = synthetic(Path(tmp) / "big.xlsx")
        t_big = timed(lambda: generate(big, out / f"big{next(runs)}"), repeat=3)
        t_big_bare = timed(lambda: bare_read(big), repeat=3)
        print(f"200 entities x 20 fields: pipeline {t_big * 1000:.0f} ms, bare openpyxl read {t_big_bare * 1000:.0f} ms, "
              f"ratio {t_big / t_big_bare:.2f} (target: ratio <= 3)")


if __name__ == "__main__":
    main()
