"""The house's floor plan, checked: the ``app.spec`` kernel imports nothing of the app or the
generator, the running app (runtime packages and ``app/generated``) never imports the generator,
no module-level import cycle, and no entity of the shipped workbook named in hand-written code."""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HAND_WRITTEN = ("app", "generator", "config")
RUNTIME = ("app.record", "app.access", "app.web", "app.io", "app.messaging", "app.reports", "app.migrate",
           "app.loader", "app.factory", "app.tasks", "app.wsgi", "app.generated")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    found = {}
    for top in HAND_WRITTEN:
        for path in (ROOT / top).rglob("*.py"):
            found[module_name(path)] = path
    return found


def imports(path: Path, name: str, known: dict[str, Path]) -> set[str]:
    """Modules of ours that ``path`` imports, anywhere in it (inside functions too: a lazy import
    hides a cycle, it does not break it; ``if TYPE_CHECKING`` blocks aside)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")
                    parts = parts[: len(parts) - (child.level - 1)]
                    base = ".".join(parts + ([child.module] if child.module else []))
                # `from pkg import module` imports the module; `from module import name`, the module
                found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in child.names)
            visit(child)

    visit(tree)
    return found


def ours(found: set[str], known: dict[str, Path]) -> set[str]:
    return {m for m in found if m in known}


def test_the_spec_kernel_imports_only_itself() -> None:
    known = modules()
    for name, path in known.items():
        if name == "app.spec" or name.startswith("app.spec."):
            outside = {m for m in ours(imports(path, name, known=known), known)
                       if not (m == "app.spec" or m.startswith("app.spec.")) and m != "app"}
            assert not outside, f"{name} imports {sorted(outside)}: the kernel imports neither the runtime nor the generator"


def test_the_running_app_never_imports_the_generator() -> None:
    known = modules()
    for path in (ROOT / "app" / "generated").rglob("*.py"):
        known.setdefault(module_name(path), path)
    offenders = {}
    for name, path in known.items():
        if name.startswith(RUNTIME):
            bad = sorted(m for m in imports(path, name, known=known) if m == "generator" or m.startswith("generator."))
            if bad:
                offenders[name] = bad
    assert not offenders, f"the runtime needs the build tool: {offenders}"


def test_importing_the_kernel_loads_nothing_else() -> None:
    import subprocess
    import sys

    code = ("import sys, app.spec.model, app.spec.steps, app.spec.revisions, app.spec.sqlexpr, app.spec.exprtypes, app.spec.when; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('app', 'generator', 'flask', 'flask_appbuilder')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout  # noqa: S603
    loaded = eval(out)  # noqa: S307 - our own print of a list of strings
    assert all(m == "app" or m.startswith("app.spec") for m in loaded), loaded


def test_no_import_cycle() -> None:
    known = modules()
    graph = {name: ours(imports(path, name, known=known), known) - {name} for name, path in known.items()}
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def strong(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                on.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                cycles.append(sorted(part))

    for v in graph:
        if v not in index:
            strong(v)
    assert not cycles, f"import cycles: {cycles}"


def shipped_entities() -> set[str]:
    spec = json.loads((ROOT / "app" / "generated" / "spec.json").read_text(encoding="utf-8"))
    return {e["name"] for e in spec["entities"]}


@pytest.mark.parametrize("top", HAND_WRITTEN)
def test_no_entity_of_the_shipped_workbook_in_hand_written_code(top: str) -> None:
    """Every identifier and string literal (docstrings aside) of hand-written code: a second
    workbook must get a working app with zero code change."""
    names = shipped_entities()
    hits = []
    for path in (ROOT / top).rglob("*.py"):
        if "generated" in path.relative_to(ROOT).parts:
            continue
        source = path.read_text(encoding="utf-8")
        docs = {n.body[0].value.lineno for n in ast.walk(ast.parse(source))
                if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and n.body
                and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant) and isinstance(n.body[0].value.value, str)}
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            words = [tok.string] if tok.type == tokenize.NAME else re.findall(r"[a-z_]+", tok.string) if (
                tok.type == tokenize.STRING and tok.start[0] not in docs) else []
            hits += [f"{path.relative_to(ROOT)}:{tok.start[0]} {w}" for w in words if w in names]
    assert not hits, hits


def test_no_request_is_faked_in_hand_written_code() -> None:
    """``test_request_context`` is a test helper: production code that needs the language or the
    user says so explicitly (``app.web.i18n.speaking``, a ``user`` argument), it does not build an
    HTTP request nobody sent to have them read from it."""
    hits = []
    for top in HAND_WRITTEN:
        for path in (ROOT / top).rglob("*.py"):
            if "generated" in path.relative_to(ROOT).parts:
                continue
            source = path.read_text(encoding="utf-8")
            for tok in tokenize.generate_tokens(io.StringIO(source).readline):
                if tok.type in (tokenize.NAME, tokenize.STRING) and "test_request_context" in tok.string:
                    hits.append(f"{path.relative_to(ROOT)}:{tok.start[0]}")
    assert not hits, f"a fake request in production code: {hits}"
