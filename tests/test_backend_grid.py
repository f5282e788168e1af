"""The export grid is the backend's to declare (issue 19): a backend that reads its sources
straight onto the scene's UTM grid (``ExportGrid.SCENE``) gets no second resampling, and
the paper's backends keep the two-step path (EPSG:4326 export, then the warp)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import rasterio

from sen12ms_build.backends import ExportGrid, SceneExport, SceneRequest
from sen12ms_build.backends.local import LocalBackend
from sen12ms_build.config import load_config
from sen12ms_build.pipeline import run
from sen12ms_build.products import AUX_MASKS, MODALITIES
from sen12ms_build.raster.io import InputError
from sen12ms_build.raster.warp import warp_to_file


class SceneGridBackend(LocalBackend):
    """The local archive, read onto the scene grid by the backend itself: it exports on the
    paper's grid into a side folder and warps each file onto the scene grid with GDAL (what
    a backend reading UTM COGs would hand over)."""

    name = "scene-grid-test"
    export_grid = ExportGrid.SCENE

    def export_scene(self, request: SceneRequest, out_dir: Path) -> SceneExport:
        side = Path(out_dir).parent / "geographic"
        geo = LocalBackend(self.archive).export_scene(request, side)
        grid = request.grid(self.export_grid)
        out = Path(out_dir)
        for key, src in {**geo.paths(), "aux": geo.aux}.items():
            modality = AUX_MASKS if key == "aux" else MODALITIES[key]
            warp_to_file(src, out / src.name, grid, modality)
            with rasterio.open(out / src.name, "r+") as f:  # a mark a second warp would drop
                f.update_tags(READ_BY="scene-grid-test")
        return SceneExport.in_folder(out, geo.meta)


class WrongGridBackend(LocalBackend):
    """Declares the scene grid but exports on the geographic one."""

    name = "wrong-grid-test"
    export_grid = ExportGrid.SCENE

    def export_scene(self, request: SceneRequest, out_dir: Path) -> SceneExport:
        return LocalBackend(self.archive).export_scene(request, out_dir)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _patches(root: Path) -> dict[str, np.ndarray]:
    out = {}
    for p in sorted(root.glob("ROIs*/*_*/*.tif")):
        with rasterio.open(p) as f:
            out[str(p.relative_to(root))] = f.read()
    return out


@pytest.fixture(scope="module")
def two_runs(small_archive, tmp_path_factory, tiny_config):
    base = tmp_path_factory.mktemp("grid")
    cfg = load_config(tiny_config(base / "a", small_archive))
    cfg_b = load_config(tiny_config(base / "b", small_archive))
    run(cfg, ["winter"], progress=False, workers=1)
    summary = run(cfg_b, ["winter"], progress=False, workers=1,
                  backend=SceneGridBackend(small_archive))
    assert summary.patches_kept and not summary.problems, summary
    return Path(cfg.out), Path(cfg_b.out)


def test_the_paper_backends_declare_the_geographic_grid():
    from sen12ms_build.backends.earthengine import EarthEngineBackend

    assert LocalBackend.export_grid is ExportGrid.GEOGRAPHIC
    assert EarthEngineBackend.export_grid is ExportGrid.GEOGRAPHIC


def test_a_scene_grid_export_is_adopted_without_a_second_warp(two_runs):
    _, root = two_runs
    scenes = sorted((root / ".work").glob("ROIs*/scene_*"))
    assert scenes
    for wd in scenes:
        for key in ("s1", "s2", "lc"):
            exported, utm = wd / "export" / f"{key}.tif", wd / "utm" / f"{key}.tif"
            assert _sha(exported) == _sha(utm), utm  # the same file, not resampled again
            with rasterio.open(utm) as f:
                assert f.tags().get("READ_BY") == "scene-grid-test", utm
                assert f.crs.is_projected and f.res == (10.0, 10.0)


def test_a_scene_grid_backend_gives_the_two_step_paths_patches(two_runs):
    """Its exports are the warp's own output, so the patches are the same pixels."""
    a, b = (_patches(r) for r in two_runs)
    assert a and a.keys() == b.keys()
    for name in a:
        assert np.array_equal(a[name], b[name], equal_nan=True), name


def test_a_backend_that_breaks_its_declared_grid_is_one_clear_error(small_archive, tmp_path,
                                                                     tiny_config):
    cfg = load_config(tiny_config(tmp_path, small_archive))
    with pytest.raises(InputError, match="declares the scene grid but exported"):
        run(cfg, ["winter"], progress=False, workers=1,
            backend=WrongGridBackend(small_archive))
