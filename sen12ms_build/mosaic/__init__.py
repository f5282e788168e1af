"""Cloud-free Sentinel-2 mosaicking (SEN12MS section 3.1), as pure numpy.

This package is the single definition of the algorithm: its constants
(:mod:`~sen12ms_build.mosaic.params`, :class:`MosaicParams`), the scores
(:mod:`~sen12ms_build.mosaic.scores`: cloud, shadow, quality, poor mask, CLOUDY_PERCENTAGE),
the pluggable cloud scorers (:mod:`~sen12ms_build.mosaic.scorers`), one image's scores
(:mod:`~sen12ms_build.mosaic.image`), the merge (:mod:`~sen12ms_build.mosaic.merging`) and
the engine that mosaics acquisitions from any pixel source
(:mod:`~sen12ms_build.mosaic.engine`). The local and STAC backends execute it here with
numpy; the Earth Engine backend imports the same :class:`MosaicParams` and executes them as
Earth Engine expressions (:mod:`sen12ms_build.backends.earthengine.graphs`, the mirror of
this package). The reference is ``shared/spec/mosaicking.md`` (Schmitt, Hughes, Qiu, Zhu
2019, "Aggregating cloud-free Sentinel-2 images with Google Earth Engine").

It imports nothing above it (no backend, pipeline or raster I/O): ``tests/test_imports.py``.

Array conventions:

* ``l1c``: (13, H, W) uint16 Level-1C digital numbers in the dataset's band order
  (:data:`sen12ms_build.products.S2_BANDS`); 0 is nodata (outside the footprint).
* scores: (H, W) float32; masks: (H, W) bool.
* ``pixel_size``: (x, y) ground size of one pixel in metres (non-square on the 0.0001 degree
  export grid, where x shrinks with the cosine of the latitude).
* solar angles in degrees; azimuth clockwise from north.

The scores are computed at the algorithm's 20 m scale: :func:`score_image` averages the
input to the nearest integer multiple of its pixel size and expands the scores back.
"""

from .image import ScoredImage, score_image
from .merging import (MergeResult, RunningMerge, assemble, best_images, final_poor_share,
                      merge, merge_order_key, merge_sources, poor_share_of)
from .params import DEFAULT_PARAMS, MosaicParams
from .scores import (FLOAT_OPS, FloatOps, block_mean, cloud_mask, cloud_score,
                     cloud_shadow_masks, cloudy_percentage, disk, expand, focal_mean,
                     footprint, normalized_difference, poor_mask, project_clouds,
                     quality_score, rescale, roi_coverage_percent, score_factor,
                     shadow_candidates, shadow_displacement_m, shadow_offsets_px,
                     shadow_score, toa_reflectance)

__all__ = [
    "DEFAULT_PARAMS", "FLOAT_OPS", "FloatOps", "MergeResult", "MosaicParams", "RunningMerge",
    "ScoredImage", "assemble", "best_images", "block_mean", "cloud_mask", "cloud_score",
    "cloud_shadow_masks", "cloudy_percentage", "disk", "expand", "final_poor_share",
    "focal_mean", "footprint", "merge", "merge_order_key", "merge_sources",
    "normalized_difference", "poor_mask", "poor_share_of", "project_clouds",
    "quality_score", "rescale", "roi_coverage_percent", "score_factor", "score_image",
    "shadow_candidates", "shadow_displacement_m", "shadow_offsets_px", "shadow_score",
    "toa_reflectance",
]
