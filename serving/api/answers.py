"""Answers kept by URL and served before routing while the tables they were read from are unchanged.

A route whose URL pins its answer (every parameter explicit, no ``as_of``, no "last 24 hours" default) records the
answer it built with the snapshot of every table it read (:func:`remember`). The next request for the same path,
query and encoding is answered by :class:`AnswerCacheMiddleware` from that record as long as each of those tables
still has the same current snapshot (checked without blocking the event loop: see ``Lake.serve``), without
FastAPI's routing, parameter validation and dependencies: the cost of a cached answer drops to that of writing it.
Anything else (another snapshot, a table to look up again, a wrong API key) goes through the app as usual.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from fastapi import Request, Response
from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from serving.api.lake import Lake, LruCache, View

API_KEY_HEADER: Final = b"x-api-key"


@dataclass(frozen=True)
class Answer:
    endpoint: Any  # the route's endpoint (the label of the request metrics)
    reads: tuple[tuple[str, int], ...]  # (table, snapshot id) the answer was read from
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


def _key(scope: Scope) -> tuple[Any, ...]:
    accepts = b""
    for name, value in scope["headers"]:
        if name == b"accept-encoding":
            accepts = value
            break
    return scope["path"], scope["query_string"], accepts


def remember(request: Request, response: Response, reads: Iterable[View]) -> Response:
    """Keep ``response`` for the request's URL while every table of ``reads`` keeps its snapshot (tables without
    a snapshot are not kept: their answer explains an empty lake, which the next commit changes)."""
    answers: AnswerCache | None = getattr(request.app.state, "answers", None)
    snapshots = tuple((view.identifier, view.snapshot_id) for view in reads)
    if answers is not None and all(snapshot is not None for _, snapshot in snapshots):
        answers.put(
            _key(request.scope),
            Answer(request.scope.get("endpoint"), snapshots, response.status_code,  # type: ignore[arg-type]
                   tuple(response.raw_headers), bytes(response.body)),
        )  # fmt: skip
    return response


class AnswerCache:
    def __init__(self, lake: Lake, max_entries: int, api_key: str | None, hits: Counter) -> None:
        self.lake = lake
        self._answers = LruCache(max_entries)
        self._api_key = api_key.encode() if api_key is not None else None
        self._hits = hits

    def put(self, key: tuple[Any, ...], answer: Answer) -> None:
        self._answers.put(key, answer)

    def lookup(self, scope: Scope) -> Answer | None:
        """The kept answer of this request, if it is still the one the app would give."""
        answer: Answer | None = self._answers.get(_key(scope))
        if answer is None:
            return None
        if self._api_key is not None:
            given = next((value for name, value in scope["headers"] if name == API_KEY_HEADER), b"")
            if not hmac.compare_digest(given, self._api_key):
                return None  # the app answers the 401
        if not self.lake.is_current(answer.reads):
            return None
        self._hits.inc()
        return answer


class AnswerCacheMiddleware:
    """Pure ASGI: a GET with a kept, current answer is answered here; every other request goes to the app."""

    def __init__(self, app: ASGIApp, answers: AnswerCache) -> None:
        self.app = app
        self.answers = answers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or (answer := self.answers.lookup(scope)) is None:
            await self.app(scope, receive, send)
            return
        scope["endpoint"] = answer.endpoint
        await send({"type": "http.response.start", "status": answer.status, "headers": list(answer.headers)})
        await send({"type": "http.response.body", "body": answer.body})
