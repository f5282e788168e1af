#!/usr/bin/env python3
"""Benchmark ``finalize`` at dataset scale: time, memory and files written, up to the full
reproduction's 180,662 patches, without pixels.

For each size (kept patch triplets) it synthesizes the state a finished run leaves
(``sen12ms_build.demo.scale.synthesize``: 600 scenes for 180,662 patches, 252 of them kept,
841 patches tiled per kept scene, the paper's proportions; no patch file: ``finalize``
reads none) and then, each in a fresh process so that its peak memory is its own:

* ``full``: ``finalize`` from nothing (manifest, scenes, seasons, splits, STAC catalog with
  one Item file per kept patch and ``items.parquet``, Croissant, data card);
* ``floor``: plain writes of the same files (same folders, sizes, temporary name and rename),
  the file system's own cost for them, measured in the same run;
* ``rerun``: ``finalize`` again with nothing changed;
* ``resume``: one more finished scene recorded (``demo.scale.add_scene``, 700 kept of 841),
  then ``finalize``, as a resumed run that finishes one more scene ends.

CPU seconds are the finalize process's and its children's (the STAC writer's pool of
processes, ``sen12ms_build.dataset.stac_write``); peak memory is bounded above by the
process's own peak plus the pool's size times its largest child's peak (``peak_mib``; both
parts are in the JSON), as if every process peaked at once.

Files written are counted from the tree itself (a file is written when its inode or
modification time changed, or it is new), not from the code under test. Wall times on a
shared machine vary with its load (printed with each run: the 1-minute load average before
and after); CPU seconds, files and bytes much less.

    .venv/bin/python scripts/benchmark_finalize.py [--sizes 1000 10000 50000 180662]
        [--workdir /tmp/sen12ms-finalize] [--json docs/img/benchmark_finalize.json]
        [--plot docs/img/benchmark_finalize.png]
    .venv/bin/python scripts/benchmark_finalize.py --report docs/img/benchmark_finalize.json
        [--plot P.png]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "configs" / "sen12ms.yaml"
RESUME_KEPT = 700  # kept patches of the scene a resumed run adds (of 841 tiled)


def _config(root: Path):
    from sen12ms_build.config import load_config

    return load_config(CONFIG, {"out": str(root)})


def _io() -> dict[str, int]:
    try:
        text = Path("/proc/self/io").read_text()
    except OSError:
        return {}
    return {k: int(v) for k, v in (line.split(": ") for line in text.splitlines())}


def _usage() -> dict[str, float]:
    """CPU seconds and peak resident MiB of this process and of its children (the STAC
    writer's pool: CPU summed over them, the peak of the largest)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    rc = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"cpu_s": ru.ru_utime + ru.ru_stime, "peak_mib": ru.ru_maxrss / 1024,
            "children_cpu_s": rc.ru_utime + rc.ru_stime, "children_peak_mib": rc.ru_maxrss / 1024}


