"""Runtime messages come from the catalogue: every ``msg``/``place``/``later`` of the app's code names an
entry of the en catalogue with its placeholders, none is written inline as "中文 (English)", and
the module renders each in the reader's language (bilingual on the CLI, in jobs and workbooks)."""

from __future__ import annotations

import ast
import pickle
import re
from pathlib import Path
from typing import Any

from babel.messages.pofile import read_po
from flask import session
from flask_babel import refresh
from markupsafe import Markup

from app.messages import Joined, later, localized, msg, place
from app.web.translations import DIRECTORY

ROOT = Path(__file__).resolve().parent.parent
MAKERS = {"msg", "place", "later"}
# the shape of a bilingual message: Chinese, then "(English …)" after a space (in an f-string the
# English may start with a value: "({n} rows …)"; "({ids})" is a list, not English)
BILINGUAL = re.compile(r"[\u4e00-\u9fff][^\n]* \((?:[A-Za-z]|\{\}[^)])[^\n]*\)")
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def hand_written() -> list[Path]:
    return [p for p in sorted((ROOT / "app").rglob("*.py")) if "generated" not in p.relative_to(ROOT).parts]


def english() -> dict[Any, Any]:
    with (DIRECTORY / "en" / "LC_MESSAGES" / "messages.po").open("rb") as f:
        return {(m.context, m.id): m.string for m in read_po(f) if m.id}


def calls(tree: ast.AST) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and (n.func.id if isinstance(n.func, ast.Name) else n.func.attr if isinstance(n.func, ast.Attribute) else "") in MAKERS]


def inline_bilingual(path: Path) -> list[str]:
    """String literals of ``path`` (docstrings and message ids aside) shaped like "中文 (English)";
    an f-string is read with ``{}`` for its values."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    skip |= {id(c.args[0]) for c in calls(tree) if c.args}
    inner = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    hits = []
    for node in ast.walk(tree):
        if id(node) in skip or id(node) in inner:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        elif isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
        else:
            continue
        if BILINGUAL.search(text):
            hits.append(f"{path.relative_to(ROOT)}:{node.lineno} {text!r}")
    return hits


def test_no_message_is_written_inline() -> None:
    hits = [hit for path in hand_written() for hit in inline_bilingual(path)]
    assert not hits, "write these as msg(\"中文\") with their English in the en catalogue:\n" + "\n".join(hits)


def test_the_inline_check_sees_what_it_should() -> None:
    """The check above would fail on an inline message, in an f-string or split over lines."""
    source = '''"""A docstring may say 中文 (English)."""
a = "文件是空的 (the file is empty)"
b = f"第 {n} 行无法读取 (line {n} cannot be read)"
c = ("升级被拒绝,"
     "没有任何改动 (nothing changed)")
d = msg("先建好它 (CREATE SCHEMA …) 再运行")
'''
    path = ROOT / "app" / "probe_inline.py"
    try:
        path.write_text(source, encoding="utf-8")
        assert [h.split(" ", 1)[0] for h in inline_bilingual(path)] == [f"app/probe_inline.py:{n}" for n in (2, 3, 4)]
    finally:
        path.unlink()


def test_every_message_of_the_code_has_english() -> None:
    catalogue = english()
    problems = []
    used = 0
    for path in hand_written():
        for call in calls(ast.parse(path.read_text(encoding="utf-8"))):
            where = f"{path.relative_to(ROOT)}:{call.lineno}"
            if not (call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)):
                if path.name == "messages.py" and path.parent.name == "app":  # the makers themselves
                    continue
                problems.append(f"{where}: the message id must be a literal, so that this test can read it")
                continue
            msgid, used = call.args[0].value, used + 1
            keywords = {k.arg: k.value for k in call.keywords}
            if None in keywords:
                problems.append(f"{where}: name each value (no **kwargs), so that this test can check them")
                continue
            context = keywords.pop("context", None)
            context = context.value if isinstance(context, ast.Constant) else context
            if context is not None and not isinstance(context, str):
                problems.append(f"{where}: the context must be a literal")
                continue
            plural = "count" in keywords
            en = catalogue.get((context, (msgid, msgid) if plural else msgid))
            if not en or (plural and not all(en)):
                problems.append(f"{where}: {msgid!r} has no English{' plural' if plural else ''} in the en catalogue")
                continue
            wanted = set(PLACEHOLDER.findall(msgid)).union(*(PLACEHOLDER.findall(s) for s in (en if plural else (en,))))
            if wanted != set(keywords):
                problems.append(f"{where}: {msgid!r} uses {sorted(wanted)}, the call gives {sorted(keywords)}")
            if re.search(r" \([A-Za-z][^()]*\)$", msgid):
                problems.append(f"{where}: {msgid!r} carries its English: the catalogue does")
    assert not problems, "\n".join(problems)
    assert used > 100  # the check read the code


def test_a_message_is_bilingual_off_screen_and_in_the_readers_language_on_it(app: Any) -> None:
    empty = msg("文件是空的")
    assert empty == "文件是空的 (the file is empty)" and str(empty) == empty.render("both")
    assert (empty.render("zh"), empty.render("en")) == ("文件是空的", "the file is empty")
    assert localized(empty) == "文件是空的 (the file is empty)"  # the CLI, a job, a log
    assert localized("plain text") == "plain text"
    with app.test_request_context():
        assert localized(empty) == "文件是空的"
        session["locale"] = "en"
        refresh()
        assert localized(empty) == "the file is empty"
        assert str(later("文件是空的")) == "the file is empty" and str(Markup("{}").format(later("%(label)s格式不正确",
                                                                                    label="x", label_en="<b>"))) == "&lt;b&gt; has a wrong format"


def test_plurals_contexts_places_and_joins() -> None:
    assert [str(msg("%(count)s 个问题", count=n)) for n in (1, 3)] == ["1 个问题 (1 problem)", "3 个问题 (3 problems)"]
    assert msg("与第 %(row)s 行重复", context="key", row=2).render("en") == "same key as row 2"
    assert msg("与第 %(row)s 行重复", context="value", row=2).render("en") == "same as row 2"
    problem = Joined(place("第 %(row)s 行 %(column)s 列 '%(header)s':", row=1, column="A", header="客户名"), msg("未知列", header="客户名"),
                     place(";"), msg("是否指"), " '客户名称'?")
    assert problem == "第 1 行 A 列 '客户名':未知列 (unknown column '客户名');是否指 (did you mean) '客户名称'?"
    assert problem.render("zh") == "第 1 行 A 列 '客户名':未知列;是否指 '客户名称'?"
    assert problem.render("en") == "row 1, column A '客户名': unknown column '客户名'; did you mean '客户名称'?"
    for text in (msg("文件是空的"), msg("%(count)s 个问题", count=3), problem):
        again = pickle.loads(pickle.dumps(text))
        assert again == text and type(again) is type(text) and again.render("en") == text.render("en")
