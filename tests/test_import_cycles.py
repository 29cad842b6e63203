"""scripts/import_cycles.py: it finds cycles (relative, absolute and TYPE_CHECKING imports),
ignores deferred imports, and finds none in ssmsh."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "import_cycles", ROOT / "scripts/import_cycles.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["import_cycles"] = module
    spec.loader.exec_module(module)
    return module


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / "ssmsh" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_ssmsh_has_no_import_cycles() -> None:
    script = load_script()
    assert script.cycles(script.graph()) == []


def test_cycles_through_relative_absolute_and_type_checking_imports(tmp_path: Path) -> None:
    script = load_script()
    write(
        tmp_path,
        {
            "__init__.py": "",
            "a/__init__.py": "from .one import X\n",
            "a/one.py": "from . import two\nX = 1\n",
            "a/two.py": "import typing\nif typing.TYPE_CHECKING:\n    from .one import X\n",
            "b.py": "import ssmsh.c\n",
            "c.py": "from ssmsh import b\n",
            "d.py": "def f():\n    from . import e\n",
            "e.py": "from .d import f\n",
        },
    )
    graph = script.graph(tmp_path)
    assert graph["ssmsh.a.one"] == {"ssmsh.a.two"}
    assert graph["ssmsh.d"] == set()  # imports inside functions are deferred: not counted
    assert script.cycles(graph) == [["ssmsh.a.one", "ssmsh.a.two"], ["ssmsh.b", "ssmsh.c"]]
