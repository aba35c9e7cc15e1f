"""The core imports neither Avalanche nor Flower; the two integrations never import each other;
`condense cl` / `condense fl` name the extra to install when theirs is missing."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_IMPORT_ALL = """
import importlib, pkgutil, sys
import condense
skip = ("condense.strategies", "condense.federated")
names = [m.name for m in pkgutil.walk_packages(condense.__path__, "condense.") if not m.name.startswith(skip)]
for name in names:
    importlib.import_module(name)
{extra}
bad = sorted(m for m in sys.modules if m.split(".")[0] in {forbidden!r})
print(len(names), bad)
"""


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


def test_the_core_imports_neither_avalanche_nor_flower() -> None:
    line = _run(_IMPORT_ALL.format(extra="", forbidden={"avalanche", "flwr", "flwr_datasets", "ray"}))
    count, bad = line.split(" ", 1)
    assert int(count) > 30 and bad == "[]", line


@pytest.mark.parametrize("package,forbidden", [("strategies", {"flwr", "flwr_datasets", "ray"}),
                                               ("federated", {"avalanche"})])
def test_each_integration_loads_without_the_other(package: str, forbidden: set[str]) -> None:
    extra = (f"import condense.{package} as p\n"
             f"for m in pkgutil.walk_packages(p.__path__, 'condense.{package}.'):\n"
             "    importlib.import_module(m.name)")
    line = _run(_IMPORT_ALL.format(extra=extra, forbidden=forbidden))
    assert line.endswith("[]"), line


@pytest.mark.parametrize("package,other", [("strategies", "federated"), ("federated", "strategies")])
def test_the_integrations_never_import_each_other(package: str, other: str) -> None:
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not [n for n in names if n.startswith(f"condense.{other}")], f"{path.name} imports condense.{other}"


@pytest.mark.parametrize("command,module,extra", [
    (["cl", "--data", "digits", "--quiet"], "avalanche", "avalanche"),
    (["fl", "--data", "digits", "--quiet"], "flwr", "flower"),
])
def test_a_missing_extra_is_named_in_one_line(command: list[str], module: str, extra: str) -> None:
    code = (f"import sys; sys.modules[{module!r}] = None\n"
            "from condense.cli import main\n"
            f"sys.exit(main({command!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and f"pip install 'condense[{extra}]'" in lines[0], out.stderr
