"""Quicklooks like the paper's figure 4: per scene, one PNG with five panels side by side,

1. Sentinel-1 false colour (R: VV, G: VH, B: VV/VH, i.e. VV - VH in dB),
2. Sentinel-2 RGB (B4, B3, B2),
3. Sentinel-2 SWIR (B12, B8A, B4),
4. IGBP land cover and 5. LCCS land cover in the standard MODIS colours,
6. with 10 m labels (``labels:``), the labels in the product's official colours (ESA
   WorldCover's or Dynamic World's palette, :mod:`sen12ms_build.labels`),

with a legend of the classes present (names from the paper's Table 2). Optical and SAR
composites use a robust percentile stretch (:data:`STRETCH` percentiles per channel over the
scene's valid pixels), so every patch of a scene shares one stretch; no-data is black.

The panels sit at exact pixel offsets (:class:`QuicklookLayout`, also saved beside the PNG
as ``scene_<n>.json``), so the review page (:mod:`sen12ms_build.curation.review`) can crop each
patch out of the scene's PNG. Scenes larger than :data:`MAX_PANEL_PX` are reduced by an
integer factor (block mean for S1/S2, nearest for land cover).

Rendering is pure numpy (:func:`panels`); :func:`write_quicklook` reads the scene's UTM
rasters and writes the PNG atomically (matplotlib only draws the titles and legends).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from ..labels import PRODUCT_OF, classes as label_classes
from ..raster.io import atomic_path, atomic_write_text
from ..products import band_index

log = logging.getLogger(__name__)

PANELS: tuple[str, ...] = ("s1", "rgb", "swir", "igbp", "lccs")
PANEL_TITLES: dict[str, str] = {
    "s1": "Sentinel-1 (R VV, G VH, B VV/VH)", "rgb": "Sentinel-2 RGB (B4 B3 B2)",
    "swir": "Sentinel-2 SWIR (B12 B8A B4)", "igbp": "IGBP land cover",
    "lccs": "LCCS land cover",
    # the panel of a run's 10 m labels (its data id), after the paper's five
    "wc": "ESA WorldCover (10 m)", "dw": "Dynamic World (10 m, mode)"}
#: Panels a run with labels adds after :data:`PANELS` (data ids of the label modalities).
LABEL_PANELS: tuple[str, ...] = ("wc", "dw")


def label_table(data_id: str) -> dict[int, tuple[str, str]]:
    """A label product's classes as a quicklook table: value -> (name, official colour)."""
    return {c.value: (c.name, c.color.lower()) for c in label_classes(PRODUCT_OF[data_id])}
#: Lower and upper percentile of the robust stretch.
STRETCH: tuple[float, float] = (2.0, 98.0)
#: Largest panel side in pixels; larger scenes are reduced by an integer factor.
MAX_PANEL_PX = 1024
GAP_PX = 8
TITLE_PX = 28
#: Strip above the panel titles for the scene's own title (branch, ROI, place, period), so
#: the two never overlap.
HEADER_PX = 20
NODATA_RGB = (0, 0, 0)

