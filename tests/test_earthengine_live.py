"""Live smoke test against real Earth Engine (``pytest -m live``; docs/earthengine.md).

Skipped unless ``EARTHENGINE_PROJECT`` is set and credentials are found (``earthengine
authenticate`` or ``EARTHENGINE_SERVICE_ACCOUNT_KEY``); CI never sets them. One tiny ROI
(600 m, about 60 x 60 export pixels) goes through every modality in download mode, and in
batch mode too when ``SEN12MS_LIVE_BUCKET`` names a Cloud Storage bucket, and the outputs are
validated: grid, bands, dtypes, value ranges, nodata share, metadata. Cost: one
``value:compute`` and three ``computePixels`` requests (download), three export tasks
(batch), a few EECU-seconds to minutes.
"""

from __future__ import annotations

import datetime as dt
import os

import numpy as np
import pytest
import rasterio

pytestmark = pytest.mark.live

PROJECT = os.environ.get("EARTHENGINE_PROJECT")
BUCKET = os.environ.get("SEN12MS_LIVE_BUCKET")

if not PROJECT:
    pytest.skip("live Earth Engine test: set EARTHENGINE_PROJECT (and credentials) to run",
                allow_module_level=True)
pytest.importorskip("ee")

from sen12ms_build.backends import SceneRequest  # noqa: E402
from sen12ms_build.backends.earthengine import EarthEngineBackend  # noqa: E402
from sen12ms_build.backends.earthengine.errors import EarthEngineAuthError  # noqa: E402
from sen12ms_build.roi import ROI  # noqa: E402

# farmland near Munich, summer 2017: Sentinel-1, Sentinel-2 and MODIS all present
ROI_TINY = ROI.at(7, 1868, "land", 11.5, 48.1, 600.0)
REQUEST = SceneRequest(ROI_TINY, "summer", dt.date(2017, 6, 1), dt.date(2017, 8, 31))


def _backend(tmp_path, **extra) -> EarthEngineBackend:
    try:
        return EarthEngineBackend(project=PROJECT, cache_dir=str(tmp_path / "cache"),
                                  state_file=str(tmp_path / "tasks.json"), progress=False,
                                  **extra)
    except EarthEngineAuthError as exc:
        pytest.skip(f"no usable Earth Engine credentials: {exc}")


def _validate(res, grid) -> None:
    with rasterio.open(res.s2) as src:
        s2 = src.read()
        assert (src.width, src.height) == (grid.width, grid.height)
        assert src.transform == grid.transform and src.crs.to_epsg() == 4326
        assert s2.shape[0] == 13 and s2.dtype == np.uint16
    covered = (s2 != 0).any(axis=0)
    assert covered.mean() > 0.8
    assert 0 < np.median(s2[1][covered]) < 10000  # B2 reflectance x 10000
    with rasterio.open(res.s1) as src:
        s1 = src.read()
        assert s1.shape[0] == 2 and s1.dtype == np.float32
    finite = np.isfinite(s1)
    assert finite.mean() > 0.8
    assert -50 < np.nanmedian(s1[0]) < 20 and -50 < np.nanmedian(s1[1]) < 20  # dB
    with rasterio.open(res.lc) as src:
        lc = src.read()
        assert lc.shape[0] == 4 and lc.dtype == np.uint16
    assert set(np.unique(lc[0])) <= set(range(1, 18))  # IGBP classes
    assert res.meta["s2_images"] and res.meta["s1_images"] and res.meta["lc_image"]
    # the orbit pass of every S1 acquisition (orbitProperties_pass)
    assert {a["orbit_pass"] for a in res.meta["s1_acquisitions"]} <= {"ASCENDING", "DESCENDING"}
    # the aux raster: source index, poor, cloud and shadow masks (products.AUX_MASKS)
    with rasterio.open(res.aux) as src:
        aux = src.read()
        assert aux.shape[0] == 4 and aux.dtype == np.uint8
    assert set(np.unique(aux[1:])) <= {0, 1, 255}
    assert not ((aux[2] == 1) & (aux[3] == 1)).any()  # a shadow is never a cloud
    assert ((aux[0] == 255) == (aux[2] == 255)).all()  # masks where a source is


def test_live_download_mode(tmp_path):
    backend = _backend(tmp_path)
    res = backend.export_scene(REQUEST, tmp_path / "download")
    _validate(res, ROI_TINY.export_grid())


@pytest.mark.skipif(not BUCKET, reason="set SEN12MS_LIVE_BUCKET to test batch mode")
def test_live_batch_mode(tmp_path):
    backend = _backend(tmp_path, mode="batch", bucket=BUCKET, export_prefix="sen12ms-live",
                       poll_interval=10.0, task_timeout=3600.0)
    res = backend.export_scene(REQUEST, tmp_path / "batch")
    _validate(res, ROI_TINY.export_grid())
