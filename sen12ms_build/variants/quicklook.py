"""Quicklooks of the cloud-removal variants: the pair side by side.

* ``cr``: ``quicklooks/<branch>/scene_<n>_cr.png`` per scene: the cloudy input (RGB), the
  cloud-free target (RGB) and the input's masks (cloud white, shadow blue, over the input
  darkened), side by side, from the scene's UTM files; the input's date, the target's
  dominant date and the scene's gap in the title.
* ``cr-ts``: ``quicklooks/ROIs<seed>_<roi>_ts.png`` per ROI: every time point's Sentinel-2
  (RGB) above its masks, with its date and cloud coverage.

Both stretch each RGB with the same limits (those of the cloud-free target, or of the
series' clearest image) so that clouds look bright, not normalised away.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..curation.quicklook import reduce_factor, stretch, stretch_limits
from ..dataset import layout
from ..products import S2_BANDS
from ..raster.io import atomic_path
from ..state import record_written

log = logging.getLogger(__name__)

RGB = tuple(S2_BANDS.index(b) for b in ("B4", "B3", "B2"))
MAX_PX = 400
CLOUD_RGB = (255, 255, 255)
SHADOW_RGB = (40, 90, 255)


def _read(path: Path, factor: int, nearest: bool = False) -> np.ndarray:
    import rasterio
    from rasterio.enums import Resampling

    with rasterio.open(path) as src:
        if factor == 1:
            return src.read()
        return src.read(out_shape=(src.count, src.height // factor, src.width // factor),
                        resampling=Resampling.nearest if nearest else Resampling.average)


def rgb(s2: np.ndarray, limits: list[tuple[float, float]] | None = None
        ) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """(H, W, 3) uint8 true colour of a (13, H, W) L1C array, and the limits used."""
    valid = np.any(s2 != 0, axis=0)
    chans = [s2[i].astype(np.float64) for i in RGB]
    limits = limits or [stretch_limits(c, valid) for c in chans]
    return stretch(chans, valid, limits), limits


def mask_panel(s2: np.ndarray, mask: np.ndarray, limits: list[tuple[float, float]]
               ) -> np.ndarray:
    """The input darkened, cloud white and shadow blue on it. (H, W, 3) uint8."""
    base = (rgb(s2, limits)[0] * 0.45).astype(np.uint8)
    base[mask[0] == 1] = CLOUD_RGB
    base[mask[1] == 1] = SHADOW_RGB
    return base


def _save(png: Path, panels: list[tuple[str, np.ndarray]], ncol: int, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    h, w = panels[0][1].shape[:2]
    gap, head, label = 8, 26, 16
    nrow = math.ceil(len(panels) / ncol)
    width = ncol * w + (ncol + 1) * gap
    height = head + nrow * (h + label + gap)
    fig = Figure(figsize=(width / 100, height / 100), dpi=100, facecolor="white")
    for k, (name, img) in enumerate(panels):
        r, c = divmod(k, ncol)
        x, y = gap + c * (w + gap), head + r * (h + label + gap) + label
        fig.figimage(img, xo=x, yo=height - y - img.shape[0], origin="upper")
        fig.text((x + w / 2) / width, 1 - (y - 3) / height, name, ha="center", va="bottom",
                 fontsize=8)
    fig.text(gap / width, 1 - 4 / height, title, ha="left", va="top", fontsize=8,
             color="#444444")
    png.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=100, format="png")


def write_cr(root: Path, records: list[tuple[dict, list[dict]]]) -> list[Path]:
    """The ``cr`` quicklook of every scene whose UTM files are there; returns the PNGs."""
    out = []
    for rec, _ in records:
        pick = rec.get("s2_cloudy")
        wd = layout.scene_workdir(root, rec["seed"], rec["season"], rec["scene"])
        files = {k: wd / "utm" / f"{k}.tif" for k in ("s2", "s2_cloudy", "s2_cloudy_mask")}
        if not pick or not all(p.exists() for p in files.values()):
            continue
        import rasterio

        with rasterio.open(files["s2"]) as src:
            f = reduce_factor(src.height, src.width, MAX_PX)
        target = _read(files["s2"], f)
        cloudy = _read(files["s2_cloudy"], f)
        mask = _read(files["s2_cloudy_mask"], f, nearest=True)
        clear, limits = rgb(target)
        cov = float((mask[0] == 1).sum()) / max(int((mask[0] != 255).sum()), 1)
        panels = [(f"cloudy input {pick['time'][:10]} ({100 * cov:.0f} % cloud)",
                   rgb(cloudy, limits)[0]),
                  (f"cloud-free target (dominant {pick['dominant']['time'][:10]})", clear),
                  ("mask: cloud white, shadow blue", mask_panel(cloudy, mask, limits))]
        png = Path(root) / "quicklooks" / rec["branch"] / f"scene_{rec['scene']}_cr.png"
        _save(png, panels, 3, f"{rec['branch']} scene {rec['scene']}  {rec.get('roi_id', '')}"
              f"  cloudy {pick['product_id']}  gap {pick['gap_days']:.1f} days")
        out.append(png)
    record_written(root, out)
    return out


def write_ts(root: Path, records: list[tuple[dict, list[dict]]]) -> list[Path]:
    """The ``cr-ts`` quicklook of every ROI whose UTM files are there; returns the PNGs."""
    out = []
    for rec, _ in records:
        points = rec.get("points") or []
        wd = layout.scene_workdir(root, rec["seed"], rec["season"], rec["scene"])
        if not points or not (wd / "utm" / points[0]["s2_file"]).exists():
            continue
        import rasterio

        with rasterio.open(wd / "utm" / points[0]["s2_file"]) as src:
            f = reduce_factor(src.height, src.width, 120)
        imgs, masks, covs = {}, {}, []
        for p in points:
            name = p["s2_file"]
            if name not in imgs:
                imgs[name] = _read(wd / "utm" / name, f)
                masks[name] = _read(wd / "utm" / f"mask_{name}", f, nearest=True)
            m = masks[name]
            covs.append(float((m[0] == 1).sum()) / max(int((m[0] != 255).sum()), 1))
        clearest = points[int(np.argmin(covs))]["s2_file"]
        _, limits = rgb(imgs[clearest])
        panels = []
        for p, c in zip(points, covs):
            panels.append((f"t{p['t']} {p['s2']['time'][5:10]} {100 * c:.0f}%",
                           rgb(imgs[p["s2_file"]], limits)[0]))
        for p in points:
            panels.append((f"t{p['t']} mask", mask_panel(imgs[p["s2_file"]],
                                                         masks[p["s2_file"]], limits)))
        ncol = min(10, len(points))
        png = Path(root) / "quicklooks" / f"ROIs{rec['seed']}_{rec['scene']}_ts.png"
        _save(png, panels, ncol, f"ROIs{rec['seed']}/{rec['scene']}  {rec.get('roi_id', '')}  "
              f"{len(points)} time points: S2 (top rows), masks (bottom rows)")
        out.append(png)
    record_written(root, out)
    return out


def write(root: Path, cfg: Any, records: list[tuple[dict, list[dict]]]) -> list[Path]:
    """The variant's quicklooks (nothing for the paper's dataset)."""
    v = getattr(cfg, "variant", "sen12ms")
    if v == "cr":
        pngs = write_cr(Path(root), records)
    elif v == "cr-ts":
        pngs = write_ts(Path(root), records)
    else:
        return []
    if pngs:
        log.info("%d %s quicklook(s) written to %s", len(pngs), v, Path(root) / "quicklooks")
    return pngs


__all__ = ["mask_panel", "rgb", "write", "write_cr", "write_ts"]
