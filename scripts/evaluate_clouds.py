#!/usr/bin/env python
"""Compare the cloud scorers (sen12ms_build.mosaic.scorers) on the demo archive's truth and on a
real cloudy L1C scene; anyone can rerun it offline.

For every scorer the local backend can run (``paper``, ``s2cloudless`` if installed) it
prints, over the Sentinel-2 acquisitions of a demo archive (``archive.json`` + ``truth/``):

* per acquisition: recall and precision of the scorer's **poor mask** (cloud or shadow,
  ``score_image(...).poor``, what the merge and curation use) against the truth (cloud or
  shadow), and of its **cloud mask** (``cloud > cloud_thresh``) against the cloud truth;
  CPU seconds per image (``time.process_time`` of ``score_image``, 20 m score scale);
* for the acquisitions with real clouds (``"clouds": "real"`` in ``archive.json``, the
  archive written with ``clouds="real"``): the cloud mask pooled over their pixels, recall
  against the cloud truth (opacity >= 0.5, the opaque core) and precision against it and
  against "any cloud" (opacity > 0, recomputed with the demo's own
  ``realclouds.real_cloud_layers``: thin edges are cloud too); the same pooled figures for
  the synthetic-cloud acquisitions;
* per season: the residual cloud and shadow share of the merged mosaic (the share of
  covered pixels whose source image is cloud or shadow in the truth), with the paper's
  merge and with the masked one; beside it the mosaic's own poor share (what the curation
  reads) and the mean poor share of the season's images;
* agreement between scorers on the real cloudy scene: flagged shares, intersection over
  union of the cloud masks, each one's recall/precision against the reference mask shipped
  with that scene (by default the real L1C crop of ``tests/fixtures/s2cloudless``; pass
  the full ``input_arrays.npz`` of the s2cloudless 1.2.1 sdist with ``--real``). Note the
  reference mask is s2cloudless's own output (threshold 0.4, its smoothing), not a human
  truth; the acquisitions whose ``archive.json`` entry says ``"clouds": "real"`` (the demo's
  real clouds, when present) are the truth-backed version of this comparison.

It writes a side-by-side PNG (``--png``, default ``docs/img/clouds_scorers.png``): for the
real scene and for one demo acquisition, the RGB and each scorer's cloud mask (and the
demo's truth).

Usage:
    python scripts/evaluate_clouds.py [ARCHIVE] [--crop N] [--real NPZ] [--png PNG]
        [--json OUT] [--scorers paper,s2cloudless] [--clouds real|synthetic]
        [--config YAML]

``ARCHIVE`` defaults to a fresh demo archive in a temporary folder, with real clouds
(``--clouds synthetic`` for the default archive's); ``--crop N`` (default 768) reads the
central N x N pixels of every raster, 0 the whole rasters (s2cloudless costs ~2.5 s of CPU
per full demo image with its model compiled, ~25 s in LightGBM's own predict). ``--config``
takes the mosaicking constants of a config's ``mosaic:`` section (e.g.
``configs/sen12ms-plus.yaml``: its ``shadow_over_water``); the scorer and merge are still
each of the listed ones; without it the paper's constants.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from sen12ms_build import mosaic
from sen12ms_build.mosaic import scorers
from sen12ms_build.methods import Scorer
from sen12ms_build.mosaic import MosaicParams

REPO = Path(__file__).resolve().parent.parent
DEFAULT_REAL = REPO / "tests" / "fixtures" / "s2cloudless" / "real_l1c_96.npz"


def local_scorers() -> list[str]:
    """Scorers the local backend can run here (s2cloudless only when installed)."""
    out = []
    for s in Scorer:
        if "local" not in scorers.get(s).backends:
            continue
        if s is Scorer.S2CLOUDLESS and importlib.util.find_spec("s2cloudless") is None:
            continue
        out.append(s.value)
    return out


def _read(path: Path, crop: int | None) -> np.ndarray:
    with rasterio.open(path) as src:
        if crop is None:
            return src.read()
        h, w = src.height, src.width
        win = Window((w - crop) // 2, (h - crop) // 2, min(crop, w), min(crop, h))
        return src.read(window=win)


def _rp(mask: np.ndarray, truth: np.ndarray) -> tuple[float | None, float | None]:
    tp = float((mask & truth).sum())
    recall = tp / truth.sum() if truth.any() else None
    precision = tp / mask.sum() if mask.any() else None
    return (None if recall is None else round(recall, 3),
            None if precision is None else round(precision, 3))


def evaluate_archive(root: Path, names: list[str], crop: int | None = 768,
                     keep: bool = False, base: MosaicParams | None = None,
                     dates: set[str] | None = None) -> dict:
    """Per acquisition and per season figures of each scorer (see the module doc), with
    the constants of ``base`` (default: the paper's) and its scorer replaced. ``keep`` also
    returns the arrays (``images``, ``masks``) for the picture; ``dates`` (YYYY-MM-DD)
    limits the acquisitions."""
    base = base or MosaicParams()
    root = Path(root)
    summary = json.loads((root / "archive.json").read_text())
    acqs = [e for e in summary["acquisitions"] if e["modality"] == "s2"
            and (dates is None or e["sensing_time"][:10] in dates)]
    rows, seasons, arrays = [], {}, {"images": {}, "masks": {}}
    window = _eval_window(summary, crop)
    for e in acqs:
        l1c = _read(root / e["path"], crop)
        cloud_t = _read(root / e["truth"]["cloud"], crop)[0].astype(bool)
        shadow_t = _read(root / e["truth"]["shadow"], crop)[0].astype(bool)
        truth = cloud_t | shadow_t
        row = {"date": e["sensing_time"][:10], "season": e["season"],
               "layout": e.get("layout"), "clouds": e.get("clouds", "synthetic"),
               "truth_percent": round(100 * float(truth.mean()), 2)}
        # real clouds: their opacity (the truth before its 0.5 cut), for "any cloud"
        any_t = None
        if row["clouds"] == "real":
            alpha = real_opacity(e, window)
            if not np.array_equal(alpha >= summary["demo"]["cloud_truth_alpha"], cloud_t):
                raise RuntimeError(f"{e['path']}: the recomputed opacity does not give the "
                                   "archive's cloud truth (another demo version?)")
            any_t = alpha > 0
        if any_t is not None:
            row["any_cloud_percent"] = round(100 * float(any_t.mean()), 2)
            row["cloud_percent"] = round(100 * float(cloud_t.mean()), 2)
        season = seasons.setdefault(e["season"], {"truth": [], "scores": {n: [] for n in names}})
        season["truth"].append(truth)
        if keep:
            arrays["images"][row["date"]] = l1c
            arrays["masks"][(row["date"], "truth")] = cloud_t
        for name in names:
            p = base.with_overrides({"scorer": name})
            t0 = time.process_time()
            s = mosaic.score_image(l1c, (10.0, 10.0), e["solar_azimuth_deg"],
                                   e["solar_zenith_deg"], None, p)
            dt = time.process_time() - t0
            cloud_m = s.cloud > p.cloud_thresh
            r, pr = _rp(s.poor, truth)
            rc, pc = _rp(cloud_m, cloud_t)
            row[name] = {"recall": r, "precision": pr, "cloud_recall": rc,
                         "cloud_precision": pc, "cpu_s": round(dt, 2),
                         "cloudy_percentage": round(s.cloudy_percentage, 2),
                         "poor_percent": round(100 * float(s.poor.mean()), 2),
                         # pixel counts, for figures pooled over acquisitions
                         "n_hit": int((s.poor & truth).sum()), "n_truth": int(truth.sum()),
                         "n_flagged": int(s.poor.sum()),
                         "n_cloud_hit": int((cloud_m & cloud_t).sum()),
                         "n_cloud_truth": int(cloud_t.sum()),
                         "n_cloud_flagged": int(cloud_m.sum())}
            if any_t is not None:
                # precision against any cloud (opacity > 0): thin edges are cloud too
                row[name]["n_cloud_any_hit"] = int((cloud_m & any_t).sum())
                row[name]["cloud_precision_any"] = (
                    round(float((cloud_m & any_t).sum() / cloud_m.sum()), 3)
                    if cloud_m.any() else None)
            season["scores"][name].append((s.quality, s.valid, s.poor, s.cloudy_percentage))
            if keep:
                arrays["masks"][(row["date"], name)] = cloud_m
        rows.append(row)
        print(_row_line(row, names), flush=True)
    residual, flagged = {}, {}
    for season, d in seasons.items():
        truth = np.stack(d["truth"])
        residual[season], flagged[season] = {}, {}
        for name in names:
            q, v, poor, pct = (np.stack([x[i] for x in d["scores"][name]]) if i < 3 else
                               [x[3] for x in d["scores"][name]] for i in range(4))
            for merge in ("paper", "masked"):
                p = base.with_overrides({"scorer": name, "merge": merge})
                source, _best = mosaic.merge_sources(q, v, pct, p, poor)
                covered = source >= 0
                chosen = np.take_along_axis(truth, np.clip(source, 0, None)[None].astype(
                    np.intp), axis=0)[0]
                residual[season][f"{name}+{merge}"] = round(
                    100 * float((chosen & covered).sum() / max(covered.sum(), 1)), 3)
                flagged[season][f"{name}+{merge}"] = round(
                    100 * mosaic.final_poor_share(source, poor), 3)
    return {"acquisitions": rows, "residual_percent": residual,
            "mosaic_poor_percent": flagged,
            "arrays": arrays if keep else None}


def _eval_window(summary: dict, crop: int | None) -> tuple[int, int, int, int] | None:
    """(row0, col0, h, w) in the full demo scene of the pixels evaluated (the archive's own
    crop, then the central ``crop``), or None when the archive has no real clouds."""
    demo = summary.get("demo", {})
    if demo.get("clouds") != "real":
        return None
    from sen12ms_build.demo.ground import crop_window, load_ground

    _ground, grid = load_ground()
    r0, c0, h, w = crop_window(grid.shape, demo.get("crop"))
    if crop is not None:
        ch, cw = min(crop, h), min(crop, w)
        r0, c0, h, w = r0 + (h - crop) // 2, c0 + (w - crop) // 2, ch, cw
    return r0, c0, h, w


def real_opacity(entry: dict, window: tuple[int, int, int, int]) -> np.ndarray:
    """(h, w) float64 opacity in [0, 1] of a real-cloud acquisition's clouds on ``window``
    (:func:`sen12ms_build.demo.realclouds.real_cloud_layers`, the same the archive wrote:
    the cloud truth is opacity >= 0.5). Opacity > 0 is "any cloud", thin edges included."""
    from sen12ms_build.demo.plan import S2_PLAN
    from sen12ms_build.demo.realclouds import real_cloud_layers

    index = next(i for i, p in enumerate(S2_PLAN)
                 if f"{p.sensing_time:%Y-%m-%dT%H:%M:%SZ}" == entry["sensing_time"])
    return real_cloud_layers(index, window, entry["solar_azimuth_deg"],
                             entry["solar_zenith_deg"])[0]


def pooled_cloud(rows: list[dict], name: str) -> dict[str, float | None]:
    """A scorer's cloud mask (``cloud > cloud_thresh``) pooled over acquisitions (pixels):
    recall against the cloud truth (opacity >= 0.5, the opaque core), precision against it
    and, where every row has real clouds, precision against any cloud (opacity > 0)."""
    hit = sum(r[name]["n_cloud_hit"] for r in rows)
    truth = sum(r[name]["n_cloud_truth"] for r in rows)
    flagged = sum(r[name]["n_cloud_flagged"] for r in rows)
    out = {"recall": round(hit / truth, 3) if truth else None,
           "precision": round(hit / flagged, 3) if flagged else None,
           "precision_any": None}
    if rows and all("n_cloud_any_hit" in r[name] for r in rows) and flagged:
        out["precision_any"] = round(sum(r[name]["n_cloud_any_hit"] for r in rows) / flagged, 3)
    return out


def pooled(rows: list[dict], name: str) -> tuple[float | None, float | None]:
    """(recall, precision) of a scorer's poor mask pooled over acquisitions (pixels)."""
    hit = sum(r[name]["n_hit"] for r in rows)
    truth = sum(r[name]["n_truth"] for r in rows)
    flagged = sum(r[name]["n_flagged"] for r in rows)
    return (round(hit / truth, 3) if truth else None,
            round(hit / flagged, 3) if flagged else None)


def _row_line(row: dict, names: list[str]) -> str:
    parts = [f"{row['date']} {row['season']:6s} {str(row['layout']):9s} "
             f"truth {row['truth_percent']:5.1f}%"]
    for n in names:
        x = row[n]
        parts.append(f"{n}: R {x['recall']} P {x['precision']} (cloud R {x['cloud_recall']} "
                     f"P {x['cloud_precision']}) {x['cpu_s']} s")
    return " | ".join(parts)


def evaluate_real(path: Path, names: list[str]) -> dict:
    """Agreement of the scorers' cloud masks on a real L1C scene (npz of the s2cloudless
    test inputs: ``s2_im`` reflectance (1, H, W, 13) or our crop's ``l1c`` DN)."""
    d = np.load(path)
    if "l1c" in d.files:
        l1c, ref = d["l1c"], d["cl_mask"].astype(bool)
    else:
        im = d["s2_im"][0]
        l1c = np.clip(np.rint(im * 10000), 1, 65535).astype(np.uint16).transpose(2, 0, 1)
        ref = d["cl_mask"][0].astype(bool)
    valid = mosaic.footprint(l1c)
    masks, out = {}, {"pixels": int(valid.sum()), "reference_percent":
                      round(100 * float(ref.mean()), 2), "scorers": {}, "iou": {}}
    for name in names:
        p = MosaicParams(scorer=name)
        t0 = time.process_time()
        score = scorers.local_score(name, l1c, valid, p)  # the array is taken as 20 m pixels
        dt = time.process_time() - t0
        masks[name] = score > p.cloud_thresh
        r, pr = _rp(masks[name], ref)
        out["scorers"][name] = {"flagged_percent": round(100 * float(masks[name].mean()), 2),
                                "recall_vs_reference": r, "precision_vs_reference": pr,
                                "cpu_s_per_megapixel": round(dt / valid.size * 1e6, 2)}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            inter = float((masks[a] & masks[b]).sum())
            union = float((masks[a] | masks[b]).sum())
            out["iou"][f"{a}/{b}"] = round(inter / union, 3) if union else None
    out["arrays"] = (l1c, ref, masks)
    return out


def _rgb(l1c: np.ndarray) -> np.ndarray:
    rgb = np.stack([l1c[3], l1c[2], l1c[1]], axis=-1).astype(np.float32) / 3000.0
    return np.clip(rgb, 0, 1) ** (1 / 1.6)


def picture(png: Path, real: dict, demo: dict | None, names: list[str],
            demo_date: str | None) -> None:
    """RGB and each scorer's cloud mask, side by side (and the demo's truth)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("real L1C scene (s2cloudless test input)", real["arrays"][0],
             [("s2cloudless reference", real["arrays"][1])] +
             [(n, real["arrays"][2][n]) for n in names])]
    if demo is not None and demo_date:
        arr = demo["arrays"]
        rows.append((f"demo {demo_date}", arr["images"][demo_date],
                     [("truth (cloud)", arr["masks"][(demo_date, "truth")])] +
                     [(n, arr["masks"][(demo_date, n)]) for n in names]))
    ncol = 1 + max(len(r[2]) for r in rows)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(3.2 * ncol, 3.4 * len(rows)),
                             squeeze=False)
    for i, (title, l1c, masks) in enumerate(rows):
        rgb = _rgb(l1c)
        axes[i, 0].imshow(rgb, interpolation="nearest")
        axes[i, 0].set_title(title, fontsize=8)
        for j, (name, m) in enumerate(masks, start=1):
            over = rgb.copy()
            over[m] = 0.35 * over[m] + 0.65 * np.array([1.0, 0.1, 0.1])
            axes[i, j].imshow(over, interpolation="nearest")
            axes[i, j].set_title(f"{name}: {100 * m.mean():.1f} % flagged", fontsize=8)
        for ax in axes[i]:
            ax.set_axis_off()
    fig.suptitle("Cloud masks (red) of each scorer; cloud = score > cloud_thresh", fontsize=9)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)


def _mean(xs: list[float | None]) -> float | None:
    xs = [x for x in xs if x is not None]
    return round(float(np.mean(xs)), 3) if xs else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("archive", nargs="?", type=Path, default=None)
    ap.add_argument("--crop", type=int, default=768,
                    help="central N x N pixels of every raster (0: whole rasters)")
    ap.add_argument("--real", type=Path, default=DEFAULT_REAL)
    ap.add_argument("--png", type=Path, default=REPO / "docs" / "img" / "clouds_scorers.png")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--scorers", default=None, help="comma-separated (default: every local one)")
    ap.add_argument("--demo-date", default=None, help="demo acquisition of the picture "
                    "(default: the real-cloud one with the most truth under 50 %%, else the "
                    "one with the most truth)")
    ap.add_argument("--clouds", choices=("synthetic", "real"), default="real",
                    help="clouds of the demo archive written when ARCHIVE is not given")
    ap.add_argument("--config", type=Path, default=None,
                    help="YAML config whose mosaic constants to use (scorer and merge are "
                    "still each of the listed ones); default the paper's")
    args = ap.parse_args(argv)
    base = None
    if args.config is not None:
        from sen12ms_build.config import load_config

        base = load_config(args.config).mosaic_params
    names = args.scorers.split(",") if args.scorers else local_scorers()
    crop = args.crop or None
    tmp = None
    root = args.archive
    if root is None:
        from sen12ms_build.demo.archive import write_demo_archive

        tmp = tempfile.TemporaryDirectory()
        root = Path(tmp.name) / "archive"
        write_demo_archive(root, progress=False, clouds=args.clouds)
    print(f"scorers: {', '.join(names)}; archive {root}; crop {crop}; constants "
          f"{args.config or 'the paper'}"
          + (f" (shadow_over_water {base.shadow_over_water})" if base else ""))
    demo = evaluate_archive(root, names, crop, keep=True, base=base)
    print("\nper scorer (poor mask pooled over acquisitions; others mean of cloudy ones):")
    for n in names:
        rows = [r for r in demo["acquisitions"] if r["truth_percent"] > 0]
        rec, prec = pooled(demo["acquisitions"], n)
        print(f"  {n:12s} pooled recall {rec}  pooled precision {prec}  mean recall "
              f"{_mean([r[n]['recall'] for r in rows])}  precision "
              f"{_mean([r[n]['precision'] for r in rows])}  cloud recall "
              f"{_mean([r[n]['cloud_recall'] for r in rows])}  cloud precision "
              f"{_mean([r[n]['cloud_precision'] for r in rows])}  CPU s/image "
              f"{_mean([r[n]['cpu_s'] for r in demo['acquisitions']])}")
    for kind in ("real", "synthetic"):
        rows = [r for r in demo["acquisitions"] if r["clouds"] == kind
                and r[names[0]]["n_cloud_truth"] > 0]
        if not rows:
            continue
        print(f"\ncloud mask pooled over the {len(rows)} cloudy acquisitions with {kind} clouds "
              "(recall and precision vs the cloud truth, opacity >= 0.5"
              + ("; precision_any vs any cloud, opacity > 0" if kind == "real" else "") + "):")
        for n in names:
            c = pooled_cloud(rows, n)
            rec, prec = pooled(rows, n)
            print(f"  {n:12s} cloud recall {c['recall']}  precision {c['precision']}  "
                  f"precision_any {c['precision_any']}  | poor mask vs cloud + shadow: "
                  f"recall {rec}  precision {prec}")
    print("\nresidual cloud + shadow of each season's mosaic (% of covered pixels; in "
          "brackets the mosaic's own poor share, what the curation reads, and the mean poor "
          "share of the season's images):")
    for season, d in demo["residual_percent"].items():
        flagged = demo["mosaic_poor_percent"][season]
        per_image = {n: _mean([r[n]["poor_percent"] for r in demo["acquisitions"]
                               if r["season"] == season]) for n in names}
        print(f"  {season:6s} " + "  ".join(
            f"{k} {v} ({flagged[k]}; {per_image[k.split('+')[0]]})" for k, v in d.items()))
    real = evaluate_real(args.real, names)
    print(f"\nreal scene {args.real.name}: {real['pixels']} px, reference mask "
          f"{real['reference_percent']} %")
    for n, x in real["scorers"].items():
        print(f"  {n:12s} " + "  ".join(f"{k} {v}" for k, v in x.items()))
    print("  IoU " + "  ".join(f"{k} {v}" for k, v in real["iou"].items()))
    real_rows = [r for r in demo["acquisitions"] if r["clouds"] == "real"
                 and r["truth_percent"] < 50]
    date = args.demo_date or max(real_rows or demo["acquisitions"],
                                 key=lambda r: r["truth_percent"])["date"]
    picture(args.png, real, demo, names, date)
    print(f"\npicture: {args.png}")
    if args.json:
        out = {k: v for k, v in demo.items() if k != "arrays"}
        out["real"] = {k: v for k, v in real.items() if k != "arrays"}
        args.json.write_text(json.dumps(out, indent=1))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
