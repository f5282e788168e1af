"""``sen12ms-build report DIR``: what a user wants to know about a dataset before training.

Reads the tree's metadata (``manifest.csv``, ``scenes.csv``, ``seasons.csv``, the split
lists) and its kept land-cover patches, and writes ``<DIR>/report/``:

* ``report.md``: patches per season and per scene, train/test sizes, rejection reasons of
  both rounds and of the reviewer, class shares per land-cover scheme, and, given the
  defect archive's ground truth (``--truth``), the curation rounds' per-defect recall and
  false-reject rate (:func:`defects.evaluate`);
* ``classes.png``: pixel share of each class for the four schemes (IGBP, LCCS land cover,
  land use, surface hydrology) in the MODIS colours;
* ``world_map.png``: the ROI centres on a world map whose land is drawn from the
  ``global_land_mask`` package's data (no download), kept and rejected scenes marked.

Counting is pure Python/numpy (:func:`summarise`, :func:`class_counts`); figures and files
are written at the edges.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from ..dataset import layout
from ..raster.io import InputError, atomic_path, atomic_write_text
from ..state import record_written
from .quicklook import SCHEMES

log = logging.getLogger(__name__)

REPORT_DIR = "report"
#: How each ``splits.method`` drew the split, for the report's text.
SPLIT_TEXT = {"groups": "split by groups of overlapping ROI footprints",
              "roi": "split by ROI", "file": "split by the listed test file"}
SEASON_COLOURS = {"spring": "#2e7d32", "summer": "#f9a825", "fall": "#d84315",
                  "winter": "#1565c0"}


@dataclass
class Summary:
    """Counts of a dataset tree."""

    branches: dict[str, dict[str, int]] = field(default_factory=dict)
    scenes: list[dict[str, str]] = field(default_factory=list)
    scene_reasons: Counter = field(default_factory=Counter)
    patch_reasons: dict[str, Counter] = field(default_factory=dict)
    review: Counter = field(default_factory=Counter)
    train: int = 0
    test: int = 0

    def totals(self) -> dict[str, int]:
        keys = ("scenes", "scenes_kept", "patches", "patches_kept", "train", "test")
        return {k: sum(b[k] for b in self.branches.values()) for k in keys}


def summarise(manifest: list[dict[str, str]], scenes: list[dict[str, str]],
              train: Iterable[str], test: Iterable[str]) -> Summary:
    """Counts per branch and scene, rejection reasons and review decisions."""
    train, test = set(train), set(test)
    s = Summary(scenes=scenes, train=len(train), test=len(test))
    for sc in scenes:
        b = s.branches.setdefault(sc["branch"], Counter())
        b["scenes"] += 1
        if sc["status"] == "kept":
            b["scenes_kept"] += 1
        else:
            s.scene_reasons[sc["reason"].split(":")[0] or "?"] += 1
    for r in manifest:
        b = s.branches.setdefault(r["branch"], Counter())
        b["patches"] += 1
        if r["status"] == "kept":
            b["patches_kept"] += 1
            name = Path(r["s2"]).name
            b["train"] += name in train
            b["test"] += name in test
        else:
            s.patch_reasons.setdefault(r["branch"], Counter())[r["reason"]] += 1
        if r.get("review"):
            s.review[r["review"]] += 1
    for b in s.branches.values():
        for k in ("scenes", "scenes_kept", "patches", "patches_kept", "train", "test"):
            b.setdefault(k, 0)
    return s


def class_counts(arrays: Iterable[np.ndarray]) -> list[Counter]:
    """Pixel count per class for each of the four bands (schemes) of (4, H, W) ``lc``
    patches; no-data (255) is counted under 255."""
    out = [Counter() for _ in SCHEMES]
    for a in arrays:
        for i in range(min(len(out), a.shape[0])):
            values, counts = np.unique(a[i], return_counts=True)
            out[i].update(dict(zip(values.tolist(), counts.tolist())))
    return out


def _read_lc(root: Path, rows: list[dict[str, str]]) -> Iterable[np.ndarray]:
    import rasterio

    for r in rows:
        with rasterio.open(root / r["lc"]) as src:
            yield src.read()


def _read_lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


# --- figures -------------------------------------------------------------------------------

def _figure(width_in: float, height_in: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), dpi=100)


def _save(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")


def plot_classes(counts: list[Counter], path: Path) -> None:
    """Horizontal bars of each scheme's class shares (%) in the scheme's colours."""
    fig = _figure(13, 9)
    axes = fig.subplots(2, 2)
    for ax, (scheme, table), cnt in zip(axes.ravel(), SCHEMES.items(), counts):
        total = sum(cnt.values()) or 1
        classes = [k for k in table if cnt.get(k)] + ([255] if cnt.get(255) else [])
        shares = [100.0 * cnt[k] / total for k in classes]
        names = [f"{k} {table[k][0]}" if k in table else "255 no data" for k in classes]
        colours = [f"#{table[k][1]}" if k in table else "#000000" for k in classes]
        y = np.arange(len(classes))
        ax.barh(y, shares, color=colours, edgecolor="#333333")
        ax.set_yticks(y, names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("share of kept patch pixels (%)")
        ax.set_title(scheme)
        for yi, v in zip(y, shares):
            ax.text(v, yi, f" {v:.1f}", va="center", fontsize=7)
        if not classes:
            ax.text(0.5, 0.5, "no kept patches", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    _save(fig, path)


def land_grid(step_deg: float = 0.5) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """(H, W) bool land mask of the world at ``step_deg`` from the ``global_land_mask``
    package's data (cell centres), north up, and its extent (lon0, lon1, lat0, lat1)."""
    from global_land_mask import globe

    lats = np.arange(90.0 - step_deg / 2, -90.0, -step_deg)
    lons = np.arange(-180.0 + step_deg / 2, 180.0, step_deg)
    lon, lat = np.meshgrid(lons, lats)
    return globe.is_land(lat, lon), (-180.0, 180.0, -90.0, 90.0)


