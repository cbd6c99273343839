"""The generator end to end: the shipped workbook's generated code is current and runs; a second
workbook of another domain is served with zero code change; a workbook cannot inject code."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import configure_mappers

from app.cli import main
from generator import WorkbookError, generate, load_spec, render
from tests.conftest import ROOT, SHIPPED
from tests.probes import run_probe
from tests.workbooks import LIBRARY_REPORTS, library_sheets, write_workbook

GENERATED = ROOT / "app" / "generated"


def test_shipped_generated_code_is_current() -> None:
    result = CliRunner().invoke(main, ["generate", "--check", "--workbook", str(SHIPPED), "--out", str(GENERATED)])
    assert result.exit_code == 0, result.output


def test_generated_files_carry_the_do_not_edit_header() -> None:
    for path in GENERATED.glob("*.py"):
        assert path.read_text(encoding="utf-8").startswith("# generated from crm.xlsx — do not edit"), path


def test_generated_modules_import_and_mappers_configure(app: Any) -> None:
    models = importlib.import_module("crm_generated.models")
    configure_mappers()
    spec, _ = load_spec(SHIPPED)
    assert sorted(models.MODELS) == sorted(e.name for e in spec.entities)
    for e in spec.entities:
        table = models.MODELS[e.name].__table__
        for f in e.fields:
            column = table.c[f.column]
            assert column.nullable is (not f.required), (e.name, f.name)
            if f.type == "link":
                assert {fk.column.table.name for fk in column.foreign_keys} == {f.link}


def test_rendering_is_deterministic() -> None:
    spec, _ = load_spec(SHIPPED)
    assert render(spec) == render(spec)


def test_shipped_workbook_covers_the_seed_processes() -> None:
    spec, _ = load_spec(SHIPPED)
    names = {e.name for e in spec.entities}
    assert {
        "customer",
        "contact",
        "follow_up",
        "visit_request",
        "meeting_minutes",
        "service_call",
        "maintenance_contract",
        "complaint",
        "survey_response",
        "master_data_request",
        "customer_development",
        "care_event",
        "confidential_formula",
    } <= names
    roles = {r.name for r in spec.roles}
    assert {"系统管理员", "销售经理", "业务员", "客服专员", "技术员", "质量主管", "总经理", "数据中心"} <= roles
    call_types = {c.value for c in spec.choices[spec.entity("service_call").field("call_type").choices]}  # type: ignore[union-attr]
    assert len(call_types) == 3
    grades = {r.grade for r in spec.grading if r.entity == "customer" and r.field == "grade"}
    assert grades == {"A", "B", "C"}
    assert any(f.encrypted for f in spec.entity("confidential_formula").fields)  # type: ignore[union-attr]


def test_second_workbook_of_another_domain_serves_crud(tmp_path: Path) -> None:
    workbook = write_workbook(tmp_path / "library.xlsx", {**library_sheets(), "reports": LIBRARY_REPORTS})
    out = tmp_path / "library_app"
    result = generate(workbook, out)
    assert "models.py" in result.written
    env = {"CRM_WORKBOOK": str(workbook), "CRM_GENERATED_DIR": str(out), "CRM_DATABASE_URL": f"sqlite:///{tmp_path / 'library.sqlite'}"}
    r = run_probe("library", env)
    assert r["book_create"] == [201, 1]
    assert r["book_invalid"] == [422, ["genre", "pages"]]
    assert r["member_create"] == 201 and r["loan_create"] == 201
    assert r["loan_show"] == [200, "红楼梦", "应还日期"]
    assert r["book_edit"] == 200 and r["book_after_edit"] == 1700
    assert r["book_search"] == 1
    assert r["ui_add_form"] == [200, True, True]
    assert r["ui_add"] == 302
    assert r["ui_list"] == [200, True, True, True]
    assert r["ui_show_related"] == [200, True]
    assert r["ui_delete"] == [302, 404]
    assert r["menu"] == [True, True]
    assert r["dashboard"] == ["各类图书", ["小说", "科普"], [[1, 0], [1700, None]]]  # 三体 was deleted, 红楼梦 edited


HOSTILE = "'''\"\"\"\n__import__('pathlib').Path('var/PWNED').touch() {{ 7*7 }} {% raw %}<script>alert('label')</script>"


def test_workbook_cannot_inject_code(tmp_path: Path) -> None:
    sheets = {
        "entities": [{"name": "thing", "label": HOSTILE, "label_en": HOSTILE, "menu": HOSTILE, "description": HOSTILE}],
        "fields": [
            {"entity": "thing", "name": "title", "label": HOSTILE, "type": "string", "help": HOSTILE, "default": HOSTILE, "list": "yes"},
            {"entity": "thing", "name": "kind", "label": "<b>kind</b>", "type": "choice", "choices": "kinds", "list": "yes"},
        ],
        "choices": [{"list": "kinds", "value": "a'b\"c", "label": HOSTILE}],
        "roles": [{"role": HOSTILE[:60].replace("\n", " "), "description": HOSTILE}],
        "settings": [{"key": "app_name", "value": HOSTILE}],
    }
    workbook = write_workbook(tmp_path / "hostile.xlsx", sheets)
    out = tmp_path / "hostile_app"
    files = generate(workbook, out).files
    for name, text in files.items():
        if name.endswith(".py"):
            tree = ast.parse(text)  # still valid Python
            calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "__import__"]
            assert not calls, name
    env = {"CRM_WORKBOOK": str(workbook), "CRM_GENERATED_DIR": str(out), "CRM_DATABASE_URL": f"sqlite:///{tmp_path / 'hostile.sqlite'}"}
    r = run_probe("injection", env)
    assert r == {"raw_script": False, "escaped": True, "pwned": False}


def test_identifiers_from_the_workbook_are_validated_before_they_reach_python(tmp_path: Path) -> None:
    sheets = library_sheets()
    sheets["fields"][0]["name"] = "title=__import__('os')"
    workbook = write_workbook(tmp_path / "bad.xlsx", sheets)
    result = CliRunner().invoke(main, ["generate", "--workbook", str(workbook), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert not (tmp_path / "out").exists()


HOSTILE_NAMES = [
    'x"""; import builtins; builtins.PWNED = 1; """.xlsx',
    "x'''; import builtins; builtins.PWNED = 2; '''.xlsx",
    "x\nimport builtins; builtins.PWNED = 3\n.xlsx",
    "x\\\rimport builtins; builtins.PWNED = 4 #\\.xlsx",
]


def _shape(tree: ast.AST) -> str:
    """The statements of a module with every string constant blanked: what the code does."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            node.value = ""
    return ast.dump(tree)


