#!/usr/bin/env python
"""Check the demo archive against the mosaicking algorithm (sen12ms_build.mosaic).

Writes the demo archive (or reuses one) and, per Sentinel-2 acquisition, compares the
algorithm's poor mask (``score_image(...).poor``: cloud or shadow) with the injected truth:

* recall over the detectable truth: cloud pixels plus shadow pixels on land (the spec's
  shadow detector excludes water by design; land and water here are the demo's own truth,
  ``sen12ms_build.demo.ground.water_truth`` of the clear ground, not the detector's water
  test) whose cloud lies inside the image (with a crop, clouds outside the window cast
  shadows into it);
* recall over all truth (scene-wide, shadows on water included);
* precision over the whole scene.

Also per season: the smallest and largest CLOUDY_PERCENTAGE of each acquisition over all
5 km windows (stride 500 m) and the residual cloud/shadow of the merged mosaic.

With ``--clouds real`` the archive's scattered acquisitions carry real clouds (spectra and
shapes of a real Sentinel-2 array, sen12ms_build.demo.realclouds); rows say which.

Usage: python scripts/check_demo_detection.py [ROOT] [--crop N] [--clouds real] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio

from sen12ms_build import mosaic
from sen12ms_build.demo.archive import (
    crop_window,
    load_ground,
    shadow_source_visible,
    water_truth,
    write_demo_archive,
)


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def _window_percent(mask: np.ndarray, size: int, stride: int) -> tuple[float, float]:
    """(min, max) percentage of True over all size x size windows at the given stride."""
    ii = np.pad(mask.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    h, w = mask.shape
    if h < size or w < size:
        return float(100 * mask.mean()), float(100 * mask.mean())
    r = np.arange(0, h - size + 1, stride)
    c = np.arange(0, w - size + 1, stride)
    s = (ii[r[:, None] + size, c[None, :] + size] - ii[r[:, None], c[None, :] + size]
         - ii[r[:, None] + size, c[None, :]] + ii[r[:, None], c[None, :]])
    pct = 100.0 * s / (size * size)
    return float(pct.min()), float(pct.max())


def _ratio(part: np.ndarray, whole: np.ndarray) -> float | None:
    n = int(whole.sum())
    return round(float(part.sum()) / n, 3) if n else None


def evaluate(root: Path, crop: int | None) -> dict:
    summary = json.loads((root / "archive.json").read_text())
    ground, _ = load_ground()
    r0, c0, h, w = crop_window(ground.shape[1:], crop)
    clear = ground[:, r0:r0 + h, c0:c0 + w]
    water = water_truth(clear)  # the demo's own land/water truth
    rows, by_season = [], {}
    for e in summary["acquisitions"]:
        if e["modality"] != "s2":
            continue
        l1c = _read(root / e["path"])
        cloud = _read(root / e["truth"]["cloud"])[0].astype(bool)
        shadow = _read(root / e["truth"]["shadow"])[0].astype(bool)
        s = mosaic.score_image(l1c, (10.0, 10.0), e["solar_azimuth_deg"], e["solar_zenith_deg"])
        truth = cloud | shadow
        hm = e["cloud_heights_m"] or {"min": 1000.0, "max": 1000.0}
        seen = shadow_source_visible(cloud, e["solar_azimuth_deg"], e["solar_zenith_deg"],
                                     (hm["min"], hm["max"]))
        detectable = cloud | (shadow & ~water & seen)
        poor = s.poor
        row = {
            "date": e["sensing_time"][:10], "season": e["season"], "layout": e["layout"],
            "clouds": e.get("clouds", "synthetic"),
            "az": e["solar_azimuth_deg"], "zen": e["solar_zenith_deg"],
            "cloud%": e["cloud_percent"], "shadow%": e["shadow_percent"],
            "shadow_on_land%": round(100 * float((shadow & ~water).mean()), 2),
            "CLOUDY_PERCENTAGE": round(s.cloudy_percentage, 2),
            "poor%": round(100 * float(poor.mean()), 2),
            "recall": _ratio(poor & detectable, detectable),
            "recall_all": _ratio(poor & truth, truth),
            "precision": _ratio(poor & truth, poor),
            "cloud_recall": _ratio(poor & cloud, cloud),
            "land_shadow_recall": _ratio(poor & shadow & ~water & seen, shadow & ~water & seen),
        }
        cmask = mosaic.cloud_mask(s.cloud)
        row["roi5km_cloudy%_min"], row["roi5km_cloudy%_max"] = (
            round(v, 2) for v in _window_percent(cmask, 500, 50))
        rows.append(row)
        by_season.setdefault(e["season"], []).append((s, cloud, shadow))
    seasons = {}
    for name, items in by_season.items():
        q = np.stack([s.quality for s, _, _ in items])
        v = np.stack([s.valid for s, _, _ in items])
        pct = [s.cloudy_percentage for s, _, _ in items]
        source, best = mosaic.merge_sources(q, v, pct)
        idx = np.clip(source, 0, None)[None].astype(np.intp)
        cloud = np.take_along_axis(np.stack([c for _, c, _ in items]), idx, 0)[0]
        shadow = np.take_along_axis(np.stack([sh for _, _, sh in items]), idx, 0)[0]
        poor = np.stack([c | sh for _, c, sh in items])
        seasons[name] = {
            "best": best,
            "residual_cloud%": round(100 * float(cloud.mean()), 3),
            "residual_shadow_on_land%": round(100 * float((shadow & ~water).mean()), 3),
            "residual_shadow_on_water%": round(100 * float((shadow & water).mean()), 3),
            "pixels_in_truth_of_2+_acquisitions%": round(100 * float((poor.sum(0) > 1).mean()), 3),
            "pixels_clear_in_no_acquisition%": round(100 * float(poor.all(0).mean()), 3),
        }
    return {"acquisitions": rows, "seasons": seasons}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", type=Path)
    ap.add_argument("--crop", type=int, default=None)
    ap.add_argument("--clouds", choices=("synthetic", "real"), default="synthetic")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    tmp = None
    root = args.root
    if root is None:
        tmp = tempfile.TemporaryDirectory()
        root = Path(tmp.name)
    t = time.perf_counter()
    write_demo_archive(root, crop=args.crop, progress=False, clouds=args.clouds)
    logging.info("archive written in %.1f s", time.perf_counter() - t)
    result = evaluate(root, args.crop)
    keys = ["date", "season", "layout", "clouds", "az", "zen", "cloud%", "shadow%", "shadow_on_land%",
            "CLOUDY_PERCENTAGE", "poor%", "recall", "recall_all", "precision", "cloud_recall",
            "land_shadow_recall", "roi5km_cloudy%_min", "roi5km_cloudy%_max"]
    print("\t".join(keys))
    for row in result["acquisitions"]:
        print("\t".join(str(row[k]) for k in keys))
    for name, s in result["seasons"].items():
        print(name, s)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
