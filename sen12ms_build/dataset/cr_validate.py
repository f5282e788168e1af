"""``sen12ms-build validate`` for the cloud-removal trees (``variant.json`` says which):
names and folders, bands and dtypes, one grid per pair (``cr``) or per location and time
point (``cr-ts``), the same patch ids at every time point, manifest checksums, split files,
STAC and Croissant. One line per problem; empty when valid.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import rasterio
from rasterio.errors import RasterioError

from ..raster.io import sha256
from . import cr_layout

VARIANT_FILE = "variant.json"
#: (band count, dtype) per modality folder.
BANDS = {"s1": (2, "float32"), "s2": (13, "uint16"), "s2_cloudy": (13, "uint16"),
         "s2_cloudy_mask": (2, "uint8"), "lc": (4, "uint16"), "qa": (3, "uint8"),
         "S1": (2, "float32"), "S2": (13, "uint16"), "S2_mask": (2, "uint8")}


def tree_variant(root: Path | str) -> str:
    """The variant a root was built with (``variant.json``; ``sen12ms`` without it)."""
    try:
        return str(json.loads((Path(root) / VARIANT_FILE).read_text())["variant"])
    except (OSError, ValueError, KeyError, TypeError):
        return "sen12ms"


def _grid(path: Path, kind: str, size: int, res_m: float) -> tuple[list[str], tuple | None]:
    problems = []
    count, dtype = BANDS[kind]
    try:
        with rasterio.open(path) as f:
            if (f.count, f.dtypes[0]) != (count, dtype):
                problems.append(f"{path}: {f.count} x {f.dtypes[0]}, expected {count} x {dtype}")
            if (f.width, f.height) != (size, size):
                problems.append(f"{path}: {f.width}x{f.height} px, expected {size}x{size}")
            if not (math.isclose(f.transform.a, res_m) and math.isclose(-f.transform.e, res_m)):
                problems.append(f"{path}: pixel {f.transform.a} m, expected {res_m} m")
            f.read(window=((f.height - 1, f.height), (0, f.width)))
            return problems, (f.crs.to_string() if f.crs else None, tuple(f.transform))
    except RasterioError as exc:
        return [f"{path}: unreadable ({exc})"], None


def _manifest(root: Path, keys: tuple[str, ...], checksums: bool) -> tuple[list[str], list]:
    path = root / "manifest.csv"
    if not path.exists():
        return [f"{path}: missing"], []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    problems = []
    if rows and any(k not in rows[0] for k in keys):
        return [f"{path}: header lacks column(s) of the variant's files; run the same "
                "command again to rewrite it"], rows
    for i, r in enumerate(rows, start=2):
        if r.get("status") != "kept":
            continue
        for k in keys:
            file = root / r[k]
            if not r[k] or not file.exists():
                problems.append(f"{path}:{i}: {k} file {r[k] or '(empty)'} is missing")
            elif checksums and sha256(file) != r.get(f"sha256_{k}"):
                problems.append(f"{path}:{i}: checksum of {r[k]} does not match")
    return problems, rows


def _descriptions(root: Path) -> list[str]:
    from .croissant import validate_croissant
    from .stac_validate import validate_catalog

    return validate_catalog(root) + validate_croissant(root)


def validate_cr(root: Path, res_m: float = 10.0, size: int = 256,
                checksums: bool = True) -> list[str]:
    """Every problem of a ``cr`` tree."""
    problems: list[str] = []
    groups: dict[tuple, dict[str, tuple | None]] = {}
    folder_re = re.compile(r"^ROIs\d+_(spring|summer|fall|winter)_(" +
                           "|".join(cr_layout.CR_IDS) + r")$")
    for branch in sorted(p for p in root.glob("ROIs*") if p.is_dir()):
        if not folder_re.match(branch.name):
            problems.append(f"{branch}: not a ROIs<seed>_<season>_<mod> folder")
            continue
        for f in sorted(branch.glob("*/*.tif")):
            m = cr_layout.CR_PATCH_RE.match(f.name)
            if not m or f.parent.name != f"{m['dd']}_{m['scene']}" or \
                    branch.name != cr_layout.cr_branch(int(m["seed"]), m["season"], m["dd"]):
                problems.append(f"{f}: not a cr patch name in its folder")
                continue
            probs, key = _grid(f, m["dd"], size, res_m)
            problems += probs
            groups.setdefault((m["seed"], m["season"], int(m["scene"]), int(m["patch"])),
                              {})[m["dd"]] = key
    for (seed, season, scene, patch), members in sorted(groups.items()):
        label = f"ROIs{seed}_{season} scene {scene} p{patch}"
        missing = sorted({"s1", "s2", "s2_cloudy", "s2_cloudy_mask"} - set(members))
        if missing:
            problems.append(f"{label}: pair incomplete, missing {', '.join(missing)}")
        elif None not in members.values() and len(set(members.values())) != 1:
            problems.append(f"{label}: its files do not share one CRS and geotransform")
    mp, rows = _manifest(root, ("s1", "s2", "lc", "s2_cloudy", "s2_cloudy_mask"), checksums)
    problems += mp
    listed = {r[k] for r in rows if r.get("status") == "kept"
              for k in ("s1", "s2", "lc", "s2_cloudy", "s2_cloudy_mask", "qa") if r.get(k)}
    for f in sorted(root.glob("ROIs*/*/*.tif")):
        if str(f.relative_to(root)) not in listed:
            problems.append(f"{f}: not in manifest.csv")
    from .cr_splits import CR_SPLITS, cr_splits

    try:
        have = json.loads((root / CR_SPLITS).read_text())
        want = cr_splits(r for r in rows if r.get("status") == "kept")
        for k in ("train", "test"):
            if sorted(have.get(k, [])) != sorted(want[k]):
                problems.append(f"{root / CR_SPLITS}: {k} does not list the manifest's "
                                f"{k} scenes")
        if set(have.get("train", [])) & set(have.get("test", [])):
            problems.append(f"{root / CR_SPLITS}: a scene is in train and in test")
    except (OSError, ValueError) as exc:
        problems.append(f"{root / CR_SPLITS}: unreadable ({exc})")
    return problems + _descriptions(root)


def validate_ts(root: Path, res_m: float = 10.0, size: int = 256,
                checksums: bool = True) -> list[str]:
    """Every problem of a ``cr-ts`` tree."""
    problems: list[str] = []
    for seed_dir in sorted(p for p in root.glob("ROIs*") if p.is_dir()):
        if not re.fullmatch(r"ROIs\d+", seed_dir.name):
            problems.append(f"{seed_dir}: not a ROIs<seed> folder")
            continue
        for roi in sorted(p for p in seed_dir.iterdir() if p.is_dir()):
            ids: dict[tuple[str, str], list[str]] = {}
            grids: dict[tuple[str, str], set] = {}
            for mod in cr_layout.TS_IDS:
                for tdir in sorted((roi / mod).glob("*")):
                    ids.setdefault((mod, tdir.name), [])  # an emptied time point counts
                    for f in sorted(tdir.glob("*.tif")):
                        m = cr_layout.TS_PATCH_RE.match(f.name)
                        if not m or f"ROIs{m['seed']}" != seed_dir.name or \
                                m["roi"] != roi.name or m["t"] != tdir.name or \
                                {"s1": "S1", "s2": "S2", "s2_mask": "S2_mask"}[m["mod"]] != mod:
                            problems.append(f"{f}: not a cr-ts patch name in its folder")
                            continue
                        probs, key = _grid(f, mod, size, res_m)
                        problems += probs
                        ids.setdefault((mod, tdir.name), []).append(m["patch"])
                        grids.setdefault((tdir.name, m["patch"]), set()).add(key)
            sets = {tuple(sorted(v)) for v in ids.values()}
            if len(sets) > 1:
                problems.append(f"{roi}: the time points do not hold the same patch ids")
            ts = sorted({int(t) for _, t in ids})
            if ts != list(range(len(ts))):
                problems.append(f"{roi}: time points {ts} are not 0..{len(ts) - 1}")
            for (t, patch), g in sorted(grids.items()):
                if len(g) != 1:
                    problems.append(f"{roi} t{t} patch {patch}: S1, S2 and mask grids differ")
    mp, _ = _manifest(root, ("s1", "s2", "s2_mask"), checksums)
    return problems + mp + _descriptions(root)
