"""A static STAC catalog of the finished tree (pystac), and its offline validation.

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

:func:`validate_catalog` checks every JSON file against the official JSON schemas shipped
in :data:`SCHEMA_DIR` (STAC 1.1.0 core, GeoJSON, and the extensions' versions pystac writes),
with a local ``referencing.Registry``: no network.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from pyproj import Transformer

from . import cr_describe, layout
from ..products import S2_LEVEL_TITLES, level_of, s2_modality

log = logging.getLogger(__name__)

STAC_DIR = "stac"
PARQUET = "items.parquet"
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas" / "stac"
_CORE = "https://schemas.stacspec.org/v1.1.0"
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
    tr = Transformer.from_crs(row["crs"], "EPSG:4326", always_xy=True)
    x0, y0, x1, y1 = (float(row[k]) for k in ("left", "bottom", "right", "top"))
    ring = [tr.transform(x, y) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))]
    ring = [[round(x, 7), round(y, 7)] for x, y in ring]
    xs, ys = [p[0] for p in ring], [p[1] for p in ring]
    return {"type": "Polygon", "coordinates": [ring]}, [min(xs), min(ys), max(xs), max(ys)]


def _rel(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target, start)).as_posix()


def make_item(row: dict[str, str], root: Path, item_dir: Path, season_start: str,
              season_end: str, res_m: float = 10.0, s2_level: str = "l1c"):
    """The pystac Item of one kept manifest row (assets relative to ``item_dir``; its
    ``proj:shape`` from the row's bounds at ``res_m`` metres per pixel; its Sentinel-2
    bands those of ``s2_level``)."""
    import pystac
    from pystac.extensions.eo import Band, EOExtension
    from pystac.extensions.label import LabelClasses, LabelExtension, LabelType
    from pystac.extensions.projection import ProjectionExtension
    from pystac.extensions.sar import FrequencyBand, Polarization, SarExtension

    geom, bbox = _footprint(row)
    times = [t for t in (_time(x) for x in (row.get("s2_datetimes", "").split(";") +
                                            row.get("s1_datetimes", "").split(";"))) if t]
    main = _time(row.get("s2_datetimes", "").split(";")[0])
    start = min(times) if times else _time(season_start)
    end = max(times) if times else _time(season_end)
    item = pystac.Item(id=row["patch_id"], geometry=geom, bbox=bbox,
                       datetime=main or start,
                       properties={"start_datetime": start.isoformat().replace("+00:00", "Z"),
                                   "end_datetime": end.isoformat().replace("+00:00", "Z"),
                                   "sen12ms:season": row["season"],
                                   "sen12ms:roi_id": row.get("roi_id", ""),
                                   "sen12ms:s2_product_ids": row.get("s2_product_ids", "")
                                   .split(";") if row.get("s2_product_ids") else [],
                                   "sen12ms:s1_product_ids": row.get("s1_product_ids", "")
                                   .split(";") if row.get("s1_product_ids") else [],
                                   "sen12ms:cloud_share": _num(row.get("cloud_share")),
                                   "sen12ms:shadow_share": _num(row.get("shadow_share"))})
    tif = pystac.MediaType.GEOTIFF
    item.add_asset("s2", pystac.Asset(_rel(root / row["s2"], item_dir),
                                      S2_LEVEL_TITLES[s2_level],
                                      media_type=tif, roles=["data"]))
    item.add_asset("s1", pystac.Asset(_rel(root / row["s1"], item_dir),
                                      "Sentinel-1 GRD sigma0 (dB)", media_type=tif,
                                      roles=["data"]))
    item.add_asset("lc", pystac.Asset(_rel(root / row["lc"], item_dir),
                                      "MODIS MCD12Q1 land cover", media_type=tif,
                                      roles=["data", "labels"]))
    if row.get("qa"):
        item.add_asset("qa", pystac.Asset(_rel(root / row["qa"], item_dir),
                                          "cloud, shadow and source-image index",
                                          media_type=tif, roles=["metadata", "cloud"]))
    eo = EOExtension.ext(item.assets["s2"], add_if_missing=True)
    eo.bands = [Band.create(name=b, common_name=S2_EO[b][0], center_wavelength=S2_EO[b][1],
                            full_width_half_max=S2_EO[b][2])
                for b in s2_modality(s2_level).bands]  # L2A: 12 bands, no B10
    sar = SarExtension.ext(item, add_if_missing=True)
    sar.apply(instrument_mode="IW", frequency_band=FrequencyBand.C,
              polarizations=[Polarization.VV, Polarization.VH], product_type="GRD")
    item.properties["sen12ms:s1_orbit_states"] = \
        [o for o in row.get("s1_orbit_states", "").split(";") if o]
    rel = row.get("s1_relative_orbits", "")  # one per S1 product id ("" when unknown)
    item.properties["sen12ms:s1_relative_orbits"] = \
        [int(o) if o.isdigit() else None for o in rel.split(";")] if rel else []
    # what made sigma0: Earth Engine's COPERNICUS/S1_GRD or the open-data GRD chain
    item.properties["sen12ms:s1_processing"] = \
        [p for p in row.get("s1_processing", "").split(";") if p]
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    epsg = int(row["crs"].split(":")[1])
    x0, y1 = float(row["left"]), float(row["top"])
    size = round((float(row["right"]) - x0) / res_m) or 256
    res = (float(row["right"]) - x0) / size
    proj.apply(epsg=epsg, shape=[size, size], transform=[res, 0.0, x0, 0.0, -res, y1])
    label = LabelExtension.ext(item, add_if_missing=True)
    # raster labels: one unnamed class list (the label extension requires name null), the
    # IGBP scheme of band 1, which SEN12MS's benchmarks use; bands 2-4 are LCCS schemes
    label.apply(label_description="MODIS MCD12Q1 land cover; band 1 IGBP (classes 1-17), "
                "bands 2-4 LCCS land cover, land use, surface hydrology",
                label_type=LabelType.RASTER, label_properties=None,
                label_classes=[LabelClasses.create(classes=LC_CODES["IGBP"], name=None)],
                label_tasks=["classification", "segmentation"])
    counts = [p.split(":") for p in row.get("igbp_counts", "").split(";") if p]
    if counts:
        item.properties["label:overviews"] = [{"property_key": "IGBP", "counts": [
            {"name": IGBP_CLASSES.get(int(k), k), "count": int(v)} for k, v in counts]}]
    for dd in layout.EXTRA_DATA_IDS:  # the 10 m labels of a run with ``labels:``
        if row.get(dd):
            item.add_asset(dd, labels_asset(dd, _rel(root / row[dd], item_dir), row))
            item.stac_extensions.append(CLASSIFICATION)
    item.stac_extensions.append(ML_AOI)
    item.properties["ml-aoi:split"] = row["split"]
    if row.get("s2_cloudy"):  # the cr variant's cloudy input and its masks (cr_describe)
        cr_describe.add_cloudy_assets(item, row, root, item_dir)
    return item


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


def write_catalog(root: Path, cfg: Any) -> dict[str, Any]:
    """(Re)write ``<root>/stac/`` from ``manifest.csv``; returns sizes (bytes, files)."""
    import pystac

    root = Path(root)
    out = root / STAC_DIR
    rows = [r for r in layout.read_csv(root / "manifest.csv") if r["status"] == "kept"]
    res_m = cfg.reproject.resolution_m if cfg is not None else 10.0
    (root / layout.WORK_DIR).mkdir(parents=True, exist_ok=True)
    # written whole into a folder of its own, then moved in place file by file
    # (absolute, and without a dot in its name: pystac takes a dotted name for a file's)
    tmp = Path(tempfile.mkdtemp(prefix="stac_partial_", dir=root / layout.WORK_DIR)).absolute()
    try:
        catalog = pystac.Catalog(
            id="sen12ms", title="SEN12MS-style patch triplets",
            description="Sentinel-1 SAR, cloud-free Sentinel-2 mosaics and MODIS land cover "
                        f"as patch triplets of {layout.patch_description(cfg)} "
                        "(sen12ms-build).")
        catalog.add_link(pystac.Link("license", "../README.md", media_type="text/markdown",
                                     title="data card: sources and licences"))
        items_all = []
        for branch in sorted({r["branch"] for r in rows}):
            season = branch.split("_", 1)[1]
            sc = cfg.seasons.get(season) if cfg else None
            s0 = f"{sc.start}T00:00:00Z" if sc else "2017-01-01T00:00:00Z"
            s1 = f"{sc.end}T23:59:59Z" if sc else s0
            mine = [r for r in rows if r["branch"] == branch]
            items = [make_item(r, root, root / STAC_DIR / branch / r["patch_id"], s0, s1,
                               res_m, level_of(cfg)) for r in mine]
            bbox = [min(i.bbox[0] for i in items), min(i.bbox[1] for i in items),
                    max(i.bbox[2] for i in items), max(i.bbox[3] for i in items)]
            coll = pystac.Collection(
                id=branch, description=f"{season} branch ({branch}): {len(items)} triplets",
                extent=pystac.Extent(pystac.SpatialExtent([bbox]), pystac.TemporalExtent(
                    [[_time(s0), _time(s1)]])), license=LICENSE,
                summaries=pystac.Summaries({"ml-aoi:split": sorted({r["split"] for r in mine}),
                                            "sar:instrument_mode": ["IW"],
                                            "sar:polarizations": ["VV", "VH"]}))
            coll.stac_extensions += [ML_AOI, "https://stac-extensions.github.io/sar/v1.0.0/"
                                     "schema.json"]
            coll.add_items(items)
            catalog.add_child(coll)
            items_all += items
        catalog.normalize_hrefs(str(tmp) + "/")
        catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
        if items_all:
            write_parquet(items_all, tmp / PARQUET)
        written = []
        for f in sorted(p for p in tmp.rglob("*") if p.is_file()):
            target = out / f.relative_to(tmp)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(f, target)
            written.append(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the folder this call made
    _replace_record(root, out, written)
    return catalog_size(root)


def _replace_record(root: Path, out: Path, written: list[Path]) -> None:
    """The catalog's files in the record of written files; files of an earlier catalog
    that this one no longer has (items of removed patches) go. A file the tool did not
    write is left in ``stac/``."""
    from ..state import State, state_path

    if not state_path(root).exists():
        return
    with State(state_path(root)) as st:
        now = {st.rel(p) for p in written}
        stale = [p for p in st.written(out) if st.rel(p) not in now]
        if stale:
            log.info("stac: %d file(s) of an earlier catalog removed", st.discard(stale))
        st.wrote(written)


def write_parquet(items: list, path: Path) -> None:
    """Every Item as one stac-geoparquet file (asset hrefs as in the JSON Items)."""
    import stac_geoparquet.arrow as sga

    logging.getLogger("stac_geoparquet").setLevel(logging.WARNING)  # one INFO line per batch

    dicts = []
    for it in items:
        d = it.to_dict(include_self_link=False, transform_hrefs=False)
        d["links"] = []
        dicts.append(d)
    table = sga.parse_stac_items_to_arrow(dicts)
    tmp = path.with_name(f".{path.name}.tmp")
    sga.to_parquet(table, tmp)
    tmp.replace(path)


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


# --- offline validation ---------------------------------------------------------------------

def _registry():
    from referencing import Registry, Resource

    resources = []
    for p in SCHEMA_DIR.rglob("*.json"):
        doc = json.loads(p.read_text())
        res = Resource.from_contents(doc)
        uri = doc.get("$id", "").rstrip("#")
        if uri:
            resources.append((uri, res))
        if p.parent.name == "v1.1.0" and p.stem not in ("catalog", "collection"):
            # STAC 1.1.0's common.json declares "$id": ".../commonjson" (upstream typo);
            # item.json refers to it as "common.json": register the file's real address too
            resources.append((f"{_CORE}/item-spec/json-schema/{p.name}", res))
    return Registry().with_resources(resources)


def _core_uri(obj: dict) -> str:
    kind = {"Feature": "item", "Collection": "collection", "Catalog": "catalog"}[obj["type"]]
    return (f"https://schemas.stacspec.org/v{obj.get('stac_version', '1.1.0')}/"
            f"{kind}-spec/json-schema/{kind}.json")


def iter_stac_files(root: Path) -> Iterator[Path]:
    """The catalog's JSON files (:func:`catalog_files`)."""
    yield from (p for p in catalog_files(root) if p.suffix == ".json")


