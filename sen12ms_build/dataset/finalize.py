"""Finalize a dataset root: its metadata and self-descriptions from the scene records.

:func:`finalize` writes ``manifest.csv``, ``scenes.csv``, ``seasons.csv``, the split lists
and ``splits.json`` from every finished scene in the state file (with the reviewers'
decisions applied), then :func:`publish` writes the STAC catalog, ``croissant.json`` and the
data card. Both the pipeline (after every run) and the review (after ``apply-review``) call
it, so the dataset, not the orchestrator, owns it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Iterator

from ..curation import decisions
from ..state import State, record_written, state_path
from . import layout, provenance

#: The root files :func:`finalize` and :func:`publish` write (beside the STAC catalog,
#: which records its own files).
ROOT_FILES = ("manifest.csv", "scenes.csv", "seasons.csv", "train_list.txt", "test_list.txt",
              "splits.json", "croissant.json", "croissant/train.csv", "croissant/test.csv",
              "README.md")

log = logging.getLogger(__name__)


def scene_records(root: Path) -> list[tuple[dict, list[dict]]]:
    """(scene record, patch records) of every finished scene under ``root``."""
    return list(iter_scene_records(root))


def iter_scene_records(root: Path, patches: bool = True
                       ) -> Iterator[tuple[dict, list[dict]]]:
    """:func:`scene_records` one scene at a time, sorted by (branch, scene): memory holds
    one scene's patch records, not the dataset's. ``patches=False``: the scene records
    alone (each with an empty patch list), without reading the patch records."""
    path = state_path(root)
    if not path.exists():
        return
    with State(path) as state:
        for _, _, rec in state.iter_records("tile",
                                            without=None if patches else "patch_records"):
            yield rec, rec.pop("patch_records", [])


def manifest_row(rec: dict, p: dict, split: str,
                 ids: tuple[str, ...] = (*layout.DATA_IDS, provenance.QA_ID)
                 ) -> dict[str, Any]:
    """The ``manifest.csv`` row of one patch record ``p`` of the scene record ``rec``; ``ids``
    the data ids whose file and checksum columns it fills (the triplet, any labels, qa)."""
    left, bottom, right, top = p["bounds"]
    return {
        **p["values"],
        **provenance.manifest_values(p.get("tags", {})),
        "patch_id": f"{rec['branch']}_{rec['scene']}_p{p['patch']}",
        "branch": rec["branch"], "season": rec["season"], "scene": rec["scene"],
        "patch": p["patch"], "status": "kept" if p["kept"] else "rejected",
        "reason": p["reason"], "crs": rec.get("crs", ""), "left": left,
        "bottom": bottom, "right": right, "top": top, "review": p.get("review", ""),
        "roi_id": rec.get("roi_id", ""), "split": split,
        **{k: p["files"].get(k, "") for k in ids},
        **{f"sha256_{k}": p.get("sha256", {}).get(k, "") for k in ids}}


def extra_data_ids(records: Any) -> tuple[str, ...]:
    """The modalities the scene records add to the triplet (``modalities`` of a run with
    labels), in :data:`layout.EXTRA_DATA_IDS` order; empty for the paper's run."""
    found = {k for rec in records for k in rec.get("modalities", ())}
    return tuple(k for k in layout.EXTRA_DATA_IDS if k in found)


