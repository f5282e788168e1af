"""``croissant.json``: the dataset described in Croissant 1.0 (MLCommons) for ML tools.

Distribution: ``manifest.csv`` and one CSV per split (``croissant/<split>.csv``, the kept
manifest rows of that split) as FileObjects with their SHA-256, and the patch GeoTIFFs as
FileSets (``s1``, ``s2``, ``lc``, ``qa``). One RecordSet per split reads its CSV: patch id,
season, the three (four) relative file paths, UTM bounds and CRS, and the provenance
columns. Geospatial and temporal coverage use schema.org's ``spatialCoverage`` (a
``GeoShape`` box) and ``temporalCoverage`` (ISO 8601 interval), which Croissant inherits.
Validated in the tests with the real ``mlcroissant`` package; writing needs no dependency.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import json
from array import array
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from . import cr_describe, layout
from ..geo import to_lonlat
from ..products import S2_LEVEL_SUMMARY, level_of
from ..raster.io import atomic_path, atomic_write_text, sha256

CROISSANT = "croissant.json"
SPLIT_DIR = "croissant"
CONTEXT = {
    "@language": "en", "@vocab": "https://schema.org/", "citeAs": "cr:citeAs",
    "column": "cr:column", "conformsTo": "dct:conformsTo", "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/", "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"}, "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"}, "extract": "cr:extract",
    "field": "cr:field", "fileProperty": "cr:fileProperty", "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet", "format": "cr:format", "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset", "jsonPath": "cr:jsonPath", "key": "cr:key",
    "md5": "cr:md5", "parentField": "cr:parentField", "path": "cr:path",
    "recordSet": "cr:recordSet", "references": "cr:references", "regex": "cr:regex",
    "repeated": "cr:repeated", "replace": "cr:replace", "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/", "separator": "cr:separator", "source": "cr:source",
    "subField": "cr:subField", "transform": "cr:transform"}
#: Record fields: (manifest column, Croissant data type, description).
FIELDS = [
    ("patch_id", "sc:Text", "<branch>_<scene>_p<patch>"),
    ("season", "sc:Text", "meteorological season of the branch"),
    ("roi_id", "sc:Text", "ROI identifier <seed>_<kind>_<scene>"),
    ("s1", "sc:Text", "Sentinel-1 patch GeoTIFF, relative to the dataset root"),
    ("s2", "sc:Text", "Sentinel-2 patch GeoTIFF, relative to the dataset root"),
    ("lc", "sc:Text", "MODIS land-cover patch GeoTIFF, relative to the dataset root"),
    ("qa", "sc:Text", "quality layer (cloud, shadow, source index), relative path"),
    ("crs", "sc:Text", "UTM CRS of the patch (EPSG code)"),
    ("left", "sc:Float", "west bound (m, patch CRS)"),
    ("bottom", "sc:Float", "south bound (m, patch CRS)"),
    ("right", "sc:Float", "east bound (m, patch CRS)"),
    ("top", "sc:Float", "north bound (m, patch CRS)"),
    ("s2_product_ids", "sc:Text", "Sentinel-2 products contributing pixels (;-separated)"),
    ("s2_datetimes", "sc:Text", "their sensing times"),
    ("s1_product_ids", "sc:Text", "Sentinel-1 GRD acquisitions (;-separated)"),
    ("cloud_share", "sc:Float", "residual cloud share of the patch"),
    ("shadow_share", "sc:Float", "residual shadow share of the patch"),
]
SPLITS = ("train", "test")
#: Record fields of the 10 m labels of a run with ``labels:`` (data id -> fields), added
#: when the manifest has that data id's column.
LABEL_FIELDS = {
    "wc": [("wc", "sc:Text", "ESA WorldCover 10 m labels patch GeoTIFF (uint8, 1 band: the "
                             "WorldCover codes 10..100, nodata 0), relative path")],
    "dw": [("dw", "sc:Text", "Dynamic World 10 m labels patch GeoTIFF (uint8, band 1 the "
                             "mode of the season's label 0..8, bands 2-10 the mean class "
                             "probabilities x 250; nodata 255), relative path")],
}
#: The labels' provenance and class statistics (a run with labels).
LABEL_COMMON = [
    ("labels_product", "sc:Text", "label product (Earth Engine id, e.g. ESA/WorldCover/v100)"),
    ("labels_version", "sc:Text", "its version (v100, v200; V1)"),
    ("labels_period", "sc:Text", "the year mapped, or the season composited"),
    ("labels_counts", "sc:Text", "pixels per class, class:count ;-separated"),
    ("labels_dominant", "sc:Integer", "most frequent class of the patch"),
    ("labels_purity", "sc:Float", "its share of the labelled pixels"),
]


class _Corners:
    """The corners of the patches, per CRS, gathered as they stream by: their lon/lat
    bounding box is taken with one vectorized transform per CRS."""

    def __init__(self) -> None:
        self.xy: dict[str, tuple[array, array]] = {}

    def add(self, r: dict[str, str]) -> None:
        xs, ys = self.xy.setdefault(r["crs"], (array("d"), array("d")))
        for x in ("left", "right"):
            for y in ("bottom", "top"):
                xs.append(float(r[x]))
                ys.append(float(r[y]))

    def bbox(self) -> tuple[float, float, float, float] | None:
        lon, lat = [], []
        for crs, (xs, ys) in self.xy.items():
            a, b = to_lonlat(crs).transform(np.frombuffer(xs), np.frombuffer(ys))
            lon.append(np.asarray(a))
            lat.append(np.asarray(b))
        if not lon:
            return None
        lon_all, lat_all = np.concatenate(lon), np.concatenate(lat)
        return (float(lon_all.min()), float(lat_all.min()), float(lon_all.max()),
                float(lat_all.max()))


def _write_split_csvs(root: Path, corners: _Corners, seasons: set[str]) -> list[str]:
    """``croissant/<split>.csv``: the kept manifest rows of each split, in one pass over
    ``manifest.csv`` (row by row); the kept rows' corners and seasons are gathered on the
    way. Returns the manifest's header."""
    manifest = root / "manifest.csv"
    with open(manifest, newline="", encoding="utf-8") as f:
        header = next(csv.reader(f), None) or layout.MANIFEST_HEADER
    paths = {split: root / SPLIT_DIR / f"{split}.csv" for split in SPLITS}
    with contextlib.ExitStack() as stack:
        writers = {}
        for split, path in paths.items():
            tmp = stack.enter_context(atomic_path(path))
            f = stack.enter_context(open(tmp, "w", newline="", encoding="utf-8"))
            writers[split] = csv.writer(f, lineterminator="\n")
            writers[split].writerow(header)
        for r in layout.iter_csv(manifest):
            if r["status"] != "kept":
                continue
            corners.add(r)
            seasons.add(r["season"])
            if r.get("split") in writers:
                writers[r["split"]].writerow([r.get(k, "") for k in header])
    return header


