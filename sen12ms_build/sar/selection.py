"""Which Sentinel-1 GRD products a scene's period uses, and in which order: the rule both
backends apply, so that a STAC-built and an Earth Engine-built dataset agree.

The paper (SEN12MS, section 2.1): GRD products "acquired in the most frequently available
interferometric wide swath (IW) mode", with "both VV and VH" polarisations; section 3.1:
Sentinel-1 needs no mosaicking workflow and is "simply exported". The Earth Engine backend
(``backends/earthengine/graphs.s1_collection`` and ``s1_image``) filters
``COPERNICUS/S1_GRD`` by the ROI, the period (start and end dates inclusive, UTC), IW mode and
both polarisations, sorts by acquisition start and mosaics: the newest acquisition on top
(:data:`~sen12ms_build.products.S1_COMPOSITE`). Ascending and descending passes are both
kept, as there. :func:`select_grd` is that filter and order for product records;
:func:`paint_newest_on_top` is that mosaic for the chain's per-product outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..products import S1_BANDS, S1_COMPOSITE

#: What a product must be to serve a scene (the paper's and the EE backend's filter).
MODE = "IW"
PRODUCT_TYPE = "GRD"
#: The composite rule this module implements (products.S1_COMPOSITE names it).
COMPOSITE = S1_COMPOSITE


@dataclass(frozen=True)
class GrdCandidate:
    """A GRD product as a catalogue lists it.

    Attributes:
        product_id: product name (STAC item id).
        start: acquisition start, timezone-aware UTC.
        mode: instrument mode (``IW``).
        product_type: ``GRD``.
        polarisations: e.g. ``("VV", "VH")``.
        orbit_pass: ``ASCENDING`` or ``DESCENDING``.
        relative_orbit: relative orbit number (None if unknown).
        footprint: lon/lat ring of the product (None if unknown).
    """

    product_id: str
    start: datetime
    mode: str
    product_type: str
    polarisations: tuple[str, ...]
    orbit_pass: str = ""
    relative_orbit: int | None = None
    footprint: tuple[tuple[float, float], ...] | None = None


def _utc(value: str) -> datetime:
    t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def candidate_from_stac(item: Mapping[str, Any]) -> GrdCandidate:
    """A :class:`GrdCandidate` from a STAC item (dict) of a Sentinel-1 GRD collection with the
    ``sar`` and ``sat`` extensions (Planetary Computer's ``sentinel-1-grd``: ``start_datetime``
    or ``datetime``, ``sar:instrument_mode``, ``sar:product_type``, ``sar:polarizations``,
    ``sat:orbit_state``, ``sat:relative_orbit``).

    Raises:
        KeyError: the item lacks an id, time, mode, product type or polarisations.
    """
    props = item["properties"]
    start = props.get("start_datetime") or props["datetime"]
    ring = None
    geom = item.get("geometry") or {}
    if geom.get("type") == "Polygon":
        ring = tuple((float(x), float(y)) for x, y in geom["coordinates"][0])
    rel = props.get("sat:relative_orbit")
    return GrdCandidate(
        product_id=str(item["id"]),
        start=_utc(str(start)),
        mode=str(props["sar:instrument_mode"]).upper(),
        product_type=str(props["sar:product_type"]).upper(),
        polarisations=tuple(str(p).upper() for p in props["sar:polarizations"]),
        orbit_pass=str(props.get("sat:orbit_state", "")).upper(),
        relative_orbit=int(rel) if rel is not None else None,
        footprint=ring,
    )


def select_grd(candidates: Iterable[GrdCandidate], start: date | str, end: date | str,
               roi_ring: Sequence[tuple[float, float]] | None = None) -> list[GrdCandidate]:
    """The products a scene uses, in painting order (oldest first: the newest ends on top).

    Args:
        candidates: products to choose from (e.g. a STAC search's items).
        start, end: the period, ISO dates, both inclusive (UTC dates of the acquisition
            start), as the Earth Engine backend's ``filterDate(start, end + 1 day)``.
        roi_ring: lon/lat ring of the ROI; products whose footprint is known and misses it
            are dropped (``filterBounds``).
    Returns:
        IW GRD products with both VV and VH, sensed in the period, sorted by acquisition
        start then id, each product once.
    """
    d0 = date.fromisoformat(str(start)[:10])
    d1 = date.fromisoformat(str(end)[:10])
    roi = None
    if roi_ring is not None:
        from shapely.geometry import Polygon

        roi = Polygon(roi_ring)
    chosen: dict[str, GrdCandidate] = {}
    for c in candidates:
        if c.mode != MODE or c.product_type != PRODUCT_TYPE:
            continue
        if not set(S1_BANDS) <= set(c.polarisations):
            continue
        if not d0 <= c.start.astimezone(timezone.utc).date() <= d1:
            continue
        if roi is not None and c.footprint is not None:
            from shapely.geometry import Polygon

            if not Polygon(c.footprint).intersects(roi):
                continue
        chosen.setdefault(c.product_id, c)
    return sorted(chosen.values(), key=lambda c: (c.start, c.product_id))


def paint_newest_on_top(layers: Iterable[np.ndarray]) -> np.ndarray:
    """Mosaic of per-product sigma0 layers given oldest first: each pixel keeps the newest
    layer valid in both bands (the local backend's rule; Earth Engine's ``mosaic()``).

    Args:
        layers: (2, H, W) float32 dB arrays, NaN nodata, in :func:`select_grd`'s order.
    Returns:
        (2, H, W) float32, NaN where no layer is valid.
    Raises:
        ValueError: no layer, or layers of different shapes.
    """
    out = None
    for layer in layers:
        if out is None:
            out = np.full(layer.shape, np.nan, np.float32)
        if layer.shape != out.shape:
            raise ValueError(f"layer shape {layer.shape} differs from {out.shape}")
        ok = np.all(np.isfinite(layer), axis=0)
        out[:, ok] = layer[:, ok]
    if out is None:
        raise ValueError("no layer to paint")
    return out
