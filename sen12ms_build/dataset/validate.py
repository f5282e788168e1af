"""Check a finished SEN12MS tree: names, folders, rasters, triplets, manifest, split lists.

:func:`validate_tree` reads every patch header and last row (and, with ``checksums``, every
byte) and returns one human-readable problem per line; an empty list means the tree is
valid.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from pathlib import Path
from typing import Iterator

import rasterio
from rasterio.errors import RasterioError
from rasterio.windows import Window

from . import layout
from ..raster.io import sha256
from ..products import ALL_MODALITIES, S2_LEVELS, s2_modality_of

log = logging.getLogger(__name__)

S2_COUNTS = {m.count for m in S2_LEVELS.values()}
BRANCH_RE = r"^ROIs\d+_(spring|summer|fall|winter)$"
#: A branch's sub-folders: the triplet's, the quality layers' and the added labels'.
DATA_FOLDER_RE = rf"^({'|'.join((*layout.ALL_DATA_IDS, 'qa'))})_\d+$"


def _check_patch(path: Path, res_m: float, size: int) -> tuple[list[str], tuple | None]:
    problems = []
    dd = layout.parse_patch_filename(path.name).dd
    m = ALL_MODALITIES[dd]
    try:
        with rasterio.open(path) as f:
            if dd == "s2" and f.count in S2_COUNTS:  # L1C (13 bands) or L2A (12)
                m = s2_modality_of(f.count)
                if tuple(f.descriptions) != m.descriptions:
                    problems.append(f"{path}: band names {f.descriptions}, expected "
                                    f"{m.descriptions}")
            if f.count != m.count:
                problems.append(f"{path}: {f.count} bands, expected {m.count}")
            if f.dtypes[0] != m.dtype:
                problems.append(f"{path}: dtype {f.dtypes[0]}, expected {m.dtype}")
            if (f.width, f.height) != (size, size):
                problems.append(f"{path}: {f.width}x{f.height} px, expected {size}x{size}")
            if f.crs is None or not f.crs.is_projected:
                problems.append(f"{path}: no projected (UTM) CRS")
            elif not (str(f.crs.to_epsg() or "")[:3] in ("326", "327")):
                problems.append(f"{path}: CRS {f.crs} is not a WGS 84 UTM zone")
            a, e = f.transform.a, f.transform.e
            if not (math.isclose(a, res_m) and math.isclose(-e, res_m)):
                problems.append(f"{path}: pixel {a} x {-e} m, expected {res_m} x {res_m}")
            nodata_ok = (f.nodata is not None and math.isnan(f.nodata)) if math.isnan(m.nodata) \
                else f.nodata == m.nodata
            if not nodata_ok:
                problems.append(f"{path}: nodata {f.nodata}, expected {m.nodata}")
            key = (f.crs.to_string() if f.crs else None, tuple(f.transform))
            # the last row's strip: a file cut short after its header fails here
            f.read(window=Window(0, f.height - 1, f.width, 1))
    except RasterioError as exc:
        return [f"{path}: unreadable ({exc})"], None
    return problems, key


def iter_patch_files(root: Path) -> Iterator[Path]:
    """The patch files of the tree (named as the tool names them; quality layers and other
    files are not patches: :func:`stray_files` reports files that are not the dataset's)."""
    for branch in sorted(Path(root).glob("ROIs*")):
        if branch.is_dir():
            yield from sorted(p for p in branch.glob("*/*.tif")
                              if not p.parent.name.startswith("qa_")  # quality layers
                              and layout.PATCH_RE.match(p.name))


#: What the tool keeps for itself below a dataset root: neither dataset files nor strays.
INTERNAL = (layout.WORK_DIR, ".sen12ms-build", ".sen12ms.lock")


def stray_files(root: Path | str) -> list[Path]:
    """Files below ``root`` that are not part of the dataset: the tool did not write them
    (its record of written files, :meth:`sen12ms_build.state.State.written`), such as the
    ``.aux.xml`` files ``gdalinfo -stats`` leaves, or a user's notes. The tool's own
    bookkeeping (:data:`INTERNAL`) is left out. A tree without its record (no marker or no
    ``.work``: copied without it, or made by an earlier version) has only the ``.aux.xml``
    files reported. Sorted."""
    from ..raster.outdir import read_marker
    from ..state import written_files

    root = Path(os.path.abspath(root))
    written = written_files(root) if read_marker(root) else None
    known = set(map(str, written)) if written is not None else None
    strays = []
    for folder, dirs, files in os.walk(root):
        if Path(folder) == root:
            dirs[:] = [d for d in dirs if d not in INTERNAL]
            files = [f for f in files if f not in INTERNAL]
        for name in files:
            path = Path(folder) / name
            if name.endswith(".aux.xml") or (known is not None and str(path) not in known):
                strays.append(path)
    return sorted(strays)


def tree_patch_size(root: Path | str, res_m: float = 10.0) -> int | None:
    """The patch size the tree was built with, in pixels: from ``manifest.csv`` (a patch's
    bounds over the pixel size), else the commonest width of the patch files; ``None`` when
    the tree has neither."""
    from collections import Counter

    path = Path(root) / "manifest.csv"
    try:
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                try:
                    return round((float(r["right"]) - float(r["left"])) / res_m)
                except (KeyError, TypeError, ValueError):
                    break
    except OSError:
        pass
    widths: Counter = Counter()
    for p in iter_patch_files(root):
        try:
            with rasterio.open(p) as src:
                widths[src.width] += 1
        except RasterioError:
            continue
        if sum(widths.values()) >= 50:
            break
    return widths.most_common(1)[0][0] if widths else None


def validate_tree(root: Path | str, *, res_m: float = 10.0, size: int | None = None,
                  checksums: bool = True) -> list[str]:
    """Every problem of the tree below ``root`` (empty when valid).

    Args:
        size: patch size in pixels; default: the tree's own (:func:`tree_patch_size`),
            else 256.
    """
    import re

    root = Path(root)
    problems: list[str] = []
    if not root.is_dir():
        return [f"{root}: not a directory"]
    if size is None:
        size = tree_patch_size(root, res_m) or 256
    from .cr_validate import tree_variant, validate_cr, validate_ts

    variant = tree_variant(root)  # a cloud-removal tree (variant.json): its own layout
    if variant == "cr":
        return validate_cr(root, res_m, size, checksums)
    if variant == "cr-ts":
        return validate_ts(root, res_m, size, checksums)
    branches = [p for p in root.glob("ROIs*") if p.is_dir()]
    if not branches:
        problems.append(f"{root}: no ROIs<seed>_<season> branch folders")
    for b in branches:
        if not re.match(BRANCH_RE, b.name):
            problems.append(f"{b}: not a ROIs<seed>_<season> folder name")
        for sub in b.iterdir():
            if sub.is_dir() and not re.match(DATA_FOLDER_RE, sub.name):
                problems.append(f"{sub}: not a <s1|s2|lc|qa|wc|dw>_<scene> folder")
    groups: dict[tuple, dict[str, tuple]] = {}
    for path in iter_patch_files(root):
        try:
            name = layout.parse_patch_filename(path.name)
        except ValueError as exc:
            problems.append(f"{path}: {exc}")
            continue
        if path.parent.name != f"{name.dd}_{name.scene}" or \
                path.parent.parent.name != layout.branch_name(name.seed, name.season):
            problems.append(f"{path}: file is in the wrong folder")
        probs, key = _check_patch(path, res_m, size)
        problems += probs
        groups.setdefault((name.seed, name.season, name.scene, name.patch), {})[name.dd] = key
    for (seed, season, scene, patch), members in sorted(groups.items()):
        label = f"{layout.branch_name(seed, season)} scene {scene} p{patch}"
        missing = sorted(set(layout.DATA_IDS) - set(members))
        if missing:
            problems.append(f"{label}: triplet incomplete, missing {', '.join(missing)}")
        elif None not in members.values() and len(set(members.values())) != 1:
            problems.append(f"{label}: {'/'.join(members)} do not share one CRS and "
                            "geotransform")
    manifest_problems = _check_manifest(root, groups, checksums)
    problems += manifest_problems
    if any("header lacks column(s)" in p for p in manifest_problems):
        return problems  # every check below reads the manifest: one cause, one line
    problems += _check_splits(root, groups)
    from .selfdescription import check_all  # tags, quality layers, splits, STAC, Croissant

    problems += check_all(root, checksums)
    return problems


def _check_manifest(root: Path, groups: dict, checksums: bool) -> list[str]:
    path = root / "manifest.csv"
    if not path.exists():
        return [f"{path}: missing"]
    problems = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        rows = list(reader)
    lacking = [c for c in ("status", *layout.DATA_IDS) if c not in header]
    if lacking:  # one cause, not one line per patch file
        return [f"{path}: header lacks column(s) {', '.join(lacking)} (damaged or foreign "
                "manifest); run the same `sen12ms-build run` command again to rewrite it"]
    listed = set()
    ids = (*layout.DATA_IDS, *(dd for dd in layout.EXTRA_DATA_IDS if dd in header))
    for i, r in enumerate(rows, start=2):
        if r.get("status") != "kept":
            continue
        for dd in ids:
            rel = r.get(dd, "")
            file = root / rel
            listed.add(rel)
            if not rel or not file.exists():
                problems.append(f"{path}:{i}: {dd} file {rel or '(empty)'} is missing")
            elif checksums and sha256(file) != r.get(f"sha256_{dd}"):
                problems.append(f"{path}:{i}: checksum of {rel} does not match")
    on_disk = {str(p.relative_to(root)) for p in iter_patch_files(root)}
    for extra in sorted(on_disk - listed):
        problems.append(f"{root / extra}: not in manifest.csv")
    return problems


def _check_splits(root: Path, groups: dict) -> list[str]:
    problems = []
    lists = {}
    for name in ("train_list.txt", "test_list.txt"):
        p = root / name
        if not p.exists():
            problems.append(f"{p}: missing")
            lists[name] = []
            continue
        lists[name] = p.read_text().split()
        for n in lists[name]:
            try:
                pn = layout.parse_patch_filename(n)
            except ValueError:
                problems.append(f"{p}: {n} is not an s2 patch name")
                continue
            if pn.dd != "s2":
                problems.append(f"{p}: {n} is not an s2 patch")
            elif (pn.seed, pn.season, pn.scene, pn.patch) not in groups:
                problems.append(f"{p}: {n} is not in the tree")
    scenes = {name: {(layout.parse_patch_filename(n).season, layout.parse_patch_filename(n)
                      .scene) for n in names if layout.PATCH_RE.match(n)}
              for name, names in lists.items()}
    both = scenes.get("train_list.txt", set()) & scenes.get("test_list.txt", set())
    for season, scene in sorted(both):
        problems.append(f"{season} scene {scene} is in both train_list.txt and test_list.txt")
    listed = set(lists.get("train_list.txt", [])) | set(lists.get("test_list.txt", []))
    for key in sorted(groups):
        n = layout.patch_filename(key[0], key[1], "s2", key[2], key[3])
        if n not in listed:
            problems.append(f"{n}: in the tree but in neither split list")
    return problems
