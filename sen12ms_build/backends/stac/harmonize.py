"""Sentinel-2 digital numbers on one scale across processing baselines (the two STAC traps).

Since processing baseline 04.00 (products from 2022-01-25 on, and the reprocessed
Collection-1 archive) digital numbers carry an offset of -1000 (``BOA_ADD_OFFSET`` in
Level-2A, ``RADIO_ADD_OFFSET`` in Level-1C): reflectance = (DN - 1000) / 10000, where older
products have reflectance = DN / 10000. A dataset mixing both must remove the offset from
the newer ones (Earth Engine's ``S2_HARMONIZED`` / ``S2_SR_HARMONIZED`` do), and the STAC
sources disagree on whether it is still there:

* Planetary Computer ``sentinel-2-l2a`` serves the original DN and does not harmonize; the
  item's ``s2:processing_baseline`` tells (>= 04.00: subtract 1000) -- rule ``baseline``
  (microsoft/PlanetaryComputer#134).
* Earth Search's legacy ``sentinel-2-l2a`` COGs: ``earthsearch:boa_offset_applied: true``
  says Element 84 already applied the offset to the pixels, while the assets'
  ``raster:bands`` still say ``offset: -0.1``; applying both subtracts it twice
  (Element84/earth-search#9, #66, #71). ``raster:bands`` is ignored there -- rule
  ``earthsearch-legacy``: the flag, else the baseline.
* Earth Search ``sentinel-2-c1-l2a`` and CDSE state the offset in ``raster:bands`` (or
  ``raster:offset``) with ``scale: 0.0001``, and it is true -- rule ``raster``.

:func:`dn_offset` applies the product's rule (``auto`` picks it from the item's shape) and
says which one decided; :func:`apply_offset` adds it to DN, keeping 0 as nodata.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

#: The DN offset of processing baseline 04.00 and later (BOA_ADD_OFFSET).
BOA_ADD_OFFSET = -1000
FIRST_OFFSET_BASELINE = (4, 0)


def baseline(props: Mapping[str, Any]) -> tuple[int, int] | None:
    """``s2:processing_baseline`` (``"04.00"``) as (4, 0); ``None`` when absent."""
    raw = props.get("s2:processing_baseline") or props.get("processing:version")
    if raw is None:
        return None
    try:
        major, _, minor = str(raw).partition(".")
        return int(major), int(minor or 0)
    except ValueError:
        return None


def _raster_offset(asset: Mapping[str, Any]) -> float | None:
    """The asset's stated DN offset: ``raster:bands[0].offset / scale`` (or the STAC 1.1
    ``raster:offset`` / ``raster:scale`` fields); ``None`` when it states none."""
    bands = asset.get("raster:bands")
    if bands:
        b = bands[0]
        if "offset" in b:
            return float(b["offset"]) / float(b.get("scale", 1.0) or 1.0)
    if "raster:offset" in asset:
        return float(asset["raster:offset"]) / float(asset.get("raster:scale", 1.0) or 1.0)
    return None


def dn_offset(props: Mapping[str, Any], asset: Mapping[str, Any], rule: str = "auto"
              ) -> tuple[int, str]:
    """The offset to add to an asset's DN so they read as reflectance x 10000, and why.

    Args:
        props: the item's properties.
        asset: the asset's mapping (``raster:bands`` ...).
        rule: ``auto``, ``raster``, ``baseline``, ``earthsearch-legacy`` or ``none`` (see the
            module doc).
    Returns:
        (offset in DN, e.g. -1000 or 0; the rule that decided, for the scene's metadata).
    """
    if rule == "none":
        return 0, "none"
    if rule == "auto":
        if "earthsearch:boa_offset_applied" in props:
            rule = "earthsearch-legacy"
        elif _raster_offset(asset) is not None:
            rule = "raster"
        else:
            rule = "baseline"
    if rule == "earthsearch-legacy":
        if props.get("earthsearch:boa_offset_applied") is True:
            return 0, "earthsearch:boa_offset_applied (raster:bands offset ignored)"
        rule = "baseline"
    if rule == "raster":
        off = _raster_offset(asset)
        if off is not None:
            return int(round(off)), "raster:bands offset"
        rule = "baseline"
    b = baseline(props)
    if b is not None and b >= FIRST_OFFSET_BASELINE:
        return BOA_ADD_OFFSET, f"s2:processing_baseline {b[0]:02d}.{b[1]:02d} >= 04.00"
    return 0, "s2:processing_baseline before 04.00" if b is not None else "no offset stated"


def apply_offset(dn: np.ndarray, offset: int) -> np.ndarray:
    """``dn + offset`` as uint16 where ``dn`` holds data; 0 (nodata) stays 0, and a valid
    pixel that would fall to 0 or below is kept at 1 (the darkest valid value), so it is not
    read as nodata."""
    if offset == 0:
        return dn
    valid = dn != 0
    out = dn.astype(np.int32) + np.int32(offset)
    np.clip(out, 1, 65535, out=out)
    out[~valid] = 0
    return out.astype(np.uint16)
