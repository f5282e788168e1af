#!/usr/bin/env python3
"""Project the full reproduction (600 scenes, 180,662 patches) on each backend: requests
and bytes (Earth Engine; the stac backend per profile), CPU hours with each cloud scorer,
and the machines a one-day build near the data needs.

Inputs, each measured by a benchmark of this repository (the figures are projected from
them, nothing is timed here):

* ``--mosaic M.json`` (repeatable): ``scripts/benchmark_mosaic.py --json``: the Sentinel-2
  mosaic's CPU seconds against the number of acquisitions on a paper-sized ROI (38.4 km),
  per scorer. A scorer measured at one count beside the paper scorer in the same file
  (``docs/img/clouds_benchmark_s2cloudless.json``) gets the paper's line plus its measured
  extra CPU per acquisition; one measured beside it at two or more counts gets the paper's
  line plus the difference of the two lines. **The compiled s2cloudless** is read from its
  rows (scorer ``s2cloudless-compiled``) when a file has them; else
  ``--compiled-cpu-per-acquisition S`` is the one input to set by hand; else it is left
  out, and the table says so.
* ``--tile W.json``: ``scripts/benchmark.py --json``: warp + tile of a ``size`` px UTM scene
  (scaled to a 3840 px paper scene by pixel count; wall seconds, counted as CPU seconds:
  the stages use about one core).
* ``--finalize F.json`` (optional): ``scripts/benchmark_finalize.py --json``: finalize at
  180,662 patches, once per run.
* ``--profile P.json`` (optional): ``scripts/profile_demo.py --json``: the curation's CPU
  per patch (the patch round), scaled to 841 patches per scene.
* ``--config configs/sen12ms.yaml``: the 600 scenes (sampled from the seeds, offline), for
  the Earth Engine request plan and the stac backend's dry-run estimate
  (``sen12ms_build.backends.stac.plan``; its assumptions in docs/stac.md).

    .venv/bin/python scripts/project_scale.py --mosaic docs/img/benchmark_mosaic.json \\
        --mosaic docs/img/clouds_benchmark_s2cloudless.json \\
        --tile docs/img/benchmark_warp_tile_8192.json \\
        --finalize docs/img/benchmark_finalize.json --profile docs/img/profile_demo.json \\
        [--compiled-cpu-per-acquisition S] [--cores 16] [--json out.json]

The mosaic runs where the pixels are read: locally for the ``local`` and ``stac``
backends, inside Earth Engine for ``earthengine`` (its compute is EECU-hours, docs/
earthengine.md; locally only warp, tiling, curation and finalize run). The ``stac`` backend
reads onto the scene grid (no warp) and makes Sentinel-1 sigma0 itself (the GRD chain,
``--s1-seconds-per-item``, docs/sentinel1.md: 14.4 s for VV + VH at 38.4 km).
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SCENES = 600
SCENE_PX = 3840
PATCHES = ((SCENE_PX - 256) // 128 + 1) ** 2  # 841 full patches per scene, before curation
PAPER_PATCHES = 180_662
COMPILED = "s2cloudless-compiled"


def _beside_paper(rs: list[dict], paper: list[dict]) -> list[tuple[dict, dict]]:
    """(scorer row, paper row) pairs measured in one run: same file, same count."""
    return [(r, t) for r in rs for t in paper if t["file"] == r["file"] and t["n"] == r["n"]]


def _one_run_line(pairs: list[tuple[dict, dict]]) -> list[tuple[dict, dict]]:
    """The pairs of the first file that holds two or more counts (a line each can be
    fitted through), by count; else []."""
    for f in sorted({r["file"] for r, _ in pairs}):
        line = [(r, t) for r, t in pairs if r["file"] == f]
        if len({r["n"] for r, _ in line}) >= 2:
            return sorted(line, key=lambda rt: rt[0]["n"])
    return []


def mosaic_costs(files: list[Path], compiled_cpu: float | None) -> dict[str, dict]:
    """CPU seconds per scene as ``a + b * n`` (n acquisitions) for each scorer: the paper's
    line fitted over the file with the most counts; another scorer's line is the paper's
    plus the difference of the two lines fitted in one file that measured both at two or
    more counts (one run's conditions), else its own fit, else the paper's line plus its
    extra CPU per acquisition measured beside the paper at one count."""
    rows = []
    for f in files:
        for r in json.loads(f.read_text()):
            rows.append({**r, "file": f.name})
    by: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        if "cpu_seconds" in r["mosaic"]:
            by[r["scorer"]].append(r)
    beside = {s: _beside_paper(rs, by["paper"]) for s, rs in by.items() if s != "paper"}
    out: dict[str, dict] = {}
    for scorer, rs in by.items():  # a line through one file's counts (one run's conditions)
        if _one_run_line(beside.get(scorer, [])):
            continue  # measured beside the paper in one run: added to the paper's line below
        per_file: dict[str, list[dict]] = defaultdict(list)
        for r in rs:
            per_file[r["file"]].append(r)
        name, best = max(per_file.items(), key=lambda kv: len({r["n"] for r in kv[1]}))
        ns = sorted({r["n"] for r in best})
        if len(ns) >= 2:
            b, a = np.polyfit([r["n"] for r in best],
                              [r["mosaic"]["cpu_seconds"] for r in best], 1)
            out[scorer] = {"a": float(a), "b": float(b),
                           "how": f"fit over n = {ns} ({name})"}
    paper = out.get("paper")
    for scorer, rs in by.items():
        if scorer in out or paper is None:
            continue
        twins = _one_run_line(beside[scorer])
        if twins:  # the scorer's line minus the paper's, both fitted in the same run
            ns = [r["n"] for r, _ in twins]
            b_s, a_s = np.polyfit(ns, [r["mosaic"]["cpu_seconds"] for r, _ in twins], 1)
            b_p, a_p = np.polyfit(ns, [t["mosaic"]["cpu_seconds"] for _, t in twins], 1)
            out[scorer] = {"a": paper["a"] + float(a_s - a_p),
                           "b": paper["b"] + float(b_s - b_p),
                           "how": f"paper + {b_s - b_p:.2f} CPU s per acquisition and "
                                  f"{a_s - a_p:+.2f} s per scene, fitted beside the paper "
                                  f"scorer over n = {ns} ({twins[0][0]['file']})"}
            continue
        extra = [(r["mosaic"]["cpu_seconds"] - t["mosaic"]["cpu_seconds"]) / r["n"]
                 for r, t in beside[scorer]]
        if extra:
            x = float(np.mean(extra))
            out[scorer] = {"a": paper["a"], "b": paper["b"] + x,
                           "how": f"paper + {x:.1f} CPU s per acquisition, measured beside "
                                  f"the paper scorer ({rs[0]['file']})"}
    if COMPILED not in out and compiled_cpu is not None and paper is not None:
        out[COMPILED] = {"a": paper["a"], "b": paper["b"] + compiled_cpu,
                         "how": f"paper + {compiled_cpu:.1f} CPU s per acquisition "
                                "(--compiled-cpu-per-acquisition, set by hand)"}
    return out


def scenes_requests(config: Path):
    from sen12ms_build.config import load_config
    from sen12ms_build.planning import scene_request, season_rois

    cfg = load_config(config)
    return cfg, [scene_request(cfg, s, r) for s in cfg.seasons for r in season_rois(cfg, s)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mosaic", type=Path, action="append", required=True)
    ap.add_argument("--tile", type=Path, required=True)
    ap.add_argument("--finalize", type=Path, default=None)
    ap.add_argument("--profile", type=Path, default=None)
    ap.add_argument("--config", type=Path, default=REPO / "configs" / "sen12ms.yaml")
    ap.add_argument("--acquisitions", type=float, default=None,
                    help="Sentinel-2 acquisitions mosaicked per scene (default: the stac "
                         "plan's items per scene)")
    ap.add_argument("--compiled-cpu-per-acquisition", type=float, default=None,
                    help="extra CPU s per acquisition of the compiled s2cloudless over the "
                         "paper scorer, when no --mosaic file has its rows")
    ap.add_argument("--s1-seconds-per-item", type=float, default=14.4)
    ap.add_argument("--cores", type=int, default=16, help="cores per machine")
    ap.add_argument("--utilization", type=float, default=0.85,
                    help="share of the cores a pool of workers keeps busy")
    ap.add_argument("--hours", type=float, default=24.0, help="the build's wall-time budget")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    h = 3600.0
    out: dict = {}

    from sen12ms_build.backends.earthengine import plan_requests
    from sen12ms_build.backends.stac.plan import plan as stac_plan

    cfg, requests = scenes_requests(args.config)
    n = len(requests)

    # --- Earth Engine: requests and bytes (download mode; batch: 3 tasks per scene) ------
    ee = plan_requests(requests).summary()
    out["earthengine"] = ee
    print(f"## Earth Engine ({n} scenes, download mode, the planner's defaults)\n")
    print("| product | requests | expected bytes |\n|---|---:|---:|")
    for k, v in ee["by_product"].items():
        print(f"| {k} | {v['requests']:,} | {v['expected_bytes'] / 1e9:.1f} GB |")
    print(f"| image lists (`value:compute`) | {ee['value_requests']:,} | small |")
    print(f"| **total** | **{ee['requests']:,}** | **{ee['expected_bytes'] / 1e9:.1f} GB** |")
    print(f"\nbatch mode: {3 * n:,} export tasks (s2 with its aux, s1, land cover)\n")

    # --- stac: per profile -----------------------------------------------------------------
    sp = stac_plan(requests, workers=1)
    out["stac"] = []
    print(f"## stac backend ({n} scenes; the dry run's estimate, offline)\n")
    print("| modality | profile | product | items | requests | bytes | fastest with one "
          "account |\n|---|---|---|---:|---:|---:|---|")
    from sen12ms_build.backends.stac.profiles import resolve

    profiles = resolve()
    for ln in sp.lines:
        q = profiles[ln.profile].quotas
        floor = []
        if q.requests_per_minute or q.concurrent:
            rate = min(q.requests_per_minute or math.inf,
                       (q.concurrent or math.inf) * 60.0 / sp.assumptions.request_latency_s)
            floor.append(f"{ln.requests / rate / 60:.1f} h at {rate:,.0f} requests/min")
        if q.bytes_per_month:
            floor.append(f"{100 * ln.bytes / q.bytes_per_month:.0f} % of the monthly volume")
        text = "; ".join(floor) or "no published quota"
        out["stac"].append({"modality": ln.modality, "profile": ln.profile,
                            "product": ln.product, "items": ln.items,
                            "requests": ln.requests, "bytes": ln.bytes, "floor": text})
        print(f"| {ln.modality} | {ln.profile} | {ln.product} | {ln.items:,.0f} | "
              f"{ln.requests:,.0f} | {ln.bytes / 1e12:.2f} TB | {text} |")
    s2_items = max(ln.items for ln in sp.lines if ln.modality == "s2") / n
    s1_items = max(ln.items for ln in sp.lines if ln.modality == "s1") / n
    acq = args.acquisitions or s2_items

    # --- CPU per scene, per stage ----------------------------------------------------------
    costs = mosaic_costs(args.mosaic, args.compiled_cpu_per_acquisition)
    text = args.tile.read_text().strip()
    try:
        tile = json.loads(text)
    except json.JSONDecodeError:
        tile = json.loads(text.splitlines()[-1])
    scale = SCENE_PX ** 2 / tile["size"] ** 2
    o = tile["ours"]
    warp_s = o.get("warp_seconds", o["seconds"] - o.get("tile_seconds", 0)) * scale
    tile_s = o.get("tile_seconds", o["seconds"] - warp_s / scale) * scale
    curation_s = 0.0
    if args.profile:
        prof = json.loads(args.profile.read_text())
        cur = prof["stages"].get("curation", {}).get("cpu_s", 0.0)
        patches = prof["limits"]["tiling_files"] / 4  # s1, s2, lc and the quality layer
        curation_s = cur / max(patches, 1) * PATCHES
    fin_s = 0.0
    if args.finalize:
        rows = json.loads(args.finalize.read_text())
        big = max(rows, key=lambda r: r["kept_patches"])
        fin_s = big["full"]["cpu_s"] * PAPER_PATCHES / big["kept_patches"]
    s1_s = s1_items * args.s1_seconds_per_item
    per_scene = {
        "earthengine": warp_s + tile_s + curation_s,
        "local": warp_s + tile_s + curation_s,
        "stac": tile_s + curation_s + s1_s}
    out["per_scene_s"] = {"warp": warp_s, "tile": tile_s, "curation": curation_s,
                          "s1_chain": s1_s, "finalize_once": fin_s, "acquisitions": acq}
    print(f"\n## CPU per scene (3840 px, {PATCHES} patches, {acq:.0f} Sentinel-2 "
          f"acquisitions, {s1_items:.0f} Sentinel-1 items)\n")
    print(f"warp {warp_s:.0f} s, tiling {tile_s:.0f} s, curation {curation_s:.0f} s "
          f"({tile['size']} px benchmark scaled by pixels); the stac backend's S1 chain "
          f"{s1_s:.0f} s ({s1_items:.0f} x {args.s1_seconds_per_item} s); finalize once per "
          f"run {fin_s:.0f} s at {PAPER_PATCHES:,} patches")
    print("\n| scorer | mosaic CPU s per scene | how |\n|---|---:|---|")
    for scorer, c in sorted(costs.items()):
        print(f"| {scorer} | {c['a'] + c['b'] * acq:,.0f} | {c['how']} |")
    if COMPILED not in costs:
        print(f"| {COMPILED} | (not measured) | pass --mosaic with its rows, or "
              "--compiled-cpu-per-acquisition |")

    # --- CPU hours and machines --------------------------------------------------------------
    print(f"\n## {n} scenes: CPU hours and machines for a {args.hours:.0f} h build "
          f"({args.cores} cores each, {100 * args.utilization:.0f} % busy)\n")
    print("| backend | scorer | CPU hours | machines |\n|---|---|---:|---:|")
    out["cpu_hours"] = []
    per_machine = args.hours * args.cores * args.utilization
    for backend in ("earthengine", "local", "stac"):
        scorers = ["paper (in Earth Engine)"] if backend == "earthengine" else sorted(costs)
        for scorer in scorers:
            mosaic = 0.0 if backend == "earthengine" else \
                costs[scorer]["a"] + costs[scorer]["b"] * acq
            total = (n * (per_scene[backend] + mosaic) + fin_s) / h
            machines = max(1, math.ceil(total / per_machine))
            out["cpu_hours"].append({"backend": backend, "scorer": scorer,
                                     "cpu_hours": total, "machines": machines})
            print(f"| {backend} | {scorer} | {total:,.0f} | {machines} |")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