def validate_catalog(root: Path) -> list[str]:
    """One line per schema violation (or unreadable file, missing asset) of the catalog
    below ``<root>/stac``; empty when valid. Offline: schemas from :data:`SCHEMA_DIR`."""
    from jsonschema import Draft7Validator
    from jsonschema.exceptions import best_match
    from referencing.exceptions import Unresolvable

    root = Path(root)
    cat = root / STAC_DIR / "catalog.json"
    if not cat.exists():
        return [f"{cat}: missing (no STAC catalog)"]
    registry = _registry()
    validators: dict[str, Any] = {}
    problems = []
    for path in iter_stac_files(root):
        try:
            obj = json.loads(path.read_text())
            uris = [_core_uri(obj), *obj.get("stac_extensions", [])]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            problems.append(f"{path}: not a STAC JSON file ({exc})")
            continue
        for uri in uris:
            if uri not in validators:
                try:
                    schema = registry.contents(uri)
                except (Unresolvable, LookupError):
                    problems.append(f"{path}: no offline schema for {uri}")
                    continue
                validators[uri] = Draft7Validator(schema, registry=registry)
            err = best_match(validators[uri].iter_errors(obj))
            if err is not None:
                where = "/".join(map(str, err.absolute_path)) or "(top)"
                problems.append(f"{path}: invalid against {uri} at {where}: "
                                f"{err.message[:200]}")
        for key, asset in obj.get("assets", {}).items():
            href = asset.get("href", "")
            if "://" not in href and not (path.parent / href).exists():
                problems.append(f"{path}: asset {key} points to a missing file {href}")
    return problems
