"""The ``cr`` variant (SEN12MS-CR) in the dataset's self-descriptions: the paper's STAC
catalog (:mod:`.stac`), Croissant (:mod:`.croissant`) and data card (:mod:`.datacard`) with
the pair added, through these hooks (each a no-op for the paper's dataset):

* STAC: every Item gets the cloudy input (``s2_cloudy``, with its own ``datetime`` and
  product id) and its mask layer beside the cloud-free ``s2`` (whose ``datetime`` is the
  patch's largest source), and ``sen12ms:cloud_coverage`` / ``sen12ms:time_gap_days``;
* Croissant: the pair's fields and file sets;
* data card: the variant's layout, the cloudy pick, the coverage histogram and how to use
  the authors' loaders.

``cr-ts`` writes its own descriptions (:mod:`.ts_describe`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

TS_CITATION = ("Ebel P, Xu Y, Schmitt M, Zhu XX (2022) SEN12MS-CR-TS: a remote-sensing data "
               "set for multimodal multitemporal cloud removal. IEEE TGRS 60: 1-14. "
               "doi:10.1109/TGRS.2022.3146246")
CR_CITATION = ("Ebel P, Meraner A, Schmitt M, Zhu XX (2021) Multisensor data fusion for cloud "
               "removal in global and all-season Sentinel-2 imagery. IEEE TGRS 59(7): "
               "5866-5878. doi:10.1109/TGRS.2020.3024744")
LOADERS_NOTE = (
    "The authors' loaders (`PatrickTUM/SEN12MS-CR-TS` and `PatrickTUM/UnCRtainTS`, "
    "`data/dataLoader.py`) read this tree unchanged. Their splits are hard-coded lists: "
    "`SEN12MSCR` keeps a patch when any entry of its split is a *substring* of the patch's "
    "s1 path, so the entry `ROIs1158_spring_s1/s1_1` also takes `s1_10` .. `s1_199` (their "
    "train entry `s1_1` pulls their test scene `s1_106` into train). "
    "`splits_sen12mscr.json` holds this dataset's leak-free split in their form with each "
    "entry ending in `/`, which makes the substring test exact; set it as the loader's "
    "`splits` and call `get_paths()` again, or use "
    "`sen12ms_build.variants.loaders.SEN12MSCRDataset`, which matches scene ids exactly.")


def _variant(cfg: Any) -> str:
    return str(getattr(cfg, "variant", "sen12ms") or "sen12ms") if cfg is not None else \
        "sen12ms"


# --- cr: STAC, Croissant, data card ----------------------------------------------------------

def number(x: Any) -> float | None:
    try:
        return float(x) if x not in (None, "") else None
    except ValueError:
        return None


def add_cloudy_assets(item: Any, row: dict[str, str], root: Path, item_dir: Path) -> None:
    """The ``cr`` pair on one STAC Item: assets ``s2_cloudy`` (its own ``datetime``) and
    ``s2_cloudy_mask``, ``datetime`` on the cloud-free ``s2`` asset (its largest source),
    the pair's properties."""
    import pystac

    def rel(p: str) -> str:
        return Path(os.path.relpath(Path(root) / p, item_dir)).as_posix()

    tif = pystac.MediaType.GEOTIFF
    item.add_asset("s2_cloudy", pystac.Asset(
        rel(row["s2_cloudy"]), "Sentinel-2 L1C cloudy input (one acquisition, unmosaicked)",
        media_type=tif, roles=["data"],
        extra_fields={"datetime": row["cloudy_datetime"],
                      "sen12ms:product_id": row["cloudy_product_id"]}))
    item.add_asset("s2_cloudy_mask", pystac.Asset(
        rel(row["s2_cloudy_mask"]), "cloud and shadow masks of the cloudy input (s2cloudless "
        "threshold 0.4, average_over 4, dilation_size 2; shadow projection)",
        media_type=tif, roles=["metadata", "cloud"]))
    if row.get("target_datetime"):
        item.assets["s2"].extra_fields["datetime"] = row["target_datetime"]
    from pystac.extensions.eo import EOExtension

    EOExtension.ext(item.assets["s2_cloudy"], add_if_missing=True).bands = \
        EOExtension.ext(item.assets["s2"]).bands
    item.properties.update({
        "sen12ms:variant": "cr", "sen12ms:cloud_coverage": number(row.get("cloud_coverage")),
        "sen12ms:shadow_coverage": number(row.get("shadow_coverage")),
        "sen12ms:time_gap_days": number(row.get("time_gap_days")),
        "sen12ms:cloudy_datetime": row["cloudy_datetime"],
        "sen12ms:target_datetime": row.get("target_datetime", "")})
    times = [item.properties["start_datetime"], item.properties["end_datetime"],
             row["cloudy_datetime"]]
    item.properties["start_datetime"] = min(times)
    item.properties["end_datetime"] = max(times)


