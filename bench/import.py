"""Benchmark: import a 100k-row × 15-column customer workbook (Chinese text, dates, choice labels,
a user column) into a fresh SQLite database with validation, numbering and grading, against what
a user would do by hand: ``pandas.read_excel`` + ``DataFrame.to_sql`` (no checks at all).

    python -m bench.import [--rows 100000]

Each side runs in its own process, so the peak memory (ru_maxrss) printed is that side's alone
(the import's with, apart, the process app.io.sheetreader reads the workbook in).
Targets (issue 7): ratio ≤ 1.5, peak RSS ≤ 400 MB. The ratio is against pandas as a user runs it
(its default .xlsx engine, openpyxl); the import reads with python-calamine, so a last line shows,
for information, pandas with ``engine="calamine"`` too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HEADERS = ["客户名称", "客户简称", "客户类型", "所属行业", "所属区域", "市区/郊区", "来源渠道", "电话", "邮箱", "地址", "生日",
           "企业规模(人数)", "年需求规模(元)", "需求迫切程度", "年交易额(元)"]


def make_workbook(path: Path, rows: int) -> None:
    from openpyxl import Workbook

    from app.ops.demo import _address, _company, _mobile
    from generator import load_spec

    spec, _ = load_spec(ROOT / "sheets" / "crm.xlsx")
    labels = {name: [c.label for c in spec.choices[name]] for name in ("customer_type", "industry", "region", "area_type",
                                                                         "source_channel", "urgency")}
    rng = random.Random(3)
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("客户")
    ws.append(HEADERS)
    for i in range(rows):
        ws.append([f"{_company(rng)}{i}", f"简称{i}", rng.choice(labels["customer_type"]), rng.choice(labels["industry"]),
                   rng.choice(labels["region"]), rng.choice(labels["area_type"]), rng.choice(labels["source_channel"]), _mobile(rng),
                   f"c{i}@example.cn", _address(rng), dt.date(rng.randint(1960, 2000), rng.randint(1, 12), rng.randint(1, 28)),
                   rng.randint(5, 3000), f"{rng.randint(1, 2000) * 1000:,}", rng.choice(labels["urgency"]), rng.randint(0, 3_000_000)])
    wb.save(path)


def phase_import(path: Path, db: Path) -> dict[str, float]:
    os.environ["CRM_DATABASE_URL"] = f"sqlite:///{db}"
    from app import create_app
    from app.access.accounts import create_first_admin
    from app.io.importer import import_file
    from app.migrate.create import create_schema

    app = create_app()
    create_schema(app)
    create_first_admin(app, "admin", "bench-Pass-2026")
    with app.test_request_context():
        user = app.extensions["crm"].appbuilder.sm.find_user(username="admin")
        start = time.perf_counter()
        report = import_file(app, "customer", path, user=user)
        seconds = time.perf_counter() - start
    assert report.committed and report.inserted == report.total, report.summary()
    return {"seconds": seconds, "rows": report.inserted}


def phase_pandas(path: Path, db: Path, engine: str | None = None) -> dict[str, float]:
    import pandas as pd
    import sqlalchemy as sa

    start = time.perf_counter()
    df = pd.read_excel(path, engine=engine)
    df.to_sql("customer_raw", sa.create_engine(f"sqlite:///{db}"), index=False)
    return {"seconds": time.perf_counter() - start, "rows": len(df)}


def phase_pandas_calamine(path: Path, db: Path) -> dict[str, float]:
    return phase_pandas(path, db, engine="calamine")


def run_phase(name: str, path: Path, db: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-m", "bench.import", "--phase", name, "--file", str(path), "--db", str(db)],  # noqa: S603
                         cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--phase", choices=["import", "pandas", "pandas-calamine"])
    parser.add_argument("--file")
    parser.add_argument("--db")
    args = parser.parse_args()
    if args.phase:
        phases = {"import": phase_import, "pandas": phase_pandas, "pandas-calamine": phase_pandas_calamine}
        result = phases[args.phase](Path(args.file), Path(args.db))
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result["reader_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the process reading the workbook
        print(json.dumps(result))
        return
    tmp = Path(tempfile.mkdtemp())
    path = tmp / "customers.xlsx"
    print(f"writing {args.rows} rows × {len(HEADERS)} columns …", flush=True)
    make_workbook(path, args.rows)
    ours = run_phase("import", path, tmp / "crm.sqlite")
    theirs = run_phase("pandas", path, tmp / "raw.sqlite")
    fast = run_phase("pandas-calamine", path, tmp / "raw2.sqlite")
    print(f"crm import (validation, numbering, grading, audit): {ours['seconds']:.1f} s, peak RSS {ours['peak_rss_mb']:.0f} MB"
          f" (the process reading the workbook: {ours['reader_rss_mb']:.0f} MB)")
    print(f"pandas.read_excel + to_sql (no checks):             {theirs['seconds']:.1f} s, peak RSS {theirs['peak_rss_mb']:.0f} MB")
    print(f"ratio {ours['seconds'] / theirs['seconds']:.2f} (target <= 1.5); peak RSS target <= 400 MB")
    print(f"(for information: pandas with engine='calamine' {fast['seconds']:.1f} s, ratio {ours['seconds'] / fast['seconds']:.2f})")


if __name__ == "__main__":
    main()
