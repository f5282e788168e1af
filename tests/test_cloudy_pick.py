"""The cloud-removal variants' picks (sen12ms_build.mosaic.cloudy_pick) on hand-worked cases,
and the Earth Engine graph of the cr pick evaluated as values (tests/ee_helpers.evaluate):
the same key, the same filters, the same order."""

from __future__ import annotations

import datetime as dt

import pytest

from sen12ms_build.mosaic import cloudy_pick as cp
from sen12ms_build.mosaic.cloudy_pick import Candidate

UTC = dt.UTC


def t(day: int, hour: int = 15) -> dt.datetime:
    return dt.datetime(2017, 4, 1, hour, tzinfo=UTC) + dt.timedelta(days=day)


def test_dominant_is_the_image_with_most_pixels_first_of_equals():
    assert cp.dominant_index([5, 9, 2]) == 1
    assert cp.dominant_index([7, 3, 7]) == 0
    with pytest.raises(ValueError):
        cp.dominant_index([])


@pytest.mark.parametrize("pct,expected", [(10.0, 0.0), (90.0, 0.0), (50.0, 0.0),
                                          (4.5, 5.5), (97.0, 7.0), (0.0, 10.0)])
def test_band_distance_counts_points_outside_the_band_bounds_included(pct, expected):
    assert cp.band_distance(pct, (10.0, 90.0)) == pytest.approx(expected)


def test_pick_takes_the_in_band_image_closest_in_time_to_the_dominant_one():
    images = [Candidate(t(0), 35.0, 100.0, 10),   # 20 days before the dominant image
              Candidate(t(20), 0.0, 100.0, 900),  # the dominant image (most pixels)
              Candidate(t(30), 60.0, 100.0, 50),  # 10 days after: nearest in band
              Candidate(t(22), 2.0, 100.0, 40)]   # 2 days after, but below the band
    assert cp.pick_cloudy(images, (10.0, 90.0)) == 2


def test_pick_never_takes_the_dominant_image_and_ties_go_to_the_earlier():
    images = [Candidate(t(0), 30.0, 100.0, 0), Candidate(t(20), 30.0, 100.0, 500),
              Candidate(t(40), 30.0, 100.0, 0)]  # both 20 days from the dominant one
    assert cp.pick_cloudy(images, (10.0, 90.0)) == 0


def test_pick_outside_the_band_only_when_none_is_inside_nearest_band_first():
    images = [Candidate(t(0), 99.0, 100.0, 0),   # 9 points above the band, 1 day away
              Candidate(t(1), 0.0, 100.0, 800),  # dominant
              Candidate(t(60), 5.0, 100.0, 0)]   # 5 points below, 59 days away
    assert cp.pick_cloudy(images, (10.0, 90.0)) == 2


def test_pick_skips_images_that_cover_too_little_of_the_roi():
    images = [Candidate(t(0), 0.0, 100.0, 800), Candidate(t(1), 40.0, 98.0, 10),
              Candidate(t(9), 40.0, 100.0, 0)]
    assert cp.pick_cloudy(images, (10.0, 90.0), min_coverage=99.0) == 2
    assert cp.pick_cloudy(images, (10.0, 90.0), min_coverage=90.0) == 1
    assert cp.pick_cloudy(images[:1], (10.0, 90.0)) is None  # only the dominant one


def test_slots_tile_the_period_evenly():
    centres = cp.slot_centres(dt.date(2017, 1, 1), dt.date(2017, 1, 10), 5)
    # 10 days in 5 slots of 2 days: centres at 1, 3, 5, 7, 9 days after Jan 1st 00:00
    assert [c.isoformat() for c in centres] == [
        f"2017-01-{d:02d}T00:00:00+00:00" for d in (2, 4, 6, 8, 10)]