#: Croissant fields of the ``cr`` pair: (manifest column, data type, description).
CR_FIELDS = [
    ("s2_cloudy", "sc:Text", "cloudy Sentinel-2 input patch GeoTIFF, relative path"),
    ("s2_cloudy_mask", "sc:Text", "its cloud (band 1) and shadow (band 2) masks"),
    ("cloud_coverage", "sc:Float", "share of the cloudy patch under cloud (its mask)"),
    ("shadow_coverage", "sc:Float", "share of the cloudy patch under cloud shadow"),
    ("cloudy_datetime", "sc:Text", "sensing time of the cloudy input"),
    ("target_datetime", "sc:Text", "sensing time of the target's largest source"),
    ("time_gap_days", "sc:Float", "days between the two"),
]


def croissant_extras(doc: dict[str, Any], cfg: Any) -> dict[str, Any]:
    """``doc`` (the paper's Croissant) with the ``cr`` pair's fields and file sets; as is
    for other variants."""
    if _variant(cfg) != "cr":
        return doc
    for rs in doc.get("recordSet", []):
        split = rs["@id"]
        fid = rs["field"][0]["source"]["fileObject"]["@id"]
        rs["field"] += [{"@type": "cr:Field", "@id": f"{split}/{col}", "name": col,
                         "description": desc, "dataType": dtype,
                         "source": {"fileObject": {"@id": fid}, "extract": {"column": col}}}
                        for col, dtype, desc in CR_FIELDS]
        rs["description"] = f"{split} split: one record per cloudy/cloud-free patch pair"
    for dd, what in (("s2_cloudy", "cloudy Sentinel-2 input"),
                     ("s2_cloudy_mask", "cloud and shadow masks")):
        doc["distribution"].append({
            "@type": "cr:FileSet", "@id": f"{dd}-patches", "name": f"{dd}-patches",
            "description": f"{what} patch GeoTIFFs", "encodingFormat": "image/tiff",
            "includes": f"ROIs*_{dd}/{dd}_*/*.tif"})
    for f in doc["distribution"]:  # the s1/s2/lc/qa sets live in their own branch folders
        if f.get("@type") == "cr:FileSet" and f["@id"] in ("s1-patches", "s2-patches",
                                                            "lc-patches", "qa-patches"):
            dd = f["@id"].split("-")[0]
            f["includes"] = f"ROIs*_{dd}/{dd}_*/*.tif"
    doc["description"] = ("SEN12MS-CR-style cloud-removal pairs: " + doc["description"]
                          + " Each pair adds one real cloudy Sentinel-2 L1C acquisition of the "
                          "same season and its cloud and shadow masks.")
    doc["keywords"] = [*doc.get("keywords", []), "cloud removal", "SEN12MS-CR"]
    doc["citeAs"] = f"{CR_CITATION}. {doc.get('citeAs', '')}"
    return doc


