"""The ``cr`` variant on Earth Engine: the scene's cloudy acquisition, picked by the graph
:func:`.graphs.cloudy_pick` and downloaded as ``s2_cloudy.tif`` (chunked ``computePixels``,
like the scene's other products).

The pick needs the mosaic's dominant source image, the image with most mosaic pixels: the
aux raster's source-index counts (``pixels_in_mosaic``, gathered while the mosaic is
assembled), so it runs after the mosaic's download. The same rule runs client-side on the
scene summary's statistics (:func:`sen12ms_build.backends.cloudy.describe_pick`) for the
metadata; both read the same ``CLOUDY_PERCENTAGE`` / ``ROI_COVERAGE_PERCENT`` values.
Direct-download mode only (a batch export would need a second task round per scene).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ...products import S2
from .. import EXPORT_FILES, CloudyOptions, NoDataError
from .. import cloudy as shared
from . import assemble as asm
from . import chunks, download, graphs

PRODUCT = chunks.Product("s2_cloudy", S2.bands, S2.dtype)


def pick(summary: Mapping[str, Any], meta: Mapping[str, Any],
         options: CloudyOptions) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the picked image's description, the dominant image's summary entry) from the scene
    summary and the assembled mosaic's metadata (``pixels_in_mosaic`` per image)."""
    from ...mosaic import cloudy_pick

    images = [{**im, "file": im["id"], "product_id": im["id"],
               "roi_coverage_percent": im.get("roi_coverage_percent") or 0.0}
              for im in meta["s2_images"]]
    index = cloudy_pick.pick_cloudy(shared.candidates(images), options.band,
                                    options.min_coverage)
    if index is None:
        raise NoDataError("no cloudy input: no Sentinel-2 image besides the mosaic's dominant "
                          f"one covers {options.min_coverage:g} % of the ROI")
    dom = cloudy_pick.dominant_index([int(im.get("pixels_in_mosaic", 0)) for im in images])
    return shared.describe_pick(images, index, options), summary["s2"][dom]


def export(backend: Any, sc: Any, summary: Mapping[str, Any], out: Path,
           meta: dict[str, Any]) -> None:
    """Download the scene's cloudy acquisition into ``out`` and record its pick in
    ``meta["s2_cloudy"]`` (``backend``: the :class:`EarthEngineBackend`, ``sc`` its
    scene)."""
    o = backend.options
    if o.mode != "download":
        raise NoDataError("variant cr on Earth Engine needs backend.earthengine.mode: download "
                          "(the cloudy pick follows the mosaic's download)")
    if not o.export_aux:
        raise NoDataError("variant cr on Earth Engine needs the aux bands "
                          "(backend.earthengine.export_aux: true): the pick reads the "
                          "mosaic's source counts")
    req = sc.request
    info, dominant = pick(summary, meta, req.cloudy)
    image = graphs.cloudy_image(graphs.cloudy_pick(
        sc.region, sc.start, sc.end, str(dominant["id"]), float(dominant["time_start"]),
        req.cloudy.band, req.cloudy.min_coverage, req.params, collection=o.s2_collection),
        sc.clip)
    plan = chunks.plan_chunks(sc.grid.width, sc.grid.height, PRODUCT.bytes_per_pixel,
                              max_bytes=o.max_request_bytes,
                              max_side=min(chunks.MAX_SIDE_PX, o.s2_chunk_px or
                                           chunks.MAX_SIDE_PX))
    job = download.ProductJob("s2_cloudy", PRODUCT, graphs.encode(image), sc.grid, plan,
                              backend._cache_root(sc, out), min_side=o.min_chunk_px)  # noqa: SLF001
    pieces = download.download(backend.client, [job], max_workers=o.max_concurrency,
                               progress=o.progress, desc=f"{sc.key} cloudy")
    tags = {"PRODUCT_ID": info["product_id"], "SENSING_TIME": info["time"],
            "MEAN_SOLAR_AZIMUTH_ANGLE": f"{float(info['solar_azimuth']):.6f}",
            "MEAN_SOLAR_ZENITH_ANGLE": f"{float(info['solar_zenith']):.6f}",
            "SOURCE": f"earthengine:{o.mode}"}
    asm.assemble(sc.grid, pieces["s2_cloudy"], PRODUCT,
                 [asm.Target(Path(out) / EXPORT_FILES["s2_cloudy"], S2, range(S2.count), None,
                             tags)], expect_full_cover=True)
    if not o.keep_chunks:
        download.clear_cache([job])
    meta["s2_cloudy"] = info