def write_croissant(root: Path, cfg: Any) -> Path:
    """Write ``croissant/<split>.csv`` and ``croissant.json`` from ``manifest.csv``."""
    root = Path(root)
    corners, seasons_seen = _Corners(), set()
    header = _write_split_csvs(root, corners, seasons_seen)
    files: list[dict] = [{"@type": "cr:FileObject", "@id": "manifest.csv", "name": "manifest.csv",
                          "contentUrl": "manifest.csv", "encodingFormat": "text/csv",
                          "sha256": sha256(root / "manifest.csv")}]
    extra = [dd for dd in layout.EXTRA_DATA_IDS if dd in header]
    fields = FIELDS + [f for dd in extra for f in LABEL_FIELDS[dd]] + \
        (LABEL_COMMON if extra else [])
    record_sets = []
    for split in SPLITS:
        path = root / SPLIT_DIR / f"{split}.csv"
        fid = f"{SPLIT_DIR}/{split}.csv"
        files.append({"@type": "cr:FileObject", "@id": fid, "name": fid, "contentUrl": fid,
                      "encodingFormat": "text/csv", "sha256": sha256(path),
                      "description": f"kept patches of the {split} split"})
        record_sets.append({
            "@type": "cr:RecordSet", "@id": split, "name": split,
            "description": f"{split} split: one record per patch triplet",
            "key": {"@id": f"{split}/patch_id"},
            "field": [{"@type": "cr:Field", "@id": f"{split}/{col}", "name": col,
                       "description": desc, "dataType": dtype,
                       "source": {"fileObject": {"@id": fid}, "extract": {"column": col}}}
                      for col, dtype, desc in fields]})
    names = {"wc": "ESA WorldCover 10 m labels", "dw": "Dynamic World 10 m labels"}
    for dd, what in (("s1", "Sentinel-1"), ("s2", "Sentinel-2"), ("lc", "land cover"),
                     ("qa", "quality layer"), *((dd, names[dd]) for dd in extra)):
        files.append({"@type": "cr:FileSet", "@id": f"{dd}-patches", "name": f"{dd}-patches",
                      "description": f"{what} patch GeoTIFFs", "encodingFormat": "image/tiff",
                      "includes": f"ROIs*/{dd}_*/*.tif"})
    seasons = sorted(seasons_seen)
    starts = [str(cfg.seasons[s].start) for s in seasons if cfg and s in cfg.seasons]
    ends = [str(cfg.seasons[s].end) for s in seasons if cfg and s in cfg.seasons]
    doc: dict[str, Any] = {
        "@context": CONTEXT, "@type": "sc:Dataset",
        "name": root.name or "sen12ms",
        "description": "SEN12MS-style patch triplets: Sentinel-1 dual-pol SAR (VV, VH, dB), "
                       f"{S2_LEVEL_SUMMARY[level_of(cfg)]} and MODIS MCD12Q1 land "
                       f"cover (IGBP, LCCS), {layout.patch_description(cfg)} in UTM, built "
                       f"with sen12ms-build {__version__}.",
        "conformsTo": "http://mlcommons.org/croissant/1.0",
        "license": "https://creativecommons.org/licenses/by/4.0/",
        "url": "https://mediatum.ub.tum.de/1474000",
        "version": __version__,
        "datePublished": dt.date.today().isoformat(),
        "citeAs": "Schmitt M, Hughes LH, Qiu C, Zhu XX (2019) SEN12MS - a curated dataset of "
                  "georeferenced multi-spectral Sentinel-1/2 imagery for deep learning and "
                  "data fusion. ISPRS Annals IV-2/W7: 153-160.",
        "keywords": ["Sentinel-1", "Sentinel-2", "MODIS", "land cover", "remote sensing",
                     *(["ESA WorldCover"] if "wc" in extra else []),
                     *(["Dynamic World"] if "dw" in extra else [])],
        "distribution": files, "recordSet": record_sets}
    box = corners.bbox()
    if box:  # schema.org GeoShape box: "south west north east"
        doc["spatialCoverage"] = {"@type": "Place", "geo": {
            "@type": "GeoShape", "box": f"{box[1]:.5f} {box[0]:.5f} {box[3]:.5f} {box[2]:.5f}"}}
    if starts:
        doc["temporalCoverage"] = f"{min(starts)}/{max(ends)}"
    doc = cr_describe.croissant_extras(doc, cfg)  # the cr variant's pair (no-op otherwise)
    out = root / CROISSANT
    atomic_write_text(out, json.dumps(doc, indent=1) + "\n")
    return out


