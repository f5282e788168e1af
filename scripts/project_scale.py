#!/usr/bin/env python3
"""Project the paper's 600 scenes on this machine from the two benchmarks' measured figures.

Inputs: the ``--json`` of ``scripts/benchmark_mosaic.py`` (mosaic time against the number of
acquisitions on a 38.4 km ROI) and the JSON line that ``scripts/benchmark.py`` prints last
(warp + tile of a ``size`` x ``size`` UTM scene, all three modalities)::

    .venv/bin/python scripts/benchmark.py | tail -1 > /tmp/warp_tile.json
    .venv/bin/python scripts/benchmark_mosaic.py --json /tmp/mosaic.json
    .venv/bin/python scripts/project_scale.py --mosaic /tmp/mosaic.json --tile /tmp/warp_tile.json

A paper scene is a 3840 x 3840 px UTM scene (38.4 km at 10 m): warp + tile time, patch bytes
and UTM scratch scale with its pixel count from the benchmark's scene; the mosaic time is the
straight line fitted through the measured acquisition counts, taken at ``--acquisitions``
(a season of 15-30 per ROI). Sentinel-1 and land-cover exports are not benchmarked (one
nearest warp each, a few seconds) and are left out. Sequential, one scene at a time.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

SCENES = 600
SCENE_PX = 3840
PATCHES = ((SCENE_PX - 256) // 128 + 1) ** 2  # 841 full patches per scene, before curation


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mosaic", type=Path, required=True)
    ap.add_argument("--tile", type=Path, required=True)
    ap.add_argument("--acquisitions", type=int, default=25)
    ap.add_argument("--scorer", default="paper")
    args = ap.parse_args()
    rows = [r for r in json.loads(args.mosaic.read_text()) if r["scorer"] == args.scorer]
    text = args.tile.read_text().strip()
    try:  # the file of --json, or the JSON line the benchmark prints last
        tile = json.loads(text)
    except json.JSONDecodeError:
        tile = json.loads(text.splitlines()[-1])
    ns = np.array([r["n"] for r in rows], float)
    ts = np.array([r["mosaic"]["seconds"] for r in rows])
    slope, icpt = np.polyfit(ns, ts, 1)
    t_mosaic = icpt + slope * args.acquisitions
    mosaic_peak = max(r["mosaic"]["peak_mib"] for r in rows)
    scale = SCENE_PX ** 2 / tile["size"] ** 2
    o, g = tile["ours"], tile["gdal"]
    t_tile = o["seconds"] * scale
    t_gdal = g["seconds"] * scale
    patch_gib = o["patch_mib"] / o["patches"] * PATCHES / 1024
    # scratch of a scene in flight: what the mosaic wrote (its export and aux layer)
    export_gib = max(r["mosaic"]["wchar"] for r in rows) / 2**30
    cpu = [r for r in rows if "cpu_seconds" in r["mosaic"]]
    print(f"measured: mosaic {slope:.2f} s per acquisition + {icpt:.1f} s per scene "
          f"(fit over N = {', '.join(str(int(n)) for n in ns)}), peak {mosaic_peak:.0f} MiB; "
          f"warp + tile of a {tile['size']} px scene {o['seconds']:.1f} s (GDAL tools "
          f"{g['seconds']:.1f} s), peak {o['peak_mib']:.0f} MiB")
    print(f"per paper scene (3840 x 3840 px, {PATCHES} patches, {args.acquisitions} "
          f"acquisitions): mosaic {t_mosaic:.0f} s, warp + tile {t_tile:.0f} s "
          f"(GDAL tools {t_gdal:.0f} s), patches {patch_gib:.2f} GiB")
    h = 3600.0
    print(f"600 scenes, local stages only (warp + tile): {SCENES * t_tile / h:.1f} h "
          f"(GDAL tools {SCENES * t_gdal / h:.1f} h), peak {o['peak_mib']:.0f} MiB, "
          f"patches {SCENES * patch_gib:.0f} GiB before curation")
    print(f"600 scenes, local backend end to end (S2 mosaic + warp + tile): "
          f"{SCENES * (t_mosaic + t_tile) / h:.1f} h, peak "
          f"{max(mosaic_peak, o['peak_mib']):.0f} MiB per worker, disk {SCENES * patch_gib:.0f}"
          f" GiB of patches + ~{export_gib:.1f} GiB scratch per scene in flight")
    if "fused" in tile:  # benchmark only: patches cut from the warped rows in memory
        t_fused = tile["fused"]["seconds"] * scale
        print(f"fused warp + tile (benchmark only, not in the pipeline): {t_fused:.0f} s per "
              f"scene, 600 scenes {SCENES * t_fused / h:.1f} h, peak "
              f"{tile['fused']['peak_mib']:.0f} MiB")
    if len(cpu) >= 2:
        # the mosaic reads ahead in a second thread: one scene at a time its wall time is
        # shorter than its CPU time; a pool of workers that fills every core pays the CPU time
        cs, ci = np.polyfit([r["n"] for r in cpu], [r["mosaic"]["cpu_seconds"] for r in cpu], 1)
        t_cpu = ci + cs * args.acquisitions
        print(f"mosaic by CPU time (what every core busy costs per scene): {cs:.2f} s per "
              f"acquisition + {ci:.1f} s, {t_cpu:.0f} s per scene; 600 scenes end to end "
              f"{SCENES * (t_cpu + t_tile) / h:.1f} h")


if __name__ == "__main__":
    main()