def child(args: argparse.Namespace) -> None:
    """One measured step in this process; prints its JSON last."""
    root = Path(args.root)
    out: dict = {"load_before": round(os.getloadavg()[0], 2)}
    if args.child == "synth":
        from sen12ms_build.demo import scale

        out.update(scale.synthesize(root, _config(root), args.n))
    elif args.child == "add-scene":
        from sen12ms_build.demo import scale

        cfg = _config(root)
        out["scene"] = list(scale.add_scene(root, cfg, "summer", RESUME_KEPT))
    elif args.child == "finalize":
        from sen12ms_build.dataset.finalize import finalize

        phases: list[str] = []

        class Grab(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if "finalize:" in record.getMessage() or "stac:" in record.getMessage():
                    phases.append(record.getMessage())

        logging.getLogger("sen12ms_build").addHandler(Grab())
        logging.getLogger("sen12ms_build").setLevel(logging.DEBUG)
        cfg = _config(root)
        base, io0 = _usage(), _io()
        t0 = time.perf_counter()
        counts = finalize(root, cfg)
        wall = time.perf_counter() - t0
        use, io1 = _usage(), _io()
        from sen12ms_build.dataset.stac_write import POOL_MAX
        from sen12ms_build.machine import run_cores

        children = use["children_cpu_s"] - base["children_cpu_s"]
        out.update(counts=counts, wall_s=round(wall, 2),
                   cpu_s=round(use["cpu_s"] - base["cpu_s"] + children, 2),
                   main_cpu_s=round(use["cpu_s"] - base["cpu_s"], 2),
                   main_peak_mib=round(use["peak_mib"], 1),
                   pool=min(run_cores(), POOL_MAX) if children > 0 else 0,
                   children_peak_mib=round(use["children_peak_mib"], 1) if children > 0 else 0,
                   phases=phases,
                   write_bytes=io1.get("write_bytes", 0) - io0.get("write_bytes", 0),
                   read_bytes=io1.get("read_bytes", 0) - io0.get("read_bytes", 0),
                   write_calls=io1.get("syscw", 0) - io0.get("syscw", 0))
        # the processes' summed peak, bounded above: main + pool x its largest child
        out["peak_mib"] = round(out["main_peak_mib"]
                                + out["pool"] * out["children_peak_mib"], 1)
    elif args.child == "floor":
        files = json.loads(Path(args.files).read_text())
        scratch = root
        t0, c0 = time.perf_counter(), time.process_time()
        for rel, size in files:
            path = scratch / rel
            tmp = path.with_name(f".{path.name}.floor.tmp")
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileNotFoundError:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, b"\0" * size)
            os.close(fd)
            os.replace(tmp, path)
        out.update(wall_s=round(time.perf_counter() - t0, 2),
                   cpu_s=round(time.process_time() - c0, 2), files=len(files))
    out["load_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out))


def _spawn(step: str, root: Path, **extra) -> dict:
    cmd = [sys.executable, __file__, "--child", step, "--root", str(root)]
    for k, v in extra.items():
        cmd += [f"--{k}", str(v)]
    proc = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """relative path -> (inode, mtime ns, size) of every file below ``root`` but ``.work``."""
    snap = {}
    for folder, dirs, files in os.walk(root):
        if Path(folder) == root:
            dirs[:] = [d for d in dirs if d != ".work"]
        for name in files:
            st = os.lstat(os.path.join(folder, name))
            snap[os.path.relpath(os.path.join(folder, name), root)] = (
                st.st_ino, st.st_mtime_ns, st.st_size)
    return snap


def written(before: dict, after: dict) -> dict:
    """Files new or replaced between two snapshots, and removed ones; by kind."""
    new = sorted(p for p, v in after.items() if before.get(p) != v)
    gone = sorted(set(before) - set(after))
    items = {p for p in new if p.startswith("stac/") and p.count("/") == 3}
    return {"files": len(new), "items": len(items),
            "other": [p for p in new if p not in items],
            "bytes": sum(after[p][2] for p in new), "removed": len(gone)}


def run_size(n: int, work: Path) -> dict:
    root = work / f"n{n}"
    shutil.rmtree(root, ignore_errors=True)
    row: dict = {"kept_patches": n, "synth": _spawn("synth", root, n=n)}
    before = snapshot(root)
    row["full"] = _spawn("finalize", root)
    after = snapshot(root)
    row["full"]["written"] = written(before, after)
    files = [[p, after[p][2]] for p in sorted(after) if before.get(p) != after[p]]
    listing = work / f"files_{n}.json"
    listing.write_text(json.dumps(files))
    scratch = work / f"floor_{n}"
    shutil.rmtree(scratch, ignore_errors=True)
    row["floor"] = _spawn("floor", scratch, files=listing)
    shutil.rmtree(scratch, ignore_errors=True)
    listing.unlink()
    row["rerun"] = _spawn("finalize", root)
    again = snapshot(root)
    row["rerun"]["written"] = written(after, again)
    row["add_scene"] = _spawn("add-scene", root)
    row["resume"] = _spawn("finalize", root)
    row["resume"]["written"] = written(again, snapshot(root))
    for step in ("full", "rerun", "resume"):
        row[step]["written"]["other"] = row[step]["written"]["other"][:40]
    return row


def report(rows: list[dict], plot_path: Path | None) -> None:
    print("| kept patches | scenes | finalize wall s | CPU s | peak MiB | files written | "
          "floor wall s | resume: files (items) | resume wall s | rerun: items written | "
          "load |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        f, fl, rs, rr = r["full"], r["floor"], r["resume"], r["rerun"]
        load = max(f["load_before"], f["load_after"], rs["load_before"], rs["load_after"])
        print(f"| {r['kept_patches']:,} | {r['synth']['scenes']} | {f['wall_s']:.1f} | "
              f"{f['cpu_s']:.1f} | {f['peak_mib']:.0f} | {f['written']['files']:,} | "
              f"{fl['wall_s']:.1f} | {rs['written']['files']:,} ({rs['written']['items']:,}) "
              f"| {rs['wall_s']:.1f} | {rr['written']['items']} | {load:.1f} |")
    if plot_path:
        plot(rows, plot_path)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    n = np.array([r["kept_patches"] for r in rows], float)
    wall = np.array([r["full"]["wall_s"] for r in rows])
    cpu = np.array([r["full"]["cpu_s"] for r in rows])
    floor = np.array([r["floor"]["wall_s"] for r in rows])
    resume = np.array([r["resume"]["wall_s"] for r in rows])
    peak = np.array([r["full"]["peak_mib"] for r in rows])
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.4))
    ax.loglog(n, wall, "o-", label="finalize, wall")
    ax.loglog(n, cpu, "s-", label="finalize, CPU")
    ax.loglog(n, resume, "^-", label="resume (one more scene), wall")
    ax.loglog(n, floor, "x--", label="plain writes of the same files, wall")
    ref = cpu[0] * n / n[0]
    ax.loglog(n, ref, ":", color="grey", label="linear from the first CPU point")
    ax.loglog(n, cpu[0] * (n / n[0]) ** 2, ":", color="red", alpha=0.5,
              label="quadratic from the first CPU point")
    ax.axhline(120, color="k", lw=0.8, ls="--")
    ax.text(n[0], 130, "goal: 2 min", fontsize=8)
    ax.set_ylim(min(floor.min(), cpu.min()) / 2, max(wall.max(), cpu.max()) * 3)
    ax.set_xlabel("kept patch triplets")
    ax.set_ylabel("seconds")
    ax.set_title("finalize against dataset size")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    bx.semilogx(n, peak, "o-", label="process + pool (bound: all at their peak at once)")
    if all("main_peak_mib" in r["full"] for r in rows):
        bx.semilogx(n, [r["full"]["main_peak_mib"] for r in rows], "s--",
                    label="the finalize process alone")
        bx.legend(fontsize=7, loc="lower right")
    bx.axhline(1024, color="k", lw=0.8, ls="--")
    bx.text(n[0], 1040, "goal: 1 GiB", fontsize=8)
    bx.set_ylim(0, 1200)
    bx.set_xlabel("kept patch triplets")
    bx.set_ylabel("peak resident memory, MiB")
    bx.set_title("finalize's peak memory (with the STAC writer's pool)")
    bx.grid(True, which="both", alpha=0.3)
    loads = [max(r["full"]["load_before"], r["full"]["load_after"]) for r in rows]
    fig.suptitle(f"2 shared cores, 1-min load {min(loads):.1f}-{max(loads):.1f} "
                 "(scripts/benchmark_finalize.py)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 50000, 180662])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/sen12ms-finalize"))
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--plot", type=Path, default=None, help="write the plot here (PNG)")
    ap.add_argument("--report", type=Path, default=None,
                    help="only print the table (and --plot) of a saved --json")
    ap.add_argument("--keep", action="store_true", help="keep the synthesized trees")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--files", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    if args.report:
        report(json.loads(args.report.read_text()), args.plot)
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in args.sizes:
        row = run_size(n, args.workdir)
        rows.append(row)
        print(json.dumps({k: row[k] for k in ("kept_patches", "full", "resume")})[:600],
              flush=True)
        if args.json:  # after every size: a long run keeps what it measured
            args.json.write_text(json.dumps(rows, indent=1) + "\n")
        if not args.keep:
            shutil.rmtree(args.workdir / f"n{n}", ignore_errors=True)
    report(rows, args.plot)


if __name__ == "__main__":
    main()
