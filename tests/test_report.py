"""The dataset report's counting and the land drawn from global_land_mask's data."""

from __future__ import annotations

import numpy as np

from sen12ms_build.curation import report


def test_summarise_counts_seasons_reasons_and_splits():
    scenes = [{"branch": "ROIs1_spring", "status": "kept", "reason": ""},
              {"branch": "ROIs1_spring", "status": "rejected", "reason": "nodata_s2"},
              {"branch": "ROIs2_fall", "status": "rejected", "reason": "no_data: none"}]
    manifest = [
        {"branch": "ROIs1_spring", "status": "kept", "reason": "", "review": "",
         "s2": "ROIs1_spring/s2_1/a.tif"},
        {"branch": "ROIs1_spring", "status": "kept", "reason": "haze", "review": "readmitted",
         "s2": "ROIs1_spring/s2_1/b.tif"},
        {"branch": "ROIs1_spring", "status": "rejected", "reason": "seam", "review": "",
         "s2": ""},
        {"branch": "ROIs1_spring", "status": "rejected", "reason": "review",
         "review": "rejected", "s2": ""}]
    s = report.summarise(manifest, scenes, ["a.tif"], ["b.tif"])
    assert s.branches["ROIs1_spring"] == {"scenes": 2, "scenes_kept": 1, "patches": 4,
                                          "patches_kept": 2, "train": 1, "test": 1}
    assert s.branches["ROIs2_fall"]["scenes"] == 1
    assert s.scene_reasons == {"nodata_s2": 1, "no_data": 1}
    assert s.patch_reasons["ROIs1_spring"] == {"seam": 1, "review": 1}
    assert s.review == {"readmitted": 1, "rejected": 1}
    assert s.totals()["patches_kept"] == 2


def test_class_counts_per_scheme():
    a = np.zeros((4, 2, 2), np.uint16)
    a[0] = [[12, 12], [17, 255]]
    a[1] = 31
    counts = report.class_counts([a, a])
    assert counts[0] == {12: 4, 17: 2, 255: 2}
    assert counts[1] == {31: 8} and counts[3] == {0: 8}


def test_land_grid_from_the_package_data():
    land, extent = report.land_grid(1.0)
    assert land.shape == (180, 360) and extent == (-180.0, 180.0, -90.0, 90.0)
    assert 0.25 < land.mean() < 0.35  # ~29 % of the Earth is land
    assert land[90 - 48, 180 + 2]  # central France (47.5 N, 2.5 E): rows from the north
    assert not land[90 - 0, 180 - 30]  # mid Atlantic