def datacard_intro(cfg: Any) -> str | None:
    """The data card's opening paragraph of a variant (None: the paper's)."""
    if _variant(cfg) != "cr":
        return None
    return ("SEN12MS-CR-style cloud-removal pairs: Sentinel-1 SAR (VV, VH, sigma0 dB), a "
            "cloud-free Sentinel-2 L1C mosaic (the target) and one real cloudy Sentinel-2 L1C "
            "acquisition of the same season (the input), with the input's cloud and shadow "
            "masks, in the released SEN12MS-CR layout "
            "(`ROIs<seed>_<season>_<s1|s2|s2_cloudy>/<mod>_<scene>/"
            "ROIs<seed>_<season>_<mod>_<scene>_p<n>.tif`); MODIS land cover (`_lc`), the "
            "target's quality layers (`_qa`) and the masks (`_s2_cloudy_mask`: band 1 cloud, "
            "band 2 shadow, 1 yes, 0 no, 255 no data) are extras beside it. `manifest.csv` has "
            "one row per pair; `stac/` a STAC catalog; `croissant.json` a Croissant "
            "description.")


def coverage_histogram(values: list[float]) -> list[int]:
    """Counts of ``values`` (0..1) in tenths (the last bin includes 1.0)."""
    return np.histogram(values, bins=np.linspace(0.0, 1.0, 11))[0].tolist()


def datacard_lines(root: Path, cfg: Any, kept: list[dict[str, str]],
                   scenes: list[dict[str, str]]) -> list[str]:
    """The ``cr`` section of the data card (nothing for other variants)."""
    if _variant(cfg) != "cr":
        return []
    cr = cfg.cloud_removal
    cov = [float(r["cloud_coverage"]) for r in kept if r.get("cloud_coverage")]
    gaps = [float(r["time_gap_days"]) for r in kept if r.get("time_gap_days")]
    hist = coverage_histogram(cov)
    lines = ["", "## Cloud-removal pairs (variant `cr`)", "",
             "The cloudy input of a scene is one real acquisition of its season and ROI: "
             "among the acquisitions other than the mosaic's dominant source image (the one "
             "giving it most pixels) that cover at least "
             f"{cr.min_coverage_percent:g} % of the ROI, the one closest in time to the "
             f"dominant image whose CLOUDY_PERCENTAGE over the ROI lies in "
             f"[{cr.cloud_band[0]:g}, {cr.cloud_band[1]:g}] % (none inside: the one "
             "nearest the band). It is exported unmosaicked on the target's grid. Its clouds "
             "never reject a pair; nodata, saturation and band dropouts do "
             "(`cloudy_nodata`, `cloudy_saturated`, `cloudy_stripe`).", "",
             f"Masks: s2cloudless with threshold {cr.mask_threshold:g}, average_over "
             f"{cr.mask_average_over}, dilation_size {cr.mask_dilation_size} (the authors' "
             "loaders' settings) at 10 m; shadows by the mosaicking's projection of those "
             "clouds along the sun.", "",
             f"Cloud coverage of the {len(cov)} kept cloudy patches: mean "
             f"{np.mean(cov) if cov else 0:.3f}, min {min(cov) if cov else 0:.3f}, max "
             f"{max(cov) if cov else 0:.3f}; time gap input-target: mean "
             f"{np.mean(gaps) if gaps else 0:.1f} days, max {max(gaps) if gaps else 0:.1f}.",
             "", "| coverage | " + " | ".join(f"{k / 10:.1f}-{(k + 1) / 10:.1f}"
                                              for k in range(10)) + " |",
             "|---|" + "---|" * 10, "| patches | " + " | ".join(map(str, hist)) + " |", "",
             "Cloudy input per scene (`scenes.csv`):", "",
             "| branch | scene | cloudy input | date | CLOUDY_PERCENTAGE | dominant image "
             "date | gap (days) |", "|---|---|---|---|---|---|---|"]
    for s in scenes:
        if s.get("cloudy_product_id"):
            lines.append(f"| {s['branch']} | {s['scene']} | {s['cloudy_product_id']} | "
                         f"{s['cloudy_datetime'][:10]} | {s['cloudy_percentage']} | "
                         f"{s['dominant_datetime'][:10]} | {s['scene_gap_days']} |")
    lines += ["", "### Loading it", "", LOADERS_NOTE, "", "Cite: " + CR_CITATION + "."]
    return lines