def test_time_series_takes_the_nearest_covering_s2_and_the_s1_nearest_it():
    s2 = [t(0), t(10), t(11), t(30)]
    s1 = [t(1, 23), t(12, 11), t(29, 23)]
    asked = []

    def covers(i: int) -> bool:
        asked.append(i)
        return i != 2  # acquisition 2 covers too little of the ROI

    pts = cp.time_series(s2, s1, dt.date(2017, 4, 1), dt.date(2017, 5, 10), 4, covers)
    # slots of 10 days centred on Apr 6, 16, 26, May 6; Apr 16 is nearest t(15)=Apr 16:
    # t(11) (Apr 12) is nearer than t(10) but does not cover: t(10)
    assert pts == [(0, 0), (1, 1), (3, 2), (3, 2)]
    assert len(asked) == len(set(asked)) and 2 in asked  # each asked once, nearest first
    assert cp.time_series(s2, [], dt.date(2017, 4, 1), dt.date(2017, 5, 10), 4) is None
    assert cp.time_series(s2, s1, dt.date(2017, 4, 1), dt.date(2017, 5, 10), 4,
                          lambda i: False) is None


# --- the Earth Engine graph of the pick, as values -------------------------------------------

@pytest.fixture(scope="module")
def pick_graph():
    from ee_helpers import offline_ee

    from sen12ms_build.backends.earthengine import graphs

    with offline_ee():
        region = graphs.region_of([(-75.6, 37.6), (-75.5, 37.6), (-75.5, 37.7),
                                   (-75.6, 37.7), (-75.6, 37.6)])
        picked = graphs.cloudy_pick(region, "2017-03-01", "2017-05-30", "20170421T155101_X",
                                    1492789861000.0, (10.0, 90.0), 99.0)
        return graphs.encode(graphs.cloudy_image(picked, region))


def _key_node(expr):
    from ee_helpers import function_nodes

    from sen12ms_build.backends.earthengine.graphs import PICK_KEY

    found = []
    for node in function_nodes(expr, "Element.set"):
        key = node["arguments"]["key"]
        while "valueReference" in key:
            key = expr["values"][key["valueReference"]]
        if key.get("constantValue") == PICK_KEY:
            found.append(node["arguments"]["value"])
    assert len(found) == 1
    return found[0]


@pytest.mark.parametrize("pct,days", [(35.0, -20.0), (60.0, 10.0), (2.0, 2.0), (99.0, 1.0),
                                      (90.0, -0.5), (10.0, 41.25)])
def test_graph_key_equals_the_numpy_key(pick_graph, pct, days):
    """The graph's own ee.Number arithmetic, evaluated with the image's properties, gives
    mosaic.cloudy_pick.pick_key of the same image."""
    from ee_helpers import evaluate

    dominant_ms = 1492789861000.0
    props = {"CLOUDY_PERCENTAGE": pct, "system:time_start": dominant_ms + days * 86400e3}
    got = evaluate(pick_graph, _key_node(pick_graph), props)
    assert got == pytest.approx(cp.pick_key(pct, abs(days), (10.0, 90.0)), abs=1e-9)


def test_graph_filters_the_dominant_image_and_thin_coverage_then_sorts_by_key(pick_graph):
    from ee_helpers import calls, constants

    from sen12ms_build.backends.earthengine.graphs import PICK_KEY

    consts = constants(pick_graph)
    assert "20170421T155101_X" in consts and 99.0 in consts
    equals = [c for c in calls(pick_graph, "Filter.equals")
              if c.get("rightValue") == "20170421T155101_X"]
    assert equals and equals[0]["leftField"] == "system:index"
    less = [c for c in calls(pick_graph, "Filter.lessThan") if c.get("rightValue") == 99.0]
    assert less and less[0]["leftField"] == "ROI_COVERAGE_PERCENT"
    sorts = [c["key"] for c in calls(pick_graph, "Collection.limit") if "key" in c]
    # time first, then a stable sort by key: ties go to the earlier image
    assert sorts[-2:] == ["system:time_start", PICK_KEY]
    assert calls(pick_graph, "Collection.first")