def test_workbook_file_name_cannot_inject_code(tmp_path: Path) -> None:
    import builtins

    plain = generate(write_workbook(tmp_path / "plain.xlsx", library_sheets()), tmp_path / "plain_app").files
    for i, name in enumerate(HOSTILE_NAMES):
        folder = tmp_path / f"hostile{i}"
        folder.mkdir()
        files = generate(write_workbook(folder / name, library_sheets()), folder / "app").files
        assert files.keys() == plain.keys()
        for file, text in files.items():
            if not file.endswith(".py"):
                continue
            assert _shape(ast.parse(text)) == _shape(ast.parse(plain[file])), (name, file)  # the name adds no statement
            assert text.splitlines()[0].startswith("# generated from x"), (name, file)
        namespace: dict[str, Any] = {}
        exec(compile(files["__init__.py"], "__init__.py", "exec"), namespace)  # noqa: S102 - the module is constants only
        assert namespace["WORKBOOK"] == name
        assert not hasattr(builtins, "PWNED")


def test_a_workbook_is_read_again_when_its_bytes_change(tmp_path: Path) -> None:
    """A process keeps a valid workbook it read (plan, generate and upgrade read the same one), by
    content: the same bytes are not read again, an edited file always is, and a broken one is
    never kept."""
    sheets = library_sheets()
    path = write_workbook(tmp_path / "office.xlsx", sheets)
    first, _ = load_spec(path)
    assert load_spec(path)[0] is first
    sheets["fields"].append({"entity": "book", "name": "shelf", "label": "书架", "type": "string"})
    write_workbook(path, sheets)
    edited, _ = load_spec(path)
    assert edited is not first and edited.entity("book").field("shelf") is not None
    sheets["fields"].append({"entity": "book", "name": "shelf", "label": "又一个书架", "type": "string"})
    write_workbook(path, sheets)
    for _ in range(2):
        with pytest.raises(WorkbookError, match="duplicate field 'shelf'"):
            load_spec(path)
