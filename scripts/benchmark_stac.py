"""Benchmark the stac backend's reader against odc-stac and stackstac (issue 21, part 11).

One season's Sentinel-2 acquisitions over one ROI, all bands, read from a loopback HTTP
server onto the same UTM 10 m grid, three ways in one run:

* ``ours``: the backend's reader (``sen12ms_build.backends.stac.reader``): every band of every
  acquisition in one pool (``read_acquisitions``); ``ours-per-acquisition``: one acquisition
  after the other, its bands in a pool (``read_stack``, what ``sentinel2.read_acquisition``
  does for the mosaicking engine, which takes acquisitions one at a time);
* ``odc-stac``: ``odc.stac.load(items, bands, geobox=..., resampling="nearest")``;
* ``stackstac``: ``stackstac.stack(items, assets, epsg, resolution, bounds,
  resampling=nearest).compute()``.

The data: the demo ground (``sen12ms_build.demo``) published in Planetary Computer's
Level-2A layout (``sen12ms_build.demo.stac_publish``: deflate COGs of 256 px blocks at each
band's native 10/20/60 m) with PC-shaped items, served by ``demo.servers.FileServer`` on
127.0.0.1 without SAS (the three read the same unsigned URLs). The ROI is a square of
``--roi-m`` metres at the ground's centre, its grid the scene grid the backend reads onto.
All three resample with nearest from the native pixels (the backend's own default for
reflectance is bilinear; nearest makes the outputs comparable pixel for pixel), keep the
raw DN (uint16, nodata 0: no harmonization), and must give identical arrays.

Each method runs ``--repeat`` times, each time in a fresh process (cold GDAL caches; its
peak resident memory is its own: ``ru_maxrss``, and the same after imports only). The
server counts the requests and bytes each run fetched. Prints one JSON line per run and a
Markdown table (medians). ``--profile`` adds a breakdown of where our reader's time goes.

Install the yardsticks (the ``bench`` extra; the tests do not need them)::

    .venv/bin/python -m pip install -e '.[stac,bench]'
    .venv/bin/python scripts/benchmark_stac.py --work /tmp/stac_bench [--roi-m 10240]
        [--repeat 3] [--profile]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

METHODS = ("ours", "ours-per-acquisition", "odc-stac", "stackstac")
THREADS = 8  # concurrent reads for every method (the backend's default per-host cap)


def _rss_mb() -> float:
    """This process's peak resident memory (MB): ``VmHWM`` (``ru_maxrss`` would carry the
    parent's peak across fork and exec on Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --- the data -----------------------------------------------------------------------------

