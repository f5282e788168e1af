"""Command line: ``sen12ms-build demo | demo-archive | sample | run | batch | validate |
review | apply-review | report``.

Options override the config's keys. Every failure exits non-zero with a one-line message
naming the file, key or path at fault; ``-v`` adds debug logging.
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import sys
from pathlib import Path
from typing import Any, Callable

import click

from . import __version__
from .config import BACKENDS, MAX_WORKERS, SEASONS, ConfigError, load_config, load_yaml
from .errors import Sen12msError
from .raster.io import InputError, output_lock
from .raster.outdir import check_output, claim_output, require_made

#: The demo scene's smaller side in pixels (1933 x 1947 at 10 m): the largest --crop.
DEMO_MAX_CROP = 1933
#: The smallest --crop the demo accepts (sen12ms_build.demo.archive.crop_window).
DEMO_MIN_CROP = 64
from .methods import Labels, MergeMethod, Scorer, Variant, choices

log = logging.getLogger("sen12ms_build")

#: OS errors that mean "the output cannot be written": no space, file too large, quota,
#: permissions, read-only file system.
OUTPUT_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EACCES, errno.EPERM,
                 errno.EROFS}
REPO_CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _errors(fn: Callable) -> Callable:
    """Turn the package's expected errors into clean CLI failures (exit code 1)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Sen12msError as exc:  # every user-facing error: one line
            raise click.ClickException(str(exc)) from None
        except OSError as exc:  # full disk, file size or quota limit, permissions
            if exc.errno not in OUTPUT_ERRNOS:
                raise
            where = f" {exc.filename}" if exc.filename else ""
            raise click.ClickException(f"cannot write{where}: {exc.strerror}; finished work "
                                       "is kept, run the same command again to resume") \
                from None
        except KeyboardInterrupt:
            raise click.ClickException("interrupted; run the same command again to resume "
                                       "(finished work is kept)") from None

    return wrapper


class _StderrHandler(logging.StreamHandler):
    """A stream handler writing to whatever ``sys.stderr`` is when a record is emitted
    (a test runner or a caller may swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    root = logging.getLogger()
    if not any(getattr(h, "_sen12ms", False) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"))
        handler._sen12ms = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("rasterio", "distributed"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def _progress_enabled(quiet: bool) -> bool:
    """Progress bars only on a terminal: redirected to a file, they would fill it with
    carriage returns and escape codes (tqdm redraws the line)."""
    return not quiet and sys.stderr.isatty()


class _Group(click.Group):
    """The top-level group: one place where an unexpected exception becomes one line
    (its traceback only with ``-v``)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit,
                click.exceptions.Abort):
            raise
        except Sen12msError as exc:  # raised outside a command's _errors (callbacks)
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            raise click.ClickException("interrupted; run the same command again to resume "
                                       "(finished work is kept)") from None
        except Exception as exc:
            if (ctx.obj or {}).get("verbose"):
                raise  # -v: the traceback, for a bug report
            first = (str(exc).splitlines() or [""])[0]
            raise click.ClickException(
                f"unexpected error: {type(exc).__name__}: {first} (this is a bug; run again "
                "with -v for the traceback and report it)") from None


