"""The released trees of the cloud-removal variants: names, folders and their patterns.

``cr`` (SEN12MS-CR, as its loaders and ``dl_data.sh`` arrange it)::

    <root>/
      ROIs1158_spring_s1/s1_1/ROIs1158_spring_s1_1_p1.tif                  VV, VH (dB)
      ROIs1158_spring_s2/s2_1/ROIs1158_spring_s2_1_p1.tif                  cloud-free target
      ROIs1158_spring_s2_cloudy/s2_cloudy_1/ROIs1158_spring_s2_cloudy_1_p1.tif  cloudy input
      ROIs1158_spring_s2_cloudy_mask/s2_cloudy_mask_1/..._s2_cloudy_mask_1_p1.tif  its masks
      ROIs1158_spring_lc/lc_1/...      MODIS land cover (optional extra, SEN12MS's)
      ROIs1158_spring_qa/qa_1/...      the target's quality layer (optional extra)

  i.e. ``ROIs<seed>_<season>_<mod>/<mod>_<scene>/ROIs<seed>_<season>_<mod>_<scene>_p<n>.tif``;
  s1, s2 and lc patch names are SEN12MS's, in a folder per modality.

``cr-ts`` (SEN12MS-CR-TS)::

    <root>/ROIs1868/17/S1/0/s1_ROIs1868_17_ImgNo_0_2018-01-04_patch_1.tif
    <root>/ROIs1868/17/S2/0/s2_ROIs1868_17_ImgNo_0_2018-01-03_patch_1.tif
    <root>/ROIs1868/17/S2_mask/0/s2_mask_ROIs1868_17_ImgNo_0_2018-01-03_patch_1.tif

  i.e. ``ROIs<seed>/<roi>/{S1,S2}/<t>/<s1|s2>_ROIs<seed>_<roi>_ImgNo_<t>_<YYYY-MM-DD>``
  ``_patch_<n>.tif`` with ``<roi>`` the scene number and ``<t>`` the time point (0-based);
  the masks beside, in ``S2_mask`` (a folder the authors' loaders never list).

No folder name of either tree at the root contains ``_s1`` except the s1 branches: the
SEN12MS-CR loader walks every root entry whose name contains it.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

#: ``cr`` modality folders: the released three, the masks, then the optional extras.
CR_IDS = ("s1", "s2", "s2_cloudy", "s2_cloudy_mask", "lc", "qa")
CR_CLOUDY, CR_MASK = "s2_cloudy", "s2_cloudy_mask"
CR_PATCH_RE = re.compile(
    r"^ROIs(?P<seed>\d+)_(?P<season>spring|summer|fall|winter)_"
    r"(?P<dd>s1|s2|s2_cloudy|s2_cloudy_mask|lc|qa)_(?P<scene>\d+)_p(?P<patch>\d+)\.tif$")
#: ``cr-ts`` modality folders (the masks' folder last).
TS_IDS = ("S1", "S2", "S2_mask")
TS_PATCH_RE = re.compile(
    r"^(?P<mod>s1|s2|s2_mask)_ROIs(?P<seed>\d+)_(?P<roi>\d+)_ImgNo_(?P<t>\d+)_"
    r"(?P<date>\d{4}-\d{2}-\d{2})_patch_(?P<patch>\d+)\.tif$")


def cr_branch(seed: int, season: str, dd: str) -> str:
    """``ROIs<seed>_<season>_<dd>``."""
    return f"ROIs{seed}_{season}_{dd}"


def cr_patch_path(root: Path, seed: int, season: str, dd: str, scene: int,
                  patch: int) -> Path:
    """A ``cr`` patch file: ``ROIs<seed>_<season>_<dd>/<dd>_<scene>/..._<dd>_<scene>_p<n>.tif``."""
    branch = cr_branch(seed, season, dd)
    return Path(root) / branch / f"{dd}_{scene}" / f"{branch}_{scene}_p{patch}.tif"


def cr_scene_folders(root: Path, seed: int, season: str, scene: int) -> list[Path]:
    """The folders of one scene's ``cr`` patches, every modality."""
    return [Path(root) / cr_branch(seed, season, dd) / f"{dd}_{scene}" for dd in CR_IDS]


def authors_split_entry(seed: int, season: str, scene: int) -> str:
    """A scene as the SEN12MS-CR loader's ``splits`` lists it, made exact: the loader keeps
    a patch when an entry is a substring of its s1 path, so ``ROIs1158_spring_s1/s1_1``
    also takes ``s1_10`` .. ``s1_199``; the trailing ``/`` ends the folder name."""
    return f"{cr_branch(seed, season, 's1')}/s1_{scene}/"


def ts_roi_folder(root: Path, seed: int, roi: int) -> Path:
    """``ROIs<seed>/<roi>``."""
    return Path(root) / f"ROIs{seed}" / str(roi)


def ts_patch_path(root: Path, seed: int, roi: int, mod: str, t: int, date: dt.date,
                  patch: int) -> Path:
    """A ``cr-ts`` patch file (``mod``: ``s1``, ``s2`` or ``s2_mask``)."""
    folder = {"s1": "S1", "s2": "S2", "s2_mask": "S2_mask"}[mod]
    name = f"{mod}_ROIs{seed}_{roi}_ImgNo_{t}_{date.isoformat()}_patch_{patch}.tif"
    return ts_roi_folder(root, seed, roi) / folder / str(t) / name


def ts_roi_key(seed: int, roi: int) -> str:
    """An ROI as the SEN12MS-CR-TS loaders' ``ROI`` dict and ``splits`` name it:
    ``ROIs<seed>/<roi>``."""
    return f"ROIs{seed}/{roi}"


#: ``cr-ts`` ``manifest.csv``: one row per patch location and time point.
TS_MANIFEST_HEADER = ["patch_id", "branch", "seed", "roi", "patch", "t", "status", "reason",
                      "crs", "left", "bottom", "right", "top", "slot_centre", "s2_datetime",
                      "s2_product_id", "s1_datetime", "s1_product_id", "s1_s2_gap_days",
                      "cloud_coverage", "shadow_coverage", "s1", "s2", "s2_mask", "sha256_s1",
                      "sha256_s2", "sha256_s2_mask", "split"]
#: ``cr-ts`` ``scenes.csv``: one row per ROI.
TS_SCENES_HEADER = ["branch", "season", "seed", "roi", "roi_id", "kind", "lon", "lat",
                    "utm_zone", "width", "height", "status", "reason", "time_points",
                    "s2_distinct", "s1_distinct", "s2_acquisitions", "s1_acquisitions",
                    "period_start", "period_end", "locations", "locations_kept",
                    "mean_cloud_coverage", "backend"]
