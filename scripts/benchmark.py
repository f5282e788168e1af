#!/usr/bin/env python3
"""Benchmark the local stages (warp + tile + write) against the plain GDAL tools.

On one large scene (default 8192 x 8192 UTM pixels, i.e. an 82 km square, all three
modalities) it times, in separate processes so each one's peak memory is its own:

* ours: ``reproject.warp_to_file`` (GDAL warper through rasterio) for s1, s2, lc, then
  ``tiling.tile_scene`` writing every 256 x 256 patch at stride 128 (patch round off);
* GDAL: ``gdalwarp`` (its default, uncompressed output; ``-multi``, all CPUs, 256 MB of
  warp memory) to the same UTM grid with the same resampling per modality, then
  ``gdal_retile.py -ps 256 256 -overlap 128`` on each warped modality (it also writes the
  partial edge tiles, which are counted apart; the full tiles are the same patches).

* fused (benchmark only, unless ``--no-fused``): the patches cut from the warped rows in
  memory (a ``WarpedVRT`` per modality read by full-width strips, the same resampling and
  nodata), written as ``tile_scene`` writes them, no UTM scene; its patches' SHA-256 are
  compared with ours (bilinear ones differ slightly: GDAL's approximate transformer depends
  on the warp's chunks, so the pipeline keeps the two stages);

and prints the wall time, patches per second, peak resident memory of each, and the ratios;
then, as references measured in the same run, the time to read our UTM scene back strip by
strip (what cutting patches from the warped rows in memory would save) and the time of plain
file writes of the same patch files' sizes (the disk's own speed: the floor of any tiler).
Requires Debian's ``gdal-bin`` and ``python3-gdal``::

    apt-get install -y gdal-bin python3-gdal
    .venv/bin/python scripts/benchmark.py [--size 8192] [--workdir /tmp/sen12ms-bench]
        [--json W.json] [--no-fused]

The input is built once (kept in the work dir): the demo archive's real Sentinel-2 ground,
mirrored to cover the scene, exported to the paper's EPSG:4326 0.0001 degree grid.
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

import numpy as np
import rasterio
from rasterio.windows import Window

log = logging.getLogger("benchmark")
HERE = Path(__file__).resolve().parent


def build_inputs(work: Path, size: int) -> dict:
    """Export-grid GeoTIFFs (EPSG:4326, 0.0001 deg) for s1, s2, lc covering a ``size`` x
    ``size`` px UTM scene centred on the demo archive; written strip by strip."""
    from sen12ms_build.demo.archive import load_ground
    from sen12ms_build.products import LC, S1, S2
    from sen12ms_build.raster.io import GTIFF_PROFILE
    from sen12ms_build.roi import ROI

    roi = ROI.at(1, 0, "listed", -75.619, 37.673, size * 10.0)
    meta_path = work / "inputs.json"
    if meta_path.exists():
        return json.loads(meta_path.read_text())
    ground, _ = load_ground()  # (13, H, W) uint16 real L1C
    g = roi.export_grid()
    paths = {}
    rng = np.random.default_rng(0)
    for m in (S1, S2, LC):
        path = work / f"export_{m.key}.tif"
        prof = {**GTIFF_PROFILE, "count": m.count, "dtype": m.dtype, "width": g.width,
                "height": g.height, "crs": g.crs, "transform": g.transform, "nodata": m.nodata}
        tmp = path.with_suffix(".part.tif")
        with rasterio.open(tmp, "w", **prof) as dst:
            for r0 in range(0, g.height, 512):
                h = min(512, g.height - r0)
                rows = (np.arange(r0, r0 + h) % (2 * ground.shape[1]))
                rows = np.where(rows < ground.shape[1], rows, 2 * ground.shape[1] - 1 - rows)
                cols = np.arange(g.width) % (2 * ground.shape[2])
                cols = np.where(cols < ground.shape[2], cols, 2 * ground.shape[2] - 1 - cols)
                block = ground[:, rows][:, :, cols]
                if m.key == "s2":
                    data = block
                elif m.key == "s1":
                    b8 = block[7].astype(np.float32)
                    vv = -20 + 12 * np.clip(b8 / 4000, 0, 1) + rng.normal(0, 1.5, b8.shape)
                    data = np.stack([vv, vv - 7]).astype(np.float32)
                else:
                    cls = np.where(block[7] < 600, 17, np.where(block[7] > 2500, 4, 12))
                    data = np.stack([cls, cls, cls, cls]).astype(np.uint16)
                dst.write(data.astype(m.dtype), window=Window(0, r0, g.width, h))
        os.replace(tmp, path)
        paths[m.key] = str(path)
    grid = roi.scene_grid()
    meta = {"paths": paths, "epsg": roi.epsg, "bounds": list(grid.bounds),
            "width": grid.width, "height": grid.height,
            "export": [g.width, g.height]}
    meta_path.write_text(json.dumps(meta))
    return meta


def run_ours(meta: dict, out: Path) -> dict:
    """Our warp + tile + write (child process)."""
    from sen12ms_build.geo import utm_grid
    from sen12ms_build.products import MODALITIES
    from sen12ms_build.raster.warp import warp_to_file
    from sen12ms_build.raster.tiling import iter_patch_rows, tile_scene

    grid = utm_grid(tuple(meta["bounds"]), meta["epsg"])
    t0 = time.perf_counter()
    utm = {}
    for k, src in meta["paths"].items():
        utm[k] = out / "utm" / f"{k}.tif"
        warp_to_file(src, utm[k], grid, MODALITIES[k])
    t_warp = time.perf_counter() - t0
    recs = tile_scene(utm, lambda dd, p: out / "patches" / dd / f"p{p}.tif",
                      lambda arrays: (True, "", {}))
    seconds = time.perf_counter() - t0
    # references measured in the same process, after the timed run (not part of it):
    # reading the UTM scene back strip by strip, which cutting patches from the warped
    # rows in memory would save; and the disk's own speed for the same files
    t1 = time.perf_counter()
    for _ in iter_patch_rows(utm, 256, 128):
        pass
    t_readback = time.perf_counter() - t1
    files = sorted((out / "patches").rglob("*.tif"))
    sizes = [f.stat().st_size for f in files]
    return {"seconds": seconds, "warp_seconds": t_warp, "tile_seconds": seconds - t_warp,
            "readback_seconds": t_readback, **disk_write(out / "raw", sizes),
            "patches": len(recs), "files": 3 * len(recs),
            "digests": patch_digests(out / "patches")}


def patch_digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every patch file under ``folder`` (relative path -> hex digest), as the
    manifest records them; computed after the timed run."""
    import hashlib

    return {str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(folder.rglob("*.tif"))}


