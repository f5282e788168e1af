"""The dry run of the cloud-removal variants: what a run would fetch and write, no pixels.

``cr-ts`` (:func:`time_series_plan`): per ROI the slots, the Sentinel-2 and Sentinel-1
acquisitions they would take (the local backend's archive is queried: the nearest per slot,
and how many distinct; other backends: one acquisition per slot at most), the patch
locations, and the cost: reads (one per distinct acquisition), bytes read on the scene
grid, files and bytes written (``T`` x locations x S1, S2 and mask patches). ``cr``
(:func:`cr_footer`): the one cloudy acquisition each scene reads and writes on top of the
paper's plan.
"""

from __future__ import annotations

from typing import Any

from ..mosaic import cloudy_pick
from ..products import S1, S2
from ..raster.tiling import patch_count
from ..roi import ROI

#: Bytes of one pixel of each file kind (uncompressed; masks are DEFLATE-compressed, about
#: 2 % of their 2 bytes in the demo: counted at 0.1 byte).
S2_PX, S1_PX, MASK_PX = S2.count * 2, S1.count * 4, 0.1


def _mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB" if n < 2**30 else f"{n / 2**30:,.2f} GiB"


def time_series_plan(cfg: Any, rois: dict[str, list[ROI]], backend: Any = None) -> str:
    """The ``cr-ts`` dry run's text (see the module doc). ``backend``: the local backend
    (its archive is queried), or None."""
    start, end = cfg.year_span
    t = cfg.cloud_removal.time_points
    size, stride = cfg.tiling.patch_size, cfg.tiling.stride
    lines = [f"cr-ts: {t} time points over {start} .. {end} "
             f"(slots of {((end - start).days + 1) / t:.1f} days), patches {size} px at "
             f"stride {stride}",
             f"{'roi':<14} {'roi_id':<20} {'s2':>4} {'s2 used':>7} {'s1':>4} {'s1 used':>7} "
             f"{'locations':>9} {'files':>7} {'read':>11} {'written':>11}"]
    tot_files = tot_read = tot_written = 0.0
    for season, items in rois.items():
        seed = cfg.season(season).seed
        for roi in items:
            g = roi.scene_grid(cfg.reproject.resolution_m)
            n_loc = patch_count(g.width, g.height, size, stride)
            n2 = n1 = u2 = u1 = t
            if backend is not None:
                from ..backends.local import query

                ring = roi.ring()
                s2 = query(backend.index("s2"), ring, start, end)
                s1 = query(backend.index("s1"), ring, start, end)
                n2, n1 = len(s2), len(s1)
                pts = cloudy_pick.time_series([a.time for a in s2], [a.time for a in s1],
                                              start, end, t) or []
                u2, u1 = len({i for i, _ in pts}), len({j for _, j in pts})
            scene_px = g.width * g.height
            read = u2 * scene_px * S2_PX + u1 * scene_px * S1_PX
            files = 3 * t * n_loc
            written = t * n_loc * size * size * (S2_PX + S1_PX + MASK_PX)
            tot_files += files
            tot_read += read
            tot_written += written
            lines.append(f"{f'ROIs{seed}/{roi.scene}':<14} {roi.id:<20} {n2:>4} {u2:>7} "
                         f"{n1:>4} {u1:>7} {n_loc:>9} {files:>7} {_mib(read):>11} "
                         f"{_mib(written):>11}")
    lines.append(f"total: {sum(len(v) for v in rois.values())} ROI(s), {int(tot_files):,} "
                 f"patch files, {_mib(tot_read)} read (scene grid, uncompressed), "
                 f"{_mib(tot_written)} written")
    if backend is None:
        lines.append("(s2/s1 columns: at most one acquisition per slot; the local backend "
                     "counts its archive's)")
    return "\n".join(lines)


def cr_footer(cfg: Any, n_scenes: int) -> str:
    """The ``cr`` run's cost on top of the paper's plan: one cloudy acquisition per scene,
    read once more and written as ``s2_cloudy.tif``, then one cloudy patch and one mask
    layer beside each kept triplet."""
    size = cfg.tiling.patch_size
    area = (cfg.sampling.roi_size_m / cfg.reproject.resolution_m) ** 2
    return (f"cr: + {n_scenes} cloudy acquisition(s) (one per scene: re-read, "
            f"{_mib(n_scenes * area * S2_PX)} exported), + one s2_cloudy patch "
            f"({_mib(size * size * S2_PX)}) and one mask layer per kept patch")
