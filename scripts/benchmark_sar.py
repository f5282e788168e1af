"""Benchmark the GRD chain (sen12ms_build.sar) against sarsen's own terrain correction on the
same GRD window and the same DEM grid, in one run.

For each ROI size (default 6.4 km and 38.4 km squares at 10 m, UTM 33N, centred on a node of
the real S1B product's geolocation grid near Rome), the script:

1. writes a SAFE folder under --work: the real product's XML (sen12ms_build/demo/data/s1b_grd;
   VH gets VV's documents) and VV, VH measurements of the real size (26102 x 16705, tiled,
   sparse) holding DN of a speckled sigma0 pattern in the ROI's radar footprint;
2. writes the DEM on the output grid as a GeoTIFF (smooth synthetic relief, 0-900 m,
   ellipsoidal heights: sarsen reads heights as ellipsoidal, the chain is told so);
3. runs, each in its own process (so that the peak resident memory is its own):
   * ours: ``GrdProduct.from_safe`` + ``sigma0_db_on_grid`` (VV and VH, sigma0 dB, thermal
     noise removed, layover/shadow);
   * sarsen 0.9.6: ``terrain_correction(Sentinel1SarProduct(SAFE, "IW/VV"), dem)`` and the same
     for IW/VH (geocoded beta0, written as GeoTIFF; default nearest interpolation);
4. cross-checks the geometry: sarsen's simulated acquisition (zero-Doppler azimuth time and
   slant range time of every DEM pixel) against the chain's line and slant range.

Prints one JSON line per measurement and a table. Usage:

    .venv/bin/python scripts/benchmark_sar.py [--sizes 6400 38400] [--work /tmp/sar_bench]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

NODE = (8020, 22202)  # line, pixel of the geolocation grid node near Rome
EPSG = 32633


def _grid(size_m: float):
    from sen12ms_build.demo.grd import source_xml
    from sen12ms_build.geo import square_utm_bounds, utm_grid
    from sen12ms_build.sar.annotation import parse_annotation

    g = parse_annotation(source_xml("annotation")).geolocation
    i = int(np.flatnonzero((g.line == NODE[0]) & (g.pixel == NODE[1]))[0])
    return utm_grid(square_utm_bounds(float(g.longitude[i]), float(g.latitude[i]), size_m,
                                      EPSG), EPSG)


def _relief(grid) -> np.ndarray:
    yy, xx = np.mgrid[0:grid.height, 0:grid.width].astype(np.float64)
    return (450 + 300 * np.sin(xx / 173.0) * np.cos(yy / 211.0)
            + 150 * np.sin((xx + yy) / 97.0)).astype(np.float32)


def prepare(size_m: float, work: Path) -> dict:
    """Write the SAFE and the DEM of one ROI size; return their paths."""
    import rasterio
    from rasterio.windows import Window

    from sen12ms_build.demo.grd import SOURCE, SOURCE_STEM, source_xml
    from sen12ms_build.sar.annotation import parse_annotation
    from sen12ms_build.sar.calibration import parse_calibration
    from sen12ms_build.sar.geometry import RadarGeometry
    from sen12ms_build.sar.noise import parse_noise
    from sen12ms_build.sar.terrain import geocode_grid

    out = work / f"roi{int(size_m)}"
    safe = out / SOURCE.name
    dem_path = out / "dem.tif"
    grid = _grid(size_m)
    dem = _relief(grid)
    if not dem_path.exists():
        out.mkdir(parents=True, exist_ok=True)
        with rasterio.open(dem_path, "w", driver="GTiff", width=grid.width,
                           height=grid.height, count=1, dtype="float32", crs=grid.crs,
                           transform=grid.transform, tiled=True, compress="deflate") as dst:
            dst.write(dem, 1)
    if not (safe / "manifest.safe").exists():
        ann = parse_annotation(source_xml("annotation"))
        geo = geocode_grid(RadarGeometry(ann), grid, dem.astype(np.float64))
        l0, l1 = int(np.nanmin(geo.line)) - 64, int(np.nanmax(geo.line)) + 64
        p0, p1 = int(np.nanmin(geo.pixel)) - 64, int(np.nanmax(geo.pixel)) + 64
        rows, cols = np.arange(l0, l1), np.arange(p0, p1)
        cal = parse_calibration(source_xml("calibration")).lut.at(rows, cols)
        eta = parse_noise(source_xml("noise")).at(rows, cols)
        rng = np.random.default_rng(1)
        (safe / "annotation" / "calibration").mkdir(parents=True, exist_ok=True)
        (safe / "measurement").mkdir(exist_ok=True)
        (safe / "manifest.safe").write_bytes(source_xml("manifest"))
        vh = SOURCE_STEM.replace("-vv-", "-vh-").replace("-001", "-002")
        for pol, stem, base in (("VV", SOURCE_STEM, -9.0), ("VH", vh, -17.0)):
            for kind, rel in (("annotation", f"annotation/{stem}.xml"),
                              ("calibration", f"annotation/calibration/calibration-{stem}.xml"),
                              ("noise", f"annotation/calibration/noise-{stem}.xml")):
                text = source_xml(kind)
                if pol == "VH":
                    text = text.replace(b"<polarisation>VV</polarisation>",
                                        b"<polarisation>VH</polarisation>")
                (safe / rel).write_bytes(text)
            db = base + 4 * np.sin(rows[:, None] / 57.0) * np.cos(cols[None, :] / 83.0)
            power = 10 ** (db / 10) * rng.gamma(4.4, 1 / 4.4, db.shape) * cal ** 2 + eta
            dn = np.clip(np.rint(np.sqrt(power)), 1, 65535).astype(np.uint16)
            with rasterio.open(safe / "measurement" / f"{stem}.tiff", "w", driver="GTiff",
                               width=ann.samples, height=ann.lines, count=1, dtype="uint16",
                               tiled=True, blockxsize=512, blockysize=512, compress="deflate",
                               sparse_ok=True) as dst:
                dst.write(dn, 1, window=Window(p0, l0, len(cols), len(rows)))
    return {"safe": str(safe), "dem": str(dem_path), "size_m": size_m,
            "shape": list(grid.shape)}


def run_ours(job: dict) -> dict:
    import tracemalloc

    from sen12ms_build.sar.chain import sigma0_db_on_grid
    from sen12ms_build.sar.product import GrdProduct

    grid = _grid(job["size_m"])
    import rasterio

    with rasterio.open(job["dem"]) as src:
        dem = src.read(1)
    tracemalloc.start()
    t0 = time.perf_counter()
    product = GrdProduct.from_safe(job["safe"])
    db, meta = sigma0_db_on_grid(product, grid, dem, dem_is_ellipsoidal=True)
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    return {"seconds": seconds, "python_peak_mb": peak / 2**20,
            "covered": meta["covered"], "window": meta["window"],
            "vv_median_db": float(np.nanmedian(db[0]))}


def run_sarsen(job: dict) -> dict:
    import warnings

    import sarsen

    warnings.simplefilter("ignore")
    out = Path(job["safe"]).parent
    t0 = time.perf_counter()
    for pol in ("VV", "VH"):
        product = sarsen.Sentinel1SarProduct(job["safe"], measurement_group=f"IW/{pol}")
        sarsen.terrain_correction(product, dem_urlpath=job["dem"],
                                  output_urlpath=str(out / f"sarsen_{pol}.tif"))
    return {"seconds": time.perf_counter() - t0}


def crosscheck(job: dict) -> dict:
    """sarsen's zero-Doppler time and slant range per DEM pixel vs the chain's."""
    import warnings

    import sarsen
    from sarsen import apps, orbit, scene

    from sen12ms_build.sar.geometry import SPEED_OF_LIGHT, RadarGeometry
    from sen12ms_build.sar.product import GrdProduct
    from sen12ms_build.sar.terrain import geocode_grid

    warnings.simplefilter("ignore")
    product = sarsen.Sentinel1SarProduct(job["safe"], measurement_group="IW/VV")
    dem = scene.open_dem_raster(job["dem"])
    dem = dem.isel(x=slice(0, None, 8), y=slice(0, None, 8))  # every 8th pixel
    dem_ecef = scene.convert_to_dem_ecef(dem, source_crs=dem.rio.crs)
    interp = orbit.OrbitPolyfitInterpolator.from_position(product.state_vectors())
    acq = apps.simulate_acquisition(dem_ecef, interp)
    ours_p = GrdProduct.from_safe(job["safe"]).pol("VV")
    ann = ours_p.annotation
    grid = _grid(job["size_m"])
    import rasterio

    with rasterio.open(job["dem"]) as src:
        full = src.read(1).astype(np.float64)
    geo = geocode_grid(RadarGeometry(ann), grid, full)
    # sarsen flips y to increasing; map back to the grid's rows
    ys, xs = dem.y.values, dem.x.values
    t = grid.transform
    rows = np.rint((ys - t.f) / t.e - 0.5).astype(int)
    cols = np.rint((xs - t.c) / t.a - 0.5).astype(int)
    az = ((acq.azimuth_time.values - ann.epoch) / np.timedelta64(1, "s"))
    line_sarsen = az / ann.azimuth_time_interval
    range_sarsen = acq.slant_range_time.values * SPEED_OF_LIGHT / 2
    ours_line = geo.line[np.ix_(rows, cols)]
    ours_range = geo.slant_range[np.ix_(rows, cols)] + geo.range_origin
    return {"max_abs_line_diff": float(np.nanmax(np.abs(ours_line - line_sarsen))),
            "max_abs_slant_range_diff_m": float(np.nanmax(np.abs(ours_range - range_sarsen))),
            "points": int(ours_line.size)}


def _child(kind: str, job: dict) -> dict:
    res = {"ours": run_ours, "sarsen": run_sarsen, "crosscheck": crosscheck}[kind](job)
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=float, nargs="+", default=[6400.0, 38400.0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/sar_bench"))
    ap.add_argument("--skip-sarsen", action="store_true")
    ap.add_argument("--child", nargs=2, metavar=("KIND", "JOB"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args.child[0], json.loads(args.child[1]))))
        return
    rows = []
    for size in args.sizes:
        job = prepare(size, args.work)
        kinds = ["ours"] + ([] if args.skip_sarsen else ["sarsen", "crosscheck"])
        res = {}
        for kind in kinds:
            proc = subprocess.run([sys.executable, __file__, "--child", kind, json.dumps(job)],
                                  capture_output=True, text=True, check=True)
            res[kind] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(json.dumps({"size_m": size, "run": kind, **res[kind]}), flush=True)
        rows.append((size, job["shape"], res))
    print("\n| ROI | grid | ours s | ours peak RSS MB | sarsen s (VV+VH) | sarsen peak RSS MB "
          "| ratio | max line / slant range diff |")
    print("|---|---|---|---|---|---|---|---|")
    for size, shape, res in rows:
        o, s, c = res["ours"], res.get("sarsen"), res.get("crosscheck")
        print(f"| {size / 1000:g} km | {shape[0]} x {shape[1]} | {o['seconds']:.1f} | "
              f"{o['peak_rss_mb']:.0f} | " + (f"{s['seconds']:.1f} | {s['peak_rss_mb']:.0f} | "
                                               f"{s['seconds'] / o['seconds']:.1f}x | "
                                               f"{c['max_abs_line_diff']:.4f} / "
                                               f"{c['max_abs_slant_range_diff_m']:.4f} m |"
                                               if s else "- | - | - | - |"))


if __name__ == "__main__":
    main()