def _set_verbosity(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """-v / -q, before or after the subcommand: update logging and progress bars."""
    obj = ctx.find_root().obj
    if obj is None:
        obj = ctx.find_root().obj = {"verbose": 0, "quiet": False}
    if param.name == "verbose" and value:
        obj["verbose"] = obj.get("verbose", 0) + value
    elif param.name == "quiet" and value:
        obj["quiet"] = True
    else:
        return value
    _setup_logging(obj["verbose"], obj["quiet"])
    obj["progress"] = _progress_enabled(obj["quiet"])
    return value


def _verbosity_options(fn: Callable) -> Callable:
    """``-v`` and ``-q``, accepted after the subcommand too (``run ... -v``)."""
    fn = click.option("-q", "--quiet", is_flag=True, expose_value=False,
                      callback=_set_verbosity,
                      help="Only warnings and errors; no progress bars.")(fn)
    return click.option("-v", "--verbose", count=True, expose_value=False,
                        callback=_set_verbosity,
                        help="More logging (debug); tracebacks of unexpected errors.")(fn)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sen12ms-build")
@click.option("-v", "--verbose", count=True,
              help="More logging (debug); tracebacks of unexpected errors.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors; no progress bars.")
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """Rebuild SEN12MS-style Sentinel-1/Sentinel-2/MODIS patch-triplet datasets.

    Typical use: `sen12ms-build demo` builds the offline demo end to end;
    `sen12ms-build run --config configs/sen12ms.yaml --season summer` one branch.
    -v and -q may also follow the subcommand. Progress bars appear only on a terminal.
    """
    ctx.obj = {"verbose": verbose, "quiet": quiet, "progress": _progress_enabled(quiet)}
    _setup_logging(verbose, quiet)


class _NamedPath(click.Path):
    """A path that must be named: an empty one (``--out ''``) would be the current folder,
    so it is refused when the command line is read."""

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail("an empty path would be the current folder; name a folder", param, ctx)
        return super().convert(value, param, ctx)


season_option = click.option(
    "--season", "-s", type=click.Choice(SEASONS), multiple=True,
    help="Season(s) to process (repeatable); default: every season in the config.")


scorer_option = click.option(
    "--scorer", type=click.Choice(choices(Scorer)), default=None,
    help="Cloud scorer (overrides mosaic.scorer): paper (default), s2cloudless (local "
         "backend, pip extra s2cloudless), cloudscoreplus (Earth Engine). See docs/clouds.md.")
merge_option = click.option(
    "--merge", "merge_method", type=click.Choice(choices(MergeMethod)), default=None,
    help="Merge (overrides mosaic.merge): paper (best images on top, unmasked) or masked "
         "(their cloud/shadow pixels are filled by the quality mosaic).")


labels_option = click.option(
    "--labels", type=click.Choice(choices(Labels)), default=None,
    help="10 m land-cover labels as a fourth modality (overrides labels): none (default), "
         "worldcover (ESA WorldCover, every backend) or dynamicworld (Earth Engine only); "
         "files <prefix>_<scene>/, prefix wc or dw.")
variant_option = click.option(
    "--variant", type=click.Choice(choices(Variant)), default=None,
    help="Dataset to build (overrides variant): sen12ms (the paper's triplets), cr "
         "(SEN12MS-CR cloudy/cloud-free pairs with cloud masks) or cr-ts (SEN12MS-CR-TS "
         "time series). See docs/variants.md.")


def _method_overrides(scorer: str | None, merge_method: str | None,
                      labels: str | None = None, variant: str | None = None
                      ) -> dict[str, Any]:
    return {"mosaic.scorer": scorer, "mosaic.merge": merge_method, "labels": labels,
            "variant": variant}


def _summary_lines(summary: Any) -> list[str]:
    return [f"seasons: {', '.join(summary.seasons)}",
            f"scenes: {summary.scenes} ({summary.scenes_kept} kept)",
            f"patches: {summary.patches} ({summary.patches_kept} kept)",
            f"skipped inputs: {len(summary.problems)}",
            f"seconds: {summary.seconds}", f"peak memory: {summary.peak_memory_mib} MiB",
            *(f"disk, {part}: {n / 2**20:.1f} MiB"
              for part, n in summary.disk.items())]


def _run(cfg_path: Path, seasons: tuple[str, ...], overrides: dict[str, Any],
         progress: bool, **options: Any) -> Any:
    from .pipeline import run

    cfg = load_config(cfg_path, overrides)
    summary = run(cfg, list(seasons) or None, progress=progress, **options)
    for line in _summary_lines(summary):
        log.info(line)
    for p in summary.problems:
        log.warning("skipped input: %s", p)
    if summary.empty_reason:  # a run that kept nothing must not exit 0
        from .pipeline import NoPatchesError

        raise NoPatchesError(summary.empty_reason)
    log.info("dataset written to %s", cfg.out)
    return summary


@main.command("demo-archive")
@_verbosity_options
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--crop", type=click.IntRange(DEMO_MIN_CROP, DEMO_MAX_CROP), default=None,
              help=f"Use only the central CROP x CROP pixels of the scene, {DEMO_MIN_CROP} to "
                   f"{DEMO_MAX_CROP} (fast tests; a run needs at least one 256 px patch).")
