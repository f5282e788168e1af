"""Provenance of every patch (GeoTIFF tags and manifest columns) and its quality layer.

A patch's tags say where its pixels come from, in the GDAL default metadata domain (what
``gdalinfo`` and ``rasterio``'s ``tags()`` show), with keys namespaced by source in GDAL's
style (upper case, ``<SOURCE>_<FIELD>`` as GDAL's SENTINEL2 driver writes ``PRODUCT_URI``...;
GDAL splits a key at ``:`` or ``=``, so STAC's ``prefix:field`` keys cannot be used):

* ``S2_PRODUCT_IDS``, ``S2_DATETIMES``, ``S2_SHARES``: the Sentinel-2 L1C products that
  contribute pixels to the patch (from the merge's source map, the aux raster's band 1),
  their sensing times (ISO 8601, UTC) and each one's share of the patch's pixels, in the
  same order (largest share first), comma-separated;
* ``S1_PRODUCT_IDS``, ``S1_DATETIMES``, ``S1_ORBIT_STATES``, ``S1_RELATIVE_ORBITS``: the
  scene's Sentinel-1 GRD acquisitions (newest on top, :data:`products.S1_COMPOSITE`), their
  orbit pass and relative orbit; ``S1_PROCESSING``: what made sigma0 of them (the backends'
  distinct values: ``Earth Engine COPERNICUS/S1_GRD``, :data:`products.S1_PROCESSING_EE`,
  or the open-data GRD chain, ``sen12ms-build sar <version>``), so a dataset built by Earth
  Engine can be told from one built from open GRD products;
* ``LC_PRODUCT``, ``LC_YEAR``: MODIS MCD12Q1 and its year;
* ``SEN12MS_ROI_ID``, ``SEN12MS_SEASON``, ``SEN12MS_VERSION``, ``MAX_S1_S2_GAP_DAYS``,
  ``CLOUD_SHARE``, ``SHADOW_SHARE``;
* with 10 m labels (``labels:``, :data:`LABEL_TAG_KEYS`, only then): ``LABELS_PRODUCT``
  (``ESA/WorldCover/v100`` ...), ``LABELS_VERSION`` (``v100``, ``v200``; ``V1``),
  ``LABELS_PERIOD`` (WorldCover's year, or Dynamic World's season ``start/end``),
  ``LABELS_IMAGES`` (the images or tiles the labels come from), ``LABELS_COUNTS`` (pixels
  per class, ``value:count``; ``none``), ``LABELS_DOMINANT`` and ``LABELS_PURITY`` (the most
  frequent class, ``none`` without any, and its share of the labelled pixels).

The quality layer (``<branch>/qa_<scene>/<branch>_qa_<scene>_p<patch>.tif``, a folder the
SEN12MS loaders never look into: they build paths from the s2 names) has three uint8 bands:
``cloud`` and ``shadow`` masks (1 yes, 0 no, 255 no data) of the image each pixel was taken
from, and ``source_index`` (index into the scene's ``s2_images``; 255 none). Both backends
export these masks (:data:`products.AUX_MASKS`). With an aux raster of two bands only
(Earth Engine exports of earlier versions), ``cloud`` holds the combined cloud-or-shadow
mask and ``shadow`` is 255 (unknown); ``QA_MASKS`` says which.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .. import __version__
from ..raster.geotiff import write_or_gdal
from ..products import LC_COLLECTION

QA_ID = "qa"
QA_BANDS = ("cloud", "shadow", "source_index")
QA_NODATA = 255
#: Tag keys every patch carries (values may be empty when a backend does not report them).
TAG_KEYS = ("SEN12MS_VERSION", "SEN12MS_ROI_ID", "SEN12MS_SEASON", "S2_PRODUCT_IDS",
            "S2_DATETIMES", "S2_SHARES", "S1_PRODUCT_IDS", "S1_DATETIMES", "S1_ORBIT_STATES",
            "S1_RELATIVE_ORBITS", "S1_PROCESSING",
            "LC_PRODUCT", "LC_YEAR", "MAX_S1_S2_GAP_DAYS",
            "CLOUD_SHARE", "SHADOW_SHARE", "QA_MASKS",
            "LC_IGBP_COUNTS")
#: Manifest column -> tag key (lists are ``;``-separated in the manifest).
MANIFEST_COLUMNS = {
    "roi_id": "SEN12MS_ROI_ID", "s2_product_ids": "S2_PRODUCT_IDS",
    "s2_datetimes": "S2_DATETIMES", "s2_shares": "S2_SHARES",
    "s1_product_ids": "S1_PRODUCT_IDS", "s1_datetimes": "S1_DATETIMES",
    "s1_orbit_states": "S1_ORBIT_STATES", "s1_relative_orbits": "S1_RELATIVE_ORBITS",
    "s1_processing": "S1_PROCESSING", "lc_product": "LC_PRODUCT",
    "lc_year": "LC_YEAR", "tool_version": "SEN12MS_VERSION",
    "max_s1_s2_gap_days": "MAX_S1_S2_GAP_DAYS", "cloud_share": "CLOUD_SHARE",
    "shadow_share": "SHADOW_SHARE", "igbp_counts": "LC_IGBP_COUNTS"}
#: Tag keys of the 10 m labels, carried by every patch of a run with ``labels:`` only.
LABEL_TAG_KEYS = ("LABELS_PRODUCT", "LABELS_VERSION", "LABELS_PERIOD", "LABELS_IMAGES",
                  "LABELS_COUNTS", "LABELS_DOMINANT", "LABELS_PURITY")
#: Manifest column -> tag key of the labels (:func:`manifest_values`; in the manifest of a
#: run with labels only, :func:`layout.manifest_header`).
LABEL_MANIFEST_COLUMNS = {
    "labels_product": "LABELS_PRODUCT", "labels_version": "LABELS_VERSION",
    "labels_period": "LABELS_PERIOD", "labels_counts": "LABELS_COUNTS",
    "labels_dominant": "LABELS_DOMINANT", "labels_purity": "LABELS_PURITY"}
#: Bumped when the tags or the quality layer change (part of the tile stage's fingerprint).
PROVENANCE_VERSION = 2


def _time(s: str) -> dt.datetime | None:
    try:
        t = dt.datetime.fromisoformat(str(s).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _time_in_name(name: str) -> str:
    """The first ``YYYYMMDDTHHMMSS`` of a product name (Sentinel-1 ids start with the
    acquisition's start time, e.g. ``S1A_IW_GRDH_1SDV_20170317T230409_...``), ISO; or ""."""
    m = re.search(r"(\d{8}T\d{6})", name)
    if not m:
        return ""
    return dt.datetime.strptime(m.group(1), "%Y%m%dT%H%M%S").strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso(s: str) -> str:
    if not s:
        return ""
    t = _time(s)
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if t else str(s)


def scene_sources(meta: Mapping[str, Any], season: str, roi_id: str,
                  landcover_year: int) -> dict[str, Any]:
    """What a scene's export says about its sources (JSON-able; stored with the scene).

    Args:
        meta: the backend's export metadata (``s2_images`` in merge order, ``s1_acquisitions``
            or ``s1_images``, ``lc_year``); an S1 acquisition may say its
            ``relative_orbit`` and ``processing``.
    """
    s2 = [{"id": im.get("product_id") or Path(str(im.get("file", im.get("id", "")))).stem,
           "datetime": _iso(im.get("time", ""))} for im in meta.get("s2_images", [])]
    s1 = meta.get("s1_acquisitions") or [f if isinstance(f, dict) else {"file": f}
                                         for f in meta.get("s1_images", [])]
    s1 = [{"id": a.get("product_id") or a.get("id") or Path(str(a.get("file", ""))).stem,
           "datetime": _iso(a.get("time") or _time_in_name(str(a.get("file", "")))),
           "orbit_state": str(a.get("orbit_pass", "")).lower(),
           "relative_orbit": "" if a.get("relative_orbit") is None
           else str(a["relative_orbit"]),
           "processing": str(a.get("processing") or "")} for a in s1]
    out = {"season": season, "roi_id": roi_id, "s2": s2, "s1": s1,
           "lc_product": LC_COLLECTION, "lc_year": int(meta.get("lc_year", landcover_year))}
    if meta.get("labels"):  # the backend's account of the 10 m labels (a run with labels)
        out["labels"] = dict(meta["labels"])
    return out


def patch_tags(sources: Mapping[str, Any], aux: np.ndarray | None,
               lc: np.ndarray | None = None,
               labels: Mapping[str, np.ndarray] | None = None) -> dict[str, str]:
    """The provenance tags of one patch.

    Args:
        sources: :func:`scene_sources` of its scene.
        aux: the patch's (2 or 4, H, W) uint8 aux window (source index, poor[, cloud,
            shadow]; 255 no data), or None when the backend wrote none.
        lc: the patch's (4, H, W) land cover, for ``LC_IGBP_COUNTS`` (pixels per
            IGBP class, ``class:count`` comma-separated).
        labels: data id (``wc``, ``dw``) -> the patch's (C, H, W) uint8 label window, for
            the :data:`LABEL_TAG_KEYS` (a run with ``labels:`` only).
    Returns:
        tag key -> string value (:data:`TAG_KEYS`, and :data:`LABEL_TAG_KEYS` with labels).
    """
    s2 = sources.get("s2", [])
    ids, times, shares, cloud, shadow, masks = [], [], [], "", "", "none"
    if aux is not None:
        src = aux[0]
        n = src.size
        idx, counts = np.unique(src[src != QA_NODATA], return_counts=True)
        for i, c in sorted(zip(idx.tolist(), counts.tolist()), key=lambda t: (-t[1], t[0])):
            if i < len(s2):
                ids.append(s2[i]["id"])
                times.append(s2[i]["datetime"])
                shares.append(f"{c / n:.4f}")
        if aux.shape[0] >= 4:
            cloud = f"{float((aux[2] == 1).sum()) / n:.4f}"
            shadow = f"{float((aux[3] == 1).sum()) / n:.4f}"
            masks = "cloud,shadow"
        else:
            cloud = f"{float((aux[1] == 1).sum()) / n:.4f}"
            masks = "cloud_or_shadow"
    s1 = sources.get("s1", [])
    gap = ""
    t2 = [t for t in map(_time, times) if t]
    t1 = [t for t in (_time(a["datetime"]) for a in s1 if a["datetime"]) if t]
    if t1 and t2:
        gap = f"{max(abs((a - b).total_seconds()) for a in t1 for b in t2) / 86400:.2f}"
    return {
        "SEN12MS_VERSION": __version__, "SEN12MS_ROI_ID": str(sources.get("roi_id", "")),
        "SEN12MS_SEASON": str(sources.get("season", "")),
        "S2_PRODUCT_IDS": ",".join(ids), "S2_DATETIMES": ",".join(times),
        "S2_SHARES": ",".join(shares),
        "S1_PRODUCT_IDS": ",".join(a["id"] for a in s1),
        "S1_DATETIMES": ",".join(a["datetime"] for a in s1),
        "S1_ORBIT_STATES": ",".join(a["orbit_state"] for a in s1),
        "S1_RELATIVE_ORBITS": ",".join(str(a.get("relative_orbit", "")) for a in s1),
        "S1_PROCESSING": ",".join(dict.fromkeys(a["processing"] for a in s1
                                                if a.get("processing"))),
        "LC_PRODUCT": str(sources.get("lc_product", LC_COLLECTION)),
        "LC_YEAR": str(sources.get("lc_year", "")),
        "MAX_S1_S2_GAP_DAYS": gap, "CLOUD_SHARE": cloud,
        "SHADOW_SHARE": shadow, "QA_MASKS": masks,
        "LC_IGBP_COUNTS": igbp_counts(lc),
        **label_tags(sources.get("labels") or {}, labels)}


def label_tags(source: Mapping[str, Any], labels: Mapping[str, np.ndarray] | None
               ) -> dict[str, str]:
    """The :data:`LABEL_TAG_KEYS` of a patch (empty without labels).

    Args:
        source: the scene's ``labels`` source (:func:`scene_sources`: ``product``,
            ``id``, ``version``, ``period``, ``images``).
        labels: data id -> (C, H, W) uint8 label window; band 1 is the class band.
    """
    if not labels:
        return {}
    from ..labels import PRODUCT_OF, class_counts, dominant

    (key, arr), = labels.items()
    counts = class_counts(arr[0], PRODUCT_OF[key])
    top, purity = dominant(counts)
    # never empty: GDAL drops an empty metadata item when it reads the file back
    used = source.get("images") if source.get("images") is not None else source.get("files")
    return {"LABELS_PRODUCT": str(source.get("id") or "unknown"),
            "LABELS_VERSION": str(source.get("version") or "unknown"),
            "LABELS_PERIOD": str(source.get("period") or "unknown"),
            "LABELS_IMAGES": str(len(used or [])),
            "LABELS_COUNTS": ",".join(f"{k}:{n}" for k, n in counts.items()) or "none",
            "LABELS_DOMINANT": "none" if top is None else str(top),
            "LABELS_PURITY": f"{purity:.4f}"}


def igbp_counts(lc: np.ndarray | None) -> str:
    """``class:count`` pairs of the IGBP band (255 no data left out), comma-separated."""
    if lc is None:
        return ""
    v, c = np.unique(lc[0][lc[0] != 255], return_counts=True)
    return ",".join(f"{int(a)}:{int(b)}" for a, b in zip(v, c))


def manifest_values(tags: Mapping[str, str]) -> dict[str, str]:
    """Manifest columns (:data:`MANIFEST_COLUMNS`) from a patch's tags."""
    return {col: str(tags.get(key, "")).replace(",", ";") for col, key in
            {**MANIFEST_COLUMNS, **LABEL_MANIFEST_COLUMNS}.items()}


def quality_array(aux: np.ndarray) -> np.ndarray:
    """(3, H, W) uint8 quality layer (:data:`QA_BANDS`) from a (2 or 4, H, W) aux window."""
    out = np.full((3, *aux.shape[1:]), QA_NODATA, np.uint8)
    if aux.shape[0] >= 4:
        out[0], out[1] = aux[2], aux[3]
    else:
        out[0] = aux[1]
    out[2] = aux[0]
    return out


def write_quality(path: Path, aux: np.ndarray, crs: Any, transform: Any,
                  tags: Mapping[str, str], *, gdal: bool = False) -> None:
    """Write one quality-layer GeoTIFF (DEFLATE, nodata 255, band descriptions, the patch's
    provenance tags); atomic. Assembled in numpy (:func:`geotiff.write_or_gdal`); rasterio
    writes it when that writer does not cover the raster, or with ``gdal=True``."""
    write_or_gdal(path, quality_array(aux), crs=crs, transform=transform, nodata=QA_NODATA,
                  dtype="uint8", descriptions=QA_BANDS, tags=tags, compress="deflate",
                  gdal=gdal)
