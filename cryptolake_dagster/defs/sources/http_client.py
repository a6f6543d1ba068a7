"""A small JSON-over-HTTP GET client with the retry rules the batch sources need.

* HTTP 429 (and Binance's 418 ban) and 503: wait ``Retry-After`` (seconds or an HTTP date) when the server sends
  it, else exponential backoff; capped by ``max_wait_s``.
* Connection errors, timeouts and other 5xx: exponential backoff.
* Other 4xx: raised at once (a wrong request does not get better by retrying).

JSON numbers with a fraction are parsed as :class:`~decimal.Decimal` from their exact text (``parse_float``).
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import requests

from cryptolake.utc import as_utc

RETRY_AFTER_STATUSES = frozenset({418, 429, 503})


class SourceHTTPError(RuntimeError):
    """A request failed for good: a non-retryable status, or retries exhausted."""

    def __init__(self, message: str, status: int | None = None, url: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.url = url


@dataclass
class RequestStats:
    """What the client did, for materialization metadata."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    waited_s: float = 0.0
    urls: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class JsonResponse:
    payload: Any
    text: str
    url: str
    fetched_at: datetime


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date); None if absent/invalid."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        moment = as_utc(email.utils.parsedate_to_datetime(text))  # an HTTP date without a zone is GMT
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def loads_exact(text: str) -> Any:
    """``json.loads`` with fractional numbers as Decimal (exact text), integers as int."""
    return json.loads(text, parse_float=Decimal)


class JsonHttpClient:
    """GET JSON from one base URL with retries. Not thread-safe (one per asset execution)."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 30.0,
        max_retries: int = 5,
        backoff_s: float = 1.0,
        max_wait_s: float = 120.0,
        min_interval_s: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = dict(headers or {})
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_wait_s = max_wait_s
        self.min_interval_s = min_interval_s
        self.sleep = sleep
        self.session = session or requests.Session()
        self.stats = RequestStats()
        self._last_request: float | None = None

    def url_for(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        query = f"?{urlencode(params)}" if params else ""
        return f"{self.base_url}/{path.lstrip('/')}{query}"

    def _wait(self, seconds: float) -> None:
        seconds = min(max(seconds, 0.0), self.max_wait_s)
        self.stats.waited_s += seconds
        if seconds > 0:
            self.sleep(seconds)

    def _throttle(self) -> None:
        if self.min_interval_s > 0 and self._last_request is not None:
            remaining = self.min_interval_s - (time.monotonic() - self._last_request)
            if remaining > 0:
                self.sleep(remaining)
        self._last_request = time.monotonic()

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> JsonResponse:
        """GET ``base_url/path?params`` and parse the JSON body (exact decimals)."""
        url = self.url_for(path, params)
        self.stats.urls.append(url)
        attempt = 0
        while True:
            self._throttle()
            self.stats.requests += 1
            fetched_at = datetime.now(UTC)
            try:
                response = self.session.get(url, headers=self.headers, timeout=self.timeout_s)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt >= self.max_retries:
                    raise SourceHTTPError(f"GET {url} failed after {attempt + 1} attempts: {exc}", url=url) from exc
                attempt += 1
                self.stats.retries += 1
                self._wait(self.backoff_s * 2 ** (attempt - 1))
                continue
            status = response.status_code
            if status == 200:
                text = response.content.decode("utf-8")
                try:
                    payload = loads_exact(text)
                except json.JSONDecodeError as exc:
                    raise SourceHTTPError(f"GET {url}: body is not JSON: {text[:200]!r}", status, url) from exc
                return JsonResponse(payload, text, url, fetched_at)
            retryable = status in RETRY_AFTER_STATUSES or status >= 500
            if not retryable or attempt >= self.max_retries:
                what = "gave up after retries" if retryable else "not retryable"
                raise SourceHTTPError(f"GET {url}: HTTP {status} ({what}): {response.text[:300]}", status, url)
            attempt += 1
            self.stats.retries += 1
            delay = None
            if status in RETRY_AFTER_STATUSES:
                self.stats.rate_limited += 1
                delay = parse_retry_after(response.headers.get("Retry-After"))
            self._wait(delay if delay is not None else self.backoff_s * 2 ** (attempt - 1))

    def close(self) -> None:
        self.session.close()