@click.option("--defects", is_flag=True,
              help="Inject known defects (no-data holes, a thin cloud, a mosaicking seam, a "
                   "SAR stripe, saturation) with their ground truth in DIRECTORY/truth/.")
@click.option("--clouds", type=click.Choice(["synthetic", "real"]), default="synthetic",
              show_default=True,
              help="real: spring's and summer's scattered acquisitions carry real clouds "
                   "(spectra and shapes of a real Sentinel-2 array).")
@click.pass_context
@_errors
def demo_archive_cmd(ctx: click.Context, directory: Path, crop: int | None,
                     defects: bool, clouds: str) -> None:
    """Write the embedded demo archive (real Sentinel-2 ground, injected clouds and
    shadows, simulated Sentinel-1 and land cover) into DIRECTORY."""
    from .demo.archive import write_demo_archive

    write_demo_archive(directory, crop=crop, progress=ctx.obj["progress"], defects=defects,
                       clouds=clouds)
    log.info("demo archive written to %s%s", directory,
             " (defects: truth/defects.json)" if defects else "")


@main.command()
@_verbosity_options
@click.option("--out", type=_NamedPath(file_okay=False, path_type=Path),
              default=Path("demo_out"), show_default=True,
              help="Folder for the demo archive (OUT/archive) and dataset (OUT/sen12ms).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Demo config (default: configs/demo.yaml of this checkout).")
@season_option
@scorer_option
@merge_option
@variant_option
@click.option("--backend", type=click.Choice(["local", "stac"]), default="local",
              show_default=True,
              help="local: read the archive's files; stac: serve the archive on loopback in "
                   "the open archives' layouts (STAC API, S3, COG, HDF4) and read it through "
                   "the stac backend (docs/stac.md).")
@click.option("--level", type=click.Choice(["l1c", "l2a"]), default="l1c", show_default=True,
              help="With --backend stac: the Sentinel-2 level read (l2a: the Planetary "
                   "Computer layout, 12 bands).")
@labels_option
@click.pass_context
@_errors
def demo(ctx: click.Context, out: Path, config_path: Path | None,
         season: tuple[str, ...], scorer: str | None, merge_method: str | None,
         variant: str | None, backend: str, level: str, labels: str | None) -> None:
    """Build the demo archive and run the whole pipeline on it, offline."""
    from .demo.archive import write_demo_archive

    planned = {}
    if config_path is None:  # the checkout's demo: its planned ROIs, from any folder
        config_path = REPO_CONFIGS / "demo.yaml"
        planned = {"sampling.rois_file": str(REPO_CONFIGS / "demo_rois.csv")}
        if variant == "cr-ts":  # ROI ids the SEN12MS-CR-TS loaders know (docs/variants.md)
            planned = {"sampling.rois_file": str(REPO_CONFIGS / "demo_rois_cr_ts.csv"),
                       "tiling.stride": 256}
    if not config_path.exists():
        raise ConfigError(str(config_path), "", "demo config not found; pass --config")
    archive = out / "archive"
    name = "sen12ms" if not variant or variant == "sen12ms" else f"sen12ms-{variant}"
    dataset = out / (name if backend == "local" else f"{name}-stac-{level}")
    overrides = {"backend.archive": str(archive), "backend.name": "local",
                 "out": str(dataset), **planned,
                 **_method_overrides(scorer, merge_method, labels, variant)}
    cfg = load_config(config_path, overrides)  # the scorer's capabilities, every key
    for s in season:
        cfg.season(s)
    published, cache = out / "published", out / "stac-cache"
    tool_folders = [(archive, "archive"), (dataset, "dataset")]
    if backend != "local":
        tool_folders += [(published, "archive"), (cache, "archive")]
    for folder, kind in tool_folders:  # every folder before the first file
        check_output(folder, kind, "--out")
    write_demo_archive(archive, progress=ctx.obj["progress"])
    if backend == "local":
        _run(config_path, season, overrides, ctx.obj["progress"])
        return
    from .demo import stac_publish

    log.info("publishing the demo archive in the open archives' layouts (%s)", published)
    for folder in (published, cache):
        claim_output(folder, "archive", option="--out")
    served = stac_publish.publish(archive, published, l2a=level == "l2a")
    with stac_publish.demo_env(), stac_publish.serve(served, cache) as svc:
        log.info("loopback services: STAC %s, S3 %s", svc.stac.url, svc.s3.endpoint)
        overrides.update({"backend.name": "stac",
                          "backend.stac": svc.section(level, labels=bool(
                              cfg.label_product))})
        _run(config_path, season, overrides, ctx.obj["progress"])


