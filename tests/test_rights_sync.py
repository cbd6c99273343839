"""The roles' rights after an upgrade: worked out by building the generated screens (a child
process) only when what they follow from changed (app.access.permsync.rights_source), else synced
against the state kept last time — proved complete by building the app for workbooks that differ
in everything the source leaves out."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from generator import generate
from tests.conftest import ROOT, SHIPPED
from tests.migration_helpers import Office, Sheets
from tests.workbooks import read_sheets, write_workbook

pytestmark = pytest.mark.slow  # an app built per workbook, upgrades

WANTED = (
    "import json, sys\n"
    "from app import create_app\n"
    "from app.access.permsync import rights_source\n"
    "from app.factory import wanted_security\n"
    "app = create_app({'CRM_GENERATED_DIR': sys.argv[1], 'SQLALCHEMY_DATABASE_URI': 'sqlite:///' + sys.argv[2],\n"
    "                  'CRM_SYNC_PERMISSIONS': '0'}, serve=False)\n"
    "crm = app.extensions['crm']\n"
    "with app.app_context():\n"
    "    print(json.dumps([wanted_security(crm.appbuilder, crm.generated).digest(), rights_source(crm.spec)]))\n"
)


def _rules_and_layout(s: Sheets) -> None:
    first = s["entities"][0]["name"]
    s["fields"].append({"entity": first, "name": "rights_probe", "label": "探针", "type": "string"})
    s["choices"][0]["label"] = str(s["choices"][0]["label"]) + "(改)"
    s["grading"][0]["note"] = "改过的说明"
    s["forms"][0]["order"] = 999
    s.pop("validations")
    s["settings"] = [row for row in s["settings"] if row["key"] != "timezone"] + [{"key": "timezone", "value": "Asia/Tokyo"}]


def _no_processes(s: Sheets) -> None:
    for sheet in ("workflows", "schedules", "surveys", "templates", "reports"):
        s.pop(sheet)


def _another_menu(s: Sheets) -> None:
    s["entities"][0]["menu"] = "另一个菜单"


def _another_role(s: Sheets) -> None:
    s["roles"].append({"role": "实习生", "label": "Intern", "admin": "no"})
    s["permissions"].append({"role": "实习生", "entity": s["entities"][0]["name"], "list": "yes", "show": "yes"})


def _one_right_less(s: Sheets) -> None:
    row = next(r for r in s["permissions"] if r["export"] == "yes" and r["role"] != s["roles"][0]["role"])
    row["export"] = "no"


KEPT: dict[str, Callable[[Sheets], None]] = {"rules and layout": _rules_and_layout, "no processes": _no_processes}
CHANGED: dict[str, Callable[[Sheets], None]] = {"menu": _another_menu, "role": _another_role, "right": _one_right_less}


def test_the_rights_source_holds_all_the_wanted_state_follows_from(tmp_path: Path) -> None:
    """Workbooks differing from the shipped one only where the source does not look (fields,
    choices, grading, forms, validations, settings, workflows, schedules, surveys, templates,
    reports) build apps that want exactly the shipped one's rights, and their source is the same;
    where it looks (menus, roles, grants), both differ."""
    shipped = read_sheets(SHIPPED)
    variants = {"shipped": shipped}
    for name, change in {**KEPT, **CHANGED}.items():
        variants[name] = copy.deepcopy(shipped)
        change(variants[name])

    def wanted(name: str) -> tuple[str, str]:
        folder = tmp_path / name.replace(" ", "-")
        folder.mkdir()
        generate(write_workbook(folder / "crm.xlsx", variants[name]), folder / "generated")
        ran = subprocess.run([sys.executable, "-c", WANTED, str(folder / "generated"), str(folder / "crm.sqlite")],  # noqa: S603
                             capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)
        assert ran.returncode == 0, ran.stderr[-3000:]
        digest, source = json.loads(ran.stdout.strip().splitlines()[-1])
        return digest, source

    with ThreadPoolExecutor(2) as pool:
        found = dict(zip(variants, pool.map(wanted, variants), strict=True))
    for name in KEPT:
        assert found[name] == found["shipped"], name
    for name in CHANGED:
        assert found[name][0] != found["shipped"][0] and found[name][1] != found["shipped"][1], name


def _grants(engine: sa.Engine) -> set[tuple[Any, ...]]:
    with engine.connect() as conn:
        return set(conn.execute(sa.text("SELECT role_id, permission_view_id FROM ab_permission_view_role")).all())


def test_an_upgrade_builds_the_screens_only_when_the_rights_could_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first upgrade and one adding a role start the child; one adding a field does not, and
    still puts a hand edit of the grants right (and brings the new role its rights)."""
    import app.ops.permissions

    children: list[str] = []
    real = app.ops.permissions.multiprocessing.get_context

    def counted(method: str) -> Any:
        children.append(method)
        return real(method)

    monkeypatch.setattr(app.ops.permissions.multiprocessing, "get_context", counted)
    office = Office(tmp_path, read_sheets(SHIPPED), f"sqlite:///{tmp_path / 'crm.sqlite'}", monkeypatch)
    assert office.upgrade().exit_code == 0
    assert len(children) == 1
    synced = _grants(office.engine)

    with office.engine.begin() as conn:  # a hand edit: one grant taken away
        conn.execute(sa.text("DELETE FROM ab_permission_view_role WHERE rowid = (SELECT min(rowid) FROM ab_permission_view_role)"))
    assert _grants(office.engine) != synced
    office.edit(lambda s: s["fields"].append({"entity": s["entities"][0]["name"], "name": "rights_probe",
                                              "label": "探针", "type": "string"}))
    result = office.upgrade()
    assert result.exit_code == 0, result.output
    assert len(children) == 1  # no child: the kept state
    assert _grants(office.engine) == synced  # the hand edit put right all the same

    office.edit(_another_role)
    assert office.upgrade().exit_code == 0
    assert len(children) == 2
    with office.engine.connect() as conn:
        held = conn.execute(sa.text("SELECT count(*) FROM ab_permission_view_role g JOIN ab_role r ON r.id = g.role_id "
                                    "WHERE r.name = '实习生'")).scalar_one()
    assert held > 0
    office.engine.dispose()
