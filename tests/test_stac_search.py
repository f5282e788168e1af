"""STAC search through pystac-client against the loopback STAC API (sen12ms_build.demo.servers):
paging, item ids unique across pages, duplicates of one acquisition dropped, and the
retries: 429 with Retry-After, 503, a response slower than the timeout, a server gone."""

from __future__ import annotations

import copy
import datetime as dt
import json
import time
from pathlib import Path

import pytest

from sen12ms_build.backends.stac.search import SearchError, search
from sen12ms_build.demo.servers import StacApiServer

FIX = Path(__file__).parent / "fixtures" / "stac"
BBOX = (-149.0, 60.3, -146.8, 61.4)
START, END = dt.date(2019, 6, 1), dt.date(2019, 7, 31)


def _items(n: int = 5) -> list[dict]:
    """``n`` acquisitions of the recorded Planetary Computer item, a day apart."""
    base = json.loads((FIX / "pc_sentinel-2-l2a_item.json").read_text())
    base["collection"] = "sentinel-2-l2a"
    base["bbox"] = [-148.87, 60.34, -146.82, 61.33]
    out = []
    for k in range(n):
        it = copy.deepcopy(base)
        day = 20 + k
        it["id"] = f"S2B_MSIL2A_201906{day}T212529_R043_T06VVN_20201006T080531"
        it["properties"]["datetime"] = f"2019-06-{day}T21:25:29.024000Z"
        it["properties"]["s2:datatake_id"] = f"GS2B_201906{day}T212529_0120{day}_N02.12"
        out.append(it)
    return out


@pytest.fixture()
def api():
    with StacApiServer(_items(), page_size=2) as srv:
        yield srv


def _run(srv, **kw):
    return search(srv.url, "sentinel-2-l2a", BBOX, START, END, page_size=2,
                  **{"timeout_s": 5.0, "retries": 3, **kw})


def test_paged_search_finds_every_item_once(api):
    res = _run(api)
    assert [i["id"][11:19] for i in res.items] == [f"201906{d}" for d in range(20, 25)]
    assert res.pages == 3 and res.repeated == 0
    assert api.requests["/search"] == 3


def test_items_repeated_across_pages_are_kept_once(api):
    api.repeat_across_pages = True
    res = _run(api)
    assert len(res.items) == 5 and len({i["id"] for i in res.items}) == 5
    assert res.repeated == 2  # pages 2 and 3 each began with the page before's last item


def test_the_same_datatake_processed_twice_is_dropped_and_recorded():
    items = _items(3)
    again = copy.deepcopy(items[1])
    again["id"] = items[1]["id"][:-15] + "20221111T101010"
    again["properties"]["s2:processing_baseline"] = "05.00"
    again["properties"]["s2:datatake_id"] = items[1]["properties"]["s2:datatake_id"][:-6] \
        + "N05.00"
    with StacApiServer(items + [again], page_size=2) as srv:
        res = _run(srv)
    assert again["id"] in {i["id"] for i in res.items}
    assert items[1]["id"] not in {i["id"] for i in res.items}
    assert [d.dropped for d in res.dropped] == [items[1]["id"]]


def test_429_with_retry_after_is_waited_out(api):
    api.faults.add("status", n=1, path="/search", status=429, headers={"Retry-After": "1"},
                   body='{"code": "TooManyRequests"}')
    t0 = time.monotonic()
    res = _run(api)
    assert time.monotonic() - t0 >= 1.0  # the server's Retry-After was honoured
    assert len(res.items) == 5 and api.requests["/search"] == 4


def test_503_is_retried(api):
    api.faults.add("status", n=2, path="/search", status=503, body="Service Unavailable")
    assert len(_run(api).items) == 5
    assert api.requests["/search"] == 5


def test_a_search_that_keeps_failing_is_one_line(api):
    api.faults.add("status", n=100, path="/search", status=503)
    with pytest.raises(SearchError) as err:
        _run(api, retries=1)
    msg = str(err.value)
    assert "\n" not in msg and "sentinel-2-l2a" in msg and "503" in msg


def test_a_response_slower_than_the_timeout_is_retried(api):
    api.faults.add("delay", n=1, path="/search", seconds=1.5)
    res = _run(api, timeout_s=0.5)
    assert len(res.items) == 5


def test_a_server_gone_is_one_line():
    srv = StacApiServer(_items(1))
    url = srv.url
    srv.close()
    with pytest.raises(SearchError, match="failed after 1 retries") as err:
        search(url, "sentinel-2-l2a", BBOX, START, END, timeout_s=1.0, retries=1)
    assert "\n" not in str(err.value)
