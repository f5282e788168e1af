"""Earth Engine request graphs of a scene: built here, executed elsewhere.

Every function returns an ``ee`` object (image, collection, dictionary) and performs no
request: building and serializing them needs only the algorithm list (see
``tests/test_earthengine_graphs.py``). The Sentinel-2 mosaic follows
``shared/spec/mosaicking.md`` (Schmitt et al. 2019, the SEN12MS paper's section 3.1) and reads
every constant from :class:`sen12ms_build.mosaic.MosaicParams`, the same object the numpy
implementation executes: one definition, two executions.

Conventions:

* ``region``: an ``ee.Geometry`` in EPSG:4326 (for a scene: the ROI ring, planar edges).
* ``start``, ``end``: ISO dates, **both inclusive** (``end`` is advanced by one day for
  ``filterDate``), as in :class:`sen12ms_build.backends.SceneRequest`.
* Outputs are unmasked with the products' nodata values so a GeoTIFF carries them:
  S2 uint16 (0), S1 float32 (:data:`S1_FILL`, turned into NaN after download), land cover
  uint16 (255), aux bands 255.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Sequence

import ee

from ...geo import Grid
from ...mosaic import DEFAULT_PARAMS, MosaicParams, shadow_displacement_m
from ...labels import (DW_LABEL_BAND, DW_PROB_BANDS, DW_PROB_SCALE, DW_SCALE_M,
                       DYNAMICWORLD_COLLECTION, LABEL_MAX_PIXELS, WORLDCOVER_BAND,
                       WORLDCOVER_DEFAULT_VERSION, WORLDCOVER_VERSIONS)
from ...mosaic.cloudy_pick import BAND_WEIGHT_DAYS, MS_PER_DAY
from ...products import (AUX_MASKS, DW, LC, LC_BANDS, LC_COLLECTION, LC_MODIS_BANDS, LC_YEAR,
                         S1, S1_COLLECTION, S2, S2_BANDS, S2_COLLECTION, WC)

#: CRS of the score computations (the scripts' ``reproject('EPSG:4326', null, 20)``).
SCORE_CRS = "EPSG:4326"
#: Value of masked Sentinel-1 pixels in the exported float32 GeoTIFFs (JSON has no NaN, and
#: Earth Engine writes masked pixels as 0, a valid dB value); downloads turn it into NaN.
S1_FILL = -9999.0
#: Bands added to every scored Sentinel-2 image (after the 13 L1C bands).
QUALITY_BAND = "quality"
#: The aux bands of every scored image, in :data:`products.AUX_MASKS` order (the local
#: backend's aux raster): source index, poor mask, cloud mask, shadow mask.
SOURCE_BAND, POOR_BAND, CLOUD_BAND, SHADOW_BAND = AUX_MASKS.bands
#: Image properties written by :func:`add_statistics` (names of the published scripts).
CLOUDY_PERCENTAGE = "CLOUDY_PERCENTAGE"
ROI_COVERAGE_PERCENT = "ROI_COVERAGE_PERCENT"
#: Image property: position in the time-sorted collection (the merge's tie-breaker).
SOURCE_INDEX = "SOURCE_INDEX"
#: Sentinel-1 GRD property with the orbit pass (``ASCENDING`` / ``DESCENDING``), catalog
#: page COPERNICUS_S1_GRD.
S1_ORBIT_PASS = "orbitProperties_pass"
#: Sentinel-1 GRD property with the relative orbit number at the product's start.
S1_RELATIVE_ORBIT = "relativeOrbitNumber_start"
#: ``tileScale`` of the per-image statistics: Earth Engine aggregates in tiles 4 x 4 times
#: smaller (16 x less memory per tile, "User memory limit exceeded" avoided) at the same
#: scale and the same result; ``bestEffort`` is not used because it coarsens the scale.
STATS_TILE_SCALE = 4


class EEOps:
    """The arithmetic namespace of :func:`sen12ms_build.mosaic.shadow_displacement_m` for
    ``ee.Number`` (the float one is :class:`sen12ms_build.mosaic.FloatOps`)."""

    @staticmethod
    def radians(x: object) -> ee.Number:
        return ee.Number(x).multiply(math.pi).divide(180)

    @staticmethod
    def tan(x: object) -> ee.Number:
        return ee.Number(x).tan()

    @staticmethod
    def sin(x: object) -> ee.Number:
        return ee.Number(x).sin()

    @staticmethod
    def cos(x: object) -> ee.Number:
        return ee.Number(x).cos()

    @staticmethod
    def mul(a: object, b: object) -> ee.Number:
        return ee.Number(a).multiply(b)


EE_OPS = EEOps()
#: Google's Cloud Score+ for the harmonized L1C collection: same ``system:index`` as the
#: source images (catalog page GOOGLE_CLOUD_SCORE_PLUS_V1_S2_HARMONIZED).
CLOUD_SCORE_PLUS = "GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED"
#: The Cloud Score+ band used: cumulative-distribution clear score, 0 occluded .. 1 clear.
CS_BAND = "cs_cdf"


def end_exclusive(end: str) -> str:
    """The day after an inclusive ISO end date (``filterDate`` excludes its end)."""
    return (dt.date.fromisoformat(str(end)[:10]) + dt.timedelta(days=1)).isoformat()


def region_of(ring: Sequence[tuple[float, float]], margin_deg: float = 0.0) -> ee.Geometry:
    """A closed lon/lat ring (EPSG:4326) as a planar polygon: the same edges the local
    backend rasterizes on the export grid; ``margin_deg`` grows it (square corners)."""
    if margin_deg:
        from shapely.geometry import Polygon

        grown = Polygon(ring).buffer(margin_deg, join_style="mitre")
        ring = [(round(x, 10), round(y, 10)) for x, y in grown.exterior.coords]
    return ee.Geometry.Polygon([[list(p) for p in ring]], None, False)


def pixel_grid(grid: Grid) -> dict:
    """A :class:`~sen12ms_build.geo.Grid` as the REST ``PixelGrid`` of ``computePixels``."""
    t = grid.transform
    return {
        "dimensions": {"width": int(grid.width), "height": int(grid.height)},
        "affineTransform": {"scaleX": t.a, "shearX": t.b, "translateX": t.c,
                            "shearY": t.d, "scaleY": t.e, "translateY": t.f},
        "crsCode": grid.crs,
    }


def _at_score_scale(image: ee.Image, params: MosaicParams) -> ee.Image:
    """Compute ``image`` at the score scale (metres) in EPSG:4326."""
    return image.reproject(crs=SCORE_CRS, scale=params.score_scale_m)


def _neighbourhood(image: ee.Image, params: MosaicParams, op) -> ee.Image:
    """``op(image)`` (a kernel operation) with its kernel counted in score-scale pixels.

    Earth Engine evaluates an operation in the projection its *output* is requested in: a
    ``reproject`` of the input alone (the scripts' ``reproject(...).reduceNeighborhood``)
    does not pin the kernel, which then runs on the export grid (0.0001 degrees, a window
    half the size). So the input is computed at the score scale (as the scripts do) and the
    output is reprojected there too, which pins the kernel, as the numpy mirror computes it
    on the 20 m grid (mosaic.score_image)."""
    return _at_score_scale(op(_at_score_scale(image, params)), params)


# --- quality score module ----------------------------------------------------------------

def toa(image: ee.Image, params: MosaicParams = DEFAULT_PARAMS) -> ee.Image:
    """The 13 L1C bands as top-of-atmosphere reflectance (DN / ``reflectance_scale``)."""
    return image.select(list(S2_BANDS)).divide(params.reflectance_scale)


def cloud_score(image: ee.Image, params: MosaicParams = DEFAULT_PARAMS) -> ee.Image:
    """Band ``cloudScore``: the minimum of the six rescaled indicators, floored at
    ``cloud_score_floor``, mean over the square ``cloud_kernel_radius`` kernel at the score
    scale (mosaic.cloud_score)."""
    r = toa(image, params)
    score = ee.Image.constant(1)
    for indicator, rng in (
        (r.select("B2"), params.b2_range),
        (r.select("B1"), params.b1_range),
        (r.select("B1").add(r.select("B10")), params.b1_b10_range),
        (r.select("B4").add(r.select("B3")).add(r.select("B2")), params.rgb_sum_range),
        (r.normalizedDifference(["B8", "B11"]), params.ndmi_range),  # clouds are moist
        (r.normalizedDifference(["B3", "B11"]), params.ndsi_range),  # clouds are not snow
    ):
        score = score.min(indicator.unitScale(rng[0], rng[1]))
    score = score.max(params.cloud_score_floor)
    return _neighbourhood(score, params, lambda x: x.reduceNeighborhood(
        reducer=ee.Reducer.mean(), kernel=ee.Kernel.square(params.cloud_kernel_radius))
    ).rename("cloudScore")


def cloudscoreplus_score(image: ee.Image, params: MosaicParams = DEFAULT_PARAMS) -> ee.Image:
    """Band ``cloudScore`` from Cloud Score+: ``1 - cs_cdf`` (occlusion: clouds AND their
    shadows), calibrated so that Google's clear threshold ``cs_cdf >=
    cloudscoreplus_clear_thresh`` (0.6 in the catalog's example) is ``cloudScore <=
    cloud_thresh``; at the score scale. ``image`` must carry the ``cs_cdf`` band
    (:func:`link_cloud_score_plus`). Where Cloud Score+ has no image (the link leaves the
    band fully masked) ``cs_cdf`` counts as 0, fully occluded: such an image is never a
    "best" one (a masked score would count as clear in CLOUDY_PERCENTAGE) and never wins
    the quality mosaic."""
    # sen12ms_build.mosaic.scorers.calibrate(1 - cs_cdf, 1 - clear, cloud_thresh), written on cs_cdf
    cs = image.select(CS_BAND).unmask(0, False).clamp(0, 1)
    clear, ct = params.cloudscoreplus_clear_thresh, params.cloud_thresh
    on_clear_side = ee.Image.constant(1).subtract(cs).multiply(ct / (1.0 - clear))
    on_cloud_side = ee.Image.constant(clear).subtract(cs).multiply((1.0 - ct) / clear).add(ct)
    score = on_clear_side.where(cs.lt(clear), on_cloud_side)
    return _at_score_scale(score, params).rename("cloudScore")


def cloud_band(image: ee.Image, params: MosaicParams = DEFAULT_PARAMS) -> ee.Image:
    """Band ``cloudScore`` of ``params.scorer`` (the Earth Engine side of
    :mod:`sen12ms_build.mosaic.scorers`): ``paper`` :func:`cloud_score`, ``cloudscoreplus``
    :func:`cloudscoreplus_score`. ``ValueError`` for a scorer Earth Engine cannot run."""
    from ...mosaic.scorers import check_backend

    why = check_backend(params.scorer, "earthengine")
    if why:
        raise ValueError(why)
    if params.scorer == "cloudscoreplus":
        return cloudscoreplus_score(image, params)
    return cloud_score(image, params)


def includes_shadow(params: MosaicParams) -> bool:
    """Whether ``params.scorer``'s score already covers cloud shadows."""
    from ...mosaic.scorers import get

    return get(params.scorer).includes_shadow


def link_cloud_score_plus(col: ee.ImageCollection) -> ee.ImageCollection:
    """``col`` with the Cloud Score+ band ``cs_cdf`` of the image of the same
    ``system:index`` (``linkCollection``; a source image without a match keeps its
    footprint and gets a fully masked band)."""
    return col.linkCollection(ee.ImageCollection(CLOUD_SCORE_PLUS), [CS_BAND])


def with_scorer_bands(col: ee.ImageCollection, params: MosaicParams) -> ee.ImageCollection:
    """``col`` with the bands ``params.scorer`` reads besides L1C (Cloud Score+'s)."""
    if params.scorer == "cloudscoreplus":
        return link_cloud_score_plus(col)
    return col


def shadow_candidates(image: ee.Image, cloud: ee.Image,
                      params: MosaicParams = DEFAULT_PARAMS) -> ee.Image:
    """0/1 image (mosaic.shadow_candidates): dark (``B8 + B11 + B12 < ir_sum_thresh``), not
    water (``nd(B8, B4) >= ndvi_thresh``; water stays a candidate with
    ``params.shadow_over_water``) and not cloud (cloud score <= ``cloud_thresh``)."""
    r = toa(image, params)
    dark = r.select(["B8", "B11", "B12"]).reduce(ee.Reducer.sum()).lt(params.ir_sum_thresh)
    if not params.shadow_over_water:  # the paper: a shadow on water is never a candidate
        water = r.normalizedDifference(["B8", "B4"]).lt(params.ndvi_thresh)
        dark = dark.And(water.Not())
    return dark.And(cloud.gt(params.cloud_thresh).Not())


def shadow_score(image: ee.Image, cloud: ee.Image,
                 params: MosaicParams = DEFAULT_PARAMS) -> ee.Image:
    """Band ``shadowScore`` (mosaic.shadow_score): the cloud score projected along the solar
    geometry for every cloud height, averaged, kept on the :func:`shadow_candidates` (dark,
    non-water, non-cloud pixels), opened ("dilated erosion") and maximised over the 3 x 3
    window.

    The projection is :func:`sen12ms_build.mosaic.shadow_displacement_m` (the numpy side's
    very formula, run with ``ee.Number``): the projected image at p is the cloud score at
    p + (east, north), towards the sun, whose ``displace`` equals the scripts'
    ``az = azimuth + 180``, ``dx = -sin(az) d``, ``dy = -cos(az) d``. The opening and the
    3 x 3 maximum run at the score scale (input and output pinned, see _neighbourhood).
    """
    candidates = shadow_candidates(image, cloud, params)
    azimuth = image.get("MEAN_SOLAR_AZIMUTH_ANGLE")
    zenith = image.get("MEAN_SOLAR_ZENITH_ANGLE")

    def project(height: ee.ComputedObject) -> ee.Image:
        east, north = shadow_displacement_m(azimuth, zenith, height, EE_OPS)
        return cloud.displace(ee.Image.constant(east).addBands(ee.Image.constant(north)))

    heights = ee.List([int(h) for h in params.cloud_heights_m])
    projected = ee.ImageCollection.fromImages(heights.map(project)).mean()

    def opening(s: ee.Image) -> ee.Image:
        s = s.focalMin(radius=params.erode_radius_px, kernelType="circle", units="pixels",
                       iterations=params.erode_iterations)
        s = s.focalMax(radius=params.dilate_radius_px, kernelType="circle", units="pixels",
                       iterations=params.dilate_iterations)
        return s.reduceNeighborhood(reducer=ee.Reducer.max(),
                                    kernel=ee.Kernel.square(params.shadow_max_radius_px))

    s = _neighbourhood(projected.multiply(candidates), params, opening)
    return s.rename("shadowScore")


def quality_score(cloud: ee.Image, shadow: ee.Image,
                  params: MosaicParams = DEFAULT_PARAMS) -> ee.Image:
    """Band ``quality`` = ``-mean_r(max(cloud, shadow))`` (higher is better)."""
    mean = _neighbourhood(cloud.max(shadow), params, lambda x: x.reduceNeighborhood(
        reducer=ee.Reducer.mean(), kernel=ee.Kernel.square(params.quality_kernel_radius)))
    return mean.multiply(-1).rename(QUALITY_BAND)


def poor_mask(quality: ee.Image, params: MosaicParams = DEFAULT_PARAMS) -> ee.Image:
    """Band ``poor``: ``-quality > cloud_thresh`` (mosaic.poor_mask)."""
    return quality.multiply(-1).gt(params.cloud_thresh).rename(POOR_BAND)


def cloud_shadow_masks(cloud: ee.Image, shadow: ee.Image,
                       params: MosaicParams = DEFAULT_PARAMS) -> ee.Image:
    """Bands ``cloud`` (cloud score > ``cloud_thresh``) and ``shadow`` (shadow score >
    ``cloud_thresh`` and not cloud), mosaic.cloud_shadow_masks: the masks of the aux raster
    (:data:`products.AUX_MASKS`), which the quality layers carry. With a scorer that
    ``includes_shadow`` (Cloud Score+, whose score is occlusion: clouds *and* their
    shadows) the shadow score is 0, so ``cloud`` marks everything the scorer calls
    occluded and ``shadow`` is 0 everywhere (the scorer does not tell shadows apart)."""
    is_cloud = cloud.gt(params.cloud_thresh)
    is_shadow = shadow.gt(params.cloud_thresh).And(is_cloud.Not())
    return ee.Image.cat([is_cloud.rename(CLOUD_BAND), is_shadow.rename(SHADOW_BAND)])


def footprint(image: ee.Image) -> ee.Image:
    """1 where any L1C band has data (mosaic.footprint), else 0; never masked."""
    return image.select(list(S2_BANDS)).mask().reduce(ee.Reducer.max()).gt(0)


def add_statistics(image: ee.Image, cloud: ee.Image, valid: ee.Image, region: ee.Geometry,
                   params: MosaicParams = DEFAULT_PARAMS) -> ee.Image:
    """Set ``CLOUDY_PERCENTAGE`` (cloudy area over the covered ROI area, x 100; 100 when the
    image covers nothing) and ``ROI_COVERAGE_PERCENT`` (covered share of the ROI, x 100),
    summed at the score scale (mosaic.cloudy_percentage, mosaic.roi_coverage_percent)."""
    area = ee.Image.pixelArea()
    stack = ee.Image.cat([
        cloud.gt(params.cloud_thresh).And(valid).multiply(area).rename("cloud"),
        valid.multiply(area).rename("covered"),
        area.rename("roi"),
    ])
    sums = ee.Dictionary(stack.reduceRegion(reducer=ee.Reducer.sum(), geometry=region,
                                            crs=SCORE_CRS, scale=params.score_scale_m,
                                            maxPixels=1e10, tileScale=STATS_TILE_SCALE))
    covered = ee.Number(sums.get("covered"))
    cloudy = ee.Algorithms.If(covered.gt(0),
                              ee.Number(sums.get("cloud")).divide(covered).multiply(100), 100)
    coverage = covered.divide(ee.Number(sums.get("roi"))).multiply(100)
    return image.set({CLOUDY_PERCENTAGE: cloudy, ROI_COVERAGE_PERCENT: coverage})


# --- query ---------------------------------------------------------------------------------

def s2_collection(region: ee.Geometry, start: str, end: str,
                  collection: str = S2_COLLECTION) -> ee.ImageCollection:
    """L1C images intersecting ``region`` sensed in ``[start, end]``, oldest first (the
    order that numbers the aux raster's source index); granules of one datatake share a
    time, so ties are ordered by ``system:index`` (sorted first; the time sort keeps that
    order among equal times, as the local backend sorts by (time, file name))."""
    return (ee.ImageCollection(collection)
            .filterBounds(region)
            .filterDate(str(start), end_exclusive(end))
            .sort("system:index")
            .sort("system:time_start"))


def scored_collection(region: ee.Geometry, start: str, end: str,
                      params: MosaicParams = DEFAULT_PARAMS, *,
                      collection: str = S2_COLLECTION, statistics: bool = True,
                      clip: ee.Geometry | None = None) -> ee.ImageCollection:
    """Every image of :func:`s2_collection` clipped to ``clip`` (default ``region``) with
    the bands ``quality``, ``source_index`` (position in the sorted collection), ``poor``,
    ``cloud`` and ``shadow`` (:func:`cloud_shadow_masks`) after the 13 L1C bands, masked
    outside the image's footprint, and (``statistics``) the cloudy and coverage
    percentages over ``region``."""
    col = s2_collection(region, start, end, collection)
    ids = col.aggregate_array("system:index")
    col = with_scorer_bands(col, params)
    clip = region if clip is None else clip

    def score(img: ee.Image) -> ee.Image:
        img = ee.Image(img).clip(clip)
        valid = footprint(img)
        cloud = cloud_band(img, params)
        if includes_shadow(params):
            shadow = ee.Image.constant(0).rename("shadowScore")
        else:
            shadow = shadow_score(img, cloud, params)
        quality = quality_score(cloud, shadow, params)
        position = ids.indexOf(img.get("system:index"))
        index = ee.Image.constant(position).rename(SOURCE_BAND)
        out = img.select(list(S2_BANDS)).addBands(ee.Image.cat([
            quality.updateMask(valid),
            index.updateMask(valid),
            poor_mask(quality, params).updateMask(valid),
            cloud_shadow_masks(cloud, shadow, params).updateMask(valid),
        ]))
        if statistics:
            out = add_statistics(out, cloud, valid, region, params)
        return out.set(SOURCE_INDEX, position)

    return col.map(score)


def statistics_collection(region: ee.Geometry, start: str, end: str,
                          params: MosaicParams = DEFAULT_PARAMS, *,
                          collection: str = S2_COLLECTION) -> ee.ImageCollection:
    """:func:`s2_collection` with only the statistics set (cloud score, no shadows): what
    the merge order needs, cheap enough for one ``value:compute`` per scene."""
    def stats(img: ee.Image) -> ee.Image:
        img = ee.Image(img).clip(region)
        return add_statistics(img, cloud_band(img, params), footprint(img), region, params)

    return with_scorer_bands(s2_collection(region, start, end, collection), params).map(stats)


# --- image merging module ------------------------------------------------------------------

def best_collection(scored: ee.ImageCollection, params: MosaicParams = DEFAULT_PARAMS,
                    best_ids: Sequence[str] | None = None) -> ee.ImageCollection:
    """The "best" images bottom to top: CLOUDY_PERCENTAGE < keep_thresh sorted descending
    (clearest on top), or, with ``best_ids`` (``system:index`` values decided client-side
    by :func:`sen12ms_build.mosaic.best_images`), exactly those in that order."""
    if best_ids is None:  # the key of mosaic.best_images: (-CLOUDY_PERCENTAGE, index)
        return (scored.filter(ee.Filter.lt(CLOUDY_PERCENTAGE, params.keep_thresh))
                .sort(SOURCE_INDEX)
                .sort(CLOUDY_PERCENTAGE, False))
    order = ee.List(list(best_ids))
    return (scored.filter(ee.Filter.inList("system:index", order))
            .map(lambda img: img.set("MERGE_ORDER", order.indexOf(img.get("system:index"))))
            .sort("MERGE_ORDER"))


def mask_poor(image: ee.Image) -> ee.Image:
    """``image`` with its poor (cloud or shadow) pixels masked in every band: what the
    masked merge lays on top (mosaic.merge_sources with merge ``masked``)."""
    return image.updateMask(image.select(POOR_BAND).Not())


def merge(scored: ee.ImageCollection, params: MosaicParams = DEFAULT_PARAMS,
          best_ids: Sequence[str] | None = None) -> ee.Image:
    """The quality mosaic with the best images mosaicked on top (mosaic.merge_sources):
    whole footprints (merge ``paper``) or their clear pixels only (``masked``)."""
    quality_mosaic = scored.qualityMosaic(QUALITY_BAND)
    best_col = best_collection(scored, params, best_ids)
    if params.merge == "masked":
        best_col = best_col.map(mask_poor)
    best = best_col.mosaic()
    return ee.ImageCollection.fromImages([quality_mosaic, best]).mosaic()


def s2_mosaic(region: ee.Geometry, start: str, end: str,
              params: MosaicParams | None = None, *, collection: str = S2_COLLECTION,
              with_aux: bool = False, best_ids: Sequence[str] | None = None,
              clip: ee.Geometry | None = None) -> ee.Image:
    """Cloud-free Sentinel-2 L1C mosaic of ``region`` over ``[start, end]``.

    Returns the 13 bands of :data:`~sen12ms_build.products.S2_BANDS` as uint16 DN, 0 where
    no image covers a pixel; with ``with_aux`` the four bands of
    :data:`~sen12ms_build.products.AUX_MASKS` after them: ``source_index`` (position of the
    source image in the time-sorted collection), ``poor`` (1 cloud or shadow by the quality
    score, 0 clear), and the source image's ``cloud`` and ``shadow`` masks
    (:func:`cloud_shadow_masks`; 1 yes, 0 no), 255 where no image covers a pixel, cast to
    uint16 with the rest. The masks travel with the pixels through the merge, so each is
    the mask of the image the pixel was taken from, as in the local backend. ``best_ids``
    pins the merge's best images (see :func:`best_collection`); without it the server
    computes them from the statistics, as the published scripts do. ``clip`` (default
    ``region``) is the geometry the images are clipped to; statistics use ``region``.
    """
    params = params or DEFAULT_PARAMS
    scored = scored_collection(region, start, end, params, collection=collection,
                               statistics=best_ids is None, clip=clip)
    merged = merge(scored, params, best_ids)
    out = merged.select(list(S2_BANDS)).unmask(S2.nodata, False).toUint16()
    if with_aux:
        aux = merged.select(list(AUX_MASKS.bands)).unmask(AUX_MASKS.nodata, False).toUint16()
        out = out.addBands(aux)
    return out


# --- Sentinel-1 and land cover -------------------------------------------------------------

def s1_collection(region: ee.Geometry, start: str, end: str) -> ee.ImageCollection:
    """IW GRD scenes with both VV and VH intersecting ``region`` in ``[start, end]``,
    oldest first."""
    return (ee.ImageCollection(S1_COLLECTION)
            .filterBounds(region)
            .filterDate(str(start), end_exclusive(end))
            .filter(ee.Filter.eq("instrumentMode", "IW"))
            .filter(ee.Filter.listContains("transmitterReceiverPolarisation", "VV"))
            .filter(ee.Filter.listContains("transmitterReceiverPolarisation", "VH"))
            .sort("system:time_start"))


def s1_image(region: ee.Geometry, start: str, end: str) -> ee.Image:
    """Sentinel-1 sigma0 (dB) VV, VH as float32, combined over the period by a plain mosaic
    with the newest acquisition on top (:data:`~sen12ms_build.products.S1_COMPOSITE`: each
    pixel keeps one real acquisition's radiometry and speckle); :data:`S1_FILL` where no
    acquisition covers a pixel. Not clipped: the export grid sets the extent."""
    return (s1_collection(region, start, end)
            .select(list(S1.bands))
            .mosaic()
            .unmask(S1_FILL, False)
            .toFloat())


def landcover_collection(region: ee.Geometry, year: int = LC_YEAR) -> ee.ImageCollection:
    """MCD12Q1 images of ``year`` (one global image per year)."""
    return (ee.ImageCollection(LC_COLLECTION)
            .filterDate(f"{int(year)}-01-01", f"{int(year) + 1}-01-01")
            .filterBounds(region))


def landcover_image(region: ee.Geometry, year: int = LC_YEAR) -> ee.Image:
    """MODIS land cover of ``year``: LC_Type1, LC_Prop1, LC_Prop2, LC_Prop3 renamed IGBP,
    LCCS_LC, LCCS_LU, LCCS_SH, uint16, 255 where masked. Never resampled other than by
    nearest neighbour (Earth Engine's default; no ``resample`` call)."""
    img = ee.Image(landcover_collection(region, year).first())
    return (img.select(list(LC_MODIS_BANDS), list(LC_BANDS))
            .unmask(LC.nodata, False)
            .toUint16())


# --- 10 m labels (a run with ``labels:``) ------------------------------------------------------

def worldcover_collection(version: str = WORLDCOVER_DEFAULT_VERSION) -> ee.ImageCollection:
    """ESA WorldCover of ``version`` (``v100``: 2020, ``v200``: 2021): one global image."""
    return ee.ImageCollection(WORLDCOVER_VERSIONS[version][1])


def worldcover_image(grid: Grid, version: str = WORLDCOVER_DEFAULT_VERSION) -> ee.Image:
    """ESA WorldCover's ``Map`` band on the export ``grid``: uint8 codes, 0 (the product's
    nodata) where masked.

    WorldCover's pixels (1/12000 degree) are finer than the export grid's (0.0001 degree),
    so every export pixel takes the mode of the WorldCover pixels inside it
    (``reduceResolution`` with ``ee.Reducer.mode``), computed on exactly that grid
    (``reproject`` with its ``crsTransform``): never an interpolation
    (:func:`sen12ms_build.labels.resampling_for`). ``first()`` keeps the image's own
    projection, which ``reduceResolution`` needs (a ``mosaic()`` would drop it)."""
    img = ee.Image(worldcover_collection(version).first()).select([WORLDCOVER_BAND])
    t = grid.transform
    return (img.reduceResolution(reducer=ee.Reducer.mode(), maxPixels=LABEL_MAX_PIXELS)
            .reproject(crs=grid.crs, crsTransform=[t.a, t.b, t.c, t.d, t.e, t.f])
            .unmask(WC.nodata, False)
            .toUint8())


def dynamicworld_collection(region: ee.Geometry, start: str, end: str) -> ee.ImageCollection:
    """Dynamic World V1 images intersecting ``region`` in ``[start, end]`` (one per
    Sentinel-2 image), oldest first."""
    return (ee.ImageCollection(DYNAMICWORLD_COLLECTION)
            .filterBounds(region)
            .filterDate(str(start), end_exclusive(end))
            .sort("system:time_start"))


def dynamicworld_image(region: ee.Geometry, start: str, end: str) -> ee.Image:
    """Dynamic World over the season: band ``label``, the per-pixel mode of the images'
    ``label`` (0-8), then the 9 probability bands, the per-pixel mean of the images'
    probabilities x :data:`~sen12ms_build.labels.DW_PROB_SCALE` rounded (0..250); uint8,
    255 where no image covers a pixel.

    A composite of a collection has Earth Engine's default projection (EPSG:4326 at 1
    degree); both are pinned to the projection of the images themselves, the Sentinel-2
    tile's UTM zone at :data:`~sen12ms_build.labels.DW_SCALE_M` metres
    (``setDefaultProjection``), so the export resamples them from 10 m pixels (by nearest
    neighbour, Earth Engine's default: no ``resample`` call), not from 1 degree ones."""
    col = dynamicworld_collection(region, start, end)
    proj = ee.Image(col.first()).select([DW_LABEL_BAND]).projection().atScale(DW_SCALE_M)
    label = (col.select([DW_LABEL_BAND]).reduce(ee.Reducer.mode())
             .rename([DW_LABEL_BAND]).setDefaultProjection(proj))
    probs = (col.select(list(DW_PROB_BANDS)).mean()
             .multiply(DW_PROB_SCALE).round()
             .rename(list(DW_PROB_BANDS)).setDefaultProjection(proj))
    return label.addBands(probs).unmask(DW.nodata, False).toUint8()


def labels_image(request_labels: str, region: ee.Geometry, start: str, end: str, grid: Grid,
                 version: str = WORLDCOVER_DEFAULT_VERSION) -> ee.Image:
    """The labels image of a scene (``worldcover`` or ``dynamicworld``)."""
    if request_labels == "worldcover":
        return worldcover_image(grid, version)
    if request_labels == "dynamicworld":
        return dynamicworld_image(region, start, end)
    raise ValueError(f"unknown labels {request_labels!r}")


def labels_collection(request_labels: str, region: ee.Geometry, start: str, end: str,
                      version: str = WORLDCOVER_DEFAULT_VERSION) -> ee.ImageCollection:
    """The images a scene's labels use (the summary's and the dry run's count)."""
    if request_labels == "worldcover":
        return worldcover_collection(version).filterBounds(region)
    return dynamicworld_collection(region, start, end)


# --- the cloud-removal variant's cloudy pick (mosaic.cloudy_pick) ---------------------------

#: Image property the cloudy pick sorts by (:func:`cloudy_pick`).
PICK_KEY = "CLOUDY_PICK_KEY"


def cloudy_pick_key(image: ee.Image, dominant_ms: float | ee.Number,
                    band: Sequence[float]) -> ee.Number:
    """:func:`sen12ms_build.mosaic.cloudy_pick.pick_key` of one image as ``ee.Number``
    arithmetic: ``BAND_WEIGHT_DAYS`` x (percentage points its ``CLOUDY_PERCENTAGE`` lies
    outside ``band``) + |its ``system:time_start`` - ``dominant_ms``| in days."""
    cp = ee.Number(image.get(CLOUDY_PERCENTAGE))
    low, high = float(band[0]), float(band[1])
    outside = ee.Number(low).subtract(cp).max(0).add(cp.subtract(high).max(0))
    gap = (ee.Number(image.get("system:time_start")).subtract(dominant_ms).abs()
           .divide(MS_PER_DAY))
    return outside.multiply(BAND_WEIGHT_DAYS).add(gap)


def cloudy_pick(region: ee.Geometry, start: str, end: str, dominant_id: str,
                dominant_ms: float, band: Sequence[float], min_coverage: float,
                params: MosaicParams = DEFAULT_PARAMS, *,
                collection: str = S2_COLLECTION) -> ee.Image:
    """The ``cr`` variant's cloudy acquisition of a scene, chosen on the server as
    :func:`sen12ms_build.mosaic.cloudy_pick.pick_cloudy` chooses it: the images of
    :func:`statistics_collection` other than the mosaic's dominant source image
    (``dominant_id``, its ``system:index``; ``dominant_ms`` its ``system:time_start``)
    that cover at least ``min_coverage`` percent of the ROI, keyed by
    :func:`cloudy_pick_key` (property :data:`PICK_KEY`), smallest first; ties go to the
    earlier image (a stable sort by key of the time-sorted collection). The image keeps
    its properties (id, time, solar angles, statistics)."""
    stats = statistics_collection(region, start, end, params, collection=collection)
    candidates = (stats.filter(ee.Filter.neq("system:index", dominant_id))
                  .filter(ee.Filter.gte(ROI_COVERAGE_PERCENT, float(min_coverage))))
    keyed = candidates.map(
        lambda img: img.set(PICK_KEY, cloudy_pick_key(ee.Image(img), dominant_ms, band)))
    return ee.Image(keyed.sort("system:time_start").sort(PICK_KEY).first())


def cloudy_image(picked: ee.Image, clip: ee.Geometry) -> ee.Image:
    """The picked acquisition as exported: its 13 L1C bands clipped to ``clip`` (the
    mosaic's clip geometry), 0 where masked, uint16; unmosaicked."""
    return (ee.Image(picked).select(list(S2_BANDS)).clip(clip)
            .unmask(S2.nodata, False).toUint16())


# --- what a scene will use -------------------------------------------------------------------

def scene_counts(region: ee.Geometry, start: str, end: str, *,
                 collection: str = S2_COLLECTION, year: int = LC_YEAR,
                 labels: str | None = None,
                 version: str = WORLDCOVER_DEFAULT_VERSION) -> ee.Dictionary:
    """Image counts per collection (``s2``, ``s1``, ``lc``, and ``labels`` with labels):
    the dry run's query."""
    counts = {
        "s2": s2_collection(region, start, end, collection).size(),
        "s1": s1_collection(region, start, end).size(),
        "lc": landcover_collection(region, year).size(),
    }
    if labels:
        counts["labels"] = labels_collection(labels, region, start, end, version).size()
    return ee.Dictionary(counts)


def scene_summary(region: ee.Geometry, start: str, end: str,
                  params: MosaicParams = DEFAULT_PARAMS, *, collection: str = S2_COLLECTION,
                  year: int = LC_YEAR, labels: str | None = None,
                  version: str = WORLDCOVER_DEFAULT_VERSION) -> ee.Dictionary:
    """What a scene will use: ``s2`` a list (collection order) of one dictionary per image
    (``id``, ``time_start`` ms, ``solar_azimuth``, ``solar_zenith`` degrees,
    ``cloudy_percentage``, ``roi_coverage_percent``); ``s1`` a list (oldest first) of one
    dictionary per acquisition (``id`` = ``system:index``, the GRD product id;
    ``time_start`` ms; ``orbit_pass``, the catalog's ``orbitProperties_pass``:
    ``ASCENDING`` or ``DESCENDING``; ``relative_orbit``, ``relativeOrbitNumber_start``);
    ``lc`` a list of ids; with ``labels`` also ``labels``, the ids of the label images
    (:func:`labels_collection`)."""
    s2 = statistics_collection(region, start, end, params, collection=collection)

    def describe(img: ee.ComputedObject) -> ee.Dictionary:
        img = ee.Image(img)
        return ee.Dictionary({
            "id": img.get("system:index"),
            "time_start": img.get("system:time_start"),
            "solar_azimuth": img.get("MEAN_SOLAR_AZIMUTH_ANGLE"),
            "solar_zenith": img.get("MEAN_SOLAR_ZENITH_ANGLE"),
            "cloudy_percentage": img.get(CLOUDY_PERCENTAGE),
            "roi_coverage_percent": img.get(ROI_COVERAGE_PERCENT),
        })

    def describe_s1(img: ee.ComputedObject) -> ee.Dictionary:
        img = ee.Image(img)
        return ee.Dictionary({
            "id": img.get("system:index"),
            "time_start": img.get("system:time_start"),
            "orbit_pass": img.get(S1_ORBIT_PASS),
            "relative_orbit": img.get(S1_RELATIVE_ORBIT),
        })

    s1 = s1_collection(region, start, end)
    out = {
        "s2": s2.toList(s2.size().max(1)).map(describe),
        "s1": s1.toList(s1.size().max(1)).map(describe_s1),
        "lc": landcover_collection(region, year).aggregate_array("system:index"),
    }
    if labels:
        out["labels"] = labels_collection(labels, region, start, end,
                                          version).aggregate_array("system:index")
    return ee.Dictionary(out)


def encode(obj: ee.ComputedObject) -> dict:
    """The Cloud API ``Expression`` JSON of an ``ee`` object (what requests carry)."""
    return ee.serializer.encode(obj, for_cloud_api=True)
