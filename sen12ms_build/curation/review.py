"""Reviewing the automatic rounds: quicklooks, the static review page, and reviewer decisions.

After a run (``quicklooks: true``), :func:`write_review` writes

* a quicklook PNG per scene, ``<root>/quicklooks/<branch>/scene_<n>.png``
  (:mod:`sen12ms_build.curation.quicklook`), from the scene's UTM rasters in ``.work``;
* a static HTML page per season, ``<root>/review/<branch>.html``: every scene with its scene
  round values, and every patch triplet cut out of the scene's quicklook (S1, S2 RGB,
  S2 SWIR, IGBP, LCCS) with its checks' values, status and reason. A reviewer ticks the
  patches to reject (or, among the rejected, to re-admit) and copies or downloads the list
  as JSON.

``sen12ms-build apply-review ROOT LIST --config F`` (:func:`apply_review`) takes such a list
(or plain text: one patch id or file name per line, ``+`` in front to re-admit), records it
in ``<root>/review.json`` and applies it: a rejected patch's files leave the tree, a
re-admitted patch is cut again from the scene's UTM rasters (same bytes as the tiler
writes), and :func:`dataset.finalize.finalize` rewrites the manifest, ``scenes.csv`` and the split
lists. ``review.json`` is the reviewer's record: :func:`dataset.finalize.finalize` applies it to
the automatic decisions (:func:`apply_to_records`) and the patch round honours it when a
scene is tiled again (:func:`honour_decisions`), so a later ``run`` never undoes a review.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import math
import re
from pathlib import Path
from typing import Any, Iterable

from ..dataset import layout
from .decisions import (REVIEW_JSON, _patch_files, apply_to_records, cut_patch,  # noqa: F401
                        data_ids, honour_decisions, load_decisions, patch_id)
from ..raster.io import InputError, atomic_write_text, sha256
from ..state import record_written

log = logging.getLogger(__name__)

REVIEW_DIR = "review"


# --- the reviewer's record ---------------------------------------------------------------

def parse_list(text: str) -> tuple[list[str], list[str]]:
    """(rejects, readmits) from a reviewer's list: the review page's JSON
    (``{"reject": [...], "readmit": [...]}``) or text, one patch per line (``#`` comments;
    ``+`` or ``readmit`` in front re-admits). A patch is its ``patch_id`` or any of its file
    names (``ROIs1158_spring_s2_1_p3.tif``)."""
    text = text.strip()
    if text.startswith("{") or text.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"review list: not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise InputError("review list: expected a JSON object "
                             '{"reject": [...], "readmit": [...]}')
        unknown = sorted(set(data) - LIST_KEYS)
        if unknown:
            raise InputError(f"review list: unknown key {unknown[0]!r} (known: "
                             f"{', '.join(sorted(LIST_KEYS))})")
        out: dict[str, list[str]] = {}
        for key in ("reject", "readmit"):
            items = data.get(key, [])
            if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
                raise InputError(f"review list: {key!r} must be a list of patch ids, got "
                                 f"{json.dumps(items)[:60]}")
            out[key] = [_checked(x, f"{key!r}") for x in items]
        return out["reject"], out["readmit"]
    rejects, readmits = [], []
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"line {n}"
        words = line.split()
        if line.startswith("+"):
            readmits.append(_checked(line[1:].strip(), where))
        elif words[0] in ("readmit", "re-admit", "reject"):
            if len(words) != 2:
                raise InputError(f"review list {where}: {words[0]!r} needs one patch id")
            (readmits if words[0] != "reject" else rejects).append(_checked(words[1], where))
        else:
            rejects.append(_checked(line, where))
    return rejects, readmits


#: Keys of the review page's JSON list.
LIST_KEYS = {"branch", "reject", "readmit"}
PATCH_ID_RE = re.compile(r"^ROIs\d+_(spring|summer|fall|winter)_\d+_p\d+$")


def _checked(item: str, where: str) -> str:
    """A list entry as a patch id, or :class:`InputError` naming the entry."""
    pid = _normalise(item)
    if not PATCH_ID_RE.match(pid):
        raise InputError(f"review list {where}: {item[:80]!r} is neither a patch id "
                         "(ROIs<seed>_<season>_<scene>_p<patch>) nor a patch file name")
    return pid


def _normalise(item: str) -> str:
    item = Path(str(item).strip()).name
    try:
        n = layout.parse_patch_filename(item)
    except ValueError:
        return item
    return patch_id(layout.branch_name(n.seed, n.season), n.scene, n.patch)


def apply_review(root: Path | str, cfg: Any, rejects: Iterable[str] = (),
                 readmits: Iterable[str] = (), note: str = "") -> dict[str, int]:
    """Apply a reviewer's lists to a dataset root: record them in ``review.json``, remove
    rejected patches from the tree, cut re-admitted ones again from ``.work``, rewrite the
    manifest, ``scenes.csv`` and the split lists (:func:`dataset.finalize.finalize`) and the review
    pages. Raises :class:`InputError` for an unknown patch or a re-admission whose scene
    rasters are gone. Returns counts."""
    from ..dataset.finalize import finalize, scene_records
    from ..state import state_path
    from ..state import State

    from ..dataset.cr_validate import tree_variant

    root = Path(root)
    if tree_variant(root) != "sen12ms":  # its pairs / series have more files than a triplet
        raise InputError(f"{root}: a {tree_variant(root)} tree; apply-review handles the "
                         "paper's triplets only (docs/variants.md): rebuild with stricter "
                         "curation instead")
    rejects, readmits = list(dict.fromkeys(rejects)), list(dict.fromkeys(readmits))
    both = set(rejects) & set(readmits)
    if both:
        raise InputError(f"patch(es) both rejected and re-admitted: {', '.join(sorted(both))}")
    records = scene_records(root)
    index = {patch_id(rec["branch"], rec["scene"], p["patch"]): (rec, p)
             for rec, patches in records for p in patches}
    unknown = [x for x in rejects + readmits if x not in index]
    if unknown:
        scene_rejected = {f"{r['branch']}_{r['scene']}" for r, _ in records
                          if r["status"] != "kept"}
        hint = [x for x in unknown if x.rsplit("_p", 1)[0] in scene_rejected]
        extra = (f" ({', '.join(hint)}: the scene round rejected the whole scene)"
                 if hint else "")
        raise InputError(f"{root}: unknown patch(es): {', '.join(unknown[:10])}"
                         f"{' ...' if len(unknown) > 10 else ''}{extra}")
    decisions = load_decisions(root)
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    for pid in rejects:
        rec, p = index[pid]
        decisions["readmitted"].pop(pid, None)
        decisions["rejected"][pid] = {"time": now, "note": note,
                                      "automatic": p.get("reason") or "kept"}
        for f in _patch_files(root, rec, p["patch"]).values():
            (root / f).unlink(missing_ok=True)
    size = cfg.tiling.patch_size
    for pid in readmits:
        rec, p = index[pid]
        decisions["rejected"].pop(pid, None)
        files = _patch_files(root, rec, p["patch"])
        wd = layout.scene_workdir(root, rec["seed"], rec["season"], rec["scene"])
        utm = {dd: wd / "utm" / f"{dd}.tif" for dd in data_ids(rec)}
        missing = [str(u) for u in utm.values() if not u.exists()]
        if missing:
            raise InputError(f"cannot re-admit {pid}: the scene rasters are gone "
                             f"({', '.join(missing)}); run the pipeline again first")
        cut_patch(utm, p["row"], p["col"], size, {k: root / f for k, f in files.items()},
                  p.get("tags"))
        decisions["readmitted"][pid] = {
            "time": now, "note": note, "automatic": p.get("reason") or "kept",
            "sha256": {k: sha256(root / f) for k, f in files.items()}}
    text = json.dumps({"version": 1, "rejected": dict(sorted(decisions["rejected"].items())),
                       "readmitted": dict(sorted(decisions["readmitted"].items()))}, indent=1)
    atomic_write_text(root / REVIEW_JSON, text + "\n")
    # the tile stage's outputs changed on purpose: record them, so a later run does not
    # take the scenes for damaged and tile them again
    with State(state_path(root)) as state:
        state.wrote([root / REVIEW_JSON])
        for rec in {id(index[pid][0]): index[pid][0] for pid in rejects + readmits}.values():
            current = [root / f for p in next(ps for r, ps in records if r is rec)
                       for f in _patch_files(root, rec, p["patch"]).values()
                       if (root / f).exists()]
            state.set_outputs(rec["branch"], rec["scene"], "tile", current)
    counts = finalize(root, cfg)
    if getattr(cfg, "quicklooks", False):
        write_pages(root, cfg)
    log.info("review applied: %d rejected, %d re-admitted (%d rejected and %d re-admitted "
             "in total)", len(rejects), len(readmits), len(decisions["rejected"]),
             len(decisions["readmitted"]))
    return {"rejected": len(rejects), "readmitted": len(readmits), **counts}


# --- quicklooks and pages -----------------------------------------------------------------

def write_quicklooks(root: Path, records: list[tuple[dict, list[dict]]]) -> int:
    """Write the quicklook of every scene whose PNG is missing or older than its UTM
    rasters; returns the number written."""
    from .quicklook import quicklook_path, write_quicklook

    n = 0
    for rec, _ in records:
        wd = layout.scene_workdir(root, rec["seed"], rec["season"], rec["scene"])
        utm = {dd: wd / "utm" / f"{dd}.tif" for dd in data_ids(rec)}
        png = quicklook_path(root, rec["branch"], rec["scene"])
        if not all(p.exists() for p in utm.values()):
            # kept as it is (a tree of an earlier version: its quicklook is the tool's)
            record_written(root, [p for p in (png, png.with_suffix(".json")) if p.exists()])
            continue
        newest = max(p.stat().st_mtime for p in utm.values())
        if png.exists() and png.with_suffix(".json").exists() and \
                png.stat().st_mtime >= newest:
            record_written(root, [png, png.with_suffix(".json")])  # (an earlier version's)
            continue
        title = (f"{rec['branch']} scene {rec['scene']}  {rec.get('roi_id', '')} "
                 f"({rec.get('kind', '')})  lon {rec.get('lon', 0):.4f} lat "
                 f"{rec.get('lat', 0):.4f}  {rec.get('start', '')}..{rec.get('end', '')}")
        write_quicklook(utm, png, title)
        record_written(root, [png, png.with_suffix(".json")])
        n += 1
    return n


def write_review(root: Path | str, cfg: Any) -> list[Path]:
    """Quicklooks (missing or outdated ones) and the review page of every season under
    ``root``; returns the pages written."""
    from ..dataset.finalize import scene_records

    root = Path(root)
    records = scene_records(root)
    n = write_quicklooks(root, records)
    if n:
        log.info("%d quicklook(s) written to %s", n, root / "quicklooks")
    return write_pages(root, cfg, records)


def write_pages(root: Path, cfg: Any,
                records: list[tuple[dict, list[dict]]] | None = None) -> list[Path]:
    """The review page of every season (branch) under ``root``."""
    from ..dataset.finalize import scene_records

    root = Path(root)
    records = apply_to_records(root, records if records is not None else scene_records(root))
    branches: dict[str, list[tuple[dict, list[dict]]]] = {}
    for rec, patches in records:
        branches.setdefault(rec["branch"], []).append((rec, patches))
    pages = []
    for branch, recs in sorted(branches.items()):
        path = root / REVIEW_DIR / f"{branch}.html"
        atomic_write_text(path, page_html(branch, recs, cfg, root))
        pages.append(path)
    record_written(root, pages)
    if pages:
        log.info("review pages: %s", ", ".join(str(p) for p in pages))
    return pages


def _in_run(check: Any, records: list[tuple[dict, list[dict]]]) -> bool:
    """Whether a check measures a modality of these scenes (the labels' checks only in a
    run with labels)."""
    have = {"s1", "s2", "lc", "aux", *(k for r, _ in records for k in data_ids(r))}
    return all(k in have for k in check.needs)


def _fmt(v: Any) -> str:
    if v is None or v == "":
        return ""
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return f"{v:.4g}"
    return str(v)


CROP_PX = 256  # displayed side of one patch panel on the page (a click zooms x ZOOM)
ZOOM = 2


def page_html(branch: str, records: list[tuple[dict, list[dict]]], cfg: Any,
              root: Path) -> str:
    """The static review page of one season (self-contained but for the quicklook PNGs,
    linked relatively from ``<root>/review/``)."""
    from .rounds import CHECKS, thresholds
    from .quicklook import PANEL_TITLES, PANELS, quicklook_path, read_layout

    cur = cfg.curation
    t_patch, t_scene = thresholds(cur, "patch"), thresholds(cur, "scene")
    size = cfg.tiling.patch_size
    n_p = sum(len(p) for _, p in records)
    n_k = sum(q["kept"] for _, p in records for q in p)
    n_sk = sum(r["status"] == "kept" for r, _ in records)
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(c.name)}</td><td>{_fmt(t_scene.get(c.name))}</td>"
        f"<td>{_fmt(t_patch.get(c.name))}</td><td>{esc(c.units)}</td><td>{esc(c.sees)}</td>"
        "</tr>" for c in CHECKS if _in_run(c, records))
    out = [f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Review {esc(branch)}</title>
<style>
body {{ font: 13px/1.35 system-ui, sans-serif; margin: 0; color: #222; background: #f4f4f4; }}
header {{ padding: 10px 16px; background: #fff; border-bottom: 1px solid #ccc; }}
h1 {{ font-size: 18px; margin: 0 0 4px; }}
h2 {{ font-size: 15px; margin: 0 0 6px; }}
#bar {{ position: sticky; top: 0; z-index: 5; background: #263238; color: #fff;
       padding: 6px 16px; display: flex; gap: 14px; align-items: center; flex-wrap: wrap; }}
#bar button {{ font: inherit; padding: 3px 10px; }}
#bar label {{ cursor: pointer; }}
table.t {{ border-collapse: collapse; font-size: 12px; }}
table.t td, table.t th {{ border: 1px solid #ddd; padding: 2px 6px; text-align: left; }}
section.scene {{ background: #fff; margin: 12px 16px; padding: 10px; border: 1px solid #ccc; }}
section.scene.rejected {{ border-left: 6px solid #c62828; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 8px; margin-top: 8px; }}
.card {{ border: 2px solid #9e9e9e; padding: 4px; background: #fafafa; }}
.card.kept {{ border-color: #2e7d32; }}
.card.rejected {{ border-color: #c62828; background: #fff3f3; }}
.card.marked {{ outline: 4px solid #ff9800; }}
.card .head {{ display: flex; justify-content: space-between; gap: 8px; font-weight: 600; }}
.crops {{ display: flex; gap: 3px; margin: 3px 0; }}
.crop {{ width: {CROP_PX}px; height: {CROP_PX}px; background-repeat: no-repeat;
        background-color: #000; cursor: zoom-in; }}
.card.zoomed .crops {{ zoom: {ZOOM}; }}
.card.zoomed .crop {{ cursor: zoom-out; }}
.vals {{ font-size: 11px; color: #444; max-width: {5 * CROP_PX + 12}px; }}
.vals span {{ margin-right: 8px; white-space: nowrap; }}
.vals .over {{ color: #c62828; font-weight: 700; }}
.legend {{ font-size: 11px; color: #555; }}
body.only-rejected .card.kept, body.only-kept .card.rejected,
body.only-marked .card:not(.marked) {{ display: none; }}
textarea {{ width: 100%; height: 90px; font: 11px monospace; }}
details img {{ max-width: 100%; }}
</style></head><body>
<header><h1>Review of {esc(branch)}</h1>
<div>{len(records)} scene(s), {n_sk} kept by the scene round; {n_p} patch(es), {n_k} kept.
Each card is one patch triplet: {" | ".join(esc(PANEL_TITLES[p]) for p in PANELS)}.
Click a patch's panels to zoom them.
Tick <b>reject</b> on kept patches you would throw out, <b>re-admit</b> on rejected ones you
would keep, then copy or download the list and run
<code>sen12ms-build apply-review {esc(str(root))} LIST --config CONFIG</code>.</div>
<details><summary>Checks and thresholds (a value above the threshold rejects)</summary>
<table class="t"><tr><th>check</th><th>scene round</th><th>patch round</th><th>units</th>
<th>sees</th></tr>{rows}</table></details>
</header>
<div id="bar"><span id="count">0 marked</span>
<label><input type="radio" name="f" value="all" checked> all</label>
<label><input type="radio" name="f" value="only-rejected"> rejected</label>
<label><input type="radio" name="f" value="only-kept"> kept</label>
<label><input type="radio" name="f" value="only-marked"> marked</label>
<button id="copy">Copy list</button><button id="download">Download review JSON</button>
<button id="clear">Clear marks</button></div>
"""]
    for rec, patches in records:
        scene = rec["scene"]
        png = quicklook_path(root, branch, scene)
        lay = read_layout(png)
        rel = f"../quicklooks/{branch}/{png.name}"
        status = rec["status"]
        vals = []
        for c in CHECKS:
            v = rec.get(c.name)
            if v is None or v == "":
                continue
            over = c.name in t_scene and float(v) > t_scene[c.name]
            vals.append(f'<span class="{"over" if over else ""}">{c.name} {_fmt(v)}</span>')
        reason = f" ({esc(str(rec.get('reason', '')))})" if status != "kept" else ""
        out.append(
            f'<section class="scene {esc(status)}" id="scene-{scene}">'
            f"<h2>scene {scene} &middot; {esc(str(rec.get('roi_id', '')))} "
            f"({esc(str(rec.get('kind', '')))}) &middot; lon {_fmt(rec.get('lon'))} lat "
            f"{_fmt(rec.get('lat'))} &middot; scene round: {esc(status)}{reason} &middot; "
            f"{rec.get('patches_kept', 0)}/{rec.get('patches', 0)} patches kept</h2>"
            f'<div class="vals">{"".join(vals)}</div>')
        if lay is None:
            out.append("<p>(no quicklook)</p></section>")
            continue
        out.append(f'<details><summary>scene quicklook</summary><img src="{esc(rel)}" '
                   f'alt="quicklook of scene {scene}" loading="lazy"></details>')
        z = CROP_PX / (size / lay.factor)
        out.append(f"<style>#scene-{scene} .crop {{ background-image: url('{esc(rel)}'); "
                   f"background-size: {lay.width * z:.2f}px {lay.height * z:.2f}px; }}"
                   "</style>")
        out.append('<div class="grid">')
        for p in patches:
            pid = patch_id(branch, scene, p["patch"])
            kept = p["kept"]
            crops = []
            for name in lay.panels:  # the paper's five, then the labels' of such a run
                x, y, _ = lay.patch_box(name, p["row"], p["col"], size)
                crops.append(f'<div class="crop" title="{esc(PANEL_TITLES[name])}" '
                             f'style="background-position: -{x * z:.2f}px -{y * z:.2f}px">'
                             "</div>")
            pv = p.get("values", {})
            spans = []
            for c in CHECKS:
                if c.name not in pv:
                    continue
                v = pv[c.name]
                over = c.name in t_patch and v > t_patch[c.name]
                if v or over:
                    spans.append(f'<span class="{"over" if over else ""}">{c.name} '
                                 f"{_fmt(v)}</span>")
            action = "reject" if kept else "re-admit"
            kind = "reject" if kept else "readmit"
            state = "kept" if kept else f"rejected: {p.get('reason', '')}"
            if p.get("review"):
                state += f" (review: {p['review']})"
            out.append(
                f'<div class="card {"kept" if kept else "rejected"}" data-id="{esc(pid)}">'
                f'<div class="head"><span>p{p["patch"]} &middot; {esc(state)}</span>'
                f'<label><input type="checkbox" class="mark" data-kind="{kind}" '
                f'data-id="{esc(pid)}"> {action}</label></div>'
                f'<div class="crops">{"".join(crops)}</div>'
                f'<div class="vals">{"".join(spans) or "all checks 0"}</div></div>')
        out.append("</div></section>")
    out.append(f"""<section class="scene"><h2>Review list</h2>
<textarea id="list" readonly></textarea></section>
<script>
const BRANCH = {json.dumps(branch)};
const KEY = "sen12ms-review-" + BRANCH;
const boxes = Array.from(document.querySelectorAll("input.mark"));
function payload() {{
  const out = {{branch: BRANCH, reject: [], readmit: []}};
  boxes.filter(b => b.checked).forEach(b => out[b.dataset.kind].push(b.dataset.id));
  return JSON.stringify(out, null, 1);
}}
function render() {{
  let n = 0;
  boxes.forEach(b => {{ b.closest(".card").classList.toggle("marked", b.checked);
                        n += b.checked; }});
  document.getElementById("count").textContent = n + " marked";
  document.getElementById("list").value = payload();
  try {{ localStorage.setItem(KEY, JSON.stringify(boxes.filter(b => b.checked)
                                                       .map(b => b.dataset.id))); }}
  catch (e) {{}}
}}
try {{
  const saved = new Set(JSON.parse(localStorage.getItem(KEY) || "[]"));
  boxes.forEach(b => {{ b.checked = saved.has(b.dataset.id); }});
}} catch (e) {{}}
boxes.forEach(b => b.addEventListener("change", render));
// a click on a patch's panels zooms the card's panels (again: back)
document.querySelectorAll(".crops").forEach(c => c.addEventListener("click", () => {{
  c.closest(".card").classList.toggle("zoomed"); }}));
document.querySelectorAll("input[name=f]").forEach(r => r.addEventListener("change", () => {{
  document.body.className = r.value === "all" ? "" : r.value; }}));
// ?scene=N shows one scene only; ?filter=only-rejected|only-kept|only-marked filters cards
const params = new URLSearchParams(location.search);
if (params.get("scene")) document.querySelectorAll("section.scene[id]").forEach(s => {{
  s.style.display = s.id === "scene-" + params.get("scene") ? "" : "none"; }});
if (params.get("filter")) {{
  const r = document.querySelector(`input[name=f][value="${{params.get("filter")}}"]`);
  if (r) {{ r.checked = true; document.body.className = r.value; }}
}}
document.getElementById("copy").addEventListener("click", () => {{
  const t = document.getElementById("list");
  t.select();
  if (navigator.clipboard) navigator.clipboard.writeText(t.value);
  else document.execCommand("copy");
}});
document.getElementById("download").addEventListener("click", () => {{
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([payload()], {{type: "application/json"}}));
  a.download = "review_" + BRANCH + ".json";
  document.body.appendChild(a); a.click(); a.remove();
}});
document.getElementById("clear").addEventListener("click", () => {{
  boxes.forEach(b => {{ b.checked = false; }}); render(); }});
render();
</script></body></html>
""")
    return "\n".join(out)
