#!/usr/bin/env python
"""Render a review page (``<root>/review/<branch>.html``) in headless Chromium and save a
PNG screenshot, to look at what a reviewer sees.

Usage:
    python scripts/screenshot_review.py PAGE.html [--out PNG] [--query scene=2]
        [--width 1500] [--height 1100] [--colors 128]
    python scripts/screenshot_review.py --build DIR [--out PNG]
        # builds the demo archive with defects and its run in DIR first, then shoots
        # DIR/sen12ms/review/ROIs1158_spring.html at the scene with the thin cloud
        # (?scene=2: the page shows that scene only)

Needs Debian's ``chromium`` (``apt-get install chromium``) or ``CHROMIUM=/path/to/binary``.
The browser runs with a fresh profile in a temporary folder, no network services, and is
given the page as a file:// URL (images are linked relatively).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

log = logging.getLogger("screenshot_review")


def chromium() -> str:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)  # type: ignore[return-value]
    raise SystemExit("no chromium found: apt-get install -y chromium (or set CHROMIUM)")


def screenshot(page: Path, out: Path, width: int, height: int, query: str = "",
               timeout: float = 120.0) -> Path:
    """Render ``page`` (with ``?query``, e.g. ``scene=2``) in headless Chromium into
    ``out`` (PNG)."""
    url = page.resolve().as_uri() + (f"?{query}" if query else "")
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--hide-scrollbars",
               f"--user-data-dir={profile}", f"--window-size={width},{height}",
               "--virtual-time-budget=5000", f"--screenshot={out}", url]
        log.info("%s", " ".join(cmd))
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0 or not out.exists():
        raise SystemExit(f"chromium failed ({res.returncode}): {res.stderr[-2000:]}")
    log.info("screenshot: %s (%d bytes)", out, out.stat().st_size)
    return out


def build(folder: Path) -> Path:
    """Demo archive with defects and the demo run in ``folder``; returns the spring page."""
    from sen12ms_build.config import load_config
    from sen12ms_build.demo.archive import write_demo_archive
    from sen12ms_build.pipeline import run

    archive, root = folder / "archive", folder / "sen12ms"
    write_demo_archive(archive, progress=False, defects=True)
    config = Path(__file__).resolve().parent.parent / "configs" / "demo.yaml"
    cfg = load_config(config, {"backend.archive": str(archive), "out": str(root),
                               "quicklooks": True})
    run(cfg, progress=False)
    return root / "review" / "ROIs1158_spring.html"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("page", nargs="?", type=Path, help="a review page (.html)")
    ap.add_argument("--build", type=Path, help="build the defect demo and its run here first")
    ap.add_argument("--out", type=Path, default=Path("review_screenshot.png"))
    ap.add_argument("--query", default=None,
                    help="page options: scene=N (one scene), filter=only-rejected|only-kept "
                         "(default: scene=2 with --build)")
    ap.add_argument("--colors", type=int, default=0,
                    help="quantise the PNG to this many colours (smaller files for docs)")
    ap.add_argument("--width", type=int, default=1500)
    ap.add_argument("--height", type=int, default=1100)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.build:
        page, query = build(args.build), args.query if args.query is not None else "scene=2"
    elif args.page:
        page, query = args.page, args.query or ""
    else:
        ap.error("give a review page or --build DIR")
    if not page.exists():
        raise SystemExit(f"{page}: no such page")
    screenshot(page, args.out, args.width, args.height, query)
    if args.colors:
        from PIL import Image

        img = Image.open(args.out).convert("RGB")
        img.quantize(colors=args.colors, dither=Image.Dither.NONE).save(args.out, optimize=True)
        log.info("quantised to %d colours: %d bytes", args.colors, args.out.stat().st_size)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
