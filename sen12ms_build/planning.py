"""What a run will do before it does it: the ROIs of a season, the request each scene makes
of its backend, the configured backend, and the dry run that prints the plan without
exporting any pixel. The pipeline (:mod:`sen12ms_build.pipeline`) and the command line both
call these; nothing here writes a pixel.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from .backends import (Backend, CloudyOptions, SceneRequest, TimeSeriesRequest,
                       get_backend)
from .config import Config, ConfigError
from .dataset import layout
from .products import S2_COVERAGE
from .roi import ROI, read_geojson, write_geojson
from .state import record_written

log = logging.getLogger(__name__)


def fingerprint(*parts: Any) -> str:
    """Short stable hash of JSON-able settings."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def season_rois(cfg: Config, season: str) -> list[ROI]:
    """The ROIs of a season: sampled from its seed, or listed in ``sampling.rois_file``."""
    from . import sampling

    s, sp = cfg.season(season), cfg.sampling
    if sp.rois_file:
        if not Path(sp.rois_file).is_file():
            raise ConfigError(cfg.source, "sampling.rois_file",
                              f"ROI list {sp.rois_file} not found")
        try:
            return sampling.read_roi_list(Path(sp.rois_file), seed=s.seed,
                                          roi_size_m=sp.roi_size_m, season=season)
        except sampling.RoiListError as exc:
            raise sampling.RoiListError(f"sampling.rois_file: {exc}") from None
    return sampling.sample_rois(
        s.seed, land_count=sp.land_count, urban_count=sp.urban_count,
        roi_size_m=sp.roi_size_m, min_land_share=sp.min_land_share,
        min_city_population=sp.min_city_population,
        region=tuple(sp.region) if sp.region else S2_COVERAGE, max_attempts=sp.max_attempts)


def rois_for_run(cfg: Config, season: str, root: Path) -> list[ROI]:
    """Season ROIs, cached in ``<root>/rois/<branch>.geojson`` for the same settings."""
    s = cfg.season(season)
    path = Path(root) / "rois" / f"{layout.branch_name(s.seed, season)}.geojson"
    fp = fingerprint(asdict(cfg.sampling), s.seed)
    if path.exists():
        try:
            if json.loads(path.read_text()).get("fingerprint") == fp:
                rois = read_geojson(path)
                record_written(root, [path])  # (a tree of an earlier version: not yet)
                return rois
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            pass
    rois = season_rois(cfg, season)
    write_geojson(rois, path, fingerprint=fp, seed=s.seed, season=season)
    record_written(root, [path])
    return rois


def scene_request(cfg: Config, season: str, roi: ROI) -> SceneRequest:
    """What the backend is asked for one scene."""
    s = cfg.season(season)
    request = SceneRequest(roi=roi, season=season, start=s.start, end=s.end,
                           params=cfg.mosaic_params, landcover_year=cfg.landcover_year,
                           resolution_m=cfg.reproject.resolution_m, labels=cfg.label_product,
                           worldcover_version=cfg.worldcover_version)
    if cfg.variant == "sen12ms":  # the paper's request does not move with cloud_removal
        return request
    return replace(request, variant=cfg.variant, cloudy=cloudy_options(cfg))


def cloudy_options(cfg: Config) -> CloudyOptions:
    """The cloud-removal variants' pick settings of a run (``cloud_removal``)."""
    cr = cfg.cloud_removal
    return CloudyOptions(band=(float(cr.cloud_band[0]), float(cr.cloud_band[1])),
                         min_coverage=cr.min_coverage_percent)


def time_series_request(cfg: Config, roi: ROI) -> TimeSeriesRequest:
    """What the backend is asked for one ROI of a ``cr-ts`` run."""
    start, end = cfg.year_span
    return TimeSeriesRequest(roi=roi, start=start, end=end,
                             time_points=cfg.cloud_removal.time_points,
                             min_coverage=cfg.cloud_removal.min_coverage_percent,
                             resolution_m=cfg.reproject.resolution_m)


def dry_run(cfg: Config, seasons: list[str] | None = None, root: Path | None = None) -> str:
    """What a run would request, without exporting any pixels: per ROI the acquisitions
    found (local) or the Earth Engine plan (images, requests, bytes). Returns the text."""
    seasons = seasons or list(cfg.seasons)
    for name in seasons:
        cfg.season(name)
    if cfg.variant != "sen12ms":  # the variants' cost (sen12ms_build.variants.plan)
        return _variant_dry_run(cfg, seasons)
    requests = [scene_request(cfg, n, r) for n in seasons for r in season_rois(cfg, n)]
    if cfg.backend.name == "stac":  # offline: estimates under every profile, with quotas
        from .backends.stac.plan import plan
        from .config import stac_options

        return plan(requests, stac_options(cfg, check_credentials=False),
                    workers=cfg.workers).format()
    if cfg.backend.name == "earthengine":
        from .backends.earthengine import EarthEngineOptions, plan_requests
        from .backends.earthengine.errors import EarthEngineAuthError

        try:
            backend = make_backend(cfg)
        except EarthEngineAuthError as exc:
            log.warning("no Earth Engine session (%s): planning without image counts", exc)
            opts = EarthEngineOptions.from_mapping(cfg.backend.earthengine)
            return plan_requests(requests, opts).format()
        return backend.dry_run(requests).format()
    from .backends.local import query

    backend = make_backend(cfg)
    lines = [f"{'season':<8} {'roi':<22} {'lon':>10} {'lat':>9} {'utm':>4} "
             f"{'s2':>3} {'s1':>3}"]
    for r in requests:
        ring = r.roi.ring()
        n2 = len(query(backend.index("s2"), ring, r.start, r.end))
        n1 = len(query(backend.index("s1"), ring, r.start, r.end))
        lines.append(f"{r.season:<8} {r.roi.id:<22} {r.roi.lon:>10.4f} {r.roi.lat:>9.4f} "
                     f"{r.roi.utm_zone:>4} {n2:>3} {n1:>3}")
    return "\n".join(lines)


def _variant_dry_run(cfg: Config, seasons: list[str]) -> str:
    """The dry run of ``cr`` (the paper's plan and the cloudy inputs' cost) or ``cr-ts`` (its
    slots, acquisitions, files and bytes)."""
    from .variants import plan

    rois = {n: season_rois(cfg, n) for n in seasons}
    if cfg.variant == "cr":
        text = dry_run(replace(cfg, variant="sen12ms"), seasons)
        return f"{text}\n{plan.cr_footer(cfg, sum(len(v) for v in rois.values()))}"
    backend = make_backend(cfg) if cfg.backend.name == "local" else None
    text = plan.time_series_plan(cfg, rois, backend)
    if cfg.backend.name == "earthengine":  # the backend does not declare time_series
        text += ("\nnote: the earthengine backend does not build cr-ts time series (local "
                 "and stac do); the figures are what a run would fetch and write")
    return text


def make_backend(cfg: Config) -> Backend:
    """The configured backend."""
    b = cfg.backend
    if b.name == "local":
        if not b.archive:
            raise ConfigError(cfg.source, "backend.archive",
                              "the local backend needs an archive directory")
        return get_backend("local", archive=b.archive)
    if b.name == "stac":
        from .config import stac_options

        return get_backend("stac", options=stac_options(cfg),
                           scorer=cfg.mosaic_params.scorer)
    return get_backend("earthengine", **b.earthengine)
