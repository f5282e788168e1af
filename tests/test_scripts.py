"""Scripts that cannot rot: every script under scripts/ imports, answers ``--help``, and every
name it takes from the package (at the top or inside a function, as ``from X import name`` or
as ``module.name``) exists, so a move of names breaks this suite and not a user's benchmark.
scripts/setup.sh parses (``bash -n``)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
PY = sorted(SCRIPTS.glob("*.py"))
PACKAGE = "sen12ms_build"


def load(path: Path) -> ModuleType:
    """Import a script as a module (registered under its name, as ``import`` would)."""
    name = f"_script_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def resolve(module: str, name: str) -> bool:
    """Whether ``from module import name`` works (an attribute or a submodule)."""
    mod = importlib.import_module(module)
    if hasattr(mod, name):
        return True
    try:
        importlib.import_module(f"{module}.{name}")
    except ModuleNotFoundError:
        return False
    return True


def package_names(tree: ast.AST) -> tuple[list[tuple[str, str, int]], dict[str, str]]:
    """Every ``from sen12ms_build... import name`` of a file, at any depth: [(module, name,
    line)], and the names bound to package modules: {alias: dotted module}."""
    imported, modules = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
                node.module.split(".")[0] == PACKAGE:
            for a in node.names:
                imported.append((node.module, a.name, node.lineno))
                dotted = f"{node.module}.{a.name}"
                if importlib.util.find_spec(node.module) and _is_module(dotted):
                    modules[a.asname or a.name] = dotted
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == PACKAGE:
                    imported.append((a.name, "", node.lineno))
                    if a.asname:
                        modules[a.asname] = a.name
    return imported, modules


def _is_module(dotted: str) -> bool:
    try:
        return importlib.util.find_spec(dotted) is not None
    except ModuleNotFoundError:
        return False


def test_there_are_scripts():
    assert len(PY) >= 10 and SCRIPTS / "benchmark_mosaic.py" in PY


@pytest.mark.parametrize("path", PY, ids=lambda p: p.name)
def test_script_imports_its_package_names_and_answers_help(path, monkeypatch, capsys):
    tree = ast.parse(path.read_text(), filename=str(path))
    imported, modules = package_names(tree)
    missing = []
    for module, name, line in imported:
        try:
            ok = resolve(module, name) if name else bool(importlib.import_module(module))
        except ImportError:
            ok = False
        if not ok:
            missing.append(f"{path.name}:{line}: from {module} import {name or '(module)'}")
    for node in ast.walk(tree):  # module.name uses of the package's modules
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                node.value.id in modules:
            if not resolve(modules[node.value.id], node.attr):
                missing.append(f"{path.name}:{node.lineno}: {modules[node.value.id]}."
                               f"{node.attr}")
    assert not missing, "names the script takes from the package are gone:\n" + \
        "\n".join(missing)

    module = load(path)  # top-level code runs: it must have no side effects
    try:
        assert callable(getattr(module, "main", None)), f"{path.name} has no main()"
        monkeypatch.setattr(sys, "argv", [str(path), "--help"])
        with pytest.raises(SystemExit) as exit_:
            module.main()
        assert exit_.value.code in (0, None)
        assert capsys.readouterr().out.startswith("usage:")
    finally:
        sys.modules.pop(module.__name__, None)


def test_scripts_guard_their_main():
    """Importing a script runs no work: every script calls main() only under
    ``if __name__ == "__main__":``."""
    for path in PY:
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
                pytest.fail(f"{path.name}:{node.lineno}: a call at the top level")
        guards = [n for n in tree.body if isinstance(n, ast.If) and
                  "__main__" in ast.unparse(n.test)]
        assert guards, f"{path.name}: no `if __name__ == \"__main__\":`"


def test_the_checks_catch_a_moved_name(tmp_path):
    """The checks are not vacuous: a function-level import of a name that is not in the
    package, and a ``module.name`` that is not there, are reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("from sen12ms_build import mosaic\n"
                   "def f():\n"
                   "    from sen12ms_build.demo.archive import _smooth_noise\n"
                   "    return mosaic.no_such_function\n")
    imported, modules = package_names(ast.parse(bad.read_text()))
    assert ("sen12ms_build.demo.archive", "_smooth_noise", 3) in imported
    assert not resolve("sen12ms_build.demo.archive", "_smooth_noise")
    assert resolve("sen12ms_build.demo.clouds", "_smooth_noise")  # where it lives now
    assert modules == {"mosaic": "sen12ms_build.mosaic"}
    assert not resolve("sen12ms_build.mosaic", "no_such_function")
    assert resolve("sen12ms_build.mosaic", "s2cloudless_model")  # a submodule resolves


def test_setup_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPTS / "setup.sh")]).returncode == 0
