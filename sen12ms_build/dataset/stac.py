"""A static STAC catalog of the finished tree (pystac): its Items, Collections and root
Catalog; :mod:`.stac_write` writes them (in parallel at scale), :mod:`.stac_validate`
validates them offline.

::

    <root>/stac/catalog.json                         root Catalog
    <root>/stac/<branch>/collection.json             one Collection per season branch
    <root>/stac/<branch>/<patch_id>/<patch_id>.json  one Item per kept triplet
    <root>/stac/items.parquet                        every Item as one stac-geoparquet file

Items carry assets ``s1``, ``s2``, ``lc`` and ``qa`` (the quality layer; and the 10 m labels
``wc`` or ``dw`` of a run with ``labels:``, with the ``classification`` extension: values,
names and official colours of the product's classes) with hrefs relative to the item file,
and the extensions ``eo`` (the 13 Sentinel-2 bands), ``sar`` (IW, C band,
VV/VH, GRD), ``proj`` (UTM code, shape, transform), ``label`` (the four MODIS land-cover
schemes and their classes) and ``ml-aoi`` (``ml-aoi:split``). Their times are the
Sentinel-2 sensing time with the largest share (``datetime``) and the span of every S1/S2
acquisition in the patch (``start_datetime``/``end_datetime``).

"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from . import cr_describe, layout
from ..geo import to_lonlat
from ..products import S2_LEVEL_TITLES, s2_modality

log = logging.getLogger(__name__)

STAC_DIR = "stac"
PARQUET = "items.parquet"
ML_AOI = "https://stac-extensions.github.io/ml-aoi/v0.2.0/schema.json"
CLASSIFICATION = "https://stac-extensions.github.io/classification/v1.1.0/schema.json"
LICENSE = "CC-BY-4.0"  # SEN12MS's licence; sources: see the data card (README.md)

#: (common name, centre wavelength µm, full width at half maximum µm) of the S2 bands.
S2_EO = {"B1": ("coastal", 0.443, 0.027), "B2": ("blue", 0.49, 0.098),
         "B3": ("green", 0.56, 0.045), "B4": ("red", 0.665, 0.038),
         "B5": ("rededge", 0.705, 0.019), "B6": ("rededge", 0.74, 0.018),
         "B7": ("rededge", 0.783, 0.028), "B8": ("nir", 0.842, 0.145),
         "B8A": ("nir08", 0.865, 0.033), "B9": ("nir09", 0.945, 0.026),
         "B10": ("cirrus", 1.375, 0.075), "B11": ("swir16", 1.61, 0.143),
         "B12": ("swir22", 2.19, 0.242)}
IGBP_CLASSES = {1: "Evergreen Needleleaf Forests", 2: "Evergreen Broadleaf Forests",
                3: "Deciduous Needleleaf Forests", 4: "Deciduous Broadleaf Forests",
                5: "Mixed Forests", 6: "Closed Shrublands", 7: "Open Shrublands",
                8: "Woody Savannas", 9: "Savannas", 10: "Grasslands",
                11: "Permanent Wetlands", 12: "Croplands", 13: "Urban and Built-up Lands",
                14: "Cropland/Natural Vegetation Mosaics", 15: "Permanent Snow and Ice",
                16: "Barren", 17: "Water Bodies"}
#: Valid MCD12Q1 codes per land-cover band (paper, Table 2).
LC_CODES = {"IGBP": sorted(IGBP_CLASSES),
            "LCCS_LC": [1, 2, 3, 11, 12, 13, 14, 15, 16, 21, 22, 31, 32, 41, 42, 43],
            "LCCS_LU": [1, 2, 3, 9, 10, 20, 25, 30, 35, 36, 40],
            "LCCS_SH": [1, 2, 3, 10, 20, 27, 30, 40, 50, 51]}


def _time(s: str) -> dt.datetime | None:
    try:
        t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _footprint(row: dict[str, str]) -> tuple[dict, list[float]]:
    """GeoJSON polygon (lon/lat) and bbox of a manifest row's UTM bounds."""
    return footprints([row])[0]


