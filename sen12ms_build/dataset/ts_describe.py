"""The ``cr-ts`` variant's (SEN12MS-CR-TS) self-descriptions (:func:`publish_ts`): a STAC
Item per patch location with one asset per time point and modality (each with its
``datetime``), ``croissant.json`` over its manifest, and the data card ``README.md``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..raster.io import atomic_write_text, sha256
from . import layout
from .cr_describe import TS_CITATION, coverage_histogram, number
from .cr_layout import TS_MANIFEST_HEADER

TS_FIELDS = [
    ("patch_id", "sc:Text", "ROIs<seed>_<roi>_patch_<n>_t<t>"),
    ("seed", "sc:Integer", "the ROI's seed (ROIs<seed>)"),
    ("roi", "sc:Integer", "the ROI number"),
    ("t", "sc:Integer", "time point (0-based)"),
    ("s1", "sc:Text", "Sentinel-1 patch GeoTIFF, relative path"),
    ("s2", "sc:Text", "Sentinel-2 L1C patch GeoTIFF, relative path"),
    ("s2_mask", "sc:Text", "its cloud (band 1) and shadow (band 2) masks"),
    ("s2_datetime", "sc:Text", "Sentinel-2 sensing time"),
    ("s1_datetime", "sc:Text", "Sentinel-1 sensing time"),
    ("cloud_coverage", "sc:Float", "share of the S2 patch under cloud"),
]


def _iso(s: str) -> str:
    t = dt.datetime.fromisoformat(str(s).replace("Z", "+00:00"))
    t = t if t.tzinfo else t.replace(tzinfo=dt.UTC)
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ts_catalog(root: Path, manifest: list[dict[str, Any]]) -> list[Path]:
    """``stac/``: a Collection per ROI, an Item per kept patch location with one asset per
    time point and modality (``s2_t00``, ``s1_t00``, ``s2_mask_t00``, ...), each with its own
    ``datetime``. Returns the files written."""
    import pystac
    from pyproj import Transformer

    from .stac import LICENSE, STAC_DIR
    from .stac_write import replace_record

    kept = [r for r in manifest if r["status"] == "kept"]
    out = root / STAC_DIR
    (root / layout.WORK_DIR).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="stac_partial_", dir=root / layout.WORK_DIR)).absolute()
    try:
        cat = pystac.Catalog(id="sen12ms-cr-ts", title="SEN12MS-CR-TS-style time series",
                             description="Sentinel-1 and Sentinel-2 L1C time series of patch "
                                         "locations (sen12ms-build, variant cr-ts).")
        locs: dict[tuple, list[dict]] = {}
        for r in kept:
            locs.setdefault((int(r["seed"]), int(r["roi"]), int(r["patch"])), []).append(r)
        by_roi: dict[tuple, list] = {}
        for (seed, roi, patch), rows in sorted(locs.items()):
            r0 = rows[0]
            tr = Transformer.from_crs(r0["crs"], "EPSG:4326", always_xy=True)
            xs, ys = zip(*(tr.transform(float(r0[x]), float(r0[y])) for x in ("left", "right")
                           for y in ("bottom", "top")))
            bbox = [min(xs), min(ys), max(xs), max(ys)]
            geom = {"type": "Polygon", "coordinates": [[[bbox[0], bbox[1]], [bbox[2], bbox[1]],
                                                         [bbox[2], bbox[3]], [bbox[0], bbox[3]],
                                                         [bbox[0], bbox[1]]]]}
            times = sorted(_iso(r["s2_datetime"]) for r in rows)
            item = pystac.Item(id=f"ROIs{seed}_{roi}_patch_{patch}", geometry=geom, bbox=bbox,
                               datetime=None, properties={
                                   "start_datetime": times[0], "end_datetime": times[-1],
                                   "sen12ms:variant": "cr-ts",
                                   "ml-aoi:split": r0.get("split", ""),
                                   "sen12ms:time_points": len(rows)})
            idir = tmp / f"ROIs{seed}_{roi}" / item.id
            for r in sorted(rows, key=lambda r: int(r["t"])):
                t = int(r["t"])
                for m, when in (("s2", r["s2_datetime"]), ("s1", r["s1_datetime"]),
                                ("s2_mask", r["s2_datetime"])):
                    href = Path(os.path.relpath(root / r[m],
                                                out / f"ROIs{seed}_{roi}" / item.id)).as_posix()
                    extra = {"datetime": _iso(when), "sen12ms:time_point": t}
                    if m == "s2_mask":
                        extra["sen12ms:cloud_coverage"] = number(r["cloud_coverage"])
                    item.add_asset(f"{m}_t{t:02d}", pystac.Asset(
                        href, {"s1": "Sentinel-1 sigma0 (dB)", "s2": "Sentinel-2 L1C",
                               "s2_mask": "cloud and shadow masks"}[m],
                        media_type=pystac.MediaType.GEOTIFF,
                        roles=["metadata", "cloud"] if m == "s2_mask" else ["data"],
                        extra_fields=extra))
            by_roi.setdefault((seed, roi), []).append((item, idir))
        for (seed, roi), items in sorted(by_roi.items()):
            bb = [min(i.bbox[0] for i, _ in items), min(i.bbox[1] for i, _ in items),
                  max(i.bbox[2] for i, _ in items), max(i.bbox[3] for i, _ in items)]
            t0 = min(dt.datetime.fromisoformat(i.properties["start_datetime"].replace(
                "Z", "+00:00")) for i, _ in items)
            t1 = max(dt.datetime.fromisoformat(i.properties["end_datetime"].replace(
                "Z", "+00:00")) for i, _ in items)
            coll = pystac.Collection(id=f"ROIs{seed}_{roi}", description=f"ROI ROIs{seed}/{roi}",
                                     extent=pystac.Extent(pystac.SpatialExtent([bb]),
                                                          pystac.TemporalExtent([[t0, t1]])),
                                     license=LICENSE)
            coll.add_items([i for i, _ in items])
            cat.add_child(coll)
        cat.normalize_hrefs(str(tmp) + "/")
        cat.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
        written = []
        for f in sorted(p for p in tmp.rglob("*") if p.is_file()):
            target = out / f.relative_to(tmp)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(f, target)
            written.append(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    replace_record(root, out, written)
    return written


def _ts_croissant(root: Path, cfg: Any, manifest: list[dict[str, Any]]) -> list[Path]:
    from .croissant import CONTEXT, CROISSANT, SPLIT_DIR

    files: list[dict] = [{"@type": "cr:FileObject", "@id": "manifest.csv",
                          "name": "manifest.csv", "contentUrl": "manifest.csv",
                          "encodingFormat": "text/csv", "sha256": sha256(root / "manifest.csv")}]
    written, record_sets = [], []
    for split in ("train", "test"):
        path = root / SPLIT_DIR / f"{split}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        layout.write_csv(path, TS_MANIFEST_HEADER, [r for r in manifest if r.get("split") == split])
        written.append(path)
        fid = f"{SPLIT_DIR}/{split}.csv"
        files.append({"@type": "cr:FileObject", "@id": fid, "name": fid, "contentUrl": fid,
                      "encodingFormat": "text/csv", "sha256": sha256(path)})
        record_sets.append({
            "@type": "cr:RecordSet", "@id": split, "name": split,
            "description": f"{split} split: one record per patch location and time point",
            "key": {"@id": f"{split}/patch_id"},
            "field": [{"@type": "cr:Field", "@id": f"{split}/{c}", "name": c, "description": d,
                       "dataType": t, "source": {"fileObject": {"@id": fid},
                                                 "extract": {"column": c}}}
                      for c, t, d in TS_FIELDS]})
    for mod, folder, what in (("s1", "S1", "Sentinel-1"), ("s2", "S2", "Sentinel-2 L1C"),
                              ("s2_mask", "S2_mask", "cloud and shadow masks")):
        files.append({"@type": "cr:FileSet", "@id": f"{mod}-patches", "name": f"{mod}-patches",
                      "description": f"{what} patch GeoTIFFs", "encodingFormat": "image/tiff",
                      "includes": f"ROIs*/*/{folder}/*/*.tif"})
    start, end = cfg.year_span
    doc = {"@context": CONTEXT, "@type": "sc:Dataset", "name": root.name or "sen12ms-cr-ts",
           "description": "SEN12MS-CR-TS-style time series: per patch location "
                          f"{cfg.cloud_removal.time_points} Sentinel-2 L1C and Sentinel-1 "
                          "acquisitions over the year, with cloud and shadow masks, built with "
                          f"sen12ms-build {__version__}.",
           "conformsTo": "http://mlcommons.org/croissant/1.0",
           "license": "https://creativecommons.org/licenses/by/4.0/",
           "url": "https://patricktum.github.io/cloud_removal/", "version": __version__,
           "datePublished": dt.date.today().isoformat(), "citeAs": TS_CITATION,
           "keywords": ["Sentinel-1", "Sentinel-2", "cloud removal", "time series",
                        "SEN12MS-CR-TS"],
           "temporalCoverage": f"{start}/{end}", "distribution": files,
           "recordSet": record_sets}
    out = root / CROISSANT
    atomic_write_text(out, json.dumps(doc, indent=1) + "\n")
    return [*written, out]


def _ts_datacard(root: Path, cfg: Any, scenes: list[dict[str, Any]],
                 manifest: list[dict[str, Any]]) -> Path:
    from .datacard import SOURCES, config_fingerprint

    cr = cfg.cloud_removal
    kept = [r for r in manifest if r["status"] == "kept"]
    cov = [float(r["cloud_coverage"]) for r in kept if r["cloud_coverage"] != ""]
    start, end = cfg.year_span
    lines = [f"# {root.name}: a SEN12MS-CR-TS-style dataset", "",
             f"Per ROI, {cr.time_points} time points spread regularly over {start} .. {end}: "
             "each the Sentinel-2 L1C acquisition nearest its slot's centre that covers at "
             f"least {cr.min_coverage_percent:g} % of the ROI, and the Sentinel-1 acquisition "
             "nearest that one, unmosaicked, in the released layout "
             "`ROIs<seed>/<roi>/{S1,S2}/<t>/<s1|s2>_ROIs<seed>_<roi>_ImgNo_<t>_<YYYY-MM-DD>"
             "_patch_<n>.tif`; cloud (band 1) and shadow (band 2) masks in `S2_mask/<t>/` "
             f"(s2cloudless threshold {cr.mask_threshold:g}, average_over "
             f"{cr.mask_average_over}, dilation_size {cr.mask_dilation_size}; the "
             "mosaicking's shadow projection). When the archive holds fewer acquisitions "
             "than slots, neighbouring slots share one (`scenes.csv`: `s2_distinct`).", "",
             "| ROI | roi_id | time points | distinct S2 | distinct S1 | locations kept | "
             "mean cloud coverage |", "|---|---|---|---|---|---|---|"]
    for s in scenes:
        lines.append(f"| ROIs{s['seed']}/{s['scene']} | {s.get('roi_id', '')} | "
                     f"{s.get('time_points', '')} | {s.get('s2_distinct', '')} | "
                     f"{s.get('s1_distinct', '')} | {s.get('locations_kept', '')} | "
                     f"{s.get('mean_cloud_coverage', '')} |")
    hist = coverage_histogram(cov)
    lines += ["", f"Cloud coverage of the {len(cov)} kept S2 patches (all time points): mean "
              f"{np.mean(cov) if cov else 0:.3f}.", "",
              "| coverage | " + " | ".join(f"{k / 10:.1f}-{(k + 1) / 10:.1f}"
                                           for k in range(10)) + " |",
              "|---|" + "---|" * 10, "| patches | " + " | ".join(map(str, hist)) + " |", "",
              "## Split and loaders", "",
              "Leak-free by ROI (`splits.json`, `train_list.txt`, `test_list.txt`: "
              "`ROIs<seed>/<roi>` per line). The authors' `SEN12MSCRTS` walks only the ROIs of "
              "its hard-coded `ROI` dict and takes splits from hard-coded lists; "
              "`splits_sen12mscrts.json` holds this dataset's `ROI` dict and splits in their "
              "form (set both and call `get_paths()` again), or use "
              "`sen12ms_build.variants.loaders.SEN12MSCRTSDataset`.", "",
              "## Sources, licences, citation", "", SOURCES, "", "Cite: " + TS_CITATION + ".",
              "", "## Build", "", f"- tool: sen12ms-build {__version__}",
              f"- config fingerprint: `{config_fingerprint(cfg)}`", ""]
    out = root / "README.md"
    atomic_write_text(out, "\n".join(lines))
    return out


def publish_ts(root: Path, cfg: Any, scenes: list[dict[str, Any]],
               manifest: list[dict[str, Any]]) -> list[Path]:
    """The ``cr-ts`` self-descriptions (see the module doc); returns the files written
    (the STAC files record themselves)."""
    root = Path(root)
    _ts_catalog(root, manifest)
    return [*_ts_croissant(root, cfg, manifest), _ts_datacard(root, cfg, scenes, manifest)]
