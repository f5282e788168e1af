"""``finalize`` of a ``cr-ts`` root (SEN12MS-CR-TS): its tables, split and descriptions,
from the ROIs' records (:mod:`sen12ms_build.variants.cr_ts`).

``manifest.csv`` has one row per patch location and time point (slot centre, both dates
and ids, their gap, cloud and shadow coverage, the three files and their SHA-256, split),
``scenes.csv`` one row per ROI; the split is leak-free by ROI groups
(:mod:`.splits`; ``train_list.txt`` and ``test_list.txt`` list ``ROIs<seed>/<roi>``,
``splits.json`` says how) and ``splits_sen12mscrts.json`` hands it to the authors' loaders
(:mod:`.cr_splits`); then STAC, Croissant and the data card (:mod:`.ts_describe`).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from ..state import record_written
from . import cr_layout, layout


def finalize_ts(root: Path, cfg: Any, records: list[tuple[dict, list[dict]]]
             ) -> dict[str, int]:
    """The ``cr-ts`` root files (see the module doc) from the ROIs' records (``records``:
    :func:`sen12ms_build.dataset.finalize.scene_records`), then the self-descriptions."""
    from . import splits as dsplits
    from .cr_splits import write_ts_splits
    from .ts_describe import publish_ts

    root = Path(root)
    kept = [r for r, _ in records if r["status"] == "kept"]
    sp = cfg.splits
    method = "groups" if sp.method == "file" else sp.method
    test, _, info = dsplits.assign(method, root, kept, sp.test_fraction, sp.seed, None,
                                   sp.leak_distance_m)
    manifest, scenes, rois = [], [], []
    for rec, patches in records:
        key = (rec["branch"], int(rec["scene"]))
        split = ("test" if key in test else "train") if rec["status"] == "kept" else ""
        if split:
            rois.append((split, rec["seed"], rec["scene"]))
        scenes.append({**rec, "roi": rec["scene"], "period_start": rec.get("start"),
                       "period_end": rec.get("end")})
        points = {p["t"]: p for p in rec.get("points", [])}
        for p in patches:
            left, bottom, right, top = p["bounds"]
            for t, pt in sorted(points.items()):
                cov = p.get("coverage", {}).get(str(t), ["", ""])
                a, b = (dt.datetime.fromisoformat(pt[k]["time"].replace("Z", "+00:00"))
                        for k in ("s1", "s2"))
                manifest.append({
                    "patch_id": f"ROIs{rec['seed']}_{rec['scene']}_patch_{p['patch']}_t{t}",
                    "branch": rec["branch"], "seed": rec["seed"], "roi": rec["scene"],
                    "patch": p["patch"], "t": t, "status": "kept" if p["kept"] else
                    "rejected", "reason": p["reason"], "crs": rec.get("crs", ""),
                    "left": left, "bottom": bottom, "right": right, "top": top,
                    "slot_centre": pt.get("slot_centre", ""), "s2_datetime": pt["s2"]["time"],
                    "s2_product_id": pt["s2"]["id"], "s1_datetime": pt["s1"]["time"],
                    "s1_product_id": pt["s1"]["id"],
                    "s1_s2_gap_days": f"{abs((a - b).total_seconds()) / 86400:.2f}",
                    "cloud_coverage": cov[0], "shadow_coverage": cov[1],
                    **{m: p["files"].get(f"{m}_t{t}", "") for m in ("s1", "s2", "s2_mask")},
                    **{f"sha256_{m}": p.get("sha256", {}).get(f"{m}_t{t}", "")
                       for m in ("s1", "s2", "s2_mask")},
                    "split": split if p["kept"] else ""})
    layout.write_csv(root / "manifest.csv", cr_layout.TS_MANIFEST_HEADER, manifest)
    layout.write_csv(root / "scenes.csv", cr_layout.TS_SCENES_HEADER, scenes)
    train = sorted({cr_layout.ts_roi_key(s, r) for sp_, s, r in rois if sp_ == "train"})
    tst = sorted({cr_layout.ts_roi_key(s, r) for sp_, s, r in rois if sp_ == "test"})
    layout.write_lines(root / "train_list.txt", train)
    layout.write_lines(root / "test_list.txt", tst)
    info.update(train_rois=len(train), test_rois=len(tst))
    dsplits.write_info(root, info)
    extra = [write_ts_splits(root, rois, info)]
    extra += publish_ts(root, cfg, scenes, manifest)
    record_written(root, [root / f for f in ("manifest.csv", "scenes.csv", "train_list.txt",
                                             "test_list.txt", "splits.json")] + extra)
    return {"scenes": len(records), "patches": len(manifest), "train": len(train),
            "test": len(tst)}
