#!/usr/bin/env python
"""Mutation gate: plant small bugs in the core modules, one at a time, and check that the
tests covering each module fail.

For every module a mutant is one small change of its code (an operator swapped, a
comparison loosened or tightened, a number nudged, a sign or a ``not`` dropped, ``and``
turned into ``or``, ``True`` into ``False``). Each mutant is written into a scratch copy of
the repository and the module's tests run there (``pytest -x -m "not slow"``; ``--slow``
includes the slow ones). A mutant is *killed* when a test fails or times out, *survives*
when all pass. The report gives the kill rate per module and lists every survivor (file,
line, the change) so it can be killed by a new test or explained as equivalent.

Not in CI: each mutant costs one pytest run (seconds to minutes). Sample with
``--max-mutants-per-module`` and choose modules with ``--module``. One worker by default,
at low CPU priority (``nice``), so it does not hog a shared machine.

Usage::

    python scripts/mutation.py --module layout --module tiling --max-mutants-per-module 30
    python scripts/mutation.py --all --max-mutants-per-module 20 --json mutation.json
    python scripts/mutation.py --module mosaic --list        # list the mutation sites only

Mutation sites are numbered in a fixed walk of the module's syntax tree; a sample is drawn
with ``--seed`` (default 0), so two runs with the same options test the same mutants.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: Core modules and the quick tests that cover each (``-m "not slow"``); ``--slow`` adds the
#: slow tests (demo archive, whole runs) listed second.
MODULES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "mosaic": ("sen12ms_build/mosaic/scores.py",
               ("tests/test_mosaic.py", "tests/test_mosaic_reference.py"),
               ("tests/test_demo_archive.py", "tests/test_detection.py")),
    "merging": ("sen12ms_build/mosaic/merging.py",
                ("tests/test_mosaic.py", "tests/test_mosaic_reference.py"),
                ("tests/test_demo_archive.py", "tests/test_detection.py")),
    "tiling": ("sen12ms_build/raster/tiling.py",
               ("tests/test_tiling.py", "tests/test_tiling_windows.py",
                "tests/test_tiling_strips.py"),
               ("tests/test_pipeline.py",)),
    "layout": ("sen12ms_build/dataset/layout.py",
               ("tests/test_splits.py", "tests/test_layout_names.py", "tests/test_tiling.py",
                "tests/test_layout_quality_and_stale.py"),
               ("tests/test_pipeline.py",)),
    "io": ("sen12ms_build/raster/io.py",
           ("tests/test_atomic.py", "tests/test_tiling.py", "tests/test_reproject.py",
            "tests/test_io_lock.py"),
           ("tests/test_reliability.py",)),
    "state": ("sen12ms_build/state.py", ("tests/test_state_bookkeeping.py",),
              ("tests/test_reliability.py", "tests/test_pipeline.py")),
    "reproject": ("sen12ms_build/raster/warp.py",
                  ("tests/test_reproject.py", "tests/test_reproject_windows.py",
                   "tests/test_warp_fast_kernel.py", "tests/test_reproject_nodata_fast_path.py"),
                  ("tests/test_pipeline.py",)),
    "curation": ("sen12ms_build/curation/rounds.py",
                 ("tests/test_curation.py", "tests/test_curation_measures.py"),
                 ("tests/test_curation_defects.py",)),
    "splits": ("sen12ms_build/dataset/splits.py",
               ("tests/test_splits.py", "tests/test_finalize_scale.py"),
               ("tests/test_selfdescription.py",)),
    "scorers": ("sen12ms_build/mosaic/scorers.py",
                ("tests/test_scorers.py", "tests/test_s2cloudless_model.py",
                 "tests/test_golden_paper.py"),
                ("tests/test_cloud_acceptance.py",)),
    "graphs": ("sen12ms_build/backends/earthengine/graphs.py",
               ("tests/test_earthengine_graphs.py", "tests/test_earthengine_pixel_values.py"),
               ("tests/test_earthengine_backend.py",)),
}

_BINOP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
          ast.FloorDiv: ast.Mult, ast.Pow: ast.Mult, ast.Mod: ast.FloorDiv}
_CMP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
        ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn,
        ast.NotIn: ast.In}


@dataclass
class Site:
    """One mutation: node ``index`` in the walk, its line and the change, as text."""

    index: int
    line: int
    kind: str
    before: str
    after: str


def _skip_ids(tree: ast.AST) -> set[int]:
    """ids of nodes never mutated: docstrings, annotations, f-strings, ``__all__``, and
    lines with ``# pragma: no mutate``."""
    skip: set[int] = set()

    def mark(node: ast.AST | None) -> None:
        if node is not None:
            skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                mark(body[0])
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            mark(node.returns)
            for a in node.args.args + node.args.kwonlyargs + node.args.posonlyargs:
                mark(a.annotation)
            mark(node.args.vararg and node.args.vararg.annotation)
            mark(node.args.kwarg and node.args.kwarg.annotation)
            for d in node.decorator_list:
                mark(d)
        if isinstance(node, ast.AnnAssign):
            mark(node.annotation)
        if isinstance(node, ast.JoinedStr):
            mark(node)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr in ("debug", "info", "warning", "error", "exception"):
            mark(node)  # log calls
    return skip