@main.command()
@_verbosity_options
@click.option("--config", "config_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path), help="YAML run config.")
@season_option
@click.option("--out", "out_file", type=_NamedPath(dir_okay=False, path_type=Path),
              default=None, help="Write the GeoJSON here instead of stdout (several "
              "seasons: one collection, each feature with its season).")
@_errors
def sample(config_path: Path, season: tuple[str, ...], out_file: Path | None) -> None:
    """Sample the ROIs of the season(s) and print them as GeoJSON (EPSG:4326)."""
    from .planning import season_rois
    from .roi import write_geojson

    from .raster.io import atomic_write_text

    cfg = load_config(config_path)
    seasons = list(season) or list(cfg.seasons)
    for name in seasons:
        cfg.season(name)  # every season checked before any sampling
    feats = []
    for name in seasons:
        rois = season_rois(cfg, name)
        log.info("%s: %d ROI(s)", cfg.branch(name), len(rois))
        if out_file and len(seasons) == 1:
            write_geojson(rois, out_file, seed=cfg.season(name).seed, season=name)
            return
        for r in rois:
            f = r.to_feature()
            f["properties"]["season"] = name
            feats.append(f)
    text = json.dumps({"type": "FeatureCollection", "features": feats}, indent=1)
    if out_file:  # several seasons: one collection, each feature with its season
        atomic_write_text(out_file, text + "\n")
        log.info("%d ROI(s) of %s written to %s", len(feats), ", ".join(seasons), out_file)
    else:
        click.echo(text)


def _run_options(fn: Callable) -> Callable:
    for opt in reversed([
        click.option("--config", "config_path", required=True,
                     type=click.Path(dir_okay=False, path_type=Path), help="YAML run config."),
        season_option,
        click.option("--archive", type=click.Path(file_okay=False, path_type=Path),
                     default=None, help="Local archive directory (overrides backend.archive)."),
        click.option("--out", type=_NamedPath(file_okay=False, path_type=Path), default=None,
                     help="Dataset root (overrides out): a new or empty folder, or a dataset "
                          "sen12ms-build made."),
        click.option("--backend", type=click.Choice(list(BACKENDS)), default=None,
                     help="Backend (overrides backend.name); stac: docs/stac.md."),
        click.option("--workers", "-j", type=click.IntRange(1, MAX_WORKERS), default=None,
                     help="Scenes processed in parallel (overrides workers)."),
        click.option("--force", type=click.Choice(["export", "warp", "tile"]),
                     multiple=True, help="Redo a stage and those after it (repeatable)."),
        click.option("--executor", type=click.Choice(["process", "dask"]), default="process",
                     show_default=True, help="Run scenes in a local process pool or as "
                     "tasks on a Dask cluster (needs the dask extra)."),
        click.option("--scheduler", default=None, metavar="ADDRESS",
                     help="Dask scheduler address (with --executor dask); default: a local "
                     "cluster of --workers processes."),
        scorer_option,
        merge_option,
        labels_option,
        variant_option,
        click.option("--dry-run", is_flag=True,
                     help="Print what would be requested (ROIs, images per ROI; for Earth "
                          "Engine also requests and bytes) and stop; no pixels."),
    ]):
        fn = opt(fn)
    return fn


@main.command("run")
@_verbosity_options
@_run_options
@click.pass_context
@_errors
def run_cmd(ctx: click.Context, config_path: Path, season: tuple[str, ...],
            archive: Path | None, out: Path | None, backend: str | None,
            workers: int | None, force: tuple[str, ...], executor: str,
            scheduler: str | None, scorer: str | None, merge_method: str | None,
            labels: str | None, variant: str | None, dry_run: bool) -> None:
    """Build (or resume) the dataset for the season(s) of a config. Re-running the same
    command resumes: finished stages are skipped, unfinished ones redone."""
    overrides = {"backend.archive": str(archive) if archive else None,
                 "out": str(out) if out else None, "backend.name": backend,
                 "workers": workers, **_method_overrides(scorer, merge_method, labels,
                                                          variant)}
    if scheduler and executor != "dask":
        raise ConfigError("", "--scheduler", "a Dask scheduler address needs --executor dask")
    if dry_run:
        from .planning import dry_run as plan

        # a plan needs no credentials (the stac backend's profiles are checked without)
        click.echo(plan(load_config(config_path, overrides, credentials=False),
                        list(season) or None))
        return
    _run(config_path, season, overrides, ctx.obj["progress"], force=force,
         executor=executor, scheduler=scheduler)


BATCH_KEYS = {"config", "season", "seasons", "archive", "out", "backend"}


@main.command()
@_verbosity_options
@click.argument("batch_file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
@_errors
def batch(ctx: click.Context, batch_file: Path) -> None:
    """Run several jobs listed in a YAML file:

    \b
    runs:
      - {config: configs/sen12ms.yaml, season: summer, out: out/sen12ms}
      - {config: configs/sen12ms.yaml, seasons: [fall, winter], backend: earthengine}
    """
    if not batch_file.is_file():
        raise ConfigError(str(batch_file), "", "cannot read batch file: not found")
    data = load_yaml(batch_file, "batch file")
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise ConfigError(str(batch_file), "runs", "expected a list of runs under 'runs:'")
    if set(data) - {"runs"}:
        raise ConfigError(str(batch_file), sorted(set(data) - {"runs"})[0], "unknown key")
    if not data["runs"]:
        raise ConfigError(str(batch_file), "runs", "no job listed; nothing to do")
    jobs = []
    for i, job in enumerate(data["runs"]):
        key = f"runs[{i}]"
        if not isinstance(job, dict) or "config" not in job:
            raise ConfigError(str(batch_file), key, "each run needs at least 'config'")
        unknown = set(job) - BATCH_KEYS
        if unknown:
            raise ConfigError(str(batch_file), f"{key}.{sorted(unknown)[0]}",
                              f"unknown key (known: {', '.join(sorted(BATCH_KEYS))})")
        seasons = job.get("seasons", [job["season"]] if "season" in job else [])
        if isinstance(seasons, str):
            seasons = [seasons]
        for s in seasons:
            if s not in SEASONS:
                raise ConfigError(str(batch_file), f"{key}.season",
                                  f"unknown season {s!r}; choose one of {', '.join(SEASONS)}")
        overrides = {"backend.archive": job.get("archive"), "out": job.get("out"),
                     "backend.name": job.get("backend")}
        try:  # validate every job, and its output folder, before running any
            cfg = load_config(job["config"], overrides)
            for s in seasons:
                cfg.season(s)
            check_output(cfg.out, "dataset", f"{key}.out")
        except Sen12msError as exc:
            raise ConfigError(str(batch_file), key, f"job {i + 1}: {exc}") from None
        jobs.append((Path(job["config"]), tuple(seasons), overrides))
    for i, (cfg_path, seasons, overrides) in enumerate(jobs, start=1):
        log.info("batch job %d/%d: %s %s", i, len(jobs), cfg_path, ", ".join(seasons) or "all")
        try:
            _run(cfg_path, seasons, overrides, ctx.obj["progress"])
        except Sen12msError as exc:
            raise Sen12msError(f"{batch_file}: runs[{i - 1}] (job {i} of {len(jobs)}): "
                               f"{exc}") from None


@main.command()
@_verbosity_options
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--no-checksums", is_flag=True, help="Skip the SHA-256 check of every file.")
@_errors
def validate(directory: Path, no_checksums: bool) -> None:
    """Check a dataset tree (names, folders, dtypes, band counts, CRS, 10 m pixels, triplet
    alignment, manifest checksums, split lists); exit 1 listing every problem."""
    from .dataset.validate import stray_files, validate_tree

    problems = validate_tree(directory, checksums=not no_checksums)
    for p in problems:
        log.error("%s", p)
    for p in stray_files(directory) if directory.is_dir() else ():  # warnings, not failures
        why = ("GDAL's statistics; `sen12ms-build clean` removes it" if
               p.name.endswith(".aux.xml") else "move it out of the dataset if it is yours")
        log.warning("%s: not part of the dataset (sen12ms-build did not write it; %s)", p,
                    why)
    if problems:
        raise click.ClickException(f"{directory}: {len(problems)} problem(s)")
    log.info("%s: valid", directory)


@main.command()
@_verbosity_options
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@_errors
def clean(directory: Path) -> None:
    """Remove the intermediate exports and UTM scenes (DIRECTORY/.work/<branch>/) and the
    .aux.xml files GDAL left beside the dataset's files; finished scenes still resume as
    finished (the state file is kept). Only files sen12ms-build wrote are removed."""
    from .housekeeping import clean as clean_root, disk_usage

    require_made(directory, "dataset")
    with output_lock(directory):  # not while a run writes the same tree
        freed = clean_root(directory)
    log.info("%s: %.1f MiB of intermediates removed", directory, freed / 2**20)
    for part, n in disk_usage(directory).items():
        log.info("disk, %s: %.1f MiB", part, n / 2**20)


# --- curation review and report (sen12ms_build.curation.review, .report) ------------------

@main.command()
@_verbosity_options
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--config", "config_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="The run's YAML config (thresholds, tiling).")
@_errors
def review(directory: Path, config_path: Path) -> None:
    """Write the quicklooks (DIRECTORY/quicklooks) and the review pages
    (DIRECTORY/review/<branch>.html) of a dataset root."""
    from .curation.review import write_review

    cfg = load_config(config_path, {"out": str(directory)})
    require_made(directory, "dataset", ".work/state.sqlite")
    with output_lock(directory):  # not while a run writes the same tree
        pages = write_review(directory, cfg)
    if not pages:
        raise InputError(f"{directory}: no finished scene to review (run the pipeline "
                         "first)")
    log.info("%d review page(s) in %s", len(pages), directory / "review")


@main.command("apply-review")
@_verbosity_options
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.argument("review_list", type=click.File("r"))
@click.option("--config", "config_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="The run's YAML config (splits, tiling).")
@click.option("--note", default="", help="A note stored with these decisions.")
@_errors
def apply_review_cmd(directory: Path, review_list: Any, config_path: Path, note: str) -> None:
    """Apply a reviewer's list (the review page's JSON, or one patch id or file name per
    line, '+' in front to re-admit; '-' reads stdin) to the tree, manifest and split lists.
    Decisions are kept in DIRECTORY/review.json, which later runs honour."""
    from .curation.review import apply_review, parse_list

    try:
        text = review_list.read()
    except UnicodeDecodeError:
        raise InputError(f"{review_list.name}: not a text file (expected the review page's "
                         "JSON or one patch id per line)") from None
    try:
        rejects, readmits = parse_list(text)
    except InputError as exc:
        raise InputError(f"{review_list.name}: {exc}") from None
    if not rejects and not readmits:
        raise InputError(f"{review_list.name}: lists no patch to reject or re-admit")
    cfg = load_config(config_path, {"out": str(directory)})
    require_made(directory, "dataset", ".work/state.sqlite")
    with output_lock(directory):  # not while a run writes the same tree
        counts = apply_review(directory, cfg, rejects, readmits, note)
    log.info("%d rejected, %d re-admitted; %d train and %d test patches", counts["rejected"],
             counts["readmitted"], counts["train"], counts["test"])


@main.command()
@_verbosity_options
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--truth", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The defect archive (demo-archive --defects) the run was built from: "
                   "adds the curation rounds' per-defect recall and false-reject rate.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="The run's config (patch size and stride; default 256/128).")
@_errors
def report(directory: Path, truth: Path | None, config_path: Path | None) -> None:
    """Write DIRECTORY/report/report.md with patches per season and scene, class
    histograms per land-cover scheme, rejection reasons and a world map of the ROIs."""
    from .curation.report import write_report

    size, stride = 256, 128
    if config_path:
        t = load_config(config_path).tiling
        size, stride = t.patch_size, t.stride
    evaluate = None
    if truth is not None:
        from .demo.defects import evaluate

        if not (truth / "truth" / "defects.json").is_file():
            raise InputError(f"{truth}: no truth/defects.json; --truth needs an archive made "
                             "by `sen12ms-build demo-archive DIR --defects`")
    require_made(directory, "dataset", "manifest.csv")
    with output_lock(directory):  # not while a run writes the same tree
        write_report(directory, truth, size, stride, evaluate)


if __name__ == "__main__":  # pragma: no cover
    main()
