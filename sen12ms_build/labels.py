"""The 10 m land-cover label products a run may add to the triplet, and their class tables.

One home for the classes of ESA WorldCover and Google's Dynamic World: codes, names,
official colours, and the mapping of each into the simplified IGBP scheme of the IEEE GRSS
Data Fusion Contest 2020 (DFC2020) that SEN12MS users evaluate on. The numpy side (look-up
tables, :func:`lut`) and the Earth Engine side (``ee.Image.remap`` lists, :func:`remap_lists`)
read the same tuples, so the two backends cannot disagree. No import from the package.

Products (``labels:`` in the config, ``--labels`` on the command line):

* ``worldcover``: ESA WorldCover 10 m, one band ``Map`` of the 11 codes of
  :data:`WORLDCOVER_CLASSES` (10 tree cover ... 100 moss and lichen), uint8, nodata 0 (the
  product's own). Versions :data:`WORLDCOVER_VERSIONS`: ``v100`` (the 2020 map) and
  ``v200`` (2021). Licence CC-BY-4.0 (:data:`ATTRIBUTION`). Files ``wc_<scene>/``.
* ``dynamicworld``: Google / WRI Dynamic World V1 over the season's Sentinel-2 images: the
  per-pixel mode of ``label`` (indices 0-8 of :data:`DYNAMICWORLD_CLASSES`) and the mean of
  the 9 class probabilities, Earth Engine only. Written as 10 uint8 bands: ``label``
  (nodata 255), then the probabilities x :data:`DW_PROB_SCALE` (250: 0.4 % steps;
  255 nodata). Licence CC-BY-4.0. Files ``dw_<scene>/``.

Why uint8 for the probabilities: a float32 patch of 10 bands is 2.6 MB, a uint8 one 0.66 MB
(x 180,000 patches: 470 GB against 118 GB), and the quantisation error (at most 0.002) is
far below the spread of a season's probabilities and the model's own uncertainty; uint16
would double the size for precision nobody can use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: ``labels:`` choices that add a modality, by the data id of its files (``wc_<scene>/``).
PRODUCT_IDS: dict[str, str] = {"worldcover": "wc", "dynamicworld": "dw"}
#: The reverse: data id -> product.
PRODUCT_OF: dict[str, str] = {v: k for k, v in PRODUCT_IDS.items()}


@dataclass(frozen=True)
class LabelClass:
    """One class of a label product: its value in the files, name and official colour
    (``RRGGBB``, as STAC's classification extension ``color-hint``)."""

    value: int
    name: str
    color: str
    #: the simplified IGBP / DFC2020 class (:data:`DFC_CLASSES`) it maps to
    dfc: int


# --- the simplified IGBP scheme (DFC2020) -------------------------------------------------------

#: The simplified IGBP scheme of the IEEE GRSS Data Fusion Contest 2020, on which SEN12MS
#: users evaluate (value -> name). Source: the contest organisers' baseline
#: (github.com/lukasliebel/dfc2020_baseline, ``code/datasets.py``, ``DFC2020_CLASSES``) and
#: Yokoya et al., "2020 IEEE GRSS Data Fusion Contest", IEEE GRSS, 2020. 0: no data.
DFC_CLASSES: dict[int, str] = {
    1: "Forest", 2: "Shrubland", 3: "Savanna", 4: "Grassland", 5: "Wetlands",
    6: "Croplands", 7: "Urban/Built-up", 8: "Snow/Ice", 9: "Barren", 10: "Water"}
#: MODIS IGBP (LC_Type1, the ``lc`` patches' band 1, values 1-17) -> DFC2020: the organisers'
#: ``DFC2020_CLASSES`` look-up (index = IGBP value): forests 1-5 -> 1, shrublands 6-7 -> 2,
#: savannas 8-9 -> 3, 10 -> 4, 11 -> 5, 12 -> 6, 13 -> 7, 14 (cropland/natural mosaics)
#: -> 6, 15 -> 8, 16 -> 9, 17 -> 10.
IGBP_TO_DFC: tuple[int, ...] = (0, 1, 1, 1, 1, 1, 2, 2, 3, 3, 4, 5, 6, 7, 6, 8, 9, 10)

# --- ESA WorldCover -----------------------------------------------------------------------------

#: WorldCover's 11 classes with their official colours (the product user manuals v1.0 and
#: v2.0, table "Map" legend; the same values and colours as Planetary Computer's
#: ``esa-worldcover`` ``classification:classes``). DFC2020 mapping: by the class
#: definitions of both schemes (WorldCover PUM, IGBP definitions in the MCD12Q1 user guide,
#: Sulla-Menashe & Friedl 2018): mangroves are woody wetlands, IGBP "permanent wetlands"
#: (lands with a permanent mixture of water and herbaceous *or woody* vegetation), so 5;
#: moss and lichen (tundra, no IGBP class of its own) goes to grassland, the IGBP class of
#: open low vegetation (4); bare / sparse vegetation (< 10 % cover) to barren (9).
WORLDCOVER_CLASSES: tuple[LabelClass, ...] = (
    LabelClass(10, "Tree cover", "006400", 1),
    LabelClass(20, "Shrubland", "FFBB22", 2),
    LabelClass(30, "Grassland", "FFFF4C", 4),
    LabelClass(40, "Cropland", "F096FF", 6),
    LabelClass(50, "Built-up", "FA0000", 7),
    LabelClass(60, "Bare / sparse vegetation", "B4B4B4", 9),
    LabelClass(70, "Snow and ice", "F0F0F0", 8),
    LabelClass(80, "Permanent water bodies", "0064C8", 10),
    LabelClass(90, "Herbaceous wetland", "0096A0", 5),
    LabelClass(95, "Mangroves", "00CF75", 5),
    LabelClass(100, "Moss and lichen", "FAE6A0", 4),
)
WORLDCOVER_NODATA = 0
#: Version -> (year mapped, Earth Engine image collection, Planetary Computer's
#: ``esa_worldcover:product_version``).
WORLDCOVER_VERSIONS: dict[str, tuple[int, str, str]] = {
    "v100": (2020, "ESA/WorldCover/v100", "1.0.0"),
    "v200": (2021, "ESA/WorldCover/v200", "2.0.0"),
}
#: The default version: the 2020 map, the nearest in time to SEN12MS's 2016-2017 seasons.
WORLDCOVER_DEFAULT_VERSION = "v100"
#: WorldCover's native grid: EPSG:4326 at 1/12000 degree (the 3 x 3 degree tiles'
#: 36000 x 36000 pixels; ``proj:transform`` of the published items).
WORLDCOVER_RES_DEG = 1.0 / 12000.0
#: Band name of the class map (Earth Engine ``Map``; Planetary Computer asset ``map``).
WORLDCOVER_BAND = "Map"

# --- Dynamic World ------------------------------------------------------------------------------

#: Dynamic World V1's 9 classes: index (the ``label`` band), band name of its probability,
#: the official palette (Earth Engine catalogue page GOOGLE_DYNAMICWORLD_V1, ``label``
#: class table) and the DFC2020 class (by the class definitions of Brown et al. 2022).
DYNAMICWORLD_CLASSES: tuple[LabelClass, ...] = (
    LabelClass(0, "water", "419BDF", 10),
    LabelClass(1, "trees", "397D49", 1),
    LabelClass(2, "grass", "88B053", 4),
    LabelClass(3, "flooded_vegetation", "7A87C6", 5),
    LabelClass(4, "crops", "E49635", 6),
    LabelClass(5, "shrub_and_scrub", "DFC35A", 2),
    LabelClass(6, "built", "C4281B", 7),
    LabelClass(7, "bare", "A59B8F", 9),
    LabelClass(8, "snow_and_ice", "B39FE1", 8),
)
DYNAMICWORLD_COLLECTION = "GOOGLE/DYNAMICWORLD/V1"
DW_LABEL_BAND = "label"
DW_PROB_BANDS: tuple[str, ...] = tuple(c.name for c in DYNAMICWORLD_CLASSES)
#: Probabilities are written as ``round(p * DW_PROB_SCALE)`` (0..250; 255 is nodata).
DW_PROB_SCALE = 250
DW_NODATA = 255
#: The projection scale (metres) the season's composite is pinned to: the Sentinel-2
#: images' 10 m bands (``setDefaultProjection``), not Earth Engine's default composite
#: projection (EPSG:4326 at 1 degree).
DW_SCALE_M = 10

#: ``maxPixels`` of the Earth Engine labels' ``reduceResolution``: source pixels per output
#: pixel at most (1/12000 degree into 0.0001 degree: about 1.44; room for any export grid).
LABEL_MAX_PIXELS = 1024

#: Licence and the attribution each product requires (its terms of use), for the data card.
ATTRIBUTION: dict[str, tuple[str, str]] = {
    "worldcover": (
        "CC-BY-4.0",
        "© ESA WorldCover project {year} / Contains modified Copernicus Sentinel data "
        "({year}) processed by ESA WorldCover consortium. Zanaga, D. et al. (2021, 2022): "
        "ESA WorldCover 10 m {year} {version}, doi:10.5281/zenodo.5571936 (v100), "
        "doi:10.5281/zenodo.7254221 (v200)."),
    "dynamicworld": (
        "CC-BY-4.0",
        "This dataset is produced for the Dynamic World Project by Google in partnership "
        "with National Geographic Society and the World Resources Institute. Brown, C.F. "
        "et al. (2022): Dynamic World, Near real-time global 10 m land use land cover "
        "mapping. Scientific Data 9, 251, doi:10.1038/s41597-022-01307-4."),
}


def classes(product: str) -> tuple[LabelClass, ...]:
    """The class table of ``worldcover`` or ``dynamicworld`` (a data id ``wc``/``dw`` too)."""
    product = PRODUCT_OF.get(product, product)
    if product == "worldcover":
        return WORLDCOVER_CLASSES
    if product == "dynamicworld":
        return DYNAMICWORLD_CLASSES
    raise ValueError(f"unknown label product {product!r}; choose worldcover or dynamicworld")


def nodata(product: str) -> int:
    """The nodata value of a product's class band (WorldCover 0, Dynamic World 255)."""
    classes(product)  # known product
    return WORLDCOVER_NODATA if PRODUCT_OF.get(product, product) == "worldcover" else DW_NODATA


def values(product: str) -> tuple[int, ...]:
    """The class values a product's class band may hold (nodata aside)."""
    return tuple(c.value for c in classes(product))


def remap_lists(product: str) -> tuple[list[int], list[int]]:
    """(from, to) lists of a product's classes -> DFC2020 (``ee.Image.remap`` takes them;
    :func:`lut` is the same mapping for numpy)."""
    table = classes(product)
    return [c.value for c in table], [c.dfc for c in table]


def lut(product: str) -> np.ndarray:
    """(256,) uint8 look-up table: a product's class value -> DFC2020 class, 0 for nodata
    and any value that is not a class (``lut(p)[arr]``). ``product`` may be ``igbp`` too
    (the MODIS ``lc`` band 1)."""
    out = np.zeros(256, np.uint8)
    if product == "igbp":
        out[:len(IGBP_TO_DFC)] = IGBP_TO_DFC
        return out
    src, dst = remap_lists(product)
    out[src] = dst
    return out


def palette(product: str) -> np.ndarray:
    """(256, 3) uint8 RGB of each value: the official colour of each class, black for
    nodata and values that are not classes."""
    out = np.zeros((256, 3), np.uint8)
    for c in classes(product):
        out[c.value] = [int(c.color[i:i + 2], 16) for i in (0, 2, 4)]
    return out


def class_counts(band: np.ndarray, product: str) -> dict[int, int]:
    """Pixels per class of a class band (nodata left out), in class order."""
    v, n = np.unique(band[band != nodata(product)], return_counts=True)
    got = dict(zip(v.tolist(), n.tolist()))
    return {c.value: int(got[c.value]) for c in classes(product) if c.value in got}


def dominant(counts: dict[int, int]) -> tuple[int | None, float]:
    """(most frequent class, its share of the labelled pixels) of :func:`class_counts`;
    (None, 0.0) without any labelled pixel; a tie goes to the lower class value."""
    total = sum(counts.values())
    if not total:
        return None, 0.0
    best = min(counts, key=lambda k: (-counts[k], k))
    return best, counts[best] / total


def resampling_for(src_px: tuple[float, float], dst_px: tuple[float, float]) -> str:
    """The resampling of a class raster: ``mode`` where the source pixels are finer than
    the target's along both axes (several source pixels fall in one target pixel: the
    majority wins), else ``nearest`` (a target pixel lies in one source pixel, where mode
    and nearest agree). Never an interpolation: no class is invented on a boundary.

    Args:
        src_px, dst_px: (x, y) pixel sizes, in the same unit.
    """
    finer = all(abs(s) < abs(d) * (1 - 1e-9) for s, d in zip(src_px, dst_px))
    return "mode" if finer else "nearest"
