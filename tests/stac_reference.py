"""The STAC catalog as pystac assembles and saves it: the reference the fast writer
(``sen12ms_build.dataset.stac_write.write_catalog``) must equal byte for byte.

pystac builds the whole object tree (``Collection.add_items``, ``Catalog.add_child``,
``normalize_hrefs``) and writes it with ``Catalog.save(SELF_CONTAINED)``; stac-geoparquet
makes ``items.parquet`` through its public API (``parse_stac_items_to_arrow`` and
``to_parquet``). This is how the catalog was written before the writer streamed (fine for a
test tree; its link resolution grows with the square of the items per collection), with
each Item made by pystac's extension classes (:func:`reference_item`). Only the pystac
objects of the catalog and collections (``stac.catalog``, ``stac.collection``: titles,
extents, summaries) are shared with the code under test: the Items, links, hrefs, file
layout, serialisation and the geoparquet conversion come from the libraries.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pyproj import Transformer

from sen12ms_build.dataset import cr_describe, layout, stac
from sen12ms_build.dataset.stac import IGBP_CLASSES, LC_CODES, ML_AOI, S2_EO
from sen12ms_build.products import S2_LEVEL_TITLES, level_of, s2_modality


def _footprint(row: dict[str, str]) -> tuple[dict, list[float]]:
    tr = Transformer.from_crs(row["crs"], "EPSG:4326", always_xy=True)
    x0, y0, x1, y1 = (float(row[k]) for k in ("left", "bottom", "right", "top"))
    ring = [tr.transform(x, y) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))]
    ring = [[round(x, 7), round(y, 7)] for x, y in ring]
    xs, ys = [p[0] for p in ring], [p[1] for p in ring]
    return {"type": "Polygon", "coordinates": [ring]}, [min(xs), min(ys), max(xs), max(ys)]


def _rel(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target, start)).as_posix()


def reference_item(row: dict[str, str], root: Path, item_dir: Path, season_start: str,
                   season_end: str, res_m: float = 10.0, s2_level: str = "l1c"):
    """The Item of one kept manifest row made with pystac's extension classes (``ext``,
    ``apply``, their enums and schema URIs), as ``stac.make_item`` made it before it
    filled the fields itself; the fast one must give the same dict."""
    import pystac
    from pystac.extensions.eo import Band, EOExtension
    from pystac.extensions.label import LabelClasses, LabelExtension, LabelType
    from pystac.extensions.projection import ProjectionExtension
    from pystac.extensions.sar import FrequencyBand, Polarization, SarExtension

    _time, _num = stac._time, stac._num  # parsing of the row's strings (not under test)
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
                for b in s2_modality(s2_level).bands]
    sar = SarExtension.ext(item, add_if_missing=True)
    sar.apply(instrument_mode="IW", frequency_band=FrequencyBand.C,
              polarizations=[Polarization.VV, Polarization.VH], product_type="GRD")
    item.properties["sen12ms:s1_orbit_states"] = \
        [o for o in row.get("s1_orbit_states", "").split(";") if o]
    rel = row.get("s1_relative_orbits", "")  # one per S1 product id ("" when unknown)
    item.properties["sen12ms:s1_relative_orbits"] = \
        [int(o) if o.isdigit() else None for o in rel.split(";")] if rel else []
    item.properties["sen12ms:s1_processing"] = \
        [p for p in row.get("s1_processing", "").split(";") if p]
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    epsg = int(row["crs"].split(":")[1])
    x0, y1 = float(row["left"]), float(row["top"])
    size = round((float(row["right"]) - x0) / res_m) or 256
    res = (float(row["right"]) - x0) / size
    proj.apply(epsg=epsg, shape=[size, size], transform=[res, 0.0, x0, 0.0, -res, y1])
    label = LabelExtension.ext(item, add_if_missing=True)
    label.apply(label_description="MODIS MCD12Q1 land cover; band 1 IGBP (classes 1-17), "
                "bands 2-4 LCCS land cover, land use, surface hydrology",
                label_type=LabelType.RASTER, label_properties=None,
                label_classes=[LabelClasses.create(classes=LC_CODES["IGBP"], name=None)],
                label_tasks=["classification", "segmentation"])
    counts = [p.split(":") for p in row.get("igbp_counts", "").split(";") if p]
    if counts:
        item.properties["label:overviews"] = [{"property_key": "IGBP", "counts": [
            {"name": IGBP_CLASSES.get(int(k), k), "count": int(v)} for k, v in counts]}]
    item.stac_extensions.append(ML_AOI)
    item.properties["ml-aoi:split"] = row["split"]
    # the 10 m labels' and the cr variant's assets (their fields are those modules' own)
    labels = [dd for dd in layout.EXTRA_DATA_IDS if row.get(dd)]
    for dd in labels:
        item.add_asset(dd, stac.labels_asset(dd, _rel(root / row[dd], item_dir), row))
    if labels:
        item.stac_extensions.append(stac.CLASSIFICATION)
    if row.get("s2_cloudy"):
        cr_describe.add_cloudy_assets(item, row, root, item_dir)
    return item


def reference_catalog(root: Path, cfg: Any, out: Path) -> None:
    """Write the catalog of ``root``'s ``manifest.csv`` into the folder ``out`` (instead of
    ``root/stac``), item hrefs as if it were ``root/stac``."""
    import pystac
    import stac_geoparquet.arrow as sga

    rows = [r for r in layout.read_csv(root / "manifest.csv") if r["status"] == "kept"]
    res_m = cfg.reproject.resolution_m
    cat = stac.catalog(cfg)
    items_all = []
    for branch in sorted({r["branch"] for r in rows}):
        s0, s1 = stac.season_span(cfg, branch)
        mine = [r for r in rows if r["branch"] == branch]
        items = [reference_item(r, root, root / stac.STAC_DIR / branch / r["patch_id"], s0,
                                s1, res_m, level_of(cfg)) for r in mine]
        bbox = [min(i.bbox[0] for i in items), min(i.bbox[1] for i in items),
                max(i.bbox[2] for i in items), max(i.bbox[3] for i in items)]
        coll = stac.collection(branch, cfg, bbox, len(items), {r["split"] for r in mine})
        coll.add_items(items)
        cat.add_child(coll)
        items_all += items
    cat.normalize_hrefs(str(Path(out).absolute()) + "/")
    cat.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    if items_all:
        dicts = []
        for it in items_all:
            d = it.to_dict(include_self_link=False, transform_hrefs=False)
            d["links"] = []
            dicts.append(d)
        sga.to_parquet(sga.parse_stac_items_to_arrow(dicts).read_all(), out / stac.PARQUET)
