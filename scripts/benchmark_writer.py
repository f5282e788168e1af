#!/usr/bin/env python3
"""Per-file time of the patch writers: rasterio (GDAL) against the numpy writer.

For each modality (and the quality layer, DEFLATE) it writes ``--files`` 256 x 256 patches
of real-ish values, one thread, with ``tiling.write_patch(..., gdal=True)`` (rasterio, the
former writer), with ``tiling.write_patch`` (``geotiff.write_geotiff``) and, as the floor
measured in the same run, plain ``open().write`` of the same number of bytes (alone, and
through ``io.atomic_path`` as every output is written: the floor of any writer of ours), and
prints milliseconds per file (wall and process CPU time, best of ``--rounds``) and the
ratios::

    .venv/bin/python scripts/benchmark_writer.py [--files 300] [--rounds 3]
        [--workdir /tmp/sen12ms-writer] [--json W.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
from affine import Affine

from sen12ms_build.raster.geotiff import geokeys
from sen12ms_build.raster.io import atomic_path
from sen12ms_build.products import MODALITIES
from sen12ms_build.dataset.provenance import write_quality
from sen12ms_build.raster.tiling import write_patch

TAGS = {"SEN12MS_ROI_ID": "ROIs1158_spring_7", "S2_PRODUCT_IDS": "S2A_MSIL1C_20170301T1020",
        "S2_DATETIMES": "2017-03-01T10:20:31Z", "S2_SHARES": "1.0", "LC_YEAR": "2016"}
CRS, T = "EPSG:32632", Affine(10.0, 0.0, 600000.0, 0.0, -10.0, 5300000.0)


def arrays(key: str, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    if key == "qa":  # masks in blobs of 16 x 16 px, as clouds and source images come
        return [rng.choice([0, 0, 0, 1, 255], (4, 16, 16)).astype(np.uint8)
                .repeat(16, 1).repeat(16, 2) for _ in range(n)]
    m = MODALITIES[key]
    if m.dtype == "float32":
        return [rng.normal(-12, 4, (m.count, 256, 256)).astype(np.float32) for _ in range(n)]
    return [rng.integers(1, 5000, (m.count, 256, 256)).astype(m.dtype) for _ in range(n)]


def time_writer(folder: Path, key: str, data: list[np.ndarray], gdal: bool | str | None
                ) -> tuple[float, float]:
    """(wall, CPU) seconds per file; ``gdal`` None: plain writes of the numpy writer's file
    sizes, "atomic": the same through ``io.atomic_path`` (temporary name, rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    if gdal is None or gdal == "atomic":
        sizes = [(folder.parent / "numpy" / f"{i}.tif").stat().st_size for i in range(len(data))]
        blob = np.random.default_rng(1).bytes(max(sizes))
    t0, c0 = time.perf_counter(), time.process_time()
    for i, a in enumerate(data):
        path = folder / f"{i}.tif"
        if gdal is None:
            with open(path, "wb") as f:
                f.write(blob[:sizes[i]])
        elif gdal == "atomic":
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                f.write(blob[:sizes[i]])
        elif key == "qa":
            write_quality(path, a, CRS, T, TAGS, gdal=gdal)
        else:
            write_patch(path, a, key, CRS, T, TAGS, gdal=gdal)
    return ((time.perf_counter() - t0) / len(data), (time.process_time() - c0) / len(data))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=300)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/sen12ms-writer"))
    ap.add_argument("--rounds", type=int, default=3, help="best of this many")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    geokeys(CRS)  # found once per CRS and cached, as in a run
    out = {}
    print(f"{'file':8} {'rasterio ms':>12} {'numpy ms':>9} {'plain write ms':>15} "
          f"{'atomic write ms':>16} {'rasterio/numpy':>15} {'numpy/plain':>12}")
    for key in (*MODALITIES, "qa"):
        data = arrays(key, args.files)
        runs: dict[str, list[tuple[float, float]]] = {}
        for _ in range(args.rounds):  # interleaved, so that load from elsewhere hits all
            for name, gdal in (("rasterio", True), ("numpy", False), ("plain", None),
                               ("atomic", "atomic")):
                folder = args.workdir / key / name
                shutil.rmtree(folder, ignore_errors=True)
                runs.setdefault(name, []).append(time_writer(folder, key, data, gdal))
        shutil.rmtree(args.workdir / key, ignore_errors=True)
        r = {f"{name}_{what}_ms": min(x[i] for x in v) * 1e3 for name, v in runs.items()
             for i, what in enumerate(("wall", "cpu"))}
        out[key] = r
        for what in ("wall", "cpu"):
            g, n, p, a = (r[f"{name}_{what}_ms"] for name in
                          ("rasterio", "numpy", "plain", "atomic"))
            print(f"{key:3} {what:4} {g:12.2f} {n:9.2f} {p:15.2f} {a:16.2f} {g / n:15.1f} "
                  f"{n / p:12.1f}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
