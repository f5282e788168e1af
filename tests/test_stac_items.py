"""The stac backend's item logic on items shaped like the real ones (tests/fixtures/stac,
recorded from Planetary Computer and Earth Search; see the README there): the Level-2A offset
traps, duplicates of one acquisition, solar angles and band assets."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from sen12ms_build.backends.stac import dedup, harmonize, sentinel2
from sen12ms_build.backends.stac.profiles import resolve
from sen12ms_build.backends.stac.reader import AssetProblem

FIX = Path(__file__).parent / "fixtures" / "stac"


def _pc_item() -> dict:
    return json.loads((FIX / "pc_sentinel-2-l2a_item.json").read_text())


def _es_items() -> dict[str, dict]:
    page = json.loads((FIX / "earth-search_sentinel-2-l2a_search_page.json").read_text())
    return {f["id"]: f for f in page["response"]["features"]}


# --- the offset traps ---------------------------------------------------------------------

def test_planetary_computer_before_baseline_04_has_no_offset():
    item = _pc_item()  # recorded: s2:processing_baseline 02.12, no raster:bands
    assert item["properties"]["s2:processing_baseline"] == "02.12"
    off, why = harmonize.dn_offset(item["properties"], item["assets"]["B04"], "baseline")
    assert off == 0 and "before 04.00" in why


def test_planetary_computer_from_baseline_04_subtracts_1000():
    item = _pc_item()
    item["properties"]["s2:processing_baseline"] = "04.00"  # products from 2022-01-25 on
    for rule in ("baseline", "auto"):
        off, _ = harmonize.dn_offset(item["properties"], item["assets"]["B04"], rule)
        assert off == -1000, rule


def test_earth_search_legacy_offset_is_not_subtracted_twice():
    """Legacy sentinel-2-l2a: raster:bands says offset -0.1 while
    earthsearch:boa_offset_applied says the COG already had it removed (earth-search#66)."""
    item = _es_items()["S2B_24MVV_20250731_0_L2A"]
    red = item["assets"]["red"]
    assert red["raster:bands"][0]["offset"] == -0.1
    assert item["properties"]["earthsearch:boa_offset_applied"] is True
    for rule in ("earthsearch-legacy", "auto"):
        assert harmonize.dn_offset(item["properties"], red, rule)[0] == 0, rule


def test_earth_search_legacy_flag_false_falls_back_to_the_baseline():
    item = copy.deepcopy(_es_items()["S2B_24MVV_20250731_0_L2A"])
    item["properties"]["earthsearch:boa_offset_applied"] = False
    red = item["assets"]["red"]
    assert harmonize.dn_offset(item["properties"], red, "auto")[0] == -1000  # 05.11
    item["properties"]["s2:processing_baseline"] = "02.09"  # the paper's years
    assert harmonize.dn_offset(item["properties"], red, "auto")[0] == 0


@pytest.mark.parametrize("item_id, asset", [("S2B_T24MWV_20250731T130245_L2A", "red"),
                                            ("S2B_24MVV_20250731_0_L1C", "red")])
def test_collection_1_and_l1c_state_the_offset_in_raster_bands(item_id, asset):
    item = _es_items()[item_id]
    assert "earthsearch:boa_offset_applied" not in item["properties"]
    assert harmonize.dn_offset(item["properties"], item["assets"][asset], "auto")[0] == -1000


def test_apply_offset_keeps_nodata_and_the_darkest_valid_value():
    dn = np.array([[0, 1500, 1000, 800, 65535]], np.uint16)
    out = harmonize.apply_offset(dn, -1000)
    assert out.dtype == np.uint16
    assert out.tolist() == [[0, 500, 1, 1, 64535]]
    assert harmonize.apply_offset(dn, 0) is dn


# --- duplicates ---------------------------------------------------------------------------

def test_a_datatake_processed_twice_keeps_the_newest_baseline():
    old = _pc_item()
    new = copy.deepcopy(old)
    new["id"] = "S2B_MSIL2A_20190629T212529_R043_T06VVN_20221111T101010"
    new["properties"]["s2:processing_baseline"] = "05.00"  # Collection-1 reprocessing
    new["properties"]["s2:datatake_id"] = "GS2B_20190629T212529_012081_N05.00"
    new["properties"]["s2:generation_time"] = "2022-11-11T10:10:10Z"
    other = copy.deepcopy(old)
    other["id"] = "S2B_MSIL2A_20190702T212529_R043_T06VVN_20201006T090000"
    other["properties"]["s2:datatake_id"] = "GS2B_20190702T212529_012124_N02.12"
    kept, dropped = dedup.drop_duplicates([old, other, new])
    assert [k["id"] for k in kept] == [other["id"], new["id"]]
    assert len(dropped) == 1 and dropped[0].dropped == old["id"]
    assert dropped[0].kept == new["id"] and "baseline" in dropped[0].reason


def test_receiving_station_copies_keep_the_later_processing():
    a = _pc_item()
    b = copy.deepcopy(a)
    b["id"] = a["id"][:-15] + "20201007T120000"
    b["properties"]["s2:generation_time"] = "2020-10-07T12:00:00Z"
    kept, dropped = dedup.drop_duplicates([b, a])
    assert [k["id"] for k in kept] == [b["id"]] and dropped[0].dropped == a["id"]


def test_earth_search_sequences_of_one_tile_and_day_are_one_acquisition():
    zero = _es_items()["S2B_24MVV_20250731_0_L2A"]
    one = copy.deepcopy(zero)
    one["id"] = "S2B_24MVV_20250731_1_L2A"
    one["properties"]["s2:sequence"] = "1"
    neighbour = _es_items()["S2B_24MWV_20250731_0_L2A"]  # same datatake, another tile
    kept, dropped = dedup.drop_duplicates([zero, one, neighbour])
    assert [k["id"] for k in kept] == [one["id"], neighbour["id"]]
    assert dropped[0].dropped == zero["id"] and dropped[0].reason == "lower sequence"


def test_sentinel1_slices_of_one_datatake_processed_twice():
    item = json.loads((FIX / "pc_sentinel-1-grd_item.json").read_text())
    item["id"] = "S1A_IW_GRDH_1SDV_20230628T210705_20230628T210730_049191_05EA4D_21D1"
    again = copy.deepcopy(item)
    again["id"] = item["id"][:-4] + "9A2B"
    again["properties"]["s1:processing_datetime"] = "2023-07-01T00:00:00Z"
    kept, dropped = dedup.drop_duplicates([item, again])
    assert [k["id"] for k in kept] == [again["id"]] and len(dropped) == 1


# --- from an item to the engine's acquisition -----------------------------------------------

def test_solar_angles_from_either_convention():
    pc = _pc_item()["properties"]
    assert sentinel2.solar_angles(pc) == pytest.approx((170.148039164397, 37.9128805424161))
    es = _es_items()["S2B_24MVV_20250731_0_L1C"]["properties"]
    az, zen = sentinel2.solar_angles(es)
    assert az == pytest.approx(es["view:sun_azimuth"])
    assert zen == pytest.approx(90.0 - es["view:sun_elevation"])
    assert sentinel2.solar_angles({}) is None


def test_l1c_acquisition_reads_13_bands_and_l2a_12_with_the_scl():
    profiles = resolve()
    es = _es_items()["S2B_24MVV_20250731_0_L1C"]
    acq = sentinel2.acquisition(es, profiles["earth-search"].product("s2-l1c"), "l1c")
    bands = [a.band for a in acq.extra["assets"]]
    assert len(bands) == 13 and "B10" in bands
    by = {a.band: a for a in acq.extra["assets"]}
    assert by["B10"].href.endswith("/B10.jp2") and by["B8A"].href.endswith("/B8A.jp2")
    assert all(a.offset_dn == -1000 for a in acq.extra["assets"])  # baseline 05.11
    uri = es["properties"]["s2:product_uri"]
    assert uri.endswith(".SAFE") and acq.product_id == uri[:-len(".SAFE")]
    pc = _pc_item()
    acq2 = sentinel2.acquisition(pc, profiles["planetary-computer"].product("s2-l2a"), "l2a",
                                 with_scl=True)
    assert [a.band for a in acq2.extra["assets"]][-1] == "SCL"
    assert len(acq2.extra["assets"]) == 13 and "B10" not in {a.band for a in
                                                             acq2.extra["assets"]}
    assert acq2.extra["assets"][-1].resampling == "nearest"
    assert acq2.product_id == pc["properties"]["s2:product_uri"][:-5]


def test_an_item_without_a_band_asset_is_a_problem_naming_item_and_asset():
    pc = _pc_item()
    del pc["assets"]["B8A"]
    with pytest.raises(AssetProblem, match=r"S2B_MSIL2A_20190629T212529.*B8A"):
        sentinel2.acquisition(pc, resolve()["planetary-computer"].product("s2-l2a"), "l2a")


def test_sentinel1_neighbouring_slices_of_one_datatake_are_both_kept():
    """A datatake is cut into ~25 s slices, one product each, all with the datatake's id: an
    ROI on a slice boundary needs both (they are different acquisitions, not copies)."""
    item = json.loads((FIX / "pc_sentinel-1-grd_item.json").read_text())
    nxt = copy.deepcopy(item)
    nxt["id"] = "S1A_IW_GRDH_1SDV_20230628T210730_20230628T210755_049191_05EA4D_6B1C"
    nxt["properties"]["s1:slice_number"] = "15"
    nxt["properties"]["start_datetime"] = "2023-06-28 21:07:30.988556+00:00"
    assert nxt["properties"]["s1:datatake_id"] == item["properties"]["s1:datatake_id"]
    kept, dropped = dedup.drop_duplicates([item, nxt])
    assert [k["id"] for k in kept] == [item["id"], nxt["id"]] and not dropped


def test_the_demo_dem_items_are_shaped_like_the_recorded_cop_dem_item(stac_demo):
    """The publisher's cop-dem-glo-30 items carry the recorded item's properties and its
    ``data`` asset, and their tiles are where ``proj:transform`` and ``proj:shape`` say (a
    1 x 1 degree tile, pixel centres on whole arc-seconds below 50 degrees of latitude)."""
    import rasterio

    recorded = json.loads((FIX / "cop-dem-glo-30_item.json").read_text())
    _, svc = stac_demo
    dems = [i for i in svc.items if i["collection"] == recorded["collection"]]
    assert dems
    for item in dems:
        assert set(item["properties"]) <= set(recorded["properties"])
        assert {"proj:epsg", "proj:transform", "proj:shape", "datetime"} <= set(
            item["properties"])
        data = item["assets"]["data"]
        assert data["type"] == recorded["assets"]["data"]["type"]
        assert data["raster:bands"] == recorded["assets"]["data"]["raster:bands"]
        with rasterio.open(data["href"].replace(svc.blob.url, str(svc.blob.root))) as f:
            assert list(f.transform)[:6] == pytest.approx(item["properties"]["proj:transform"])
            assert [f.height, f.width] == item["properties"]["proj:shape"] == [3600, 3600]
            assert f.crs.to_epsg() == item["properties"]["proj:epsg"] == 4326
            west, north = f.transform.c, f.transform.f
            assert west * 3600 % 1 == pytest.approx(0.5) and north * 3600 % 1 == \
                pytest.approx(0.5)
            assert item["bbox"] == pytest.approx(list(f.bounds))