def iter_warped_rows(vrts: dict, size: int, stride: int):
    """:func:`sen12ms_build.raster.tiling.iter_patch_rows` over warped VRTs instead of UTM scene
    files: each patch row's strips come straight from GDAL's warper (full-width windows,
    only the rows not already held), nothing is written or read back."""
    from sen12ms_build.raster.tiling import patch_windows

    first = next(iter(vrts.values()))
    rows: dict[int, list] = {}
    for w in patch_windows(first.width, first.height, size, stride):
        rows.setdefault(w.row, []).append(w)
    buf: dict = {}
    top = None
    for row, ws in rows.items():
        if top is None or row - top >= size:
            strip = Window(0, row, first.width, size)
            buf = {k: v.read(window=strip) for k, v in vrts.items()}
        else:
            keep = top + size - row
            new = Window(0, top + size, first.width, size - keep)
            buf = {k: np.concatenate([buf[k][:, size - keep:], v.read(window=new)], 1)
                   for k, v in vrts.items()}
        top = row
        yield ws, buf


def run_fused(meta: dict, out: Path) -> dict:
    """Warp + tile fused (child process): the patches are cut from the warped rows in
    memory (a WarpedVRT per modality, the same resampling and nodata as
    ``warp_to_file``), written as ``tile_scene`` writes them; no UTM scene file."""
    from concurrent.futures import ThreadPoolExecutor

    from affine import Affine

    from sen12ms_build.geo import utm_grid
    from sen12ms_build.products import MODALITIES
    from sen12ms_build.raster.warp import _vrt
    from sen12ms_build.raster.tiling import WRITE_THREADS, write_patch

    grid = utm_grid(tuple(meta["bounds"]), meta["epsg"])
    t0 = time.perf_counter()
    srcs = {k: rasterio.open(p) for k, p in meta["paths"].items()}
    vrts = {k: _vrt(s, grid, MODALITIES[k].resampling, MODALITIES[k].nodata)
            for k, s in srcs.items()}
    n = 0
    with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
        for ws, strips in iter_warped_rows(vrts, 256, 128):
            pending = []
            for w in ws:
                t = grid.transform * Affine.translation(w.col, w.row)
                for k in ("s1", "s2", "lc"):
                    pending.append(pool.submit(
                        write_patch, out / "patches" / k / f"p{w.patch}.tif",
                        strips[k][:, :, w.col:w.col + 256], k, grid.crs, t, {}))
                n += 1
            for fut in pending:
                fut.result()
    for v in vrts.values():
        v.close()
    for s_ in srcs.values():
        s_.close()
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "patches": n, "files": 3 * n,
            "digests": patch_digests(out / "patches")}


