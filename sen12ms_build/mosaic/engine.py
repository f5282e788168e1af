"""The mosaicking engine: one cloud-free Sentinel-2 mosaic from the acquisitions of any pixel
source (SEN12MS section 3.1, the numpy path).

A backend brings what it knows of each acquisition (:class:`Acquisition`: id, sensing
time, solar angles, footprint, cloud metadata) and a reader that fills the 13 bands of one
acquisition on the mosaic grid; :func:`mosaic_acquisitions` scores each image
(:func:`~sen12ms_build.mosaic.image.score_image`), merges them as they come
(:class:`~sen12ms_build.mosaic.merging.RunningMerge`: the "best" images go on top at once)
and assembles the mosaic, its aux layers and the metadata ``scenes.csv`` records. The local
backend (files of an archive) is one such source; any other backend that reads pixels
itself is another. Earth Engine keeps its graph mirror
(:mod:`sen12ms_build.backends.earthengine.graphs`) of the same constants.

The engine does no I/O: the reader does, and the caller writes the result.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from ..products import AUX_MASKS, CLIP_MARGIN_PX
from .image import score_image
from .merging import RunningMerge, poor_share_of
from .params import DEFAULT_PARAMS, MosaicParams


@dataclass(frozen=True)
class Acquisition:
    """One Sentinel-2 acquisition as a pixel source describes it.

    Attributes:
        name: the source's name for it (archive file name, STAC item id), recorded as
            ``file`` in the scene's metadata.
        time: UTC sensing time.
        solar_azimuth: mean solar azimuth, degrees clockwise from north.
        solar_zenith: mean solar zenith, degrees.
        product_id: the product identifier (provenance), e.g. ``S2A_MSIL1C_...``.
        footprint: lon/lat bounding box ``(west, south, east, north)``, EPSG:4326.
        cloud_cover: the product's own cloud cover in percent, when the source has it.
        extra: anything else the source wants to keep with it (its reader's key).
    """

    name: str
    time: dt.datetime
    solar_azimuth: float
    solar_zenith: float
    product_id: str = ""
    footprint: tuple[float, float, float, float] | None = None
    cloud_cover: float | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


#: Fills the 13 bands of one acquisition on the mosaic grid: (13, H, W) uint16 L1C digital
#: numbers in :data:`sen12ms_build.products.S2_BANDS` order, 0 = nodata; or ``None`` to skip
#: it (unreadable: the reader logs and records why).
Reader = Callable[[Acquisition], "np.ndarray | None"]


@dataclass
class MosaicResult:
    """What :func:`mosaic_acquisitions` gives.

    Attributes:
        mosaic: (13, H, W) uint16 L1C digital numbers, 0 where no image has data.
        aux: (4, H, W) uint8 quality layers (:data:`sen12ms_build.products.AUX_MASKS`:
            source image index, poor, cloud, shadow of the chosen image), 255 = nodata.
        meta: ``s2_images`` (one dict per image used, in time order), ``s2_best`` (the
            "best" images' names, bottom to top), ``poor_share`` and ``mosaic_coverage``
            (share of the ROI covered).
    """

    mosaic: np.ndarray
    aux: np.ndarray
    meta: dict[str, Any]


def read_ahead(items: Sequence[Any], read: Callable[[Any], np.ndarray | None]
               ) -> Iterator[tuple[Any, np.ndarray | None]]:
    """``(item, read(item))`` in order, the next item read in a background thread while the
    caller works on the current one (GDAL decodes without the GIL): the read overlaps the
    scoring, at the cost of one more image in memory."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead") as pool:
        nxt = pool.submit(read, items[0]) if items else None
        for k, item in enumerate(items):
            arr = nxt.result()
            nxt = pool.submit(read, items[k + 1]) if k + 1 < len(items) else None
            yield item, arr
            del arr


def copy_where(pairs: Sequence[tuple[np.ndarray, np.ndarray]], where: np.ndarray) -> None:
    """``dst[:, where] = src[:, where]`` for each (dst, src) pair of (C, H, W) arrays and one
    (H, W) mask, band by band; by flat indices (found once for every pair) when the mask is
    sparse (most images hold few pixels of a long season's merge)."""
    n = np.count_nonzero(where)
    if not n:
        return
    idx = np.flatnonzero(where) if n <= where.size // 8 else None
    for dst, src in pairs:
        if idx is None:
            for b in range(dst.shape[0]):
                np.copyto(dst[b], src[b], where=where)
            continue
        d, s = dst.reshape(dst.shape[0], -1), src.reshape(src.shape[0], -1)
        for b in range(dst.shape[0]):
            d[b, idx] = s[b, idx]


def mosaic_acquisitions(acquisitions: Sequence[Acquisition], read: Reader,
                        pixel_size: tuple[float, float], roi_mask: np.ndarray,
                        params: MosaicParams = DEFAULT_PARAMS,
                        clip_margin_px: int = CLIP_MARGIN_PX) -> MosaicResult | None:
    """Mosaic ``acquisitions`` (time order) on one grid.

    Each image is read once (the next one while the current one is scored), clipped to the
    ROI grown by ``clip_margin_px`` (``ee.Image.clip``, with the margin the warp's kernels
    need at the scene edge), scored, and its pixels copied where it holds the merge so far.
    Memory: one image, the mosaic and the merge's planes, whatever the image count.

    Args:
        acquisitions: the period's acquisitions over the ROI, oldest first.
        read: the pixel source (:data:`Reader`).
        pixel_size: (x, y) ground size of one grid pixel, metres.
        roi_mask: (H, W) bool, the ROI on the grid (statistics are over it).
        params: the algorithm's constants.
        clip_margin_px: pixels kept outside the ROI.

    Returns:
        The mosaic, its aux layers and metadata; ``None`` when no image had data.
    """
    shape = roi_mask.shape
    clip_mask = ndimage.binary_dilation(roi_mask, iterations=clip_margin_px)
    outside = np.flatnonzero(~clip_mask)  # the few corner pixels the clip zeroes
    merge = RunningMerge(shape)  # O(H x W) memory whatever the image count
    result: np.ndarray | None = None
    chosen_masks = np.zeros((2, *shape), bool)  # cloud, shadow of the chosen image
    used = []
    for acq, l1c in read_ahead(acquisitions, read):
        if l1c is None:
            continue
        l1c.reshape(l1c.shape[0], -1)[:, outside] = 0  # ee.Image.clip(roi), with a margin
        if not l1c.any():
            continue
        az, zen = float(acq.solar_azimuth), float(acq.solar_zenith)
        s = score_image(l1c, pixel_size, az, zen, roi_mask, params, components=False,
                        masks=True)  # AUX_MASKS
        held = merge.add_on_top(s.quality, s.poor, s.valid, s.cloudy_percentage, params)
        if result is None:
            result = np.zeros(l1c.shape, l1c.dtype)
        copy_where([(result, l1c), *((c[None], m[None])
                                     for c, m in zip(chosen_masks, s.masks))], held)
        del held
        used.append({"file": acq.name, "time": acq.time.isoformat(),
                     "product_id": acq.product_id or acq.name,
                     "solar_azimuth": az, "solar_zenith": zen,
                     "cloudy_percentage": round(s.cloudy_percentage, 3),
                     "roi_coverage_percent": round(s.roi_coverage_percent, 3)})
        del s, l1c
    if result is None:
        return None
    k = len(used)
    source, chosen_poor, best = merge.finish_on_top(params)
    covered = source >= 0
    poor_share = poor_share_of(source, chosen_poor)
    aux = np.full((AUX_MASKS.count, *shape), 255, np.uint8)
    aux[0][covered] = source[covered]
    aux[1][covered] = chosen_poor[covered]
    aux[2:4, covered] = chosen_masks[:, covered]  # the chosen image's cloud and shadow
    counts = np.bincount(source[covered], minlength=k)
    for i, u in enumerate(used):
        u["best"] = i in best
        u["pixels_in_mosaic"] = int(counts[i])
    meta = {"s2_images": used, "s2_best": [used[i]["file"] for i in best],
            "poor_share": round(poor_share, 5),
            "mosaic_coverage": round(float((covered & roi_mask).sum() / roi_mask.sum()), 5)}
    return MosaicResult(result, aux, meta)
