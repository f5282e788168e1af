#!/usr/bin/env python
"""The cloud-removal variants' masks against the demo's own cloud truth; anyone can rerun it.

For a ``cr`` tree built from a demo archive (``sen12ms-build demo --variant cr``) it reads,
for every kept patch, the cloudy input's mask layer (``ROIs*_s2_cloudy_mask``: band 1 cloud,
band 2 shadow) and the archive's truth of that acquisition (``truth/<stem>_cloud.tif`` and
``_shadow.tif``, written by :mod:`sen12ms_build.demo.clouds` when the clouds were injected,
never from any detector), resampled with nearest onto the patch's grid, and prints, pooled
over the pixels of all patches:

* cloud mask: recall against the cloud truth (opacity >= 0.5, the opaque core), precision
  against it and against "any cloud" (opacity > 0, recomputed with the demo's own
  ``cloud_layers`` / ``real_cloud_layers``: thin edges are cloud too, and the authors'
  s2cloudless settings dilate by 2 px);
* shadow mask: recall and precision against the shadow truth, and the recall restricted to
  the shadow the demo marks as cast by a visible cloud over land (the paper's shadow test
  leaves water out: ``mosaic.shadow_over_water``);
* cloud or shadow against cloud or shadow truth;
* the coverage histogram of the cloudy patches (``manifest.csv``'s ``cloud_coverage``, in
  tenths) and its mean.

Usage:
    python scripts/evaluate_cr_masks.py ROOT ARCHIVE [--json OUT]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.warp import Resampling, reproject


def _rp(hit: float, truth: float, flagged: float) -> tuple[float | None, float | None]:
    return (round(hit / truth, 3) if truth else None,
            round(hit / flagged, 3) if flagged else None)


def _any_cloud(archive: Path, summary: dict, entry: dict) -> np.ndarray:
    """(H, W) bool "any cloud" (opacity > 0) of an acquisition on the archive's grid."""
    from sen12ms_build.demo.archive import plan_s2
    from sen12ms_build.demo.clouds import cloud_layers
    from sen12ms_build.demo.ground import crop_window, load_ground
    from sen12ms_build.demo.realclouds import real_cloud_layers

    ground, grid = load_ground()
    window = crop_window(grid.shape, summary["demo"].get("crop"))
    planned = plan_s2(ground, grid, clouds=summary["demo"].get("clouds", "synthetic"))
    p = next(q for q in planned
             if f"{q.plan.sensing_time:%Y-%m-%dT%H:%M:%SZ}" == entry["sensing_time"])
    if p.real:
        alpha = real_cloud_layers(p.index, window, p.azimuth, p.zenith)[0]
    else:
        alpha = cloud_layers(p.clouds, window, p.azimuth, p.zenith)[0]
    return alpha > 0


def _on(src_path: Path | None, src: np.ndarray | None, meta: dict, dst) -> np.ndarray:
    """A truth raster (file or array on the archive's grid ``meta``) on ``dst``'s grid."""
    out = np.zeros((dst.height, dst.width), np.uint8)
    if src is None:
        with rasterio.open(src_path) as f:
            src = f.read(1)
    reproject(src.astype(np.uint8), out, src_transform=meta["transform"], src_crs=meta["crs"],
              dst_transform=dst.transform, dst_crs=dst.crs, resampling=Resampling.nearest)
    return out.astype(bool)


def evaluate(root: Path, archive: Path, any_cloud: bool = True) -> dict:
    """The figures of the module doc, as a dict."""
    root, archive = Path(root), Path(archive)
    summary = json.loads((archive / "archive.json").read_text())
    by_id = {e["product_id"]: e for e in summary["acquisitions"] if e["modality"] == "s2"}
    rows = [r for r in csv.DictReader(open(root / "manifest.csv", newline=""))
            if r["status"] == "kept"]
    n = dict.fromkeys(("c_hit", "c_truth", "c_flag", "c_any", "s_hit", "s_truth", "s_flag",
                       "cs_hit", "cs_truth", "cs_flag"), 0.0)
    anys: dict[str, np.ndarray] = {}
    meta = None
    for r in rows:
        e = by_id[r["cloudy_product_id"]]
        if meta is None:
            with rasterio.open(archive / e["truth"]["cloud"]) as f:
                meta = {"transform": f.transform, "crs": f.crs}
        with rasterio.open(root / r["s2_cloudy_mask"]) as dst:
            mask = dst.read()
            cloud_t = _on(archive / e["truth"]["cloud"], None, meta, dst)
            shadow_t = _on(archive / e["truth"]["shadow"], None, meta, dst)
            if any_cloud:
                if e["product_id"] not in anys:
                    anys[e["product_id"]] = _any_cloud(archive, summary, e)
                any_t = _on(None, anys[e["product_id"]], meta, dst)
        cm, sm = mask[0] == 1, mask[1] == 1
        n["c_hit"] += (cm & cloud_t).sum()
        n["c_truth"] += cloud_t.sum()
        n["c_flag"] += cm.sum()
        if any_cloud:
            n["c_any"] += (cm & any_t).sum()
        n["s_hit"] += (sm & shadow_t).sum()
        n["s_truth"] += shadow_t.sum()
        n["s_flag"] += sm.sum()
        both_t, both_m = cloud_t | shadow_t, cm | sm
        n["cs_hit"] += (both_m & both_t).sum()
        n["cs_truth"] += both_t.sum()
        n["cs_flag"] += both_m.sum()
    cov = [float(r["cloud_coverage"]) for r in rows]
    hist = np.histogram(cov, bins=np.linspace(0, 1, 11))[0].tolist()
    out = {"patches": len(rows), "acquisitions": sorted({r["cloudy_product_id"] for r in rows}),
           "cloud": dict(zip(("recall", "precision"), _rp(n["c_hit"], n["c_truth"],
                                                            n["c_flag"]))),
           "shadow": dict(zip(("recall", "precision"), _rp(n["s_hit"], n["s_truth"],
                                                             n["s_flag"]))),
           "cloud_or_shadow": dict(zip(("recall", "precision"),
                                       _rp(n["cs_hit"], n["cs_truth"], n["cs_flag"]))),
           "coverage_histogram": {"bins": [round(x, 1) for x in np.linspace(0, 1, 11)],
                                  "counts": hist},
           "coverage_mean": round(float(np.mean(cov)), 4) if cov else None,
           "coverage_min": min(cov) if cov else None, "coverage_max": max(cov) if cov else None}
    if any_cloud:
        out["cloud"]["precision_any"] = round(n["c_any"] / n["c_flag"], 3) if n["c_flag"] \
            else None
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("archive", type=Path)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    res = evaluate(a.root, a.archive)
    text = json.dumps(res, indent=1)
    print(text)
    if a.json:
        a.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
