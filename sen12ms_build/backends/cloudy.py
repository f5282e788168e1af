"""The cloud-removal variants' single acquisitions, for every backend that reads pixels
itself (``local``, ``stac``): the same acquisitions and reader the mosaicking engine gets.

* :func:`export_cloudy` (``variant: cr``): after a scene's mosaic, pick its cloudy
  acquisition (:func:`sen12ms_build.mosaic.cloudy_pick.pick_cloudy`) among the season's
  acquisitions the engine scored, read it once more and write it unmosaicked as
  ``s2_cloudy.tif`` on the export grid, clipped as the engine clips (the ROI and
  :data:`~sen12ms_build.products.CLIP_MARGIN_PX` pixels around it).
* :func:`export_time_series` (``variant: cr-ts``): per time slot the Sentinel-2 acquisition
  nearest it that covers the ROI and the Sentinel-1 acquisition nearest that one
  (:func:`sen12ms_build.mosaic.cloudy_pick.time_series`), each written once.

Earth Engine computes its pick with a graph (``graphs.cloudy_pick``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from ..mosaic import cloudy_pick, engine
from ..products import CLIP_MARGIN_PX, S1, S2
from . import EXPORT_FILES, CloudyOptions, NoDataError, TimeSeriesExport, TimeSeriesRequest

log = logging.getLogger(__name__)

#: Writes one export GeoTIFF: ``write(path, data, nodata=..., descriptions=..., tags=...)``
#: on the export grid (the backend supplies the grid and compression).
Writer = Callable[..., None]


def _time(s: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(str(s).replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def clip_mask(roi_mask: np.ndarray, margin_px: int = CLIP_MARGIN_PX) -> np.ndarray:
    """The engine's clip: the ROI grown by ``margin_px`` pixels. (H, W) bool."""
    return ndimage.binary_dilation(roi_mask, iterations=margin_px) if margin_px else roi_mask


def candidates(images: Sequence[dict[str, Any]]) -> list[cloudy_pick.Candidate]:
    """The pick's view of the engine's ``s2_images`` metadata."""
    return [cloudy_pick.Candidate(time=_time(im["time"]),
                                  cloudy_percentage=float(im["cloudy_percentage"]),
                                  roi_coverage_percent=float(im["roi_coverage_percent"]),
                                  pixels_in_mosaic=int(im.get("pixels_in_mosaic", 0)))
            for im in images]


def describe_pick(images: Sequence[dict[str, Any]], index: int,
                  options: CloudyOptions) -> dict[str, Any]:
    """What ``scenes.csv`` and the patches record of the pick: the chosen image's entry of
    ``s2_images`` (file, product id, time, solar angles, cloudy and coverage percentages),
    the dominant source image, the time gap between them in days and whether the choice
    lay inside the band (``rule``: ``in_band`` or ``nearest_band``)."""
    cands = candidates(images)
    dom = cloudy_pick.dominant_index([c.pixels_in_mosaic for c in cands])
    im = images[index]
    inside = cloudy_pick.band_distance(cands[index].cloudy_percentage, options.band) == 0
    return {
        "file": im["file"], "product_id": im.get("product_id") or im["file"],
        "time": im["time"], "solar_azimuth": im["solar_azimuth"],
        "solar_zenith": im["solar_zenith"], "cloudy_percentage": im["cloudy_percentage"],
        "roi_coverage_percent": im["roi_coverage_percent"],
        "dominant": {"file": images[dom]["file"],
                     "product_id": images[dom].get("product_id") or images[dom]["file"],
                     "time": images[dom]["time"]},
        "gap_days": round(cloudy_pick.gap_days(cands[index].time, cands[dom].time), 4),
        "rule": "in_band" if inside else "nearest_band",
        "band": list(options.band), "min_coverage": options.min_coverage}


def export_cloudy(acquisitions: Sequence[engine.Acquisition], read: engine.Reader,
                  mosaic_meta: dict[str, Any], roi_mask: np.ndarray, options: CloudyOptions,
                  out: Path, write: Writer, roi_id: str = "") -> dict[str, Any]:
    """Pick, read and write the scene's cloudy acquisition (``s2_cloudy.tif``).

    Args:
        acquisitions: the season's acquisitions the engine mosaicked (its input).
        read: the engine's reader.
        mosaic_meta: the engine's metadata (``s2_images`` with ``pixels_in_mosaic``).
        roi_mask: (H, W) bool ROI on the export grid.
        write: the backend's export writer (grid and compression bound).
    Returns:
        ``{"s2_cloudy": describe_pick(...)}`` for the scene's metadata.
    Raises:
        NoDataError: no acquisition besides the dominant one covers the ROI, or the chosen
            one cannot be read.
    """
    images = mosaic_meta["s2_images"]
    index = cloudy_pick.pick_cloudy(candidates(images), options.band, options.min_coverage)
    if index is None:
        raise NoDataError(f"no cloudy input for ROI {roi_id}: no Sentinel-2 acquisition "
                          f"besides the mosaic's dominant one covers {options.min_coverage:g} "
                          "% of it (cloud_removal.min_coverage_percent)")
    pick = describe_pick(images, index, options)
    acq = {a.name: a for a in acquisitions}[pick["file"]]
    arr = read(acq)
    if arr is None:
        raise NoDataError(f"the cloudy input {pick['file']} of ROI {roi_id} is unreadable")
    arr = np.ascontiguousarray(arr[:S2.count])
    arr.reshape(arr.shape[0], -1)[:, ~clip_mask(roi_mask).ravel()] = 0
    write(out / EXPORT_FILES["s2_cloudy"], arr, nodata=S2.nodata,
          descriptions=S2.descriptions, tags=_s2_tags(pick))
    log.info("ROI %s: cloudy input %s (%.1f %% cloudy, %.1f days from %s, %s)", roi_id,
             pick["product_id"], pick["cloudy_percentage"], pick["gap_days"],
             pick["dominant"]["product_id"], pick["rule"])
    return {"s2_cloudy": pick}


