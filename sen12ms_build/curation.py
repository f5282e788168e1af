"""Automatic versions of the paper's two inspection rounds (section 3.3).

Scene round (before tiling) and patch round (after tiling): each check measures one value on
the arrays and compares it with its threshold from :class:`config.CurationConfig`. Every
decision carries the check that decided it and the measured values, for the manifest.

Array inputs: modality key -> (C, H, W) array as written by the warp (``s1`` float32 NaN
nodata, ``s2`` uint16 0 nodata, ``lc`` uint16 255 nodata); optional ``aux`` (2, H, W) uint8
with band 2 the mosaic's poor-pixel mask (1 poor, 0 clear, 255 nodata).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from .config import CurationConfig
from .products import MODALITIES

Decision = tuple[bool, str, dict[str, float]]


def nodata_share(key: str, arr: np.ndarray) -> float:
    """Share of no-data pixels (0..1), see :meth:`products.Modality.nodata_mask`."""
    if arr.size == 0:
        return 1.0
    return float(MODALITIES[key].nodata_mask(arr).mean())


def poor_share(aux: np.ndarray) -> float:
    """Share of covered pixels that the mosaic marks poor (cloud or shadow) (0..1)."""
    poor = aux[1]
    covered = poor != 255
    if not covered.any():
        return 0.0
    return float((poor[covered] == 1).mean())


def measure(arrays: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Every value the rounds compare: ``nodata_<dd>`` and ``poor``."""
    values = {f"nodata_{k}": round(nodata_share(k, a), 6)
              for k, a in arrays.items() if k in MODALITIES}
    if "aux" in arrays:
        values["poor"] = round(poor_share(arrays["aux"]), 6)
    return values


def _decide(values: dict[str, float], max_nodata: float, max_poor: float) -> Decision:
    for key in ("nodata_s2", "nodata_s1", "nodata_lc"):
        if key in values and values[key] > max_nodata:
            return False, key, values
    if "poor" in values and values["poor"] > max_poor:
        return False, "poor", values
    return True, "", values


def patch_decision(arrays: Mapping[str, np.ndarray], cfg: CurationConfig) -> Decision:
    """Patch round: (keep, deciding check, values)."""
    return _decide(measure(arrays), cfg.patch_max_nodata_share, cfg.patch_max_poor_share)


def measure_scene(paths: Mapping[str, Path], strip_rows: int = 512) -> dict[str, float]:
    """:func:`measure` over whole scene files, read strip by strip (bounded memory)."""
    import rasterio

    from .reproject import strips

    nodata = {k: 0 for k in paths if k in MODALITIES}
    poor = covered = total = 0
    srcs = {k: rasterio.open(p) for k, p in paths.items()}
    try:
        first = next(iter(srcs.values()))
        for w in strips(first.height, first.width, strip_rows):
            total += w.width * w.height
            for k, s in srcs.items():
                a = s.read(window=w)
                if k in MODALITIES:
                    nodata[k] += int(MODALITIES[k].nodata_mask(a).sum())
                elif k == "aux":
                    c = a[1] != 255
                    covered += int(c.sum())
                    poor += int((a[1] == 1).sum())
    finally:
        for s in srcs.values():
            s.close()
    values = {f"nodata_{k}": round(n / total, 6) if total else 1.0 for k, n in nodata.items()}
    if "aux" in paths:
        values["poor"] = round(poor / covered, 6) if covered else 0.0
    return values


def scene_decision_from_files(paths: Mapping[str, Path], cfg: CurationConfig) -> Decision:
    """Scene round on scene files."""
    return _decide(measure_scene(paths), cfg.scene_max_nodata_share, cfg.scene_max_poor_share)