def footprints(rows: list[dict[str, str]]) -> list[tuple[dict, list[float]]]:
    """:func:`_footprint` of many rows: one vectorized transform per CRS. The ring is
    the UTM square's corners (counter-clockwise from the lower left, closed) in lon/lat,
    rounded to 1e-7 degrees (1 cm)."""
    out: list = [None] * len(rows)
    by_crs: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_crs.setdefault(r["crs"], []).append(i)
    for crs, idx in by_crs.items():
        b = np.array([[float(rows[i][k]) for k in ("left", "bottom", "right", "top")]
                      for i in idx])
        xs = b[:, [0, 2, 2, 0, 0]]
        ys = b[:, [1, 1, 3, 3, 1]]
        lon, lat = to_lonlat(crs).transform(xs.ravel(), ys.ravel())
        lon = np.asarray(lon).reshape(xs.shape).tolist()
        lat = np.asarray(lat).reshape(xs.shape).tolist()
        for i, xr, yr in zip(idx, lon, lat):
            ring = [[round(x, 7), round(y, 7)] for x, y in zip(xr, yr)]
            xs_, ys_ = [p[0] for p in ring], [p[1] for p in ring]
            out[i] = ({"type": "Polygon", "coordinates": [ring]},
                      [min(xs_), min(ys_), max(xs_), max(ys_)])
    return out


def _rel(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target, start)).as_posix()


def _up(root: Path, item_dir: Path) -> str:
    """``_rel(root, item_dir)``, measured once per folder of item folders."""
    return _up_from(os.fspath(root), os.path.dirname(os.fspath(item_dir)))


@functools.lru_cache(maxsize=256)
def _up_from(root: str, parent: str) -> str:
    rel = _rel(Path(root), Path(parent))
    return ".." if rel == "." else f"../{rel}"


def make_item(row: dict[str, str], root: Path, item_dir: Path, season_start: str,
              season_end: str, res_m: float = 10.0, s2_level: str = "l1c",
              footprint: tuple[dict, list[float]] | None = None):
    """The pystac Item of one kept manifest row (assets relative to ``item_dir``; its
    ``proj:shape`` from the row's bounds at ``res_m`` metres per pixel; its Sentinel-2
    bands those of ``s2_level``; ``footprint``: the row's :func:`footprints`, when made
    for many rows at once).

    The extension fields are filled as plain properties, with the names, values and schema
    URIs of pystac's extension classes (:func:`_static`), which cost ten times more per
    Item through their ``ext``/``apply`` (0.5 ms; a full reproduction has 180,662 Items).
    ``tests/stac_reference.py`` makes the same Items through those classes."""
    import pystac

    st = _static(s2_level)
    geom, bbox = footprint or _footprint(row)
    up = _up(root, item_dir)  # the hrefs of the assets: up to the root, then the row's path
    times = [t for t in (_time(x) for x in (row.get("s2_datetimes", "").split(";") +
                                            row.get("s1_datetimes", "").split(";"))) if t]
    main = _time(row.get("s2_datetimes", "").split(";")[0])
    start = min(times) if times else _time(season_start)
    end = max(times) if times else _time(season_end)
    x0, y1 = float(row["left"]), float(row["top"])
    size = round((float(row["right"]) - x0) / res_m) or 256
    res = (float(row["right"]) - x0) / size
    rel = row.get("s1_relative_orbits", "")
    props = {"start_datetime": start.isoformat().replace("+00:00", "Z"),
             "end_datetime": end.isoformat().replace("+00:00", "Z"),
             "sen12ms:season": row["season"],
             "sen12ms:roi_id": row.get("roi_id", ""),
             "sen12ms:s2_product_ids": row.get("s2_product_ids", "").split(";")
             if row.get("s2_product_ids") else [],
             "sen12ms:s1_product_ids": row.get("s1_product_ids", "").split(";")
             if row.get("s1_product_ids") else [],
             "sen12ms:cloud_share": _num(row.get("cloud_share")),
             "sen12ms:shadow_share": _num(row.get("shadow_share")),
             **st["sar"],
             "sen12ms:s1_orbit_states": [o for o in row.get("s1_orbit_states", "").split(";")
                                         if o],
             # one per S1 product id (None when unknown)
             "sen12ms:s1_relative_orbits": [int(o) if o.isdigit() else None
                                            for o in rel.split(";")] if rel else [],
             # what made sigma0: Earth Engine's COPERNICUS/S1_GRD or the open-data GRD chain
             "sen12ms:s1_processing": [p for p in row.get("s1_processing", "").split(";")
                                       if p],
             "proj:code": f"EPSG:{int(row['crs'].split(':')[1])}",
             "proj:shape": [size, size],
             "proj:transform": [res, 0.0, x0, 0.0, -res, y1],
             **st["label"]}
    counts = [p.split(":") for p in row.get("igbp_counts", "").split(";") if p]
    if counts:
        props["label:overviews"] = [{"property_key": "IGBP", "counts": [
            {"name": IGBP_CLASSES.get(int(k), k), "count": int(v)} for k, v in counts]}]
    props["ml-aoi:split"] = row["split"]
    item = pystac.Item(id=row["patch_id"], geometry=geom, bbox=bbox, datetime=main or start,
                       properties=props, stac_extensions=list(st["extensions"]))
    for key, (title, roles, extra) in st["assets"].items():
        if row.get(key) or key != "qa":
            item.add_asset(key, pystac.Asset(f"{up}/{row[key]}", title,
                                             media_type=pystac.MediaType.GEOTIFF,
                                             roles=list(roles), extra_fields=dict(extra)))
    labels = [dd for dd in layout.EXTRA_DATA_IDS if row.get(dd)]  # a run with ``labels:``
    for dd in labels:
        item.add_asset(dd, labels_asset(dd, f"{up}/{row[dd]}", row))
    if labels:
        item.stac_extensions.append(CLASSIFICATION)
    if row.get("s2_cloudy"):  # the cr variant's cloudy input and its masks (cr_describe)
        cr_describe.add_cloudy_assets(item, row, root, item_dir)
    return item