#: IGBP (MCD12Q1 LC_Type1): class -> (name as in the paper's Table 2, colour), the
#: standard MODIS palette (as in Earth Engine's MODIS/061/MCD12Q1 catalogue).
IGBP: dict[int, tuple[str, str]] = {
    1: ("Evergreen Needleleaf Forests", "05450a"),
    2: ("Evergreen Broadleaf Forests", "086a10"),
    3: ("Deciduous Needleleaf Forests", "54a708"),
    4: ("Deciduous Broadleaf Forests", "78d203"),
    5: ("Mixed Forests", "009900"),
    6: ("Closed (Dense) Shrublands", "c6b044"),
    7: ("Open (Sparse) Shrublands", "dcd159"),
    8: ("Woody Savannas", "dade48"),
    9: ("Savannas", "fbff13"),
    10: ("Grasslands", "b6ff05"),
    11: ("Permanent Wetlands", "27ff87"),
    12: ("Croplands", "c24f44"),
    13: ("Urban and Built-Up Lands", "a5a5a5"),
    14: ("Cropland/Natural Vegetation Mosaics", "ff6d4c"),
    15: ("Permanent Snow and Ice", "69fff8"),
    16: ("Barren", "f9ffa4"),
    17: ("Water Bodies", "1c0dff"),
}
#: LCCS land cover (MCD12Q1 LC_Prop1, "LCCS1"): class -> (name, colour).
LCCS_LC: dict[int, tuple[str, str]] = {
    1: ("Barren", "f9ffa4"),
    2: ("Permanent Snow and Ice", "69fff8"),
    3: ("Water Bodies", "1c0dff"),
    11: ("Evergreen Needleleaf Forests", "05450a"),
    12: ("Evergreen Broadleaf Forests", "086a10"),
    13: ("Deciduous Needleleaf Forests", "54a708"),
    14: ("Deciduous Broadleaf Forests", "78d203"),
    15: ("Mixed Broadleaf/Needleleaf Forests", "005a00"),
    16: ("Mixed Broadleaf Evergreen/Deciduous Forests", "009900"),
    21: ("Open Forests", "006c00"),
    22: ("Sparse Forests", "00d000"),
    31: ("Dense Herbaceous", "b6ff05"),
    32: ("Sparse Herbaceous", "98d604"),
    41: ("Closed (Dense) Shrublands", "dcd159"),
    42: ("Shrubland/Grassland Mosaics", "f1fb58"),
    43: ("Open (Sparse) Shrublands", "fbee65"),
}
#: LCCS land use (LC_Prop2) and surface hydrology (LC_Prop3), for the report's histograms.
LCCS_LU: dict[int, tuple[str, str]] = {
    1: ("Barren", "f9ffa4"), 2: ("Permanent Snow and Ice", "69fff8"),
    3: ("Water Bodies", "1c0dff"), 9: ("Urban and Built-Up Lands", "a5a5a5"),
    10: ("Dense Forests", "003f00"), 20: ("Open Forests", "006c00"),
    25: ("Forest/Cropland Mosaics", "e3ff77"), 30: ("Natural Herbaceous", "b6ff05"),
    35: ("Natural Herbaceous/Croplands Mosaics", "93ce04"),
    36: ("Herbaceous Croplands", "77a703"), 40: ("Shrublands", "dcd159"),
}
LCCS_SH: dict[int, tuple[str, str]] = {
    1: ("Barren", "f9ffa4"), 2: ("Permanent Snow and Ice", "69fff8"),
    3: ("Water Bodies", "1c0dff"), 10: ("Dense Forests", "003f00"),
    20: ("Open Forests", "006c00"), 27: ("Woody Wetlands", "72834a"),
    30: ("Grasslands", "b6ff05"), 40: ("Shrublands", "c6b044"),
    50: ("Herbaceous Wetlands", "3aba73"), 51: ("Tundra", "1e9db3"),
}
#: The four land-cover schemes in ``lc`` band order.
SCHEMES: dict[str, dict[int, tuple[str, str]]] = {
    "IGBP": IGBP, "LCCS land cover": LCCS_LC, "LCCS land use": LCCS_LU,
    "LCCS surface hydrology": LCCS_SH}


def hex_rgb(colour: str) -> tuple[int, int, int]:
    """``'1c0dff'`` -> (28, 13, 255)."""
    return int(colour[0:2], 16), int(colour[2:4], 16), int(colour[4:6], 16)


# --- pure rendering ------------------------------------------------------------------------

