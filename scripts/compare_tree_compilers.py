#!/usr/bin/env python3
"""Compare model compilers for the s2cloudless LightGBM model, and check the chosen one.

**Compilers** (``--compilers``; each case in a fresh process, one after the other in this
invocation, on the same input): LightGBM's own ``Booster.predict`` (the reference),
``lleaves`` with the options the scorer uses (``s2cloudless_model.COMPILE_OPTIONS``) and
``tl2cgen`` (treelite's C code generator, compiled by gcc, one translation unit per tree:
``parallel_comp``). Per case: compile wall and CPU seconds (gcc's child processes included),
the compile's peak resident memory (the process's, or gcc's largest child), loading the
compiled library, predict CPU seconds on one thread and wall seconds on ``--threads``,
microseconds per pixel, and the largest difference from LightGBM's probabilities. The input
is every pixel of the s2cloudless test array (``s2cloudless/TestInputs/input_arrays.npz`` of
the 1.2.1 sdist; scripts/setup.sh fetches it into ``.venv/share/sen12ms-build/``), doubled
(the array then its mirror image) to 876,544 pixels. Not installed compilers are skipped
(``pip install treelite tl2cgen`` for the comparison; lleaves comes with the extra).

**Check** (``--check``): the scorer's own predictor (``s2cloudless_model.predictor()``,
compiled into the user cache once) against ``Booster.predict`` on every pixel of the test
array and of the demo archive's six real-cloud acquisitions (whole scenes, at the score scale:
20 m block means, what the scorer classifies); prints the largest difference of each.

    .venv/bin/python scripts/compare_tree_compilers.py [--compilers lightgbm,lleaves,tl2cgen]
        [--workdir /tmp/sen12ms-tree-compilers] [--threads 2] [--check] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_ARRAY = (Path(sys.prefix) / "share" / "sen12ms-build" / "s2cloudless-1.2.1"
                 / "input_arrays.npz")
#: s2cloudless.utils.MODEL_BAND_IDS: B1, B2, B4, B5, B8, B8A, B9, B10, B11, B12 of the 13.
MODEL_BANDS = [0, 1, 3, 4, 7, 8, 9, 10, 11, 12]
COMPILERS = ("lightgbm", "lleaves", "tl2cgen")


def test_array(path: Path) -> np.ndarray:
    """(n, 10) float32 reflectance: every pixel of the array, then of its mirror image."""
    s2_im = np.load(path)["s2_im"][0]
    x = s2_im.reshape(-1, 13)[:, MODEL_BANDS].astype(np.float32)
    return np.ascontiguousarray(np.concatenate([x, x[::-1]]))


def _cpu(who: int = resource.RUSAGE_SELF) -> float:
    use = resource.getrusage(who)
    return use.ru_utime + use.ru_stime


def _peak_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_case(which: str, array: Path, work: Path, threads: int) -> dict:
    """One compiler in this (fresh) process: compile, load, predict (child process)."""
    from sen12ms_build.mosaic import s2cloudless_model

    model = s2cloudless_model.model_file()
    x32 = test_array(array)
    x64 = x32.astype(np.float64)
    work.mkdir(parents=True, exist_ok=True)
    out: dict = {"compiler": which, "pixels": len(x32)}
    c0, k0, t0 = _cpu(), _cpu(resource.RUSAGE_CHILDREN), time.perf_counter()
    if which == "lightgbm":
        from lightgbm import Booster

        booster = Booster(model_file=str(model))
        out["version"] = __import__("lightgbm").__version__

        def predict(n):
            return booster.predict(x32, num_threads=n)
    elif which == "lleaves":
        import importlib.metadata

        import lleaves

        lib = work / "lleaves.o"
        lib.unlink(missing_ok=True)
        m = lleaves.Model(model_file=str(model))
        m.compile(cache=str(lib), **s2cloudless_model.COMPILE_OPTIONS)
        out["version"] = (f"lleaves {importlib.metadata.version('lleaves')}, llvmlite "
                          f"{importlib.metadata.version('llvmlite')}; "
                          f"{s2cloudless_model.COMPILE_OPTIONS}")

        def predict(n):
            return m.predict(x64, n_jobs=n)
    elif which == "tl2cgen":
        import tl2cgen
        import treelite

        lib = work / "model_tl2cgen.so"
        lib.unlink(missing_ok=True)
        tm = treelite.frontend.load_lightgbm_model(str(model))
        tl2cgen.export_lib(tm, toolchain="gcc", libpath=str(lib),
                           params={"parallel_comp": tm.num_tree}, nthread=threads)
        out["version"] = (f"treelite {treelite.__version__}, tl2cgen {tl2cgen.__version__}, "
                          f"gcc -O3, parallel_comp={tm.num_tree}")
        pred = tl2cgen.Predictor(str(lib), nthread=1)
        pred_n = tl2cgen.Predictor(str(lib), nthread=threads)

        def predict(n):  # float64 as the thresholds (DMatrix cannot convert under NumPy 2)
            p = pred if n == 1 else pred_n
            return p.predict(tl2cgen.DMatrix(x64, dtype="float64")).reshape(-1)
    else:
        raise SystemExit(f"unknown compiler {which!r}; choose from {', '.join(COMPILERS)}")
    out["compile_wall_s"] = time.perf_counter() - t0
    out["compile_cpu_s"] = _cpu() - c0 + _cpu(resource.RUSAGE_CHILDREN) - k0
    out["compile_peak_mib"] = max(
        _peak_mib(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    if which == "lleaves":  # load the cached library as a later process does
        t0 = time.perf_counter()
        m = lleaves.Model(model_file=str(model))
        m.compile(cache=str(lib), **s2cloudless_model.COMPILE_OPTIONS)
        out["load_s"] = time.perf_counter() - t0
    c0 = _cpu()
    p = predict(1)
    out["predict_cpu_s"] = _cpu() - c0
    out["us_per_pixel"] = 1e6 * out["predict_cpu_s"] / len(x32)
    t0 = time.perf_counter()
    predict(threads)
    out["predict_wall_s_threads"] = time.perf_counter() - t0
    out["threads"] = threads
    np.save(work / f"{which}.npy", np.asarray(p, np.float64))
    out["peak_mib"] = _peak_mib()
    return out


def check(array: Path) -> list[dict]:
    """The scorer's predictor against Booster.predict on every pixel of the test array and
    of the demo's real-cloud acquisitions at the score scale."""
    from lightgbm import Booster

    from sen12ms_build.demo import archive
    from sen12ms_build.demo.ground import load_ground
    from sen12ms_build.mosaic import block_mean, footprint, s2cloudless_model

    booster = Booster(model_file=str(s2cloudless_model.model_file()))
    model = s2cloudless_model.predictor()
    rows = []

    def compare(name: str, x32: np.ndarray) -> None:
        t0 = time.perf_counter()
        truth = booster.predict(x32)
        p = model.predict(x32.astype(np.float64))
        rows.append({"input": name, "model": model.backend, "pixels": len(x32),
                     "max_abs_diff": float(np.abs(p - truth).max()),
                     "cloud_share_p_gt_0.4": float((truth > 0.4).mean()),
                     "seconds": time.perf_counter() - t0})
        print(json.dumps(rows[-1]), flush=True)

    s2_im = np.load(array)["s2_im"][0]
    compare("s2cloudless test array (856 x 512)",
            s2_im.reshape(-1, 13)[:, MODEL_BANDS].astype(np.float32))
    ground, grid = load_ground()
    for p in archive.plan_s2(ground, grid, clouds="real"):
        if not p.real:
            continue
        l1c, _, _ = archive.synthesize_s2(ground, (0, 0, *ground.shape[1:]), p)
        small = block_mean(l1c, 2)
        idx = np.flatnonzero(footprint(small))
        x32 = small[MODEL_BANDS].reshape(10, -1)[:, idx].T.astype(np.float32) / \
            np.float32(10000.0)
        compare(f"demo real clouds {p.plan.sensing_time:%Y-%m-%d} ({small.shape[1]} x "
                f"{small.shape[2]} at 20 m)", x32)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--compilers", default=",".join(COMPILERS), help="comma-separated")
    ap.add_argument("--array", type=Path, default=DEFAULT_ARRAY,
                    help="the s2cloudless test array (input_arrays.npz)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/sen12ms-tree-compilers"))
    ap.add_argument("--threads", type=int, default=2, help="threads of the wall-time predict")
    ap.add_argument("--check", action="store_true",
                    help="only check the scorer's predictor against LightGBM")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.array.is_file():
        raise SystemExit(f"{args.array}: no such file; run scripts/setup.sh (it fetches the "
                         "s2cloudless 1.2.1 test array) or pass --array")
    if args.case:
        print(json.dumps(run_case(args.case, args.array, args.workdir, args.threads)))
        return
    if args.check:
        rows = check(args.array)
    else:
        import importlib.util

        rows = []
        for which in args.compilers.split(","):
            mod = "lightgbm" if which == "lightgbm" else which
            if importlib.util.find_spec(mod) is None:
                print(f"{which}: not installed, skipped", file=sys.stderr)
                continue
            proc = subprocess.run([sys.executable, __file__, "--case", which, "--array",
                                   str(args.array), "--workdir", str(args.workdir),
                                   "--threads", str(args.threads)],
                                  stdout=subprocess.PIPE, text=True, env=os.environ)
            if proc.returncode != 0:
                print(f"{which}: failed (exit {proc.returncode})", file=sys.stderr)
                continue
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        ref = np.load(args.workdir / "lightgbm.npy") \
            if (args.workdir / "lightgbm.npy").exists() else None
        print("| compiler | compile wall s | compile CPU s | compile peak MiB | load s |"
              f" predict CPU s (1 thread) | us / pixel | predict wall s ({args.threads} "
              "threads) | max diff vs LightGBM |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            diff = (float(np.abs(np.load(args.workdir / f"{r['compiler']}.npy") - ref).max())
                    if ref is not None else float("nan"))
            r["max_abs_diff"] = diff
            load = f"{r['load_s']:.2f}" if "load_s" in r else "-"
            print(f"| {r['compiler']} ({r['version']}) | {r['compile_wall_s']:.1f} | "
                  f"{r['compile_cpu_s']:.1f} | {r['compile_peak_mib']:.0f} | {load} | "
                  f"{r['predict_cpu_s']:.2f} | {r['us_per_pixel']:.2f} | "
                  f"{r['predict_wall_s_threads']:.2f} | {diff:.1e} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
