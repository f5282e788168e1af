"""Which single acquisitions the cloud-removal variants export (pure Python, no I/O).

``cr`` (SEN12MS-CR): per scene one real cloudy Sentinel-2 acquisition beside the cloud-free
mosaic. The rule (:func:`pick_cloudy`), documented in docs/variants.md:

1. the mosaic's **dominant source image** is the acquisition that gives the mosaic most of
   its pixels (:func:`dominant_index`; ties: the earlier);
2. every other acquisition of the season that covers at least ``min_coverage`` percent of
   the ROI is a candidate;
3. each candidate gets the key :func:`pick_key`: ``BAND_WEIGHT_DAYS`` days per percentage
   point its CLOUDY_PERCENTAGE (the mosaic's own statistic over the ROI) lies outside the
   configured ``band``, plus its time gap in days to the dominant image; the smallest key
   wins (ties: the earlier acquisition). Inside the band only the time gap counts: the
   acquisition closest in time to the dominant image; an acquisition outside the band is
   taken only when none lies inside, the one nearest the band first.

The Earth Engine graph :func:`sen12ms_build.backends.earthengine.graphs.cloudy_pick`
computes the same key with ``ee.Number`` arithmetic.

``cr-ts`` (SEN12MS-CR-TS): per ROI, ``n`` time slots of equal length over ``[start, end]``
(:func:`slot_centres`); each slot takes the Sentinel-2 acquisition nearest its centre
(:func:`nearest`, among those covering the ROI), and that acquisition the Sentinel-1
acquisition nearest it. With fewer acquisitions than slots, neighbouring slots share one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: Days of time gap one percentage point outside the cloud band weighs: more than any gap
#: within a year, so an acquisition inside the band always wins over one outside it.
BAND_WEIGHT_DAYS = 1000.0
SECONDS_PER_DAY = 86400.0
#: Milliseconds per day (Earth Engine's ``system:time_start`` is in ms).
MS_PER_DAY = SECONDS_PER_DAY * 1000.0


@dataclass(frozen=True)
class Candidate:
    """One acquisition as the picks see it.

    Attributes:
        time: UTC sensing time.
        cloudy_percentage: CLOUDY_PERCENTAGE over the ROI (0..100).
        roi_coverage_percent: share of the ROI it covers (0..100).
        pixels_in_mosaic: mosaic pixels taken from it (``cr``'s dominant image).
    """

    time: dt.datetime
    cloudy_percentage: float = 0.0
    roi_coverage_percent: float = 100.0
    pixels_in_mosaic: int = 0


def gap_days(a: dt.datetime, b: dt.datetime) -> float:
    """|a - b| in days (float)."""
    return abs((a - b).total_seconds()) / SECONDS_PER_DAY


def dominant_index(pixels: Sequence[int]) -> int:
    """Index of the image with the most mosaic pixels (the first of equals); ``ValueError``
    for an empty list."""
    if not pixels:
        raise ValueError("no image in the mosaic")
    best = max(pixels)
    return list(pixels).index(best)


def band_distance(cloudy_percentage: float, band: Sequence[float]) -> float:
    """Percentage points ``cloudy_percentage`` lies outside ``band = (low, high)`` (0
    inside, bounds included)."""
    low, high = band
    return max(low - cloudy_percentage, 0.0) + max(cloudy_percentage - high, 0.0)


def pick_key(cloudy_percentage: float, gap: float, band: Sequence[float]) -> float:
    """The ``cr`` pick's key of a candidate (smaller wins): ``BAND_WEIGHT_DAYS`` x its
    distance outside ``band`` (percentage points) + its time gap ``gap`` (days) to the
    dominant image."""
    return BAND_WEIGHT_DAYS * band_distance(cloudy_percentage, band) + gap


def pick_cloudy(images: Sequence[Candidate], band: Sequence[float],
                min_coverage: float = 99.0) -> int | None:
    """The ``cr`` cloudy acquisition of a scene (see the module doc).

    Args:
        images: the season's acquisitions over the ROI, in the mosaic's (time) order.
        band: (low, high) CLOUDY_PERCENTAGE wanted, percent, inclusive.
        min_coverage: least ROI coverage (percent) of a candidate.
    Returns:
        Index into ``images``; ``None`` when no acquisition but the dominant one covers the
        ROI.
    """
    if not images:
        return None
    dom = dominant_index([c.pixels_in_mosaic for c in images])
    best, best_key = None, None
    for i, c in enumerate(images):
        if i == dom or c.roi_coverage_percent < min_coverage:
            continue
        key = (pick_key(c.cloudy_percentage, gap_days(c.time, images[dom].time), band),
               c.time, i)
        if best_key is None or key < best_key:
            best, best_key = i, key
    return best


def slot_centres(start: dt.date, end: dt.date, n: int) -> list[dt.datetime]:
    """Centres (UTC) of ``n`` slots of equal length tiling ``[start, end]`` (whole days,
    inclusive: from ``start`` 00:00 to the day after ``end`` 00:00)."""
    if n < 1:
        raise ValueError("at least one time slot")
    t0 = dt.datetime.combine(start, dt.time(), dt.UTC)
    span = (dt.datetime.combine(end, dt.time(), dt.UTC) + dt.timedelta(days=1)) - t0
    return [t0 + span * ((k + 0.5) / n) for k in range(n)]


def by_distance(times: Sequence[dt.datetime], target: dt.datetime) -> list[int]:
    """Indices of ``times`` from the nearest to ``target`` to the farthest (ties: the
    earlier first)."""
    return sorted(range(len(times)),
                  key=lambda i: (abs((times[i] - target).total_seconds()), times[i], i))


def nearest(times: Sequence[dt.datetime], target: dt.datetime,
            eligible: Callable[[int], bool] | None = None) -> int | None:
    """Index of the time nearest ``target`` (ties: the earlier) among those ``eligible``
    says yes to (asked nearest first, so a costly test runs only as far as needed);
    ``None`` when none is."""
    for i in by_distance(times, target):
        if eligible is None or eligible(i):
            return i
    return None


def time_series(s2_times: Sequence[dt.datetime], s1_times: Sequence[dt.datetime],
                start: dt.date, end: dt.date, n: int,
                covers: Callable[[int], bool] | None = None
                ) -> list[tuple[int, int]] | None:
    """The ``cr-ts`` time points: for each of ``n`` slots, (Sentinel-2 index, Sentinel-1
    index): the S2 acquisition nearest the slot's centre among those ``covers`` accepts
    (e.g. covering enough of the ROI; asked nearest first and at most once per
    acquisition), and the S1 acquisition nearest that S2 acquisition. ``None`` when no S2
    acquisition is accepted or there is no S1 acquisition."""
    if not s2_times or not s1_times:
        return None
    seen: dict[int, bool] = {}

    def ok(i: int) -> bool:
        if i not in seen:
            seen[i] = True if covers is None else bool(covers(i))
        return seen[i]

    out = []
    for centre in slot_centres(start, end, n):
        i = nearest(s2_times, centre, ok)
        if i is None:
            return None
        out.append((i, nearest(s1_times, s2_times[i])))
    return out