def _mutate(node: ast.AST) -> tuple[str, ast.AST] | None:
    """(kind, replacement) of one node, or None if the node has no mutation."""
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOP:
        new = copy.copy(node)
        new.op = _BINOP[type(node.op)]()
        return "binop", new
    if isinstance(node, ast.AugAssign) and type(node.op) in _BINOP:
        new = copy.copy(node)
        new.op = _BINOP[type(node.op)]()
        return "augassign", new
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _CMP:
        new = copy.copy(node)
        new.ops = [_CMP[type(node.ops[0])]()]
        return "compare", new
    if isinstance(node, ast.BoolOp):
        new = copy.copy(node)
        new.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        return "boolop", new
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
        return ("negation" if isinstance(node.op, ast.USub) else "not"), node.operand
    if isinstance(node, ast.Constant) and not isinstance(node.value, str):
        v = node.value
        if isinstance(v, bool):
            return "constant", ast.Constant(not v)
        if isinstance(v, int):
            return "constant", ast.Constant(v + 1)
        if isinstance(v, float):
            return "constant", ast.Constant(v * 1.5 if v else 1.0)
    return None


def _walk(tree: ast.AST) -> list[ast.AST]:
    """Every node, in a fixed order (breadth first, as ast.walk)."""
    return list(ast.walk(tree))


def sites(source: str) -> list[Site]:
    """Every mutation site of a module's source."""
    tree = ast.parse(source)
    skip = _skip_ids(tree)
    lines = source.splitlines()
    out = []
    for i, node in enumerate(_walk(tree)):
        if id(node) in skip:
            continue
        line = getattr(node, "lineno", 0)
        if line and "pragma: no mutate" in lines[line - 1]:
            continue
        m = _mutate(node)
        if m is None:
            continue
        kind, new = m
        try:
            before, after = ast.unparse(node), ast.unparse(new)
        except Exception:  # noqa: BLE001 - an odd node: no mutation there
            continue
        if before != after:
            out.append(Site(i, line, kind, before[:80], after[:80]))
    return out


class _Replace(ast.NodeTransformer):
    def __init__(self, target: ast.AST, new: ast.AST):
        self.target, self.new = target, new

    def generic_visit(self, node: ast.AST) -> ast.AST:
        if node is self.target:
            return self.new
        return super().generic_visit(node)


def mutant_source(source: str, site: Site) -> str:
    tree = ast.parse(source)
    node = _walk(tree)[site.index]
    _, new = _mutate(node)  # type: ignore[misc]
    tree = _Replace(node, ast.copy_location(new, node)).visit(tree)
    ast.fix_missing_locations(tree)
    return ast.unparse(tree) + "\n"


def scratch_copy(dest: Path) -> Path:
    """A copy of what the tests need: the package, tests, configs, scripts, docs, README and
    pyproject.toml."""
    for name in ("sen12ms_build", "tests", "configs", "scripts", "docs"):
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, dest / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, dest / name)
    return dest


def _one_worker() -> list[str]:
    """``-n 0`` when pytest-xdist is installed: the project's ``addopts`` may ask for
    workers, and the gate runs one pytest process per mutant on one core."""
    import importlib.util

    return ["-n", "0"] if importlib.util.find_spec("xdist") is not None else []


def run_tests(work: Path, tests: list[str], slow: bool, timeout: float) -> tuple[str, float]:
    """('passed' | 'failed' | 'timeout' | 'error', seconds) of the tests in ``work``."""
    env = {**os.environ, "PYTHONPATH": str(work), "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = ["nice", "-n", "10", sys.executable, "-m", "pytest", "-q", "-x",
           "-p", "no:cacheprovider", *_one_worker(), *([] if slow else ["-m", "not slow"]),
           *tests]
    t = time.perf_counter()
    try:
        res = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True,
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - t
    dt = time.perf_counter() - t
    return {0: "passed", 1: "failed"}.get(res.returncode, "error"), dt


