"""The package's import graph: one way, no circles (issue 19).

Every module's imports, function-level ones included, are read with ``ast`` (nothing is
imported). The rules (docs/architecture.md):

* no cycle between modules;
* no production module imports ``demo/`` (the CLI's demo commands aside);
* ``mosaic/`` imports nothing above it: no backend, pipeline, raster I/O, curation or
  dataset module, and no config (the constants live in ``mosaic.params``).

The checker is tested on small planted packages too, so that it is known to fail.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sen12ms_build"

#: what mosaic/ may not import (module prefixes below the package)
MOSAIC_FORBIDDEN = ("backends", "pipeline", "raster", "curation", "dataset", "config", "cli",
                    "state", "demo")
#: production modules allowed to import demo/ (the CLI's demo commands)
DEMO_IMPORTERS = ("cli",)


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` below the package folder ``root``."""
    out = {}
    for p in sorted(root.rglob("*.py")):
        parts = list(p.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """The package's modules that module ``name`` imports anywhere in its body.

    ``from a.b import c`` counts ``a.b.c`` when it is a module, else ``a.b``. A module's
    own ancestor packages are not counted: Python runs them before the module anyway, and
    ``from . import sibling`` names the sibling.
    """
    pkg = name.split(".")[0]
    base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                b = base[: len(base) - (node.level - 1)]
                mod = ".".join(b + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" for a in node.names] + [mod]
        for t in targets:
            while t and t not in mods:
                t = t.rpartition(".")[0]
            if t and t != name and t.split(".")[0] == pkg and not name.startswith(t + "."):
                found.add(t)
    return found


def graph(root: Path) -> dict[str, set[str]]:
    mods = modules(root)
    return {m: imports(m, p, mods) for m, p in mods.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def violations(root: Path) -> list[str]:
    """Every broken rule of the package at ``root``, one line each."""
    g = graph(root)
    pkg = root.name
    out = [f"cycle: {' <-> '.join(c)}" for c in cycles(g)]
    for m, deps in sorted(g.items()):
        sub = m[len(pkg) + 1:]
        for d in sorted(deps):
            dsub = d[len(pkg) + 1:]
            if dsub.split(".")[0] == "demo" and sub.split(".")[0] not in ("demo",
                                                                            *DEMO_IMPORTERS):
                out.append(f"production module {m} imports the demo: {d}")
            if sub.split(".")[0] == "mosaic" and dsub.split(".")[0] in MOSAIC_FORBIDDEN:
                out.append(f"{m} imports {d}, above mosaic/")
    return out


def test_the_package_follows_the_import_rules():
    assert violations(PACKAGE) == []


def test_every_module_is_seen_function_level_imports_included():
    g = graph(PACKAGE)
    assert len(g) >= 50
    # the CLI imports the pipeline only inside its commands (function level)
    assert "sen12ms_build.pipeline" in g["sen12ms_build.cli"]
    assert "sen12ms_build.mosaic.scores" in g["sen12ms_build.mosaic.scorers"]


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "sen12ms_build"
    for rel, text in {"__init__.py": "", **files}.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


@pytest.mark.parametrize("files, expected", [
    ({"a.py": "from . import b\n", "b.py": "def f():\n    from .a import x\n"},
     "cycle: sen12ms_build.a <-> sen12ms_build.b"),
    ({"a.py": "from .c import y\n", "b.py": "from . import a\n",
      "c.py": "import sen12ms_build.b\n"},
     "cycle: sen12ms_build.a <-> sen12ms_build.b <-> sen12ms_build.c"),
    ({"demo/__init__.py": "", "demo/archive.py": "", "pipeline.py":
      "def f():\n    from .demo.archive import g\n"},
     "production module sen12ms_build.pipeline imports the demo"),
    ({"mosaic/__init__.py": "", "mosaic/scores.py": "from ..raster import io\n",
      "raster/__init__.py": "", "raster/io.py": ""},
     "sen12ms_build.mosaic.scores imports sen12ms_build.raster.io, above mosaic/"),
])
def test_a_planted_violation_is_found(tmp_path, files, expected):
    found = violations(_package(tmp_path, files))
    assert any(line.startswith(expected) for line in found), found


def test_a_planted_cycle_in_a_copy_of_the_real_package_fails(tmp_path):
    """The real package, copied, with one function-level import that closes a circle."""
    import shutil

    root = tmp_path / "sen12ms_build"
    shutil.copytree(PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__", "*.json"))
    assert violations(root) == []
    geo = root / "geo.py"
    geo.write_text(geo.read_text() + "\n\ndef _planted():\n    from .pipeline import run\n")
    assert any(line.startswith("cycle:") and "sen12ms_build.geo" in line
               for line in violations(root))