def plot_world(scenes: list[dict[str, str]], path: Path) -> None:
    """ROI centres on a world map (plate carree), by season, rejected scenes hollow."""
    land, extent = land_grid()
    fig = _figure(12, 6.4)
    ax = fig.add_subplot(1, 1, 1)
    img = np.where(land[..., None], np.array([0.84, 0.82, 0.76]), np.array([0.86, 0.92, 0.97]))
    ax.imshow(img, extent=extent, origin="upper", interpolation="nearest")
    seasons = sorted({s["season"] for s in scenes}, key=list(SEASON_COLOURS).index)
    for season in seasons:
        for kept in (True, False):
            pts = [s for s in scenes if s["season"] == season and (s["status"] == "kept") == kept]
            if not pts:
                continue
            x = [float(s["lon"]) for s in pts]
            y = [float(s["lat"]) for s in pts]
            c = SEASON_COLOURS.get(season, "#000000")
            ax.scatter(x, y, s=36, marker="o", edgecolors=c, linewidths=1.5,
                       facecolors=c if kept else "none", zorder=3,
                       label=f"{season}: {len(pts)} {'kept' if kept else 'rejected'}")
    ax.set_xlim(-180, 180)
    ax.set_ylim(-90, 90)
    ax.set_xlabel("longitude (degrees)")
    ax.set_ylabel("latitude (degrees)")
    ax.set_title(f"ROI locations ({len(scenes)} scenes)")
    ax.grid(True, color="white", linewidth=0.5)
    if scenes:
        ax.legend(loc="lower left", fontsize=8)
    _save(fig, path)


# --- the report ----------------------------------------------------------------------------

