"""The data card: ``README.md`` in the dataset root, written from the root metadata.

Counts per season, the IGBP class histogram (from each patch's ``landcover:igbp_counts``
tag, kept in the scene records), the split and how it was drawn, the sources with their
licences and citations, and the tool version and config fingerprint.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from . import cr_describe, layout
from ..raster.io import atomic_write_text
from ..products import (LC_COLLECTION, S1_COLLECTION, S2_COLLECTION, S2_LEVEL_SUMMARY,
                        level_of, s2_modality)

IGBP_NAMES = {1: "Evergreen Needleleaf Forests", 2: "Evergreen Broadleaf Forests",
              3: "Deciduous Needleleaf Forests", 4: "Deciduous Broadleaf Forests",
              5: "Mixed Forests", 6: "Closed Shrublands", 7: "Open Shrublands",
              8: "Woody Savannas", 9: "Savannas", 10: "Grasslands", 11: "Permanent Wetlands",
              12: "Croplands", 13: "Urban and Built-up Lands",
              14: "Cropland/Natural Vegetation Mosaics", 15: "Permanent Snow and Ice",
              16: "Barren", 17: "Water Bodies"}
SOURCES = f"""| source | product | licence | citation |
|---|---|---|---|
| Sentinel-2 L1C (Copernicus, ESA) | `{S2_COLLECTION}` | Copernicus Sentinel data: free, full and open access; attribution "Contains modified Copernicus Sentinel data [year]" (Regulation (EU) 1159/2013) | ESA Sentinel-2 User Handbook |
| Sentinel-1 GRD IW (Copernicus, ESA) | `{S1_COLLECTION}` | as above | ESA Sentinel-1 User Handbook |
| MODIS MCD12Q1 v6.1 (NASA LP DAAC) | `{LC_COLLECTION}` | NASA EOSDIS data: no restrictions on use | Friedl M, Sulla-Menashe D (2022) MCD12Q1 MODIS/Terra+Aqua Land Cover Type Yearly L3 Global 500m SIN Grid V061. NASA EOSDIS LP DAAC. doi:10.5067/MODIS/MCD12Q1.061 |