def _s2_tags(info: dict[str, Any]) -> dict[str, str]:
    return {"PRODUCT_ID": str(info["product_id"]), "SENSING_TIME": str(info["time"]),
            "MEAN_SOLAR_AZIMUTH_ANGLE": f"{float(info['solar_azimuth']):.6f}",
            "MEAN_SOLAR_ZENITH_ANGLE": f"{float(info['solar_zenith']):.6f}"}


def coverage_percent(arr: np.ndarray, roi_mask: np.ndarray) -> float:
    """Share (percent) of the ROI where a (13, H, W) L1C array has data."""
    n = int(roi_mask.sum())
    return 100.0 * float((np.any(arr != 0, axis=0) & roi_mask).sum()) / n if n else 0.0


def export_time_series(request: TimeSeriesRequest, s2: Sequence[engine.Acquisition],
                       read_s2: engine.Reader, s1: Sequence[dict[str, Any]],
                       read_s1: Callable[[dict[str, Any]], np.ndarray | None],
                       roi_mask: np.ndarray, out: Path, write: Writer) -> TimeSeriesExport:
    """The ``cr-ts`` export of one ROI (see the module doc).

    Args:
        s2: the year's Sentinel-2 acquisitions over the ROI, oldest first.
        read_s2: their reader ((13, H, W) uint16 on the export grid, or None).
        s1: the year's Sentinel-1 acquisitions, oldest first: dicts with ``id``, ``time``
            (ISO), ``orbit_pass`` and whatever ``read_s1`` needs.
        read_s1: (2, H, W) float32 sigma0 dB on the export grid (NaN nodata), or None.
        roi_mask: (H, W) bool ROI on the export grid.
    Raises:
        NoDataError: no S2 acquisition covers ``min_coverage`` % of the ROI, no S1.
    """
    out = Path(out)
    clip = clip_mask(roi_mask)
    cover: dict[int, float] = {}

    def covers(i: int) -> bool:
        arr = read_s2(s2[i])
        if arr is None:
            return False
        arr = np.ascontiguousarray(arr[:S2.count])
        arr.reshape(arr.shape[0], -1)[:, ~clip.ravel()] = 0
        cover[i] = coverage_percent(arr, roi_mask)
        if cover[i] < request.min_coverage:
            return False
        info = _s2_info(s2[i], cover[i])
        write(out / f"s2_{i}.tif", arr, nodata=S2.nodata, descriptions=S2.descriptions,
              tags=_s2_tags({**info, "product_id": info["id"]}))
        return True

    points = cloudy_pick.time_series([a.time for a in s2], [_time(a["time"]) for a in s1],
                                     request.start, request.end, request.time_points, covers)
    if points is None:
        raise NoDataError(f"no time series for ROI {request.roi.id}: "
                          + ("no Sentinel-1 acquisition" if not s1 else
                             f"no Sentinel-2 acquisition covers {request.min_coverage:g} % of "
                             "it (cloud_removal.min_coverage_percent)")
                          + f" in {request.start}..{request.end}")
    written_s1: set[int] = set()
    for _, j in points:
        if j in written_s1:
            continue
        arr = read_s1(s1[j])
        if arr is None:
            raise NoDataError(f"Sentinel-1 acquisition {s1[j]['id']} of ROI "
                              f"{request.roi.id} is unreadable")
        arr = np.ascontiguousarray(arr[:S1.count], dtype=np.float32)
        write(out / f"s1_{j}.tif", arr, nodata=S1.nodata, descriptions=S1.descriptions,
              tags={"PRODUCT_ID": str(s1[j]["id"]), "SENSING_TIME": str(s1[j]["time"])})
        written_s1.add(j)
    pts = [{"t": t, "s2_file": f"s2_{i}.tif", "s1_file": f"s1_{j}.tif",
            "s2": _s2_info(s2[i], cover[i]),
            "s1": {k: s1[j][k] for k in ("id", "time", "orbit_pass") if k in s1[j]}}
           for t, (i, j) in enumerate(points)]
    centres = cloudy_pick.slot_centres(request.start, request.end, request.time_points)
    for p, c in zip(pts, centres):
        p["slot_centre"] = c.isoformat()
    return TimeSeriesExport(out, pts, {"s2_acquisitions": len(s2), "s1_acquisitions": len(s1),
                                       "s2_distinct": len({p["s2_file"] for p in pts}),
                                       "s1_distinct": len(written_s1)})


def _s2_info(acq: engine.Acquisition, cover: float) -> dict[str, Any]:
    return {"id": acq.product_id or acq.name, "file": acq.name, "time": acq.time.isoformat(),
            "solar_azimuth": float(acq.solar_azimuth), "solar_zenith": float(acq.solar_zenith),
            "roi_coverage_percent": round(cover, 3)}
