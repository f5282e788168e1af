"""Checks of what makes a tree explain itself (called by :func:`validate.validate_tree`):
provenance tags, quality layers, split disjointness, the STAC catalog and ``croissant.json``.

Each function returns one line per problem (empty when fine), naming the file and what to do.
"""

from __future__ import annotations

from pathlib import Path

import rasterio
from rasterio.errors import RasterioError
from rasterio.windows import Window

from . import croissant, layout, provenance, splits, stac, stac_validate
from ..raster.io import sha256

def check_tags(root: Path, rows: list[dict[str, str]]) -> list[str]:
    """Every kept patch file carries every provenance tag, the same in s1/s2/lc (and the
    labels of a run with them, which also carry :data:`provenance.LABEL_TAG_KEYS`), and the
    manifest's provenance columns agree with them."""
    problems = []
    for r in rows:
        tags_of = {}
        extra = [dd for dd in layout.EXTRA_DATA_IDS if r.get(dd)]
        keys = (*provenance.TAG_KEYS, *(provenance.LABEL_TAG_KEYS if extra else ()))
        for dd in (*layout.DATA_IDS, *extra):
            path = root / r.get(dd, "")
            if not r.get(dd) or not path.is_file():
                continue  # reported by the manifest check
            try:
                with rasterio.open(path) as f:
                    tags = f.tags()
                    f.read(window=Window(0, f.height - 1, f.width, 1))  # cut short?
            except RasterioError:
                continue  # reported by the header check (validate._check_patch)
            missing = [k for k in keys if k not in tags]
            if missing:
                problems.append(f"{path}: provenance tag(s) missing: {', '.join(missing)} "
                                "(rebuild with `run --force tile`)")
                continue
            tags_of[dd] = {k: tags[k] for k in keys}
        if len({tuple(sorted(t.items())) for t in tags_of.values()}) > 1:
            problems.append(f"{r['patch_id']}: {'/'.join(tags_of)} carry different "
                            "provenance tags")
        if tags_of:
            tags = next(iter(tags_of.values()))
            for col, val in provenance.manifest_values(tags).items():
                if col in r and r[col] != val:
                    problems.append(f"manifest.csv {r['patch_id']}: {col} is {r[col]!r}, the "
                                    f"patch tags say {val!r}")
            shares = [float(x) for x in tags["S2_SHARES"].split(",") if x]
            if shares and sum(shares) > 1.0001:
                problems.append(f"{r['patch_id']}: S2_SHARES sum to {sum(shares):.4f} > 1")
    return problems


def check_quality_layers(root: Path, rows: list[dict[str, str]], checksums: bool) -> list[str]:
    """Each kept row's quality layer exists with 3 uint8 bands (cloud, shadow, source index)
    on its s2 patch's grid; no quality layer is left without a manifest row."""
    problems = []
    listed = set()
    for r in rows:
        rel = r.get(provenance.QA_ID, "")
        if not rel:
            continue
        listed.add(rel)
        path = root / rel
        if not path.is_file():
            problems.append(f"{path}: quality layer missing (rebuild with `run --force tile`)")
            continue
        try:
            with rasterio.open(path) as f, rasterio.open(root / r["s2"]) as s2:
                if f.count != 3 or f.dtypes[0] != "uint8" or \
                        tuple(f.descriptions) != provenance.QA_BANDS:
                    problems.append(f"{path}: expected 3 uint8 bands {provenance.QA_BANDS}, "
                                    f"found {f.count} {f.dtypes[0]} {f.descriptions}")
                if (f.crs, f.transform, f.shape) != (s2.crs, s2.transform, s2.shape):
                    problems.append(f"{path}: not on the grid of its s2 patch")
        except RasterioError as exc:
            problems.append(f"{path}: unreadable ({exc})")
            continue
        if checksums and r.get("sha256_qa") and sha256(path) != r["sha256_qa"]:
            problems.append(f"manifest.csv: checksum of {rel} does not match")
    for p in sorted(Path(root).glob("ROIs*/qa_*/*.tif")):
        if layout.QA_RE.match(p.name) and str(p.relative_to(root)) not in listed:
            problems.append(f"{p}: quality layer not in manifest.csv")
    return problems


def check_splits(root: Path, rows: list[dict[str, str]]) -> list[str]:
    """``splits.json`` exists; with the ``groups`` method no test footprint shares area with
    a train footprint (each overlapping pair is one line); the manifest's ``split`` column
    matches the lists."""
    info = splits.read_info(root)
    if info is None:
        return [f"{root / splits.SPLITS_JSON}: missing or unreadable (re-run to rewrite it)"]
    problems = []
    test = set((root / "test_list.txt").read_text().split()) \
        if (root / "test_list.txt").exists() else set()
    sides: dict[str, set] = {"train": set(), "test": set()}
    for r in rows:
        name = Path(r["s2"]).name
        want = "test" if name in test else "train"
        if r.get("split") and r["split"] != want:
            problems.append(f"manifest.csv {r['patch_id']}: split {r['split']!r} but "
                            f"{name} is in {want}_list.txt")
        sides[want].add((r["branch"], int(r["scene"])))
    if info.get("method") != "groups":
        return problems
    try:
        polys = splits.footprints(root, sides["train"] | sides["test"])
    except splits.SplitError as exc:
        return problems + [str(exc)]
    for a, b, area in splits.shared_pairs({k: polys[k] for k in sides["train"]},
                                          {k: polys[k] for k in sides["test"]}):
        problems.append(f"split leak: train {a[0]} scene {a[1]} and test {b[0]} scene "
                        f"{b[1]} share {area:.0f} m² (splits.method groups promises "
                        "none; re-run finalize)")
    return problems


def check_stac(root: Path, rows: list[dict[str, str]]) -> list[str]:
    """The catalog validates offline and has one Item per kept patch."""
    problems = stac_validate.validate_catalog(root)
    if (root / stac.STAC_DIR / "catalog.json").exists():
        out = root / stac.STAC_DIR
        items = {p.stem for p in stac.catalog_files(root)
                 if p.suffix == ".json" and p.parent.parent.parent == out}
        want = {r["patch_id"] for r in rows}
        for pid in sorted(want - items):
            problems.append(f"{root / stac.STAC_DIR}: no Item for patch {pid}")
        for pid in sorted(items - want):
            problems.append(f"{root / stac.STAC_DIR}: Item {pid} is not a kept patch")
    return problems


def check_all(root: Path, checksums: bool = True) -> list[str]:
    """Every check of this module on the tree below ``root``."""
    root = Path(root)
    path = root / "manifest.csv"
    if not path.exists():
        return []  # reported by the manifest check
    rows = [r for r in layout.read_csv(path) if r.get("status") == "kept"]
    problems = check_tags(root, rows)
    problems += check_quality_layers(root, rows, checksums)
    problems += check_splits(root, rows)
    problems += check_stac(root, rows)
    problems += croissant.validate_croissant(root)
    return problems


__all__ = ["check_all", "check_quality_layers", "check_splits", "check_stac", "check_tags"]