def finalize(root: Path, cfg: Any) -> dict[str, int]:
    """Write ``manifest.csv``, ``scenes.csv``, ``seasons.csv``, ``train_list.txt``,
    ``test_list.txt`` and ``splits.json`` from every finished scene under ``root``, then the
    dataset's descriptions (:func:`publish`: STAC catalog, ``croissant.json``, ``README.md``).

    One pass over the scene records (one scene in memory at a time) writes the manifest
    as it goes; the split is drawn before it from the scene records alone. Memory and time
    grow linearly with the patches (``scripts/benchmark_finalize.py``)."""
    from . import cr_tables, splits

    root = Path(root)
    if getattr(cfg, "variant", "sen12ms") == "cr-ts":  # its own tree and tables
        from .ts_finalize import finalize_ts

        return finalize_ts(root, cfg, scene_records(root))
    t0 = time.perf_counter()
    reviewed = decisions.load_decisions(root)  # the reviewer's decisions, applied per scene
    heads = [r for r, _ in iter_scene_records(root, patches=False)]
    kept_scenes = [r for r in heads if r["status"] == "kept"]
    extra = extra_data_ids(heads)
    ids = (*layout.DATA_IDS, *extra, provenance.QA_ID)
    sp = cfg.splits
    test, test_names, info = splits.assign(sp.method, root, kept_scenes, sp.test_fraction,
                                           sp.seed, sp.test_file, sp.leak_distance_m)
    scenes: list[dict] = []
    train_list: list[str] = []
    test_list: list[str] = []
    scene_split: dict[tuple[str, int], set[str]] = {}
    n_rows = 0

    def rows() -> Iterator[dict[str, Any]]:
        nonlocal n_rows
        for rec, patches in iter_scene_records(root):
            rec, patches = decisions.apply_to_records(root, [(rec, patches)], reviewed)[0]
            scenes.append(rec)
            for p in patches:
                split = ""
                if not p["kept"]:  # a reviewer's rejection leaves no quality layer behind
                    layout.quality_path(root, rec["seed"], rec["season"], rec["scene"],
                                        p["patch"]).unlink(missing_ok=True)
                else:
                    name = Path(p["files"]["s2"]).name
                    in_test = name in test_names if test_names is not None else \
                        (rec["branch"], rec["scene"]) in test
                    split = "test" if in_test else "train"
                    (test_list if in_test else train_list).append(name)
                    scene_split.setdefault((rec["branch"], int(rec["scene"])),
                                           set()).add(split)
                n_rows += 1
                yield {**manifest_row(rec, p, split, ids),
                       **cr_tables.manifest_values(cfg, rec, p)}

    layout.write_csv(root / "manifest.csv", cr_tables.manifest_header(cfg, extra), rows())
    layout.write_csv(root / "scenes.csv", cr_tables.scenes_header(cfg, extra), scenes)
    layout.write_csv(root / "seasons.csv", layout.SEASONS_HEADER, layout.seasons_rows(scenes))
    layout.write_lines(root / "train_list.txt", train_list)
    layout.write_lines(root / "test_list.txt", test_list)
    info.update(splits.footprint_report(
        root, [k for k, v in scene_split.items() if "train" in v],
        [k for k, v in scene_split.items() if "test" in v]) if scene_split else {})
    info.update(train_patches=len(train_list), test_patches=len(test_list))
    if train_list and not test_list and sp.method == "groups" and sp.test_fraction > 0:
        log.warning("splits: the %d kept scene(s) form %d overlap group(s), so a leak-free "
                    "split has no test set; sample ROIs further apart (or lower "
                    "splits.leak_distance_m) or set splits.method roi (which leaks)",
                    len(kept_scenes), len(info.get("groups", [])))
    splits.write_info(root, info)
    log.debug("finalize: %d patch record(s) of %d scene(s): manifest, tables and splits "
              "%.1f s", n_rows, len(scenes), time.perf_counter() - t0)
    written = []
    if getattr(cfg, "variant", "sen12ms") == "cr":  # the split in the authors' loaders' form
        from .cr_splits import write_cr_splits

        written.append(write_cr_splits(root, layout.iter_csv(root / "manifest.csv"), info))
    publish(root, cfg)
    record_written(root, [root / f for f in ROOT_FILES if (root / f).exists()] + written)
    return {"scenes": len(scenes), "patches": n_rows,
            "train": len(train_list), "test": len(test_list)}


def publish(root: Path, cfg: Any) -> None:
    """The dataset's self-descriptions from its metadata: the STAC catalog (``stac/``),
    ``croissant.json`` and the data card ``README.md``. Each describes the patches with the
    run's own values (:func:`layout.patch_description`)."""
    from . import croissant
    from . import datacard
    from . import stac_write

    took = []
    for name, write in (("STAC", stac_write.write_catalog),
                        ("Croissant", croissant.write_croissant),
                        ("data card", datacard.write_datacard)):
        t0 = time.perf_counter()
        write(root, cfg)
        took.append(f"{name} {time.perf_counter() - t0:.1f} s")
    log.debug("finalize: %s", ", ".join(took))