Dataset design (cite when you use this dataset): Schmitt M, Hughes LH, Qiu C, Zhu XX (2019)
SEN12MS - a curated dataset of georeferenced multi-spectral Sentinel-1/2 imagery for deep
learning and data fusion. ISPRS Annals IV-2/W7: 153-160. doi:10.5194/isprs-annals-IV-2-W7-153-2019.
The published SEN12MS is licensed CC-BY 4.0; this rebuild is offered under the same licence."""


def config_fingerprint(cfg: Any) -> str:
    """SHA-256 (first 16 hex digits) of the config's settings (its ``source`` left out)."""
    if cfg is None:
        return ""
    data = {k: v for k, v in asdict(cfg).items() if k != "source"}
    if not getattr(cfg, "label_product", None):  # no labels: the keys that add them left
        data.pop("labels", None)                 # out, so a paper run keeps its fingerprint
        data.pop("worldcover_version", None)
        data["curation"] = {k: v for k, v in data.get("curation", {}).items()
                            if "labels" not in k}
    if data.get("variant", "sen12ms") == "sen12ms":  # the paper's: as before the variants
        data.pop("variant", None)
        data.pop("cloud_removal", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def labels_section(summary: _Kept) -> list[str]:
    """The data card's lines on the 10 m labels of a run with ``labels:`` (empty without):
    the product, its files, classes and colours, the class histogram, and the licence and
    attribution its terms require."""
    from ..labels import ATTRIBUTION, PRODUCT_OF, classes

    extra = [dd for dd in layout.EXTRA_DATA_IDS if dd in summary.header]
    if not extra:
        return []
    dd = extra[0]
    product = PRODUCT_OF[dd]
    first = summary.first_labelled
    version, period = first.get("labels_version", ""), first.get("labels_period", "")
    licence, attribution = ATTRIBUTION[product]
    year = period if product == "worldcover" else ""
    hist = summary.label_hist
    total = sum(hist.values()) or 1
    what = {"worldcover": f"ESA WorldCover {version} ({period}), band `Map`: the product's "
                          "codes, uint8, nodata 0",
            "dynamicworld": f"Dynamic World V1 over the season ({period}): band 1 the mode "
                            "of `label` (0-8), bands 2-10 the mean probability of each class "
                            "x 250 (0..250), uint8, nodata 255"}[product]
    lines = ["", "## 10 m labels", "",
             f"`{dd}_<scene>/`: {what}; {first.get('labels_product', '')}. Same grid as the "
             "triplet; classes resampled by nearest neighbour, or by mode from finer pixels, "
             "never interpolated. SEN12MS loaders build their paths from the s2 names and "
             f"never read `{dd}_` folders. Per patch: `labels_counts`, `labels_dominant`, "
             "`labels_purity` in `manifest.csv`; the mapping of each class into the "
             "simplified IGBP scheme of DFC2020 is in `sen12ms_build.labels`.", "",
             "| value | class | colour | DFC2020 | pixels | share |", "|---|---|---|---|---|---|"]
    from ..labels import DFC_CLASSES

    lines += [f"| {c.value} | {c.name} | #{c.color} | {c.dfc} {DFC_CLASSES[c.dfc]} | "
              f"{hist.get(c.value, 0)} | {100 * hist.get(c.value, 0) / total:.2f} % |"
              for c in classes(product)]
    lines += ["", f"Licence {licence}. Required attribution: "
              + attribution.format(year=year or "2020", version=version)]
    return lines


@dataclass
class _Kept:
    """What the data card needs of the kept patches, gathered in one pass over the manifest
    (row by row, so a 180k-patch manifest is never held in memory)."""

    header: list[str] = field(default_factory=list)
    #: kept, train and test patches per branch
    per_branch: dict[str, Counter] = field(default_factory=dict)
    #: IGBP pixels of the kept patches
    hist: Counter = field(default_factory=Counter)
    #: 10 m label pixels of the kept patches (a run with ``labels:``)
    label_hist: Counter = field(default_factory=Counter)
    first_labelled: dict[str, str] = field(default_factory=dict)
    #: the cloud-removal columns of the kept patches (the ``cr`` variant)
    cr_rows: list[dict[str, str]] = field(default_factory=list)


def _counts(r: dict[str, str], key: str, into: Counter) -> None:
    for pair in filter(None, r.get(key, "").split(";")):
        k, v = pair.split(":")
        into[int(k)] += int(v)


def _kept_counts(manifest: Path) -> _Kept:
    """One pass over ``manifest.csv``: the counts and histograms of its kept patches."""
    out = _Kept()
    with open(manifest, newline="", encoding="utf-8") as f:
        out.header = next(csv.reader(f), None) or []
    for r in layout.iter_csv(manifest):
        if r["status"] != "kept":
            continue
        c = out.per_branch.setdefault(r["branch"], Counter())
        c["kept"] += 1
        c[r.get("split", "")] += 1
        _counts(r, "igbp_counts", out.hist)
        if r.get("labels_product"):
            _counts(r, "labels_counts", out.label_hist)
            out.first_labelled = out.first_labelled or r
        if r.get("cloud_coverage") or r.get("time_gap_days"):
            out.cr_rows.append({k: r[k] for k in ("cloud_coverage", "time_gap_days")
                                if k in r})
    return out


def write_datacard(root: Path, cfg: Any) -> Path:
    """Write ``<root>/README.md``."""
    from .splits import read_info

    root = Path(root)
    scenes = layout.read_csv(root / "scenes.csv")
    kept = _kept_counts(root / "manifest.csv")
    hist = kept.hist
    lines = [f"# {root.name}: a SEN12MS-style dataset", "",
             f"Sentinel-1 SAR (VV, VH, sigma0 dB), {S2_LEVEL_SUMMARY[level_of(cfg)]} "
             "and MODIS land cover (IGBP, LCCS) as patch triplets of "
             f"{layout.patch_description(cfg)} in UTM, in the SEN12MS layout "
             "(`ROIs<seed>_<season>/<s1|s2|lc>_<scene>/`). "
             "Quality layers (cloud, shadow, source-image index) are in `qa_<scene>/`; "
             "every patch's GeoTIFF tags give its sources (`gdalinfo` shows them); "
             "`manifest.csv` has one row per patch; `stac/` a STAC catalog; "
             "`croissant.json` a Croissant description.", "",
             f"Sentinel-2 bands, in file order: "
             f"{', '.join(s2_modality(level_of(cfg)).bands)}"
             + (" (Level-2A has no B10; bottom-of-atmosphere reflectance x 10000, the "
                "-1000 DN offset of processing baseline 04.00+ removed)."
                if level_of(cfg) == "l2a" else
                " (Level-1C top-of-atmosphere reflectance x 10000)."), "",
             "## Counts per season", "",
             "| branch | season | scenes | scenes kept | patches kept | train | test |",
             "|---|---|---|---|---|---|---|"]
    intro = cr_describe.datacard_intro(cfg)  # a variant's layout (None: the paper's)
    if intro:
        lines[2] = intro
    by_branch: dict[str, list[dict]] = {}
    for r in scenes:
        by_branch.setdefault(r["branch"], []).append(r)
    for branch, sc in sorted(by_branch.items()):
        pk = kept.per_branch.get(branch, Counter())
        lines.append(f"| {branch} | {sc[0]['season']} | {len(sc)} | "
                     f"{sum(r['status'] == 'kept' for r in sc)} | {pk['kept']} | "
                     f"{pk['train']} | {pk['test']} |")
    total = sum(hist.values()) or 1
    lines += ["", "## IGBP class histogram (pixels of kept patches)", "",
              "| class | name | pixels | share |", "|---|---|---|---|"]
    lines += [f"| {k} | {IGBP_NAMES.get(k, '?')} | {v} | {100 * v / total:.2f} % |"
              for k, v in sorted(hist.items())]
    info = read_info(root) or {}
    lines += ["", "## Split", "",
              f"Method `{info.get('method', '?')}` (seed {info.get('seed', '?')}, test "
              f"fraction {info.get('test_fraction', '?')}): {info.get('train_patches', 0)} "
              f"train and {info.get('test_patches', 0)} test patches; "
              f"{info.get('train_scenes', '?')} train and {info.get('test_scenes', '?')} test "
              f"scenes; area shared between train and test footprints: "
              f"{info.get('shared_area_m2', '?')} m². Details: `splits.json`."]
    if info.get("method") == "groups":
        lines.append(f"ROIs whose footprints overlap or touch in any season form one group "
                     f"({len(info.get('groups', []))} groups); whole groups go to one side.")
    lines += cr_describe.datacard_lines(root, cfg, kept.cr_rows, scenes)
    sources = SOURCES if level_of(cfg) == "l1c" else SOURCES.replace(
        "| Sentinel-2 L1C (Copernicus, ESA) |", "| Sentinel-2 L2A (Copernicus, ESA) |")
    lines += labels_section(kept)
    lines += ["", "## Sources, licences, citation", "", sources, "",
              "## Build", "", f"- tool: sen12ms-build {__version__}",
              f"- config fingerprint: `{config_fingerprint(cfg)}`"
              + (f" ({cfg.source})" if cfg is not None and cfg.source else ""), ""]
    out = root / "README.md"
    atomic_write_text(out, "\n".join(lines))
    return out