def stretch_limits(x: np.ndarray, valid: np.ndarray,
                   pct: tuple[float, float] = STRETCH) -> tuple[float, float]:
    """(low, high) percentiles of ``x`` over ``valid`` (an (H, W) channel); (0, 1) if none."""
    v = x[valid & np.isfinite(x)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(v, pct)
    return float(lo), float(hi if hi > lo else lo + 1e-6)


def stretch(channels: list[np.ndarray], valid: np.ndarray,
            limits: list[tuple[float, float]] | None = None) -> np.ndarray:
    """(H, W, 3) uint8 from three (H, W) channels, each mapped linearly from its
    (low, high) limits (default :func:`stretch_limits`) to 0..255; invalid pixels black."""
    limits = limits or [stretch_limits(c, valid) for c in channels]
    out = np.zeros(valid.shape + (3,), np.uint8)
    for i, (c, (lo, hi)) in enumerate(zip(channels, limits)):
        with np.errstate(invalid="ignore"):
            v = np.clip((c.astype(np.float64) - lo) / (hi - lo), 0.0, 1.0)
        out[..., i] = np.where(valid, np.rint(v * 255.0), 0).astype(np.uint8)
    return out


def s1_false_colour(s1: np.ndarray) -> np.ndarray:
    """Sentinel-1 false colour of (2, H, W) sigma0 dB: R VV, G VH, B VV/VH (VV - VH dB)."""
    valid = ~np.any(np.isnan(s1), axis=0)
    return stretch([s1[0], s1[1], s1[0] - s1[1]], valid)


def s2_composite(s2: np.ndarray, bands: tuple[str, str, str]) -> np.ndarray:
    """A Sentinel-2 composite of (13, H, W) L1C or (12, H, W) L2A DN, channels ``bands``
    (R, G, B)."""
    valid = np.any(s2 != 0, axis=0)
    return stretch([s2[band_index(s2.shape[0], b)] for b in bands], valid)


def class_colours(classes: np.ndarray, table: Mapping[int, tuple[str, str]]) -> np.ndarray:
    """(H, W, 3) uint8 of an (H, W) class map in ``table``'s colours; nodata (255) and
    unknown classes black."""
    lut = np.zeros((256, 3), np.uint8)
    for k, (_, colour) in table.items():
        lut[k] = hex_rgb(colour)
    return lut[np.clip(classes, 0, 255).astype(np.intp)]


def panels(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The five panels, (H, W, 3) uint8 each, from ``s1``, ``s2`` and ``lc`` arrays, then
    one per label modality among the arrays (``wc``, ``dw``: band 1, the classes, in the
    product's official colours; nodata black)."""
    out = {
        "s1": s1_false_colour(arrays["s1"]),
        "rgb": s2_composite(arrays["s2"], ("B4", "B3", "B2")),
        "swir": s2_composite(arrays["s2"], ("B12", "B8A", "B4")),
        "igbp": class_colours(arrays["lc"][0], IGBP),
        "lccs": class_colours(arrays["lc"][1], LCCS_LC),
    }
    for key in LABEL_PANELS:
        if key in arrays:
            out[key] = class_colours(arrays[key][0], label_table(key))
    return out


def reduce_factor(height: int, width: int, max_px: int = MAX_PANEL_PX) -> int:
    """Integer reduction that brings the larger side to at most ``max_px``."""
    return max(1, math.ceil(max(height, width) / max_px))


@dataclass(frozen=True)
class QuicklookLayout:
    """Where things are in a quicklook PNG (pixels, origin top-left).

    ``panels`` maps a panel name to its (x, y) top-left corner; each panel is
    ``panel_width`` x ``panel_height`` and shows the scene reduced by ``factor``.
    """

    width: int
    height: int
    factor: int
    panel_width: int
    panel_height: int
    scene_width: int
    scene_height: int
    panels: dict[str, tuple[int, int]]

    def patch_box(self, panel: str, row: int, col: int, size: int
                  ) -> tuple[float, float, float]:
        """(x, y, side) in the PNG of a patch at scene pixel (row, col) in ``panel``."""
        x0, y0 = self.panels[panel]
        return x0 + col / self.factor, y0 + row / self.factor, size / self.factor


def make_layout(scene_height: int, scene_width: int, n_legend_rows: int,
                max_px: int = MAX_PANEL_PX, names: tuple[str, ...] = PANELS
                ) -> QuicklookLayout:
    f = reduce_factor(scene_height, scene_width, max_px)
    pw, ph = scene_width // f, scene_height // f
    width = len(names) * pw + (len(names) + 1) * GAP_PX
    legend = 30 + 17 * max(n_legend_rows, 1)
    height = HEADER_PX + TITLE_PX + ph + GAP_PX + legend
    offsets = {name: (GAP_PX + i * (pw + GAP_PX), HEADER_PX + TITLE_PX)
               for i, name in enumerate(names)}
    return QuicklookLayout(width, height, f, pw, ph, scene_width, scene_height, offsets)


# --- I/O -----------------------------------------------------------------------------------

def read_scene(utm: Mapping[str, Path], factor: int) -> dict[str, np.ndarray]:
    """The scene's s1, s2, lc rasters (and its labels, ``wc`` / ``dw``, when ``utm`` has
    them), reduced by ``factor`` (block mean for s1/s2, skipping no-data; nearest for the
    classes)."""
    import rasterio
    from rasterio.enums import Resampling

    out = {}
    for key in ("s1", "s2", "lc", *(k for k in LABEL_PANELS if k in utm)):
        with rasterio.open(utm[key]) as src:
            h, w = src.height // factor, src.width // factor
            if factor == 1:
                out[key] = src.read()
            else:
                method = Resampling.average if key in ("s1", "s2") else Resampling.nearest
                out[key] = src.read(out_shape=(src.count, h, w), resampling=method)
    return out


def _legend_entries(classes: np.ndarray, table: Mapping[int, tuple[str, str]]
                    ) -> list[tuple[str, str]]:
    present = set(np.unique(classes).tolist())
    return [(f"{k} {name}", colour) for k, (name, colour) in table.items() if k in present]


def write_quicklook(utm: Mapping[str, Path], png: Path, title: str = "",
                    max_px: int = MAX_PANEL_PX) -> QuicklookLayout:
    """Write a scene's quicklook PNG (atomically) and its layout JSON beside it
    (``<png stem>.json``); returns the layout."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    import rasterio

    with rasterio.open(utm["s2"]) as src:
        sh, sw = src.height, src.width
    f = reduce_factor(sh, sw, max_px)
    arrays = read_scene(utm, f)
    pics = panels(arrays)
    names = (*PANELS, *(k for k in LABEL_PANELS if k in arrays))
    legends = {"igbp": _legend_entries(arrays["lc"][0], IGBP),
               "lccs": _legend_entries(arrays["lc"][1], LCCS_LC),
               **{k: _legend_entries(arrays[k][0], label_table(k))
                  for k in names if k in LABEL_PANELS}}
    ncol = 2 if sw // f >= 500 else 1
    rows = max(math.ceil(len(e) / ncol) for e in legends.values())
    lay = make_layout(sh, sw, rows, max_px, names)
    dpi = 100
    fig = Figure(figsize=(lay.width / dpi, lay.height / dpi), dpi=dpi, facecolor="white")
    for name in names:
        x, y = lay.panels[name]
        img = pics[name][:lay.panel_height, :lay.panel_width]
        # figimage's offsets are from the bottom-left corner
        fig.figimage(img, xo=x, yo=lay.height - y - img.shape[0], origin="upper")
        # panel title: bottom 6 px above the panel, within the TITLE_PX strip
        fig.text((x + lay.panel_width / 2) / lay.width, 1 - (y - 6) / lay.height,
                 PANEL_TITLES[name], ha="center", va="bottom", fontsize=10)
    if title:  # in its own HEADER_PX strip above the panel titles
        fig.text(GAP_PX / lay.width, 1 - 4 / lay.height, title, ha="left", va="top",
                 fontsize=8, color="#444444")
    top = 1 - (HEADER_PX + TITLE_PX + lay.panel_height + GAP_PX) / lay.height
    for name, entries in legends.items():
        if not entries:
            continue
        x, _ = lay.panels[name]
        handles = [Patch(facecolor=f"#{c}", edgecolor="#333333", label=t) for t, c in entries]
        fig.legend(handles=handles, loc="upper left", ncol=ncol, fontsize=7, frameon=False,
                   bbox_to_anchor=(x / lay.width, top), borderaxespad=0, handlelength=1.2,
                   columnspacing=1.0, labelspacing=0.3,
                   title=PANEL_TITLES[name], title_fontsize=8, alignment="left")
    png = Path(png)
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    atomic_write_text(png.with_suffix(".json"), json.dumps(asdict(lay), indent=1))
    return lay


def read_layout(png: Path) -> QuicklookLayout | None:
    """The layout saved beside a quicklook PNG; None if missing."""
    try:
        d = json.loads(Path(png).with_suffix(".json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    d["panels"] = {k: tuple(v) for k, v in d["panels"].items()}
    return QuicklookLayout(**d)


def quicklook_path(root: Path, branch: str, scene: int) -> Path:
    """``<root>/quicklooks/<branch>/scene_<n>.png``."""
    return Path(root) / "quicklooks" / branch / f"scene_{scene}.png"