def validate_croissant(root: Path, records: int = 0) -> list[str]:
    """Problems ``mlcroissant`` reports for ``croissant.json`` (and, with ``records``, for
    reading that many records of each split); empty when valid or when mlcroissant is not
    installed (then one line says so)."""
    path = Path(root) / CROISSANT
    if not path.exists():
        return [f"{path}: missing"]
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return [f"{path}: not JSON ({exc})"]
    problems = []
    for f in doc.get("distribution", []):
        if f.get("@type") == "cr:FileObject":
            p = Path(root) / f.get("contentUrl", "")
            if not p.exists():
                problems.append(f"{path}: {f.get('contentUrl')} is missing")
            elif f.get("sha256") and sha256(p) != f["sha256"]:
                problems.append(f"{path}: checksum of {f.get('contentUrl')} does not match")
    try:
        import mlcroissant as mlc
    except ImportError:
        return problems
    try:
        ds = mlc.Dataset(jsonld=str(path))
        if records:
            for rs in SPLITS:
                for i, _ in enumerate(ds.records(record_set=rs)):
                    if i + 1 >= records:
                        break
    except Exception as exc:  # mlcroissant raises ValidationError and others
        problems.append(f"{path}: mlcroissant: {str(exc).strip().splitlines()[0][:300]}")
    return problems