def _table(header: list[str], rows: Iterable[Iterable[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    return "\n".join(out)


def split_text(root: Path) -> str:
    """How the tree's split was drawn, from its ``splits.json`` (the split that was made):
    ``split by ROI, splits.method `roi```."""
    from ..dataset.splits import read_info

    method = (read_info(root) or {}).get("method")
    if method is None:
        return "split: splits.json is missing"
    return f"{SPLIT_TEXT.get(method, 'split')}, splits.method `{method}`"


def write_report(root: Path | str, truth: Path | str | None = None,
                 size: int = 256, stride: int = 128,
                 evaluate: Callable[[Path, Path, int, int], Any] | None = None) -> Path:
    """Write ``<root>/report/`` (see the module doc); returns the path of ``report.md``.

    Args:
        root: the dataset root.
        truth: a defect archive (``demo-archive --defects``) the run was built from.
        size, stride: the tiling's patch size and stride (pixels).
        evaluate: ``evaluate(root, truth, size, stride)`` returning an object with a
            ``lines()`` method (the demo's :func:`sen12ms_build.demo.defects.evaluate`);
            required with ``truth``. Production code does not know the demo's truth format.
    """
    root = Path(root)
    if not (root / "manifest.csv").exists():
        raise InputError(f"{root}: no manifest.csv; is this a dataset root built by "
                         "sen12ms-build run?")
    manifest = layout.read_csv(root / "manifest.csv")
    scenes = layout.read_csv(root / "scenes.csv") if (root / "scenes.csv").exists() else []
    train = _read_lines(root / "train_list.txt")
    test = _read_lines(root / "test_list.txt")
    s = summarise(manifest, scenes, train, test)
    kept = [r for r in manifest if r["status"] == "kept"]
    counts = class_counts(_read_lc(root, kept))
    out = root / REPORT_DIR
    plot_classes(counts, out / "classes.png")
    plot_world(scenes, out / "world_map.png")

    tot = s.totals()
    md = [f"# Dataset report: `{root}`", "",
          f"{tot['scenes']} scene(s), {tot['scenes_kept']} kept by the scene round; "
          f"{tot['patches']} patch triplet(s) cut, **{tot['patches_kept']} kept** "
          f"({tot['train']} train, {tot['test']} test, {split_text(root)}).", "",
          "## Patches per season", "",
          _table(["branch", "scenes kept / all", "patches kept / all", "train", "test"],
                 [(b, f"{v['scenes_kept']} / {v['scenes']}",
                   f"{v['patches_kept']} / {v['patches']}", v["train"], v["test"])
                  for b, v in sorted(s.branches.items())]), "",
          "## Patches per scene", "",
          _table(["branch", "scene", "ROI", "kind", "lon", "lat", "scene round",
                  "patches kept / all"],
                 [(sc["branch"], sc["scene"], sc["roi_id"], sc["kind"], sc["lon"], sc["lat"],
                   sc["status"] + (f" ({sc['reason']})" if sc["reason"] else ""),
                   f"{sc['patches_kept']} / {sc['patches']}") for sc in scenes]), "",
          "## Rejection reasons", "",
          "Scene round (whole scenes): " + (", ".join(
              f"{k} {v}" for k, v in s.scene_reasons.most_common()) or "none") + ".", ""]
    reasons = sorted({k for c in s.patch_reasons.values() for k in c})
    if reasons:
        md += [_table(["branch", *reasons],
                      [(b, *(s.patch_reasons.get(b, Counter())[k] for k in reasons))
                       for b in sorted(s.branches)]), ""]
    else:
        md += ["Patch round: no patch rejected.", ""]
    md += ["Reviewer: " + (", ".join(f"{k} {v}" for k, v in s.review.items()) or
                           "no review applied") + ".", "",
           "## Land-cover classes", "",
           f"Pixel shares over the {len(kept)} kept patches (overlapping patches count "
           "their shared pixels twice, as a training loader sees them).", "",
           "![class shares](classes.png)", ""]
    for (scheme, table), cnt in zip(SCHEMES.items(), counts):
        total = sum(cnt.values()) or 1
        rows = [(k, table[k][0] if k in table else "no data", f"{100 * v / total:.2f}")
                for k, v in sorted(cnt.items())]
        md += [f"### {scheme}", "", _table(["class", "name", "pixels %"], rows), ""]
    md += ["## ROI locations", "", "![ROI locations](world_map.png)", ""]
    lines = [f"dataset {root}: {tot['patches_kept']} of {tot['patches']} patches kept, "
             f"{tot['scenes_kept']} of {tot['scenes']} scenes"]
    if truth is not None:
        if evaluate is None:
            raise ValueError("write_report: truth given without an evaluate function")
        ev = evaluate(root, Path(truth), size, stride)
        md += ["## Curation against the injected defects", "",
               f"Ground truth: `{Path(truth) / 'truth' / 'defects.json'}`. A patch is "
               "*affected* when a defect's core covers at least 5 % of it, *clean* when no "
               "defect touches it and it holds no residual cloud/shadow of the demo "
               "archive's own clouds.", "", "```", *ev.lines(), "```", ""]
        lines += ev.lines()
    atomic_write_text(out / "report.md", "\n".join(md))
    record_written(root, [out / n for n in ("report.md", "classes.png", "world_map.png")
                          if (out / n).exists()])
    for line in lines:
        log.info("%s", line)
    for b, v in sorted(s.branches.items()):
        log.info("%s: %d/%d scenes, %d/%d patches kept", b, v["scenes_kept"], v["scenes"],
                 v["patches_kept"], v["patches"])
    log.info("report written to %s", out / "report.md")
    return out / "report.md"