@functools.lru_cache(maxsize=None)
def _static(s2_level: str) -> dict[str, Any]:
    """What every Item of a level shares, made once with pystac's extension classes: the
    extension schema URIs (in the order ``ext(add_if_missing=True)`` adds them), the ``sar``
    and ``label`` fields as their ``apply`` writes them, the assets' titles and roles, and
    the ``eo`` bands of the Sentinel-2 asset (L2A: 12 bands, no B10)."""
    import pystac
    from pystac.extensions.eo import Band, EOExtension
    from pystac.extensions.label import LabelClasses, LabelExtension, LabelType
    from pystac.extensions.projection import ProjectionExtension
    from pystac.extensions.sar import FrequencyBand, Polarization, SarExtension

    probe = pystac.Item(id="probe", geometry=None, bbox=None,
                        datetime=dt.datetime(2017, 1, 1, tzinfo=dt.UTC), properties={})
    SarExtension.ext(probe, add_if_missing=True).apply(
        instrument_mode="IW", frequency_band=FrequencyBand.C,
        polarizations=[Polarization.VV, Polarization.VH], product_type="GRD")
    sar = dict(probe.properties)
    probe.properties.clear()
    # raster labels: one unnamed class list (the label extension requires name null), the
    # IGBP scheme of band 1, which SEN12MS's benchmarks use; bands 2-4 are LCCS schemes
    LabelExtension.ext(probe, add_if_missing=True).apply(
        label_description="MODIS MCD12Q1 land cover; band 1 IGBP (classes 1-17), "
        "bands 2-4 LCCS land cover, land use, surface hydrology",
        label_type=LabelType.RASTER, label_properties=None,
        label_classes=[LabelClasses.create(classes=LC_CODES["IGBP"], name=None)],
        label_tasks=["classification", "segmentation"])
    label = dict(probe.properties)
    bands = [Band.create(name=b, common_name=S2_EO[b][0], center_wavelength=S2_EO[b][1],
                         full_width_half_max=S2_EO[b][2]).to_dict()
             for b in s2_modality(s2_level).bands]
    return {"extensions": (EOExtension.get_schema_uri(), SarExtension.get_schema_uri(),
                           ProjectionExtension.get_schema_uri(),
                           LabelExtension.get_schema_uri(), ML_AOI),
            "sar": sar, "label": label,
            "assets": {  # key: (title, roles, extra fields)
                "s2": (S2_LEVEL_TITLES[s2_level], ("data",), {"eo:bands": bands}),
                "s1": ("Sentinel-1 GRD sigma0 (dB)", ("data",), {}),
                "lc": ("MODIS MCD12Q1 land cover", ("data", "labels"), {}),
                "qa": ("cloud, shadow and source-image index", ("metadata", "cloud"), {})}}


def labels_asset(data_id: str, href: str, row: dict[str, str]):
    """The asset of a patch's 10 m labels (``wc``: ESA WorldCover; ``dw``: Dynamic World),
    with the classification extension's classes of its class band (band 1): value, name,
    description and the product's official colour (``color_hint``)."""
    import pystac

    from ..labels import PRODUCT_OF, classes
    from ..products import EXTRA_MODALITIES

    product = PRODUCT_OF[data_id]
    title = {"worldcover": f"ESA WorldCover {row.get('labels_version', '')} "
                           f"({row.get('labels_period', '')}) 10 m land cover",
             "dynamicworld": "Dynamic World V1 10 m land use / land cover: mode of the "
                             f"season's labels ({row.get('labels_period', '')}), then the "
                             "mean class probabilities x 250"}[product]
    m = EXTRA_MODALITIES[data_id]
    return pystac.Asset(href, title.replace("  ", " "), media_type=pystac.MediaType.GEOTIFF,
                        roles=["data", "labels"], extra_fields={
                            "classification:classes": [
                                {"value": c.value, "name": _slug(c.name),
                                 "description": c.name, "color_hint": c.color.upper()}
                                for c in classes(product)],
                            "sen12ms:bands": list(m.bands), "sen12ms:nodata": m.nodata,
                            "sen12ms:product": row.get("labels_product", "")})


