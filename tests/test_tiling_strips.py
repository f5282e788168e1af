"""tiling's strip reader (reuse of the overlap between patch rows) against direct windowed
reads, and tile_scene's callbacks, on small rasters written here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from sen12ms_build.raster import tiling

T = Affine(10.0, 0.0, 600000.0, 0.0, -10.0, 5000000.0)


def _write(path: Path, data: np.ndarray, nodata) -> Path:
    c, h, w = data.shape
    with rasterio.open(path, "w", driver="GTiff", count=c, height=h, width=w,
                       dtype=data.dtype.name, crs="EPSG:32633", transform=T,
                       nodata=nodata) as dst:
        dst.write(data)
    return path


@pytest.fixture()
def triplet(tmp_path):
    h, w = 37, 41
    rng = np.random.default_rng(4)
    lc = rng.integers(1, 17, (4, h, w), dtype=np.uint16)
    lc[:, :, 30:] = 99  # the right-hand patches (cols 24..39) are mostly class 99
    return {
        "s1": _write(tmp_path / "s1.tif", rng.normal(-12, 3, (2, h, w)).astype(np.float32),
                     float("nan")),
        "s2": _write(tmp_path / "s2.tif", rng.integers(1, 5000, (13, h, w), dtype=np.uint16), 0),
        "lc": _write(tmp_path / "lc.tif", lc, 255),
    }


@pytest.mark.parametrize("size, stride", [(8, 3), (8, 5), (8, 8), (8, 11), (16, 7), (37, 1)])
def test_strips_equal_direct_reads(triplet, size, stride):
    full = {}
    for k, p in triplet.items():
        with rasterio.open(p) as src:
            full[k] = src.read()
    seen = []
    for ws, strips, prof in tiling.iter_patch_rows(triplet, size, stride):
        assert prof["transform"] == T
        assert len({w.row for w in ws}) == 1
        for k, a in strips.items():
            assert a.shape[1] == size
        for w in ws:
            seen.append(w.patch)
            for k in triplet:
                want = full[k][:, w.row:w.row + size, w.col:w.col + size]
                got = strips[k][:, :, w.col:w.col + size]
                np.testing.assert_array_equal(got, want, err_msg=f"{k} patch {w.patch}")
    assert seen == list(range(1, tiling.patch_count(41, 37, size, stride) + 1))


def test_tile_scene_callbacks_and_removal(triplet, tmp_path):
    out = tmp_path / "out"
    progress, extra_calls = [], []

    def name_for(k, patch):
        return out / f"{k}_{patch}.tif"

    def decide(arrays):
        keep = float(arrays["lc"][0].mean()) > 20  # only the columns of class 99
        return keep, "" if keep else "lc", {"lc_mean": float(arrays["lc"][0].mean())}

    def extra_for(patch, arrays, crs, t, tags, keep):
        extra_calls.append((patch, keep, tags["N"]))
        return {"qa": out / f"qa_{patch}.tif"} if keep else {}

    stale = name_for("s2", 2)
    out.mkdir()
    stale.write_bytes(b"stale")
    recs = tiling.tile_scene(triplet, name_for, decide, size=16, stride=12,
                             progress=progress.append,
                             tags_for=lambda a: {"N": str(int(a["lc"].sum()))},
                             extra_for=extra_for)
    assert [r["patch"] for r in recs] == list(range(1, 7))  # 3 columns x 2 rows
    assert progress == [3, 3]
    assert [(p, k) for p, k, _ in extra_calls] == [(r["patch"], r["kept"]) for r in recs]
    kept = [r for r in recs if r["kept"]]
    assert 0 < len(kept) < len(recs)
    for r in recs:
        files = {k: name_for(k, r["patch"]) for k in ("s1", "s2", "lc")}
        assert all(p.exists() == r["kept"] for p in files.values()), r["patch"]
        if r["kept"]:
            assert r["files"] == {**files, "qa": out / f"qa_{r['patch']}.tif"}
            with rasterio.open(files["lc"]) as f:
                assert f.tags()["N"] == r["tags"]["N"]
                assert f.transform == T @ Affine.translation(r["col"], r["row"])
        else:
            assert r["files"] == {} and r["reason"] == "lc"
    assert [r["kept"] for r in recs] == [False, False, True, False, False, True]
    assert not stale.exists()  # patch 2 rejected: its old file is removed


def test_patch_windows_are_immutable():
    import dataclasses

    (w,) = tiling.patch_windows(4, 4, 4, 4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        w.row = 1  # type: ignore[misc]


def test_write_patch_keeps_a_non_square_shape(tmp_path):
    data = np.arange(2 * 5 * 7, dtype=np.float64).reshape(2, 5, 7)
    tiling.write_patch(tmp_path / "p.tif", data, "s1", "EPSG:32633", T, {"K": "v"})
    with rasterio.open(tmp_path / "p.tif") as f:
        assert (f.count, f.height, f.width, f.dtypes[0]) == (2, 5, 7, "float32")
        assert f.descriptions == ("VV sigma0 (dB)", "VH sigma0 (dB)")
        assert f.tags()["K"] == "v" and np.isnan(f.nodata)
        np.testing.assert_array_equal(f.read(), data.astype(np.float32))


def test_tile_scene_defaults_are_256_at_stride_128(tmp_path):
    """The paper's patches: 256 x 256 at a stride of 128 (a 384 x 256 scene has 2)."""
    h, w = 256, 384
    paths = {"s1": _write(tmp_path / "s1.tif", np.zeros((2, h, w), np.float32), float("nan")),
             "s2": _write(tmp_path / "s2.tif", np.ones((13, h, w), np.uint16), 0),
             "lc": _write(tmp_path / "lc.tif", np.ones((4, h, w), np.uint16), 255)}
    sizes = []

    def decide(arrays):
        sizes.append({k: a.shape for k, a in arrays.items()})
        return False, "test", {}

    recs = tiling.tile_scene(paths, lambda k, p: tmp_path / f"{k}_{p}.tif", decide)
    assert [(r["row"], r["col"]) for r in recs] == [(0, 0), (0, 128)]
    assert sizes[0] == {"s1": (2, 256, 256), "s2": (13, 256, 256), "lc": (4, 256, 256)}
