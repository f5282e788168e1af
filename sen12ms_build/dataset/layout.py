"""The SEN12MS tree: names, folders, manifest, ``seasons.csv`` and split lists.

::

    <root>/
      ROIs1158_spring/                      one branch per season: ROIs<seed>_<season>
        s1_1/ROIs1158_spring_s1_1_p1.tif    <dd>_<scene>/ROIs<seed>_<season>_<dd>_<scene>_p<patch>.tif
        s2_1/...  lc_1/...
      manifest.csv      one row per patch (kept or rejected), with checksums
      scenes.csv        one row per scene with the scene round's decision
      seasons.csv       meteorological branch -> climatic season of each scene
      train_list.txt    s2 patch file names of the train split (splits.json: how)
      test_list.txt
      .work/            intermediate exports and warped scenes (resumable runs)
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from ..raster.io import OutputError, atomic_path, atomic_write_text, explain_os_error
from ..state import WORK_DIR  # noqa: F401 (defined once, with the state file)

DATA_IDS = ("s1", "s2", "lc")
#: Data ids a run may add to the triplet: 10 m labels (``labels:``; ``wc`` ESA WorldCover,
#: ``dw`` Dynamic World), in ``<id>_<scene>/`` folders beside ``lc_<scene>/`` that SEN12MS
#: loaders never read (they build every path from the s2 names).
EXTRA_DATA_IDS = ("wc", "dw")
ALL_DATA_IDS = (*DATA_IDS, *EXTRA_DATA_IDS)
PATCH_RE = re.compile(
    r"^ROIs(?P<seed>\d+)_(?P<season>spring|summer|fall|winter)_(?P<dd>s1|s2|lc|wc|dw)_"
    r"(?P<scene>\d+)_p(?P<patch>\d+)\.tif$")
#: A quality layer's name (:func:`quality_path`).
QA_RE = re.compile(r"^ROIs\d+_(spring|summer|fall|winter)_qa_\d+_p\d+\.tif$")


def branch_name(seed: int, season: str) -> str:
    """``ROIs<seed>_<season>``."""
    return f"ROIs{seed}_{season}"


def patch_filename(seed: int, season: str, dd: str, scene: int, patch: int) -> str:
    """``ROIs<seed>_<season>_<dd>_<scene>_p<patch>.tif``."""
    return f"{branch_name(seed, season)}_{dd}_{scene}_p{patch}.tif"


def patch_path(root: Path, seed: int, season: str, dd: str, scene: int, patch: int) -> Path:
    """Path of a patch file in the tree."""
    return (Path(root) / branch_name(seed, season) / f"{dd}_{scene}" /
            patch_filename(seed, season, dd, scene, patch))


def patch_description(cfg: Any) -> str:
    """``128 x 128 px at 10 m``: the patches as a run cut them (its ``tiling.patch_size``
    and ``reproject.resolution_m``; SEN12MS's 256 px at 10 m without a config). Every
    description of the dataset (data card, Croissant, STAC) says this."""
    size = cfg.tiling.patch_size if cfg is not None else 256
    res = cfg.reproject.resolution_m if cfg is not None else 10.0
    return f"{size} x {size} px at {res:g} m"


@dataclass(frozen=True)
class PatchName:
    seed: int
    season: str
    dd: str
    scene: int
    patch: int


def parse_patch_filename(name: str) -> PatchName:
    """Inverse of :func:`patch_filename`; ``ValueError`` for a foreign name."""
    m = PATCH_RE.match(name)
    if not m:
        raise ValueError(f"not a SEN12MS patch file name: {name}")
    return PatchName(int(m["seed"]), m["season"], m["dd"], int(m["scene"]), int(m["patch"]))


def quality_path(root: Path, seed: int, season: str, scene: int, patch: int) -> Path:
    """Path of a patch's quality layer: ``<branch>/qa_<scene>/<branch>_qa_<scene>_p<patch>.tif``
    (a sibling of ``s1_<scene>`` that SEN12MS loaders never read)."""
    return (Path(root) / branch_name(seed, season) / f"qa_{scene}" /
            f"{branch_name(seed, season)}_qa_{scene}_p{patch}.tif")


def scene_workdir(root: Path, seed: int, season: str, scene: int) -> Path:
    """Folder of a scene's intermediate files."""
    return Path(root) / WORK_DIR / branch_name(seed, season) / f"scene_{scene}"


# --- seasons.csv ------------------------------------------------------------------------

_OPPOSITE = {"spring": "fall", "summer": "winter", "fall": "spring", "winter": "summer"}
TROPIC_DEG = 23.44


def climatic_season(season: str, lat: float) -> str:
    """The season a scene was actually acquired in, from a climatic point of view.

    The branches are the meteorological seasons of the northern hemisphere (paper 4.1).
    Rule: north of the equator the season is the branch's; south of it the seasons are
    reversed (a "winter" branch scene in Argentina was acquired in austral summer).
    Within the tropics the same rule applies, and :func:`climate_zone` flags them, since
    temperate seasons mean little there.
    """
    return season if lat >= 0 else _OPPOSITE[season]


def climate_zone(lat: float) -> str:
    """``tropical`` (|lat| < 23.44), ``polar`` (|lat| >= 66.56) or ``temperate``."""
    a = abs(lat)
    if a < TROPIC_DEG:
        return "tropical"
    if a >= 90 - TROPIC_DEG:
        return "polar"
    return "temperate"


def _write_rows(f: Any, header: list[str],
                rows: Iterable[Iterable[Any] | Mapping[str, Any]]) -> None:
    """CSV into the open text file ``f``; a row is a sequence in header order or a mapping
    by column name (missing columns empty, keys outside the header ignored)."""
    w = csv.writer(f, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow([row.get(k, "") for k in header] if isinstance(row, Mapping) else row)


SEASONS_HEADER = ["branch", "season", "scene", "roi_id", "kind", "lon", "lat", "utm_zone",
                  "period_start", "period_end", "hemisphere", "climate_zone",
                  "climatic_season"]


def seasons_rows(scenes: list[dict]) -> list[list[Any]]:
    """Rows of ``seasons.csv`` from scene records (see :mod:`pipeline`)."""
    rows = []
    for s in scenes:
        rows.append([s["branch"], s["season"], s["scene"], s["roi_id"], s["kind"],
                     f"{s['lon']:.5f}", f"{s['lat']:.5f}", s["utm_zone"], s["start"],
                     s["end"], "north" if s["lat"] >= 0 else "south", climate_zone(s["lat"]),
                     climatic_season(s["season"], s["lat"])])
    return rows


# --- manifest ------------------------------------------------------------------------------

#: One column per curation check (``curation.CHECKS``, same order): its measured value.
CHECK_COLUMNS = ["nodata_s2", "nodata_s1", "nodata_lc", "poor", "poor_blob", "saturated",
                 "s1_stripe", "s1_range", "s1_border", "seam", "haze"]
#: ``status`` is the final decision, ``reason`` the check that rejected (``review`` when a
#: reviewer did), ``review`` the reviewer's decision (``rejected``, ``readmitted`` or empty).
MANIFEST_HEADER = ["patch_id", "branch", "season", "scene", "patch", "status", "reason",
                   "crs", "left", "bottom", "right", "top", *CHECK_COLUMNS, "review",
                   "s1", "s2", "lc", "sha256_s1", "sha256_s2", "sha256_lc",
                   # provenance (sen12ms_build.dataset.provenance.MANIFEST_COLUMNS), quality layer,
                   # split of kept patches (train/test)
                   "roi_id", "s2_product_ids", "s2_datetimes", "s2_shares", "s1_product_ids",
                   "s1_datetimes", "s1_orbit_states", "s1_relative_orbits", "s1_processing",
                   "lc_product", "lc_year",
                   "tool_version", "max_s1_s2_gap_days", "cloud_share", "shadow_share",
                   "igbp_counts",
                   "qa", "sha256_qa", "split"]
def label_columns(data_id: str) -> list[str]:
    """The manifest columns of an added label modality (``wc``, ``dw``): its no-data check,
    file and checksum, then its provenance (:data:`provenance.LABEL_MANIFEST_COLUMNS`: the
    product, version, period, class histogram, dominant class and purity)."""
    return [f"nodata_{data_id}", data_id, f"sha256_{data_id}", "labels_product",
            "labels_version", "labels_period", "labels_counts", "labels_dominant",
            "labels_purity"]


def manifest_header(extra: Iterable[str] = ()) -> list[str]:
    """``manifest.csv``'s columns: :data:`MANIFEST_HEADER`, then those of each added
    modality (:func:`label_columns`); the paper's run has no added one."""
    return [*MANIFEST_HEADER, *(c for dd in extra for c in label_columns(dd))]


def scenes_header(extra: Iterable[str] = ()) -> list[str]:
    """``scenes.csv``'s columns: :data:`SCENES_HEADER`, then the scene round's no-data
    share of each added modality."""
    return [*SCENES_HEADER, *(f"nodata_{dd}" for dd in extra)]


SCENES_HEADER = ["branch", "season", "scene", "roi_id", "kind", "lon", "lat", "utm_zone",
                 "width", "height", "status", "reason", *CHECK_COLUMNS, "s2_dark_floor",
                 "s2_dark_floor_water", "patches", "patches_kept", "s2_images", "s2_best",
                 "scorer", "merge", "shadow_over_water", "backend", "s2_level",
                 "inputs_skipped", "duplicates_dropped"]


def write_csv(path: Path, header: list[str],
              rows: Iterable[Iterable[Any] | Mapping[str, Any]]) -> None:
    """Write a CSV atomically, row by row (``rows`` may be a generator: memory stays flat
    for a manifest of any length)."""
    with atomic_path(path) as tmp:
        try:
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                _write_rows(f, header, rows)
        except OSError as exc:
            raise OutputError(explain_os_error(exc, Path(path))) from exc


def read_csv(path: Path) -> list[dict[str, str]]:
    """Every row of a CSV (a list: for the root's small tables; :func:`iter_csv` for the
    manifest)."""
    return list(iter_csv(path))


def iter_csv(path: Path) -> Iterator[dict[str, str]]:
    """The rows of a CSV one at a time (the file is read as they are consumed)."""
    with open(path, newline="", encoding="utf-8") as f:
        yield from csv.DictReader(f)


# --- splits ------------------------------------------------------------------------------

def split_scenes(scene_keys: list[tuple[str, int]], test_fraction: float,
                 seed: int) -> set[tuple[str, int]]:
    """The (branch, scene) keys in the test split: a seeded shuffle of the sorted keys, the
    first ``ceil(n * test_fraction)`` (at least one when there are two or more scenes)."""
    keys = sorted(scene_keys)
    if len(keys) < 2 or test_fraction <= 0:
        return set()
    n_test = max(1, math.ceil(len(keys) * test_fraction))
    n_test = min(n_test, len(keys) - 1)
    order = np.random.default_rng(seed).permutation(len(keys))
    return {keys[i] for i in order[:n_test]}


def write_lines(path: Path, lines: Iterable[str]) -> None:
    atomic_write_text(path, "".join(f"{x}\n" for x in lines))


# --- stale patches ---------------------------------------------------------------------------

def remove_stale_patches(root: Path, branch: str, scene: int, keep: Iterable[Path],
                         owned: Iterable[Path]) -> int:
    """Delete the patch files (and quality layers) of one scene that the tool wrote
    (``owned``: the record of written files, :meth:`sen12ms_build.state.State.written`) and
    that are not in ``keep`` (the files the tile stage just wrote), e.g. those of an earlier
    ``tiling.patch_size`` or ``stride``. A file the tool did not write is never deleted,
    even in the scene's folders.

    Each removal is one ``unlink`` (atomic); the scene's other files are untouched, so
    an interrupted removal is finished by the next run, which tiles the scene again.
    Returns the number of files removed.
    """
    keep = {Path(p).resolve() for p in keep}
    folders = {(Path(root) / branch / f"{dd}_{scene}").resolve()
               for dd in (*ALL_DATA_IDS, "qa")}
    n = 0
    for f in owned:  # the patches and their quality layers (qa_<scene>/)
        f = Path(f)
        if f.suffix == ".tif" and f.resolve().parent in folders and f.resolve() not in keep \
                and f.exists():
            f.unlink()
            n += 1
    return n