def prepare(work: Path, roi_m: float, season: str) -> dict:
    """The demo archive and its Level-2A publication under ``work`` (kept between runs), the
    season's items and the ROI's grid."""
    from sen12ms_build.demo import stac_publish
    from sen12ms_build.demo.archive import write_demo_archive

    archive, published = work / "archive", work / "published"
    if not (archive / "archive.json").exists():
        write_demo_archive(archive, progress=False)
    pub = stac_publish.publish(archive, published, l2a=True, seasons=(season,))
    items = sorted((i for i in pub.items if i["collection"] == stac_publish.L2A_COLLECTION),
                   key=lambda i: i["properties"]["datetime"])
    meta = json.loads((archive / "archive.json").read_text())["demo"]
    left, bottom, right, top = meta["bounds"]
    cx, cy = (left + right) / 2, (bottom + top) / 2
    half = roi_m / 2
    x0, y1 = round((cx - half) / 10) * 10, round((cy + half) / 10) * 10
    n = int(roi_m // 10)
    return {"root": str(published / "blob"), "items": items, "crs": meta["crs"],
            "transform": [10.0, 0.0, float(x0), 0.0, -10.0, float(y1)], "width": n,
            "height": n, "bands": [stac_publish.PC_ASSETS[b] for b in _bands()]}


def _bands() -> list[str]:
    from sen12ms_build.products import S2_L2A_BANDS

    return list(S2_L2A_BANDS)


def _resolve(items: list[dict], url: str) -> list[dict]:
    return json.loads(json.dumps(items).replace("{PC}", url))


# --- the three readers (each in its own process) ------------------------------------------

def _grid(job: dict):
    from affine import Affine

    from sen12ms_build.geo import Grid

    return Grid(job["crs"], Affine(*job["transform"]), job["width"], job["height"])


def run_ours(job: dict) -> np.ndarray:
    from sen12ms_build.backends.stac.profiles import resolve
    from sen12ms_build.backends.stac.reader import AssetReader, BandAsset, read_acquisitions

    profile = resolve({"bench": {"extends": "planetary-computer", "endpoint": job["url"],
                                 "signing": None}})["bench"]
    reader = AssetReader(profile, "s2-l2a", timeout_s=60, retries=2, max_concurrent=THREADS)
    stacks = [[BandAsset(i["id"], b, b, i["assets"][b]["href"], "nearest")
               for b in job["bands"]] for i in job["items"]]
    return read_acquisitions(reader, stacks, _grid(job), "uint16", 0, threads=THREADS)


def run_ours_per_acquisition(job: dict) -> np.ndarray:
    from sen12ms_build.backends.stac.profiles import resolve
    from sen12ms_build.backends.stac.reader import AssetReader, BandAsset, read_stack

    profile = resolve({"bench": {"extends": "planetary-computer", "endpoint": job["url"],
                                 "signing": None}})["bench"]
    reader = AssetReader(profile, "s2-l2a", timeout_s=60, retries=2, max_concurrent=THREADS)
    g = _grid(job)
    return np.stack([read_stack(reader, [BandAsset(i["id"], b, b, i["assets"][b]["href"],
                                                   "nearest") for b in job["bands"]],
                                g, "uint16", 0, threads=THREADS) for i in job["items"]])


def run_odc(job: dict) -> np.ndarray:
    import odc.stac
    import pystac
    from odc.geo.geobox import GeoBox

    g = _grid(job)
    odc.stac.configure_rio(cloud_defaults=True)
    items = [pystac.Item.from_dict(i) for i in job["items"]]
    gbox = GeoBox((g.height, g.width), g.transform, g.crs)
    ds = odc.stac.load(items, bands=job["bands"], geobox=gbox, resampling="nearest",
                       dtype="uint16", nodata=0, groupby="id", pool=THREADS)
    order = [i["id"] for i in job["items"]]
    ds = ds.sortby("time")
    arr = np.stack([ds[b].values for b in job["bands"]], axis=1)  # (time, band, y, x)
    assert arr.shape[0] == len(order)
    return arr


def run_stackstac(job: dict) -> np.ndarray:
    import dask
    import stackstac
    from rasterio.enums import Resampling

    g = _grid(job)
    left, top = g.transform.c, g.transform.f
    bounds = (left, top - 10.0 * g.height, left + 10.0 * g.width, top)
    epsg = int(str(g.crs).split(":")[1])
    arr = stackstac.stack(job["items"], assets=job["bands"], epsg=epsg, resolution=10.0,
                          bounds=bounds, resampling=Resampling.nearest, dtype="uint16",
                          fill_value=np.uint16(0), rescale=False, snap_bounds=False,
                          chunksize=1024, sortby_date="asc")
    with dask.config.set(scheduler="threads", num_workers=THREADS):
        return np.asarray(arr.compute().values)


RUNNERS = {"ours": run_ours, "ours-per-acquisition": run_ours_per_acquisition,
           "odc-stac": run_odc, "stackstac": run_stackstac}


def child(method: str, job_path: Path, out: Path) -> None:
    """One run in this process: imports, the read, the array to ``out``, stats on stdout."""
    job = json.loads(job_path.read_text())
    import rasterio  # noqa: F401  (imports outside the timed part, as a long run has them)

    RUNNERS[method]  # noqa: B018
    if method == "odc-stac":
        import odc.stac  # noqa: F401
    elif method == "stackstac":
        import stackstac  # noqa: F401
    else:
        import sen12ms_build.backends.stac.reader  # noqa: F401
    base = _rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    arr = RUNNERS[method](job)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    np.save(out, arr)
    print(json.dumps({"method": method, "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": _rss_mb(),
                      "import_rss_mb": base, "shape": list(arr.shape)}))


# --- where our time goes --------------------------------------------------------------------

def profile_ours(job: dict) -> dict:
    """Where our reader's time goes, one band at a time in one thread: ``open`` (the header's
    request and parsing), ``read`` (block fetches, decoding, the copy onto the grid), first
    cold and then again with every byte in GDAL's ``/vsicurl/`` cache (``warm``: decoding
    and copying alone); cold minus warm is waiting for the server."""
    import rasterio

    from sen12ms_build.backends.stac import access
    from sen12ms_build.backends.stac.profiles import resolve
    from sen12ms_build.backends.stac.reader import AssetReader

    profile = resolve({"bench": {"extends": "planetary-computer", "endpoint": job["url"],
                                 "signing": None}})["bench"]
    reader = AssetReader(profile, "s2-l2a", 60, 2, THREADS)
    g = _grid(job)
    out = {}
    with reader.env():
        for name in ("cold", "warm"):
            parts = {"open": 0.0, "read": 0.0}
            for item in job["items"]:
                for b in job["bands"]:
                    path = access.gdal_path(item["assets"][b]["href"])
                    t = time.perf_counter()
                    src = rasterio.open(path)
                    parts["open"] += time.perf_counter() - t
                    t = time.perf_counter()
                    with src:
                        reader._warp(path, g, "nearest", "uint16", 0)
                    parts["read"] += time.perf_counter() - t
            out[name] = {k: round(v, 3) for k, v in parts.items()}
    return out


# --- the parent ------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/stac_bench"))
    ap.add_argument("--roi-m", type=float, default=10240.0)
    ap.add_argument("--season", default="winter")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    ap.add_argument("--job", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.job, args.out)
        return

    from sen12ms_build.demo.servers import FileServer

    args.work.mkdir(parents=True, exist_ok=True)
    data = prepare(args.work, args.roi_m, args.season)
    methods = [m for m in args.methods.split(",") if m]
    runs: dict[str, list[dict]] = {m: [] for m in methods}
    arrays: dict[str, np.ndarray] = {}
    with FileServer(Path(data["root"])) as server:
        job = {**data, "items": _resolve(data["items"], server.url), "url": server.url}
        job_path = args.work / "job.json"
        job_path.write_text(json.dumps(job))
        for rep in range(args.repeat):
            for m in methods:
                before = (sum(server.requests.values()) - server.requests["#bytes"],
                          server.bytes_sent, time.process_time())
                out = args.work / f"{m}.npy"
                res = subprocess.run([sys.executable, __file__, "--child", m, "--job",
                                      str(job_path), "--out", str(out)],
                                     capture_output=True, text=True, check=False)
                if res.returncode != 0:
                    sys.exit(f"{m} failed:\n{res.stderr[-3000:]}")
                stats = json.loads(res.stdout.strip().splitlines()[-1])
                stats["requests"] = (sum(server.requests.values()) - server.requests["#bytes"]
                                     - before[0])
                stats["bytes"] = server.bytes_sent - before[1]
                stats["server_cpu_s"] = time.process_time() - before[2]  # this process: the server
                stats["repeat"] = rep
                print(json.dumps(stats), flush=True)
                runs[m].append(stats)
                if rep == 0:
                    arrays[m] = np.load(out)
        prof = profile_ours(job) if args.profile else None
    ref = arrays[methods[0]]
    same = {m: bool(arrays[m].shape == ref.shape and np.array_equal(arrays[m], ref))
            for m in methods}
    for m in methods:
        if not same[m]:
            diff = arrays[m].astype(np.int64) - ref.astype(np.int64) \
                if arrays[m].shape == ref.shape else None
            print(f"# {m}: shape {arrays[m].shape} vs {ref.shape}"
                  + ("" if diff is None else f", {int((diff != 0).sum())} pixels differ"))
    n_items, n_bands = len(data["items"]), len(data["bands"])
    import os

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n{n_items} acquisitions x {n_bands} bands, {data['width']} x {data['height']} px "
          f"at 10 m ({args.roi_m / 1000:g} km), nearest, uint16; medians of {args.repeat} "
          f"runs, each in a fresh process; {os.cpu_count()} CPUs, load average {load}\n")
    print("| method | wall (s) | CPU (s) | server CPU (s) | requests | MB fetched | "
          "peak RSS (MB) | RSS after imports (MB) | identical to ours |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    med = {}
    for m in methods:
        r = runs[m]
        med[m] = statistics.median(x["wall_s"] for x in r)
        print(f"| {m} | {med[m]:.2f} | {statistics.median(x['cpu_s'] for x in r):.2f} | "
              f"{statistics.median(x['server_cpu_s'] for x in r):.2f} | "
              f"{int(statistics.median(x['requests'] for x in r))} | "
              f"{statistics.median(x['bytes'] for x in r) / 1e6:.1f} | "
              f"{statistics.median(x['peak_rss_mb'] for x in r):.0f} | "
              f"{statistics.median(x['import_rss_mb'] for x in r):.0f} | "
              f"{'yes' if same[m] else 'NO'} |")
    others = [med[m] for m in methods if not m.startswith("ours")]
    for m in (x for x in methods if x.startswith("ours")):
        if others:
            print(f"\n{m} vs the faster of odc-stac and stackstac: "
                  f"{min(others) / med[m]:.2f}x")
    if prof:
        print(f"\nour reader, one band at a time in one thread (s): {json.dumps(prof)}")


if __name__ == "__main__":
    main()
