#!/usr/bin/env python
"""Picture of the residual-cloud check's cases (docs/clouds.md, "Curation"):

* top row: demo-run patches (RGB quicklook, and the quality layers' cloud in red, shadow in
  blue) from a run of ``configs/demo.yaml`` made with the previous ``poor_blob`` threshold
  (0.01), so the patches the re-tuned threshold rejects still have their files;
* bottom row: one 256 px patch of a real-cloud acquisition scored alone, with the poor mask
  of each local scorer (yellow) and the truth (red cloud, blue shadow).

Usage:
    python scripts/clouds_curation_figure.py RUN_OUT REAL_ARCHIVE [--png PNG]
        [--patches ID,ID,...] [--real DATE:ROW:COL]

``REAL_ARCHIVE`` is a demo archive written with ``clouds="real", crop=512``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
import rasterio

from sen12ms_build import mosaic
from sen12ms_build.mosaic import MosaicParams

REPO = Path(__file__).resolve().parent.parent
PATCHES = ("ROIs1868_summer_1_p1", "ROIs2017_winter_2_p2", "ROIs2017_winter_2_p3",
           "ROIs1868_summer_3_p9")


def _rgb(bgr: np.ndarray) -> np.ndarray:
    """(3, h, w) DN of B4, B3, B2 -> (h, w, 3) display RGB."""
    return np.clip(np.moveaxis(bgr.astype(np.float32), 0, -1) / 3000.0, 0, 1) ** (1 / 1.6)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("real_archive", type=Path)
    ap.add_argument("--png", type=Path, default=REPO / "docs" / "img" / "clouds_curation.png")
    ap.add_argument("--patches", default=",".join(PATCHES))
    ap.add_argument("--real", default="2017-06-10:256:128")
    args = ap.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(args.run / "manifest.csv", newline="") as f:
        rows = {r["patch_id"]: r for r in csv.DictReader(f)}
    ids = args.patches.split(",")
    fig, axes = plt.subplots(2, max(len(ids), 4), figsize=(3.3 * max(len(ids), 4), 7.0),
                             squeeze=False)
    for j, pid in enumerate(ids):
        r = rows[pid]
        with rasterio.open(args.run / r["s2"]) as src:
            rgb = _rgb(src.read([4, 3, 2]))
        with rasterio.open(args.run / r["qa"]) as src:
            qa = src.read()
        over = rgb.copy()
        over[qa[0] == 1] = 0.4 * over[qa[0] == 1] + 0.6 * np.array([1.0, 0.1, 0.1])
        over[qa[1] == 1] = 0.4 * over[qa[1] == 1] + 0.6 * np.array([0.1, 0.4, 1.0])
        axes[0, j].imshow(np.concatenate([rgb, over], axis=0), interpolation="nearest")
        axes[0, j].set_title(f"{pid}\npoor blob {100 * float(r['poor_blob']):.2f} %",
                             fontsize=8)
    date, r0, c0 = args.real.split(":")
    r0, c0 = int(r0), int(c0)
    summary = json.loads((args.real_archive / "archive.json").read_text())
    e = next(a for a in summary["acquisitions"] if a["modality"] == "s2"
             and a["sensing_time"].startswith(date))
    with rasterio.open(args.real_archive / e["path"]) as src:
        l1c = src.read()
    win = (slice(r0, r0 + 256), slice(c0, c0 + 256))
    with rasterio.open(args.real_archive / e["truth"]["cloud"]) as src:
        cloud_t = src.read(1)[win].astype(bool)
    with rasterio.open(args.real_archive / e["truth"]["shadow"]) as src:
        shadow_t = src.read(1)[win].astype(bool)
    rgb = _rgb(l1c[[3, 2, 1]][(slice(None), *win)])
    panels = [("real clouds " + args.real, rgb)]
    truth = rgb.copy()
    truth[cloud_t] = [1.0, 0.1, 0.1]
    truth[shadow_t] = [0.1, 0.4, 1.0]
    panels.append(("truth: cloud red, shadow blue", truth))
    for name in ("paper", "s2cloudless"):
        s = mosaic.score_image(l1c, (10.0, 10.0), e["solar_azimuth_deg"],
                               e["solar_zenith_deg"], None, MosaicParams(scorer=name))
        poor = s.poor[win]
        over = rgb.copy()
        over[poor] = [1.0, 0.9, 0.0]
        panels.append((f"{name} poor (yellow): {100 * poor.mean():.2f} %", over))
    for j, (title, img) in enumerate(panels):
        axes[1, j].imshow(img, interpolation="nearest")
        axes[1, j].set_title(title, fontsize=8)
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.suptitle("Residual-cloud check (poor_blob): top, demo patches (RGB over quality "
                 "layers: cloud red, shadow blue); bottom, a real-cloud patch scored alone",
                 fontsize=9)
    fig.tight_layout()
    args.png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.png, dpi=100)
    plt.close(fig)
    print(args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
