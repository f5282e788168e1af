"""The three modalities of a SEN12MS triplet: bands, dtypes, nodata, resampling.

One home for what both backends export and what the tiler writes, so that the
local and the Earth Engine backends produce the same bands in the same order.

Conventions (as in the published SEN12MS dataset):

* ``s1``: float32, 2 bands (VV, VH), sigma0 backscatter in dB; nodata NaN.
* ``s2``: uint16, 13 bands (B1 ... B12 with B8A after B8), Level-1C top-of-atmosphere
  digital numbers (reflectance x 10000); nodata 0. A dataset built from Level-2A (the
  ``stac`` backend's ``level: l2a``) has the 12 bands that product has (no B10, the cirrus
  band, which L2A drops): :data:`S2_L2A`, bottom-of-atmosphere reflectance x 10000.
* ``lc``: uint16, 4 bands (IGBP, LCCS LC, LCCS LU, LCCS SH) from MODIS MCD12Q1; nodata 255.

A run may add a fourth modality, 10 m land-cover labels (``labels:`` in the config; class
tables in :mod:`sen12ms_build.labels`): ``wc`` (ESA WorldCover, uint8, 1 band, nodata 0)
or ``dw`` (Dynamic World, uint8, label + 9 probabilities x 250, nodata 255):
:data:`EXTRA_MODALITIES`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .labels import DW_LABEL_BAND, DW_NODATA, DW_PROB_BANDS, WORLDCOVER_BAND, WORLDCOVER_NODATA

S2_BANDS: tuple[str, ...] = (
    "B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12",
)
#: Native ground sampling distance of each Sentinel-2 band in metres.
S2_NATIVE_RES_M: dict[str, int] = {
    "B1": 60, "B2": 10, "B3": 10, "B4": 10, "B5": 20, "B6": 20, "B7": 20,
    "B8": 10, "B8A": 20, "B9": 60, "B10": 60, "B11": 20, "B12": 20,
}
S1_BANDS: tuple[str, ...] = ("VV", "VH")
LC_BANDS: tuple[str, ...] = ("IGBP", "LCCS_LC", "LCCS_LU", "LCCS_SH")
#: MODIS MCD12Q1 band names behind LC_BANDS, in the same order.
LC_MODIS_BANDS: tuple[str, ...] = ("LC_Type1", "LC_Prop1", "LC_Prop2", "LC_Prop3")


@dataclass(frozen=True)
class Modality:
    """One data source of a triplet.

    Attributes:
        key: the dataset's data identifier (``s1``, ``s2``, ``lc``).
        bands: band names in file order.
        descriptions: GeoTIFF band descriptions written into every file.
        dtype: numpy dtype name of the patches.
        nodata: nodata value of the patches (NaN for s1).
        resampling: default resampling for the UTM warp (rasterio name).
        all_bands_nodata: a pixel is no-data only when every band is at ``nodata``.
    """

    key: str
    bands: tuple[str, ...]
    descriptions: tuple[str, ...]
    dtype: str
    nodata: float
    resampling: str
    all_bands_nodata: bool = False

    @property
    def count(self) -> int:
        return len(self.bands)

    def nodata_mask(self, arr: np.ndarray) -> np.ndarray:
        """Boolean (H, W) mask of no-data pixels of a (C, H, W) array: any band at nodata,
        except for ``s2``, where L1C marks no-data with 0 in *every* band (a single 0, e.g.
        B10 over dark water, is a valid value)."""
        if np.isnan(self.nodata):
            hit = np.isnan(arr)
        else:
            hit = arr == self.nodata
        return np.all(hit, axis=0) if self.all_bands_nodata else np.any(hit, axis=0)


S1 = Modality(
    key="s1",
    bands=S1_BANDS,
    descriptions=("VV sigma0 (dB)", "VH sigma0 (dB)"),
    dtype="float32",
    nodata=float("nan"),
    resampling="bilinear",
)
S2 = Modality(
    key="s2",
    bands=S2_BANDS,
    descriptions=S2_BANDS,
    dtype="uint16",
    nodata=0,
    resampling="bilinear",
    all_bands_nodata=True,
)
LC = Modality(
    key="lc",
    bands=LC_BANDS,
    descriptions=("IGBP", "LCCS land cover", "LCCS land use", "LCCS surface hydrology"),
    dtype="uint16",
    nodata=255,
    resampling="nearest",  # classes are never interpolated
)

MODALITIES: dict[str, Modality] = {m.key: m for m in (S1, S2, LC)}

#: ESA WorldCover 10 m classes (``labels: worldcover``): the product's own coding.
WC = Modality(
    key="wc",
    bands=(WORLDCOVER_BAND,),
    descriptions=("ESA WorldCover class",),
    dtype="uint8",
    nodata=WORLDCOVER_NODATA,
    resampling="nearest",  # classes are never interpolated (labels.resampling_for)
)
#: Dynamic World over the season (``labels: dynamicworld``): the mode of ``label`` (0-8),
#: then the mean probability of each class x 250 (0..250).
DW = Modality(
    key="dw",
    bands=(DW_LABEL_BAND, *DW_PROB_BANDS),
    descriptions=("Dynamic World label (mode of the season)",
                  *(f"{b} probability x 250 (mean of the season)" for b in DW_PROB_BANDS)),
    dtype="uint8",
    nodata=DW_NODATA,
    resampling="nearest",
)
#: Modalities a run may add to the triplet, by data id (the files' ``<id>_<scene>/``).
EXTRA_MODALITIES: dict[str, Modality] = {m.key: m for m in (WC, DW)}
#: Every modality a patch file may be, by data id.
ALL_MODALITIES: dict[str, Modality] = {**MODALITIES, **EXTRA_MODALITIES}

#: Level-2A bands: what the product holds (no B10: Level-2A drops the cirrus band).
S2_L2A_BANDS: tuple[str, ...] = tuple(b for b in S2_BANDS if b != "B10")
#: Sentinel-2 Level-2A surface reflectance x 10000 (harmonized: the -1000 DN offset of
#: processing baseline 04.00 and later removed), 12 bands; nodata 0.
S2_L2A = Modality(
    key="s2",
    bands=S2_L2A_BANDS,
    descriptions=S2_L2A_BANDS,
    dtype="uint16",
    nodata=0,
    resampling="bilinear",
    all_bands_nodata=True,
)
#: The Sentinel-2 product level of a dataset -> its ``s2`` modality.
S2_LEVELS: dict[str, Modality] = {"l1c": S2, "l2a": S2_L2A}
#: What each level is, for the data card, Croissant and STAC titles.
S2_LEVEL_TITLES: dict[str, str] = {
    "l1c": "Sentinel-2 L1C (top-of-atmosphere reflectance x 10000)",
    "l2a": "Sentinel-2 L2A (bottom-of-atmosphere reflectance x 10000, harmonized; no B10)",
}


#: One phrase per level for the dataset's descriptions (Croissant, data card).
S2_LEVEL_SUMMARY: dict[str, str] = {
    "l1c": "cloud-free Sentinel-2 L1C mosaics (13 bands)",
    "l2a": "cloud-free Sentinel-2 L2A mosaics (12 bands: L2A has no B10)",
}


def level_of(cfg: object) -> str:
    """The Sentinel-2 level of a run config (``l1c`` without one, or for other backends)."""
    return str(getattr(cfg, "s2_level", "l1c") or "l1c") if cfg is not None else "l1c"


def s2_modality(level: str = "l1c") -> Modality:
    """The ``s2`` modality of a product level (``l1c`` or ``l2a``)."""
    try:
        return S2_LEVELS[level]
    except KeyError:
        raise ValueError(f"unknown Sentinel-2 level {level!r}; choose l1c or l2a") from None


def s2_modality_of(count: int) -> Modality:
    """The ``s2`` modality whose band count is ``count`` (13: L1C, 12: L2A)."""
    for m in S2_LEVELS.values():
        if m.count == count:
            return m
    raise ValueError(f"no Sentinel-2 level has {count} bands (L1C 13, L2A 12)")


def modalities(s2_level: str = "l1c", extra: tuple[str, ...] = ()) -> dict[str, Modality]:
    """:data:`MODALITIES` with the ``s2`` modality of ``s2_level``, then the ``extra`` ones
    (data ids of :data:`EXTRA_MODALITIES`, e.g. ``("wc",)``), in file order."""
    return {**MODALITIES, "s2": s2_modality(s2_level),
            **{k: EXTRA_MODALITIES[k] for k in extra}}


def band_index(count: int, name: str) -> int:
    """Index of Sentinel-2 band ``name`` in an ``s2`` array of ``count`` bands (13 L1C or
    12 L2A): B11 is 11 in L1C and 10 in L2A."""
    return s2_modality_of(count).bands.index(name)


#: Level-2A scene classification (SCL) classes the ``scl`` scorer counts as poor pixels:
#: 3 cloud shadow, 8 cloud medium probability, 9 cloud high probability, 10 thin cirrus
#: (ESA's Sentinel-2 L2A product specification).
SCL_POOR_CLASSES: tuple[int, ...] = (3, 8, 9, 10)
#: The mosaicking engine's Level-2A input with the ``scl`` scorer: the 13 :data:`S2_BANDS`
#: planes (B10 all 0: L2A has none), then one plane carrying the SCL verdict per pixel,
#: :data:`SCL_POOR_VALUE` where the class is poor, 0 elsewhere (its block mean at the score
#: scale is the poor share x SCL_POOR_VALUE).
SCL_PLANE = len(S2_BANDS)
SCL_POOR_VALUE = 10000

#: The mosaic's companion raster (not part of the dataset): band 1 the index of the source
#: image of each pixel (255: none), band 2 the final poor-pixel (cloud or shadow) mask
#: (1 poor, 0 clear, 255 no data). It feeds curation. Both backends now write
#: :data:`AUX_MASKS` (these two bands first); two-band aux rasters of earlier versions are
#: still read.
AUX = Modality(
    key="aux",
    bands=("source_index", "poor"),
    descriptions=("source_index", "poor"),
    dtype="uint8",
    nodata=255,
    resampling="nearest",
)

#: The aux raster of both backends: :data:`AUX`'s two bands, then the chosen image's cloud
#: mask (cloud score above ``cloud_thresh``) and shadow mask (shadow score above
#: ``cloud_thresh``, not cloud), same coding (1 yes, 0 no, 255 no data). They feed the
#: quality layers (:mod:`sen12ms_build.dataset.provenance`). The Earth Engine backend computes the
#: same masks in its graph (``graphs.cloud_shadow_masks``). With a scorer that includes
#: shadows (Cloud Score+: an occlusion score) the shadow score is 0, so ``cloud`` holds
#: everything the scorer flags and ``shadow`` is 0.
AUX_MASKS = Modality(
    key="aux",
    bands=AUX.bands + ("cloud", "shadow"),
    descriptions=AUX.descriptions + ("cloud", "shadow"),
    dtype="uint8",
    nodata=255,
    resampling="nearest",
)

# --- Earth Engine catalogue ids and the Sentinel-1 composite rule -------------------------
#: Sentinel-2's systematic land coverage (lon_min, lat_min, lon_max, lat_max): 56 S to
#: 84 N. ROIs are sampled inside it unless a region is configured; the paper's ROIs cover
#: the inhabited land masses, so Antarctica is left out.
S2_COVERAGE: tuple[float, float, float, float] = (-180.0, -56.0, 180.0, 84.0)
S2_COLLECTION = "COPERNICUS/S2_HARMONIZED"
S1_COLLECTION = "COPERNICUS/S1_GRD"
#: What made the sigma0 of an Earth Engine export (the ``S1_PROCESSING`` patch tag); the
#: open-data GRD chain records its own name and version (``sen12ms_build.sar``).
S1_PROCESSING_EE = f"Earth Engine {S1_COLLECTION}"
LC_COLLECTION = "MODIS/061/MCD12Q1"
LC_YEAR = 2016
#: Sentinel-1 acquisitions of a period are combined with a plain mosaic, newest on top:
#: every output pixel keeps the radiometry of one real acquisition, with its speckle, as
#: the paper leaves speckle filtering to the user (a temporal median would filter it).
S1_COMPOSITE = "newest_on_top"
#: The paper's export grid: 0.0001 degrees in EPSG:4326.
EXPORT_CRS = "EPSG:4326"
EXPORT_RES_DEG = 0.0001
#: Export pixels kept around the ROI when Sentinel-2 is clipped (``ee.Image.clip``), so the
#: UTM warp's resampling kernels at the scene edge still find data; statistics (cloudy
#: percentage, coverage) use the exact ROI. The export grid has the same margin.
CLIP_MARGIN_PX = 2