def gate(module: str, max_mutants: int | None, seed: int, slow: bool,
         extra_tests: list[str], only_tests: list[str] | None = None) -> dict:
    path, quick, slow_tests = MODULES[module]
    tests = list(quick) + (list(slow_tests) if slow else []) + extra_tests
    if only_tests:
        tests = list(only_tests)
    source = (REPO / path).read_text()
    all_sites = sites(source)
    chosen = list(all_sites)
    if max_mutants is not None and len(chosen) > max_mutants:
        chosen = sorted(random.Random(f"{seed}:{module}").sample(chosen, max_mutants),
                        key=lambda s: s.index)
    result = {"module": module, "path": path, "tests": tests, "sites": len(all_sites),
              "mutants": len(chosen), "killed": 0, "timeout": 0, "survived": [],
              "errors": []}
    with tempfile.TemporaryDirectory(prefix=f"mutation_{module}_") as tmp:
        work = scratch_copy(Path(tmp))
        probe = subprocess.run([sys.executable, "-c", "import sen12ms_build; "
                                "print(sen12ms_build.__file__)"], cwd=work, capture_output=True,
                               text=True, env={**os.environ, "PYTHONPATH": str(work)})
        if not probe.stdout.strip().startswith(str(work)):
            raise SystemExit(f"the scratch copy is not the one imported: {probe.stdout}")
        status, base = run_tests(work, tests, slow, timeout=3600)
        if status != "passed":
            raise SystemExit(f"{module}: the tests fail without any mutant ({status}); "
                             "fix them first")
        timeout = 3.0 * base + 15.0
        target = work / path
        print(f"{module}: {len(all_sites)} sites, testing {len(chosen)} mutants "
              f"(tests {base:.1f} s each)", flush=True)
        for k, site in enumerate(chosen, 1):
            target.write_text(mutant_source(source, site))
            status, dt = run_tests(work, tests, slow, timeout)
            target.write_text(source)
            mark = {"failed": "killed", "timeout": "killed (timeout)", "passed": "SURVIVED",
                    "error": "error"}[status]
            print(f"  [{k}/{len(chosen)}] line {site.line} {site.kind}: {site.before!r} -> "
                  f"{site.after!r}: {mark} ({dt:.1f} s)", flush=True)
            if status == "failed":
                result["killed"] += 1
            elif status == "timeout":
                result["killed"] += 1
                result["timeout"] += 1
            elif status == "passed":
                result["survived"].append(asdict(site))
            else:  # collection error (e.g. the mutant breaks the import): counted as killed
                result["killed"] += 1
                result["errors"].append(asdict(site))
    n = result["mutants"]
    result["kill_rate"] = round(result["killed"] / n, 3) if n else None
    return result


def report(results: list[dict]) -> str:
    rows = ["| module | sites | mutants tested | killed | survived | kill rate |",
            "|---|---|---|---|---|---|"]
    for r in results:
        rate = f"{100 * r['kill_rate']:.0f} %" if r["kill_rate"] is not None else "-"
        rows.append(f"| {r['module']} | {r['sites']} | {r['mutants']} | {r['killed']} | "
                    f"{len(r['survived'])} | {rate} |")
    out = ["\n".join(rows), ""]
    for r in results:
        if r["survived"]:
            out.append(f"Survivors in {r['path']} (tests: {' '.join(r['tests'])}):")
            out += [f"  line {s['line']} {s['kind']}: {s['before']}  ->  {s['after']}"
                    for s in r["survived"]]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--module", action="append", choices=sorted(MODULES), default=[],
                    help="module to mutate (repeatable)")
    ap.add_argument("--all", action="store_true", help="every core module")
    ap.add_argument("--max-mutants-per-module", type=int, default=None,
                    help="sample this many mutants per module (seeded)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--slow", action="store_true", help="also run the slow tests")
    ap.add_argument("--tests", nargs="*", default=[], help="extra test files to run")
    ap.add_argument("--only-tests", nargs="*", default=None,
                    help="run only these test files (e.g. to measure a 'before' figure)")
    ap.add_argument("--list", action="store_true", help="list the mutation sites and stop")
    ap.add_argument("--json", type=Path, default=None, help="write the results as JSON")
    args = ap.parse_args(argv)
    modules = sorted(MODULES) if args.all else args.module
    if not modules:
        ap.error("give --module NAME (repeatable) or --all")
    if args.list:
        for m in modules:
            for s in sites((REPO / MODULES[m][0]).read_text()):
                print(f"{m}:{s.line} {s.kind}: {s.before} -> {s.after}")
        return 0
    results = [gate(m, args.max_mutants_per_module, args.seed, args.slow, args.tests,
                    args.only_tests) for m in modules]
    print()
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
