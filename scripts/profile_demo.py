#!/usr/bin/env python3
"""Where ``sen12ms-build demo`` spends its time, stage by stage, and how far each stage is
from its own limit.

Runs the demo end to end in this process (one scene at a time, as ``demo`` does:
``workers: 1``) with each stage's functions wrapped by a timer: archive (the demo archive
is written), export (the local backend's ``export_scene``: mosaic, S1, land cover), warp,
curation (the scene round; the patch round inside the tiler), tiling (cutting, provenance
tags, patch and quality-layer writes), checksums and bookkeeping (the patches' SHA-256 and
the state file), finalize, and quicklooks and review pages. Each stage gets its exclusive
wall time and CPU time (every thread of the process; the patch round, nested in the tiler,
its own thread's CPU, so the writer threads' work stays with the tiler) and the bytes it
read and wrote (``/proc/self/io``).

Limits, measured in the same run:

* export: reading its inputs and nothing else (the wall time of the reader calls, which the
  mosaic overlaps with scoring in a read-ahead thread) against the export's wall time;
* tiling: plain writes of as many files of the same total size (temporary name and rename,
  as the tiler writes them) against the tiling's wall time: the disk's floor;
* warp (and tiling at scale): ``scripts/benchmark.py``'s ratio against the GDAL tools,
  which needs Debian's gdal-bin and is run apart (see the README's benchmark section).

    .venv/bin/python scripts/profile_demo.py [--out /tmp/profile-demo] [--json P.json]
        [--season S ...]

Also prints the SHA-256 of every patch file (``--sums FILE``) so that two code versions can
be compared byte for byte.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import threading
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _cpu() -> float:
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def _io() -> tuple[int, int]:
    try:
        with open("/proc/self/io") as f:
            d = {k: int(v) for k, v in (line.split(": ") for line in f)}
        return d["rchar"], d["wchar"]
    except OSError:
        return 0, 0


class Stages:
    """Exclusive wall, CPU and I/O per stage, from wrapped functions (main thread)."""

    def __init__(self) -> None:
        self.acc: dict[str, dict[str, float]] = defaultdict(
            lambda: {"wall_s": 0.0, "cpu_s": 0.0, "read_bytes": 0, "write_bytes": 0,
                     "calls": 0})
        self.stack: list[dict] = []
        self.reads = {"wall_s": 0.0, "bytes": 0, "calls": 0}
        self.lock = threading.Lock()

    def wrap(self, owner, attr: str, name: str) -> None:
        fn = getattr(owner, attr)

        def timed(*a, **k):
            if threading.current_thread() is not threading.main_thread():
                return fn(*a, **k)
            frame = {"wall": 0.0, "tcpu": 0.0, "cpu": 0.0, "r": 0, "w": 0}
            t0, c0, tc0, (r0, w0) = time.perf_counter(), _cpu(), time.thread_time(), _io()
            self.stack.append(frame)
            try:
                return fn(*a, **k)
            finally:
                self.stack.pop()
                wall = time.perf_counter() - t0
                tcpu = time.thread_time() - tc0
                cpu = _cpu() - c0
                r1, w1 = _io()
                nested = bool(self.stack)
                a_ = self.acc[name]
                a_["wall_s"] += wall - frame["wall"]
                # nested stages: their thread's CPU (concurrent writer threads stay with the
                # enclosing stage); outer stages: the process's, less their children's
                a_["cpu_s"] += (tcpu if nested else cpu) - frame["tcpu"]
                a_["read_bytes"] += (r1 - r0) - frame["r"]
                a_["write_bytes"] += (w1 - w0) - frame["w"]
                a_["calls"] += 1
                if nested:
                    parent = self.stack[-1]
                    parent["wall"] += wall
                    parent["tcpu"] += tcpu
                    parent["r"] += r1 - r0
                    parent["w"] += w1 - w0

        setattr(owner, attr, timed)

    def wrap_reader(self, owner, attr: str) -> None:
        """The export's reads (in the mosaic's read-ahead thread too): wall and bytes."""
        fn = getattr(owner, attr)

        def timed(*a, **k):
            t0 = time.perf_counter()
            out = fn(*a, **k)
            with self.lock:
                self.reads["wall_s"] += time.perf_counter() - t0
                self.reads["bytes"] += getattr(out, "nbytes", 0)
                self.reads["calls"] += 1
            return out

        setattr(owner, attr, timed)


def instrument(stages: Stages) -> None:
    import sen12ms_build.backends.local as local
    import sen12ms_build.curation.review as review
    import sen12ms_build.curation.rounds as rounds
    import sen12ms_build.demo.archive as archive
    import sen12ms_build.pipeline as pipeline
    from sen12ms_build.state import State

    stages.wrap(archive, "write_demo_archive", "archive")
    stages.wrap(local.LocalBackend, "export_scene", "export")
    stages.wrap_reader(local, "warp_array")
    stages.wrap(pipeline, "warp_to_file", "warp")
    stages.wrap(pipeline, "adopt_on_grid", "warp")
    stages.wrap(rounds, "scene_decision_from_files", "curation")
    stages.wrap(rounds, "patch_decision", "curation")
    stages.wrap(pipeline, "tile_scene", "tiling")
    stages.wrap(pipeline, "sha256", "checksums and bookkeeping")
    stages.wrap(State, "finish", "checksums and bookkeeping")
    stages.wrap(pipeline, "finalize", "finalize")
    stages.wrap(review, "write_review", "quicklooks and review")


def plain_writes(folder: Path, sizes: list[int]) -> float:
    """Wall seconds to write files of ``sizes`` bytes (a temporary name, then renamed) in
    folders of 200 files: the disk's floor for the tiler's writes."""
    shutil.rmtree(folder, ignore_errors=True)
    t0 = time.perf_counter()
    for i, size in enumerate(sizes):
        sub = folder / f"d{i // 200}"
        if i % 200 == 0:
            sub.mkdir(parents=True, exist_ok=True)
        tmp = sub / f".f{i}.tif.tmp"
        with open(tmp, "wb") as f:
            f.write(os.urandom(size) if size < 4096 else b"\0" * size)
        os.replace(tmp, sub / f"f{i}.tif")
    wall = time.perf_counter() - t0
    shutil.rmtree(folder, ignore_errors=True)
    return wall


def patch_sums(root: Path) -> dict[str, str]:
    """SHA-256 of every ``ROIs*/*/*.tif`` below the dataset root."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.glob("ROIs*/*/*.tif"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/profile-demo"))
    ap.add_argument("--season", action="append", default=[])
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--sums", type=Path, default=None,
                    help="write the patch files' SHA-256 here (JSON)")
    args = ap.parse_args()
    from click.testing import CliRunner

    from sen12ms_build.cli import main as cli

    stages = Stages()
    instrument(stages)
    shutil.rmtree(args.out, ignore_errors=True)
    load0 = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), _cpu()
    argv = ["-q", "demo", "--out", str(args.out)] + [x for s in args.season
                                                     for x in ("--season", s)]
    res = CliRunner().invoke(cli, argv, catch_exceptions=False)
    if res.exit_code:
        raise SystemExit(f"demo failed ({res.exit_code}): {res.output[-2000:]}")
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    load1 = os.getloadavg()[0]
    root = args.out / "sen12ms"
    tiles = [p.stat().st_size for p in sorted(root.glob("ROIs*/*/*.tif"))]
    floor = plain_writes(args.out / "plain_writes", tiles)
    rows = dict(stages.acc)
    other = {"wall_s": wall - sum(r["wall_s"] for r in rows.values()),
             "cpu_s": cpu - sum(r["cpu_s"] for r in rows.values())}
    order = ["archive", "export", "warp", "curation", "tiling", "checksums and bookkeeping",
             "finalize", "quicklooks and review"]
    print(f"demo: {wall:.1f} s wall, {cpu:.1f} s CPU (2 cores shared; 1-min load "
          f"{load0:.1f} before, {load1:.1f} after)")
    print("| stage | wall s | share of wall | CPU s | share of CPU | read MiB | written MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in order + ["other"]:
        r = rows.get(name, other if name == "other" else None)
        if r is None:
            continue
        print(f"| {name} | {r['wall_s']:.1f} | {100 * r['wall_s'] / wall:.0f} % | "
              f"{r['cpu_s']:.1f} | {100 * r['cpu_s'] / cpu:.0f} % | "
              f"{r.get('read_bytes', 0) / 2**20:.0f} | {r.get('write_bytes', 0) / 2**20:.0f} |")
    ex, tl = rows.get("export", {}), rows.get("tiling", {})
    limits = {
        "export_read_wall_s": stages.reads["wall_s"],
        "export_read_mib": stages.reads["bytes"] / 2**20,
        "export_over_read": ex.get("wall_s", 0) / max(stages.reads["wall_s"], 1e-9),
        "tiling_files": len(tiles), "tiling_mib": sum(tiles) / 2**20,
        "plain_writes_wall_s": floor,
        "tiling_over_plain_writes": tl.get("wall_s", 0) / max(floor, 1e-9)}
    print(f"export: {ex.get('wall_s', 0):.1f} s against {limits['export_read_wall_s']:.1f} s "
          f"of reading its inputs ({limits['export_read_mib']:.0f} MiB decoded): "
          f"{limits['export_over_read']:.1f}x its read limit")
    print(f"tiling: {tl.get('wall_s', 0):.1f} s against {floor:.1f} s of plain writes of the "
          f"same {len(tiles)} files ({limits['tiling_mib']:.0f} MiB): "
          f"{limits['tiling_over_plain_writes']:.1f}x the disk's floor")
    if args.json:
        args.json.write_text(json.dumps({"wall_s": wall, "cpu_s": cpu, "load": [load0, load1],
                                         "stages": rows, "other": other,
                                         "limits": limits}, indent=1) + "\n")
    if args.sums:
        args.sums.write_text(json.dumps(patch_sums(root), indent=0) + "\n")


if __name__ == "__main__":
    main()
