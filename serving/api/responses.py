"""Cached JSON answers, compressed once for the clients that accept gzip.

A day of 1-minute bars is about 0.9 MB of JSON. Browsers, ``requests``, ``httpx`` and pandas all send
``Accept-Encoding: gzip``; for them the cached body is compressed once per cache entry (about a tenth of the size)
and served as is, so neither a request nor the socket pays for the full text again. Other clients get the plain
body. Either way the answer says ``Vary: Accept-Encoding`` so a cache in between keeps the two apart.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Hashable, Iterable
from typing import Final

from fastapi import Request, Response

from serving.api.answers import remember
from serving.api.lake import Lake, View

JSON: Final = "application/json"
MIN_GZIP_BYTES: Final = 1_400  # below about one TCP segment compression saves nothing worth its header
GZIP_LEVEL: Final = 5


def accepts_gzip(header: str | None) -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip (``gzip`` or ``*`` without ``q=0``)."""
    for part in (header or "").split(","):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() not in ("gzip", "*"):
            continue
        quality = params.strip().lower().removeprefix("q=")
        try:
            return float(quality) > 0 if params.strip() else True
        except ValueError:
            return True
    return False


def cached_json(
    request: Request, lake: Lake, key: Hashable, build: Callable[[], bytes], url_reads: Iterable[View] | None = None
) -> Response:
    """The cached answer of ``key`` (``build`` makes it on a miss), gzip-compressed when the client accepts it.
    ``url_reads``: the URL pins the answer, which was read from these tables: keep it by URL too (answers.py)."""
    body = lake.cached_response(key, build)
    headers = {"Vary": "Accept-Encoding"}
    if len(body) >= MIN_GZIP_BYTES and accepts_gzip(request.headers.get("accept-encoding")):
        body = lake.cached_response(("gzip", key), lambda: gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0))
        headers["Content-Encoding"] = "gzip"
    response = Response(body, media_type=JSON, headers=headers)
    return remember(request, response, url_reads) if url_reads is not None else response