def _slug(name: str) -> str:
    """A class name as a machine-readable identifier (``Bare / sparse vegetation`` ->
    ``bare_sparse_vegetation``)."""
    import re

    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def _num(x: str | None) -> float | None:
    try:
        return float(x) if x not in (None, "") else None
    except ValueError:
        return None


ITEM_MEDIA_TYPE = "application/geo+json"


def catalog(cfg: Any):
    """The root pystac Catalog of the dataset (without its children)."""
    import pystac

    cat = pystac.Catalog(
        id="sen12ms", title="SEN12MS-style patch triplets",
        description="Sentinel-1 SAR, cloud-free Sentinel-2 mosaics and MODIS land cover "
                    f"as patch triplets of {layout.patch_description(cfg)} "
                    "(sen12ms-build).")
    cat.add_link(pystac.Link("license", "../README.md", media_type="text/markdown",
                             title="data card: sources and licences"))
    return cat


def season_span(cfg: Any, branch: str) -> tuple[str, str]:
    """(start, end) of a branch's season as STAC times (a default year without a config)."""
    season = branch.split("_", 1)[1]
    sc = cfg.seasons.get(season) if cfg else None
    s0 = f"{sc.start}T00:00:00Z" if sc else "2017-01-01T00:00:00Z"
    return s0, f"{sc.end}T23:59:59Z" if sc else s0


def collection(branch: str, cfg: Any, bbox: list[float], n_items: int, splits: list[str]):
    """The pystac Collection of one season branch (without its items): ``n_items`` triplets
    in ``bbox`` (lon/lat), of the ``splits`` named."""
    import pystac

    season = branch.split("_", 1)[1]
    s0, s1 = season_span(cfg, branch)
    coll = pystac.Collection(
        id=branch, description=f"{season} branch ({branch}): {n_items} triplets",
        extent=pystac.Extent(pystac.SpatialExtent([bbox]), pystac.TemporalExtent(
            [[_time(s0), _time(s1)]])), license=LICENSE,
        summaries=pystac.Summaries({"ml-aoi:split": sorted(splits),
                                    "sar:instrument_mode": ["IW"],
                                    "sar:polarizations": ["VV", "VH"]}))
    coll.stac_extensions += [ML_AOI, "https://stac-extensions.github.io/sar/v1.0.0/"
                             "schema.json"]
    return coll


def catalog_files(root: Path) -> list[Path]:
    """The files of the catalog below ``<root>/stac``: ``catalog.json`` and what its links
    reach (collections, items; relative hrefs), and the geoparquet file. Other files in
    ``stac/`` are not the catalog's."""
    out = Path(root) / STAC_DIR
    start = out / "catalog.json"
    if not start.is_file():
        return []
    seen, todo = {start.resolve()}, [start]
    while todo:
        path = todo.pop()
        try:
            obj = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(obj, dict) or obj.get("type") == "Feature":
            continue  # an item: its links lead back up
        for link in obj.get("links", []):
            href = link.get("href", "") if isinstance(link, dict) else ""
            if link.get("rel") in ("child", "item") and "://" not in href and href:
                target = (path.parent / href).resolve()
                if target.is_file() and target not in seen and out.resolve() in target.parents:
                    seen.add(target)
                    todo.append(path.parent / href)
    files = sorted(out / p.relative_to(out.resolve()) for p in seen)
    return files + ([out / PARQUET] if (out / PARQUET).is_file() else [])


def catalog_size(root: Path) -> dict[str, Any]:
    """Bytes and file counts of the JSON catalog and of the geoparquet file."""
    out = Path(root) / STAC_DIR
    js = [p for p in catalog_files(root) if p.suffix == ".json"]
    pq = out / PARQUET
    n_items = sum(1 for p in js if p.parent.parent.parent == out)
    return {"json_files": len(js), "json_bytes": sum(p.stat().st_size for p in js),
            "json_disk_bytes": sum(p.stat().st_blocks * 512 for p in js),
            "items": n_items, "parquet_bytes": pq.stat().st_size if pq.exists() else 0}
