"""Load a generated package from any directory (``CRM_GENERATED_DIR``) under one module name."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from app.spec.model import Spec

MODULE = "crm_generated"


class GeneratedAppError(RuntimeError):
    """The generated package is missing, or another one is already loaded in this process."""


@dataclass
class Generated:
    path: Path
    spec: Spec
    models: ModuleType
    views: ModuleType
    permissions: ModuleType


def load_generated(directory: str | Path) -> Generated:
    path = Path(directory).resolve()
    if not (path / "__init__.py").exists() or not (path / "spec.json").exists():
        raise GeneratedAppError(f"no generated application in {path}: run `crm generate` first")
    loaded = sys.modules.get(MODULE)
    if loaded is not None and Path(loaded.__path__[0]).resolve() != path:
        raise GeneratedAppError(f"{loaded.__path__[0]} is already loaded in this process; one generated app per process")
    if loaded is None:
        spec = importlib.util.spec_from_file_location(MODULE, path / "__init__.py", submodule_search_locations=[str(path)])
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[MODULE] = module
        try:
            spec.loader.exec_module(module)
        except Exception:
            del sys.modules[MODULE]
            raise
    models = importlib.import_module(f"{MODULE}.models")
    views = importlib.import_module(f"{MODULE}.views")
    permissions = importlib.import_module(f"{MODULE}.permissions")
    spec_obj = Spec.from_json((path / "spec.json").read_text(encoding="utf-8"))
    return Generated(path, spec_obj, models, views, permissions)
