"""ESA WorldCover from a STAC API (Planetary Computer's ``esa-worldcover``): the ``map``
COG tiles of one version read straight onto the scene grid.

Planetary Computer's collection holds both versions, 3 x 3 degree tiles each, their items
dated by ``start_datetime`` / ``end_datetime`` (the year mapped; ``datetime`` null) and
told apart by ``esa_worldcover:product_version`` (``1.0.0``: v100, 2020; ``2.0.0``: v200,
2021). The search asks for the version's year and :func:`version_items` keeps the items
of the version. Each tile's ``map`` asset (uint8, nodata 0) is read with the class rule of
:func:`sen12ms_build.labels.resampling_for`: WorldCover's 1/12000 degree pixels are finer
than the scene's 10 m ones, so by mode; where tiles overlap the first with a class wins.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Mapping, Sequence

import numpy as np

from ...geo import Grid, pixel_size_m
from ...labels import WORLDCOVER_RES_DEG, WORLDCOVER_VERSIONS, resampling_for
from ...products import WC
from .reader import AssetProblem, AssetReader, BandAsset

#: The STAC property telling the versions apart (stactools' esa-worldcover items).
VERSION_PROPERTY = "esa_worldcover:product_version"


def period(version: str) -> tuple[dt.date, dt.date]:
    """The search's dates of a version: the year it maps."""
    year = WORLDCOVER_VERSIONS[version][0]
    return dt.date(year, 1, 1), dt.date(year, 12, 31)


def version_items(items: Sequence[Mapping[str, Any]], version: str) -> list[Mapping[str, Any]]:
    """The items of ``version`` (``v100``/``v200``): their ``esa_worldcover:product_version``
    is the version's (``1.0.0``/``2.0.0``); an item without the property is kept when its
    id names the version (``ESA_WorldCover_10m_2020_v100_N36W078``)."""
    want = WORLDCOVER_VERSIONS[version][2]
    out = []
    for it in items:
        got = (it.get("properties") or {}).get(VERSION_PROPERTY)
        if got == want or (got is None and f"_{version}_" in str(it.get("id", ""))):
            out.append(it)
    return out


def resampling(grid: Grid) -> str:
    """``mode`` or ``nearest`` for WorldCover's pixels onto ``grid``
    (:func:`labels.resampling_for`, sizes in metres at the grid's latitude)."""
    lat = 0.0
    try:
        from pyproj import Transformer

        left, bottom, right, top = grid.bounds
        _, lat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True).transform(
            (left + right) / 2, (bottom + top) / 2)
    except Exception:  # noqa: BLE001  (a grid without a CRS pyproj knows: the equator)
        lat = 0.0
    src = (WORLDCOVER_RES_DEG * 111320.0 * np.cos(np.radians(lat)),
           WORLDCOVER_RES_DEG * 110574.0)
    return resampling_for(src, pixel_size_m(grid))


def read_on_grid(reader: AssetReader, items: Sequence[Mapping[str, Any]], asset_key: str,
                 grid: Grid) -> tuple[np.ndarray, list[str], list[AssetProblem]]:
    """The items' class maps on ``grid``: (1, H, W) uint8 (0: no data), the ids of the
    items that gave pixels, and the problems of the tiles that could not be read.

    Raises:
        SourceUnavailable: the source cannot be read now (the run stops, resumable).
    """
    out = np.zeros((1, *grid.shape), np.uint8)
    used, problems = [], []
    method = resampling(grid)
    for it in items:
        a = (it.get("assets") or {}).get(asset_key)
        item_id = str(it.get("id", "?"))
        if not a or not a.get("href"):
            problems.append(AssetProblem(item_id, asset_key, "missing from the item"))
            continue
        try:
            arr = reader.read(BandAsset(item_id, "Map", asset_key, str(a["href"]),
                                        resampling=method), grid, WC.dtype, WC.nodata)
        except AssetProblem as exc:
            problems.append(exc)
            continue
        fill = (out[0] == WC.nodata) & (arr != WC.nodata)
        if fill.any():
            out[0][fill] = arr[fill]
            used.append(item_id)
    return out, used, problems
