"""The three modalities of a SEN12MS triplet: bands, dtypes, nodata, resampling.

One home for what both backends export and what the tiler writes, so that the
local and the Earth Engine backends produce the same bands in the same order.

Conventions (as in the published SEN12MS dataset):

* ``s1``: float32, 2 bands (VV, VH), sigma0 backscatter in dB; nodata NaN.
* ``s2``: uint16, 13 bands (B1 ... B12 with B8A after B8), Level-1C top-of-atmosphere
  digital numbers (reflectance x 10000); nodata 0.
* ``lc``: uint16, 4 bands (IGBP, LCCS LC, LCCS LU, LCCS SH) from MODIS MCD12Q1; nodata 255.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
