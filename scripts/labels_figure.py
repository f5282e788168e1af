"""Figure for the docs: MODIS land cover (``lc``, IGBP) beside the 10 m labels (ESA
WorldCover) on a few patches of a labels demo run, each in its product's official colours,
with the Sentinel-2 RGB for reference.

    sen12ms-build demo --out demo_labels --labels worldcover
    python scripts/labels_figure.py demo_labels/sen12ms docs/img/labels_demo.png

Picks ``--patches`` kept patches of the manifest spread over the scenes (the most mixed
WorldCover patches first: lowest ``labels_purity``), one row each.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import rasterio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path, help="a dataset built with labels: worldcover")
    ap.add_argument("out", type=Path, help="the PNG to write")
    ap.add_argument("--patches", type=int, default=4)
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from sen12ms_build.curation.quicklook import IGBP, class_colours, s2_composite
    from sen12ms_build.labels import WORLDCOVER_CLASSES

    with open(args.root / "manifest.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["status"] == "kept" and r.get("wc")]
    if not rows:
        raise SystemExit(f"{args.root}: no kept patch with ESA WorldCover labels (build it "
                         "with `sen12ms-build demo --labels worldcover`)")
    rows.sort(key=lambda r: float(r["labels_purity"]))
    picked, scenes = [], set()
    for r in rows:  # the most mixed patch of each scene first
        key = (r["branch"], r["scene"])
        if key not in scenes:
            picked.append(r)
            scenes.add(key)
        if len(picked) == args.patches:
            break
    wc_table = {c.value: (c.name, c.color.lower()) for c in WORLDCOVER_CLASSES}
    fig, axes = plt.subplots(len(picked), 3, figsize=(9, 3 * len(picked)), squeeze=False)
    seen_igbp, seen_wc = set(), set()
    for ax, r in zip(axes, picked):
        with rasterio.open(args.root / r["s2"]) as f:
            s2 = f.read()
        with rasterio.open(args.root / r["lc"]) as f:
            igbp = f.read(1)
        with rasterio.open(args.root / r["wc"]) as f:
            wc = f.read(1)
        seen_igbp |= set(np.unique(igbp).tolist())
        seen_wc |= set(np.unique(wc).tolist())
        panels = (s2_composite(s2, ("B4", "B3", "B2")), class_colours(igbp, IGBP),
                  class_colours(wc, wc_table))
        titles = ("Sentinel-2 RGB", "MODIS MCD12Q1 IGBP (500 m)", "ESA WorldCover (10 m)")
        for a, img, t in zip(ax, panels, titles):
            a.imshow(img, interpolation="nearest")
            a.set_xticks([])
            a.set_yticks([])
            a.set_title(t, fontsize=9)
        ax[0].set_ylabel(r["patch_id"], fontsize=8)
    handles = [Patch(facecolor=f"#{IGBP[k][1]}", edgecolor="#333", label=f"{k} {IGBP[k][0]}")
               for k in sorted(seen_igbp) if k in IGBP]
    handles += [Patch(facecolor=f"#{wc_table[k][1]}", edgecolor="#333",
                      label=f"{k} {wc_table[k][0]}") for k in sorted(seen_wc) if k in wc_table]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=7, frameon=False)
    fig.suptitle("MODIS land cover (SEN12MS's labels) and ESA WorldCover 10 m on demo patches "
                 "(both simulated from the demo's ground classes)", fontsize=9)
    fig.tight_layout(rect=(0, 0.08, 1, 0.97))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out} ({len(picked)} patches)")


if __name__ == "__main__":
    main()
