"""Sentinel-2 from STAC items: the mosaicking engine's acquisitions and their pixel reader.

:func:`acquisition` turns an item into a :class:`~sen12ms_build.mosaic.engine.Acquisition`
(sensing time, mean solar angles, product id, footprint, cloud cover) with the band assets
to read; :func:`read_acquisition` reads them onto the scene grid in the engine's layout:

* Level-1C: (13, H, W) uint16 top-of-atmosphere DN in :data:`~sen12ms_build.products.S2_BANDS`
  order, exactly what every scorer reads (harmonized as Earth Engine's ``S2_HARMONIZED``:
  products of baseline 04.00 and later, such as the reprocessed Collection-1 archive, carry
  ``RADIO_ADD_OFFSET = -1000``, removed by :mod:`.harmonize`);
* Level-2A: the same 13 planes with B10 all 0 (L2A has no cirrus band; the dataset keeps the
  12 bands of :data:`~sen12ms_build.products.S2_L2A`), DN harmonized (:mod:`.harmonize`),
  and with the ``scl`` scorer a 14th plane, the SCL verdict
  (:data:`~sen12ms_build.products.SCL_PLANE`).

Resampling (one step, from the native 10/20/60 m pixels onto the UTM 10 m scene grid):
bilinear for reflectance, nearest for the SCL classes. The Earth Engine path exports at
0.0001 degrees with nearest from the native pixels and then warps bilinearly to 10 m (two
steps); for the 10 m bands of a tile in the scene's UTM zone both give the native pixels (a
bilinear kernel centred on a source pixel is that pixel), and for the 20/60 m bands bilinear
from native is the one-step form of that chain's smoothing without its nearest staircase.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Mapping

import numpy as np

from ...mosaic.engine import Acquisition
from ...products import S2_BANDS, SCL_PLANE, SCL_POOR_CLASSES, SCL_POOR_VALUE
from .harmonize import dn_offset
from .reader import AssetProblem, AssetReader, BandAsset, read_stack
from .profiles import Product

#: Resampling per kind of band (see the module doc).
REFLECTANCE_RESAMPLING = "bilinear"
CLASS_RESAMPLING = "nearest"


def _time(props: Mapping[str, Any]) -> dt.datetime:
    raw = props.get("datetime") or props.get("start_datetime")
    t = dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def solar_angles(props: Mapping[str, Any]) -> tuple[float, float] | None:
    """(mean solar azimuth, mean solar zenith) in degrees from an item's properties:
    ``s2:mean_solar_*`` (Planetary Computer) or ``view:sun_azimuth`` /
    ``view:sun_elevation`` (Earth Search, CDSE; zenith = 90 - elevation); ``None`` if the
    item has neither."""
    if "s2:mean_solar_azimuth" in props and "s2:mean_solar_zenith" in props:
        return float(props["s2:mean_solar_azimuth"]), float(props["s2:mean_solar_zenith"])
    if "view:sun_azimuth" in props and "view:sun_elevation" in props:
        return float(props["view:sun_azimuth"]), 90.0 - float(props["view:sun_elevation"])
    return None


def product_id(item: Mapping[str, Any]) -> str:
    """The ESA product name (``s2:product_uri`` without ``.SAFE``), else the item id."""
    uri = str(item.get("properties", {}).get("s2:product_uri", ""))
    return uri[:-5] if uri.endswith(".SAFE") else (uri or str(item["id"]))


def band_assets(item: Mapping[str, Any], product: Product, level: str,
                with_scl: bool = False) -> tuple[list[BandAsset], list[str]]:
    """The assets to read for ``item``, in the engine's plane order (B10 skipped for L2A),
    and the offset rule applied (one line per distinct rule).

    Raises:
        AssetProblem: the item lacks a band's asset.
    """
    props, assets = item.get("properties", {}), item.get("assets", {})
    out, rules = [], []
    bands = [b for b in S2_BANDS if level == "l1c" or b != "B10"]
    for band in bands + (["SCL"] if with_scl else []):
        key = product.assets.get(band)
        if key is None or key not in assets:
            raise AssetProblem(str(item["id"]), key or band, "missing from the item")
        a = assets[key]
        offset = 0
        if band != "SCL":  # L1C's RADIO_ADD_OFFSET and L2A's BOA_ADD_OFFSET alike
            offset, why = dn_offset(props, a, product.offset)
            if why not in rules:
                rules.append(why)
        out.append(BandAsset(str(item["id"]), band, key, str(a["href"]),
                             CLASS_RESAMPLING if band == "SCL" else REFLECTANCE_RESAMPLING,
                             offset))
    return out, rules


def acquisition(item: Mapping[str, Any], product: Product, level: str,
                with_scl: bool = False) -> Acquisition:
    """The engine's view of an item; its band assets ride in ``extra["assets"]``.

    Raises:
        AssetProblem: no solar angles, or a band's asset missing.
    """
    props = item.get("properties", {})
    angles = solar_angles(props)
    if angles is None:
        raise AssetProblem(str(item["id"]), "properties", "no mean solar angles "
                           "(s2:mean_solar_* or view:sun_*)")
    assets, rules = band_assets(item, product, level, with_scl)
    bbox = item.get("bbox")
    return Acquisition(
        name=str(item["id"]), time=_time(props), solar_azimuth=angles[0],
        solar_zenith=angles[1], product_id=product_id(item),
        footprint=tuple(float(v) for v in bbox[:4]) if bbox else None,  # type: ignore
        cloud_cover=props.get("eo:cloud_cover"),
        extra={"assets": assets, "offset_rules": rules})


def read_acquisition(reader: AssetReader, acq: Acquisition, grid: Any, level: str,
                     threads: int | None = None) -> np.ndarray:
    """The engine's planes of one acquisition on ``grid`` (see the module doc):
    (13, H, W) uint16, or (14, H, W) with the SCL plane. Its bands are read concurrently,
    ``threads`` at a time (default: the host's cap, :attr:`AssetReader.limit`).

    Raises:
        AssetProblem, SourceUnavailable: from :class:`~.reader.AssetReader`.
    """
    assets: list[BandAsset] = acq.extra["assets"]
    stack = read_stack(reader, assets, grid, "uint16", 0, threads or reader.limit)
    with_scl = bool(assets) and assets[-1].band == "SCL"
    planes = np.zeros((len(S2_BANDS) + with_scl, *grid.shape), np.uint16)
    refl = [a for a in assets if a.band != "SCL"]
    for i, a in enumerate(refl):
        planes[S2_BANDS.index(a.band)] = stack[i]
    if with_scl:
        scl = stack[-1]
        poor = np.isin(scl, SCL_POOR_CLASSES)
        footprint = np.bitwise_or.reduce(planes[:len(S2_BANDS)], axis=0) != 0
        planes[SCL_PLANE] = np.where(poor & footprint, SCL_POOR_VALUE, 0)
    return planes