def disk_write(folder: Path, sizes: list[int]) -> dict:
    """Plain writes of files of these sizes (open, write, close; no fsync, as the patch
    writers): the disk's and file system's own speed for the patches' bytes and count."""
    folder.mkdir(parents=True, exist_ok=True)
    blob = os.urandom(max(sizes))
    t0 = time.perf_counter()
    for i, n in enumerate(sizes):
        with open(folder / f"{i}.bin", "wb") as f:
            f.write(blob[:n])
    sec = time.perf_counter() - t0
    return {"raw_write_seconds": sec, "raw_write_mib_s": sum(sizes) / 2**20 / sec,
            "patch_mib": sum(sizes) / 2**20}


def run_gdal(meta: dict, out: Path) -> dict:
    """gdalwarp + gdal_retile.py (child process tree)."""
    from sen12ms_build.products import MODALITIES

    left, bottom, right, top = meta["bounds"]
    t0 = time.perf_counter()
    full = files = 0
    t_warp = 0.0
    for k, src in meta["paths"].items():
        m = MODALITIES[k]
        warped = out / f"{k}_utm.tif"
        nodata = "nan" if k == "s1" else str(int(m.nodata))
        tw = time.perf_counter()
        subprocess.run(["gdalwarp", "-q", "-overwrite", "-t_srs", f"EPSG:{meta['epsg']}",
                        "-tr", "10", "10", "-te", str(left), str(bottom), str(right), str(top),
                        "-r", m.resampling, "-srcnodata", nodata, "-dstnodata", nodata,
                        "-wm", "256", "-multi", "-wo", "NUM_THREADS=ALL_CPUS",
                        src, str(warped)],
                       check=True)
        t_warp += time.perf_counter() - tw
        tiles = out / "tiles" / k
        tiles.mkdir(parents=True)
        subprocess.run([shutil.which("gdal_retile.py") or "gdal_retile.py", "-q",
                        "-ps", "256", "256", "-overlap", "128", "-targetDir", str(tiles),
                        str(warped)], check=True)
        for t in tiles.glob("*.tif"):
            files += 1
            with rasterio.open(t) as f:
                full += (f.width, f.height) == (256, 256)
    return {"seconds": time.perf_counter() - t0, "warp_seconds": t_warp,
            "patches": full // 3, "files": files}


def child(which: str, meta_path: Path, out: Path) -> None:
    meta = json.loads(meta_path.read_text())
    result = {"ours": run_ours, "gdal": run_gdal, "fused": run_fused}[which](meta, out)
    # own peak: VmHWM (ru_maxrss would carry over the forking parent's peak through exec)
    own = next(int(line.split()[1]) for line in open("/proc/self/status")
               if line.startswith("VmHWM:"))
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result["peak_mib"] = max(own, kids) / 1024
    print(json.dumps(result))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=8192, help="scene side in UTM pixels")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/sen12ms-bench"))
    ap.add_argument("--child", choices=["ours", "gdal", "fused"], help=argparse.SUPPRESS)
    ap.add_argument("--no-fused", action="store_true",
                    help="skip the fused warp + tile measurement (benchmark only)")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.child:
        child(args.child, args.workdir / "inputs.json", args.out)
        return
    for tool in ("gdalwarp", "gdal_retile.py"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install -y gdal-bin python3-gdal")
    args.workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    meta = build_inputs(args.workdir, args.size)
    log.info("inputs: export grid %d x %d px -> UTM scene %d x %d px (%.0f s)",
             *meta["export"], meta["width"], meta["height"], time.perf_counter() - t0)
    results = {}
    for which in ("gdal", "ours") + (() if args.no_fused else ("fused",)):
        out = args.workdir / which
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        proc = subprocess.run([sys.executable, __file__, "--child", which, "--workdir",
                               str(args.workdir), "--out", str(out)],
                              check=True, capture_output=True, text=True)
        results[which] = json.loads(proc.stdout.strip().splitlines()[-1])
        shutil.rmtree(out, ignore_errors=True)
    g, o = results["gdal"], results["ours"]
    for name, r in (("gdalwarp + gdal_retile.py", g), ("sen12ms-build", o)):
        log.info("%-26s %7.1f s (warp %5.1f s)  %6d full patches  %7.1f patches/s  "
                 "peak %7.1f MiB", name, r["seconds"], r["warp_seconds"], r["patches"],
                 r["patches"] / r["seconds"], r["peak_mib"])
    log.info("ratio (GDAL time / ours): %.2f  (>1: we are faster); GDAL also wrote %d "
             "partial edge tiles", g["seconds"] / o["seconds"], g["files"] - 3 * g["patches"])
    log.info("ours: warp %.1f s, tile %.1f s; of the tile stage, reading the UTM scene back "
             "takes %.1f s (what cutting patches from the warped rows in memory would save)",
             o["warp_seconds"], o["tile_seconds"], o["readback_seconds"])
    log.info("disk: plain writes of the same %d files (%.0f MiB) take %.1f s (%.0f MiB/s): "
             "the floor of the patch writes", o["files"], o["patch_mib"],
             o["raw_write_seconds"], o["raw_write_mib_s"])
    summary = {"size": args.size, "gdal": g, "ours": o, "ratio": g["seconds"] / o["seconds"]}
    if "fused" in results:
        f = results["fused"]
        same = f["digests"] == o["digests"]
        differ = sum(f["digests"].get(k) != v for k, v in o["digests"].items())
        log.info("fused warp + tile (benchmark only: patches cut from the warped rows in "
                 "memory, no UTM scene): %.1f s, %d patches, %.1f patches/s, peak %.1f "
                 "MiB; ratio GDAL / fused %.2f, ours / fused %.2f; patches byte-identical "
                 "to ours: %s (%d of %d files differ)", f["seconds"], f["patches"],
                 f["patches"] / f["seconds"], f["peak_mib"], g["seconds"] / f["seconds"],
                 o["seconds"] / f["seconds"], same, differ, len(o["digests"]))
        summary.update(fused=f, ratio_fused=g["seconds"] / f["seconds"], fused_identical=same,
                       fused_files_differing=differ)
    for r in results.values():
        r.pop("digests", None)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
