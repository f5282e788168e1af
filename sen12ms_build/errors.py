"""The package's root exception.

Every error a user can cause or meet (bad configuration, unreadable input, full disk, a
backend that refuses) derives from :class:`Sen12msError`, as rasterio's errors derive from
``RasterioError``: the command line catches this one class in one place and prints its
message as one line. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class Sen12msError(Exception):
    """Base class of every user-facing error of sen12ms-build.

    The message (``str(exc)``) is one line: what is wrong, which key or file, what to do.
    """
