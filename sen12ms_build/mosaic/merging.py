"""The merge of the mosaicking algorithm (SEN12MS section 3.1): the "best" images' order,
the per-pixel source map (:func:`merge_sources`), the running merge that takes images one
at a time (:class:`RunningMerge`) and the assembly of the mosaic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .params import DEFAULT_PARAMS, MosaicParams
from .scores import poor_mask


# --- image merging module ----------------------------------------------------------------

@dataclass
class MergeResult:
    """Output of :func:`merge`.

    Attributes:
        mosaic: (13, H, W) uint16, 0 where no image has data.
        source: (H, W) int16 index of the image each pixel came from, -1 for none.
        poor_share: share (0..1) of covered output pixels that are poor (cloud or shadow)
            in the image they came from.
        best: indices of the "best" images (CLOUDY_PERCENTAGE < keep_thresh), bottom to top.
    """

    mosaic: np.ndarray
    source: np.ndarray
    poor_share: float
    best: list[int]


def merge_order_key(cloudy_pct: float, index: int) -> tuple[float, int]:
    """Sort key of the "best" images, bottom to top: CLOUDY_PERCENTAGE descending (the
    clearest on top), ties broken by the position in the time-sorted collection (earlier
    below). Both backends order by it: :func:`best_images` here, and the Earth Engine
    backend pins the same list into its graph (``graphs.best_collection``)."""
    return (-cloudy_pct, index)


def best_images(cloudy_pct: Sequence[float], params: MosaicParams = DEFAULT_PARAMS) -> list[int]:
    """Indices with CLOUDY_PERCENTAGE < keep_thresh in :func:`merge_order_key` order
    (clearest last, i.e. on top of the mosaic); ties keep acquisition order."""
    keep = [i for i, p in enumerate(cloudy_pct) if p < params.keep_thresh]
    return sorted(keep, key=lambda i: merge_order_key(cloudy_pct[i], i))


def merge_sources(quality: np.ndarray, valid: np.ndarray, cloudy_pct: Sequence[float],
                  params: MosaicParams = DEFAULT_PARAMS,
                  poor: np.ndarray | None = None) -> tuple[np.ndarray, list[int]]:
    """Per-pixel source image of the merge: the quality mosaic (highest quality wins), with
    the "best" images mosaicked on top wherever they have data (``params.merge`` ``paper``)
    or wherever they have data and are not poor (``masked``: the quality mosaic keeps
    their cloud and shadow pixels).

    Args:
        quality: (N, H, W) float32 quality scores (-inf outside footprints).
        valid: (N, H, W) bool footprints.
        cloudy_pct: N cloudy percentages.
        poor: (N, H, W) bool poor masks for the masked merge (default: :func:`poor_mask`
            of ``quality``).
    Returns:
        (H, W) int16 source index (-1 where no image has data) and the best list.
    """
    n = quality.shape[0]
    if n == 0:
        raise ValueError("no images to merge")
    q = np.where(valid, quality, -np.inf)
    source = np.argmax(q, axis=0).astype(np.int16)
    source[~valid.any(axis=0)] = -1
    best = best_images(cloudy_pct, params)
    masked = params.merge == "masked"
    for i in best:  # later (clearer) images on top
        on_top = valid[i]
        if masked:
            on_top = on_top & ~(poor_mask(quality[i], params) if poor is None else poor[i])
        source[on_top] = i
    return source, best


class RunningMerge:
    """:func:`merge_sources` one image at a time, for scenes whose N score planes do not fit
    in memory together: O(H x W) memory whatever N, the same result.

    Two ways to feed it, with the same result:

    * :meth:`add` every image in order (its quality and poor planes); then :meth:`finish`
      puts the "best" images on top, asking ``load(i)`` for the (valid, poor) planes of
      those images only (kept aside by the caller);
    * :meth:`add_on_top` every image in order (with its footprint and CLOUDY_PERCENTAGE):
      a best image goes on top at once, above the best images it outranks
      (:func:`merge_order_key`), so nothing has to be kept aside; then :meth:`finish_on_top`.
      Each call returns where the image holds the merge now: a caller assembling the mosaic
      as it goes copies the image's pixels there, and the last copy at each pixel is the
      merge's choice.
    """

    def __init__(self, shape: tuple[int, int]):
        self.quality = np.full(shape, -np.inf, np.float32)
        self.source = np.full(shape, -1, np.int16)
        self.poor = np.zeros(shape, bool)
        self.n = 0
        # add_on_top: the best image on top of each pixel (-1: none), its poor plane, and
        # every image's CLOUDY_PERCENTAGE so far
        self.top: np.ndarray | None = None
        self.top_poor: np.ndarray | None = None
        self.cloudy: list[float] = []

    def add(self, quality: np.ndarray, poor: np.ndarray) -> int:
        """Take image ``n``: it wins where its quality is strictly higher (ties keep the
        earlier image, as ``argmax``). Returns its index."""
        return self._take(quality, poor)[0]

    def _take(self, quality: np.ndarray, poor: np.ndarray) -> tuple[int, np.ndarray]:
        """:meth:`add`, returning the index and where the image wins the quality mosaic."""
        i = self.n
        better = quality > self.quality
        np.copyto(self.quality, quality, where=better)
        np.copyto(self.source, np.int16(i), where=better)
        np.copyto(self.poor, poor, where=better)
        self.n += 1
        return i, better

    def add_on_top(self, quality: np.ndarray, poor: np.ndarray, valid: np.ndarray,
                   cloudy_pct: float, params: MosaicParams = DEFAULT_PARAMS) -> np.ndarray:
        """Take image ``n`` as :meth:`add` does and, if it is a "best" image
        (CLOUDY_PERCENTAGE below ``keep_thresh``), put it on top now wherever it has data
        (``params.merge`` ``masked``: and is not poor) and outranks the best image already
        there. Returns the (H, W) bool pixels the image holds in the merge now: on top, or
        winning the quality mosaic where no best image lies on top."""
        i, better = self._take(quality, poor)
        self.cloudy.append(float(cloudy_pct))
        if self.top is None:
            self.top = np.full(self.source.shape, -1, np.int16)
            self.top_poor = np.zeros(self.source.shape, bool)
        if not best_images([cloudy_pct], params):
            better &= self.top < 0
            return better
        on = valid & ~poor if params.merge == "masked" else valid.copy()
        # outranks: no best image yet (-1), or a best image k whose key is lower
        key = merge_order_key(self.cloudy[i], i)
        below = np.array([True] + [merge_order_key(self.cloudy[k], k) < key
                                   for k in range(i)], bool)
        on &= below[self.top + 1]
        np.copyto(self.top, np.int16(i), where=on)
        np.copyto(self.top_poor, poor, where=on)
        better &= self.top < 0
        better |= on
        return better

    def finish_on_top(self, params: MosaicParams = DEFAULT_PARAMS
                      ) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """:meth:`finish` after :meth:`add_on_top`: (source (H, W) int16, chosen poor (H, W)
        bool, best indices bottom to top)."""
        if self.top is not None:
            on_top = self.top >= 0
            np.copyto(self.source, self.top, where=on_top)
            np.copyto(self.poor, self.top_poor, where=on_top)
        return self.source, self.poor & (self.source >= 0), best_images(self.cloudy, params)

    def finish(self, cloudy_pct: Sequence[float],
               load: Callable[[int], tuple[np.ndarray, np.ndarray]],
               params: MosaicParams = DEFAULT_PARAMS) -> tuple[np.ndarray, np.ndarray,
                                                              list[int]]:
        """(source (H, W) int16, chosen poor (H, W) bool, best indices). With
        ``params.merge`` ``masked`` a best image goes on top only where it is not poor."""
        best = best_images(cloudy_pct, params)
        masked = params.merge == "masked"
        for i in best:
            valid, poor = load(i)
            if masked:
                valid = valid & ~poor
            np.copyto(self.source, np.int16(i), where=valid)
            np.copyto(self.poor, poor, where=valid)
        return self.source, self.poor & (self.source >= 0), best


def assemble(images: Sequence[np.ndarray] | np.ndarray, source: np.ndarray) -> np.ndarray:
    """(C, H, W) mosaic taking each pixel from ``images[source]``; 0 where source is -1.
    ``images`` may be a lazy sequence (e.g. memory-mapped files opened on access): each
    is accessed once."""
    out = None
    for i in range(len(images)):
        img = images[i]
        if out is None:
            out = np.zeros(img.shape, img.dtype)
        sel = source == i
        if sel.any():
            for b in range(img.shape[0]):  # band by band: no (C, H, W) temporary
                np.copyto(out[b], img[b], where=sel)
        del img
    return out


def merge(images: np.ndarray, quality: np.ndarray, valid: np.ndarray,
          cloudy_pct: Sequence[float], params: MosaicParams = DEFAULT_PARAMS,
          poor: np.ndarray | None = None) -> MergeResult:
    """Image merging module: (N, 13, H, W) uint16 images into one cloud-free mosaic.

    ``poor`` ((N, H, W) bool) defaults to :func:`poor_mask` of ``quality``.
    """
    if poor is None:
        poor = poor_mask(quality, params)
    source, best = merge_sources(quality, valid, cloudy_pct, params, poor)
    mosaic = assemble(images, source)
    return MergeResult(mosaic, source, final_poor_share(source, poor), best)


def final_poor_share(source: np.ndarray, poor: np.ndarray) -> float:
    """Share of covered pixels whose chosen source is poor there. ``poor`` is (N, H, W)."""
    idx = np.clip(source, 0, None)[None]
    return poor_share_of(source, np.take_along_axis(poor, idx.astype(np.intp), axis=0)[0])


def poor_share_of(source: np.ndarray, chosen_poor: np.ndarray) -> float:
    """Share of covered pixels (``source >= 0``) that ``chosen_poor`` (H, W) marks poor."""
    covered = source >= 0
    if not covered.any():
        return 0.0
    return float((chosen_poor & covered).sum()) / float(covered.sum())
