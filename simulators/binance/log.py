"""Logger factory: structlog when it is importable, else a stdlib adapter taking the same key=value style."""

from __future__ import annotations

import logging
import sys
from typing import Any

try:  # pragma: no cover - exercised implicitly depending on the environment
    import structlog
except ImportError:  # pragma: no cover
    structlog = None  # type: ignore[assignment]

LOGGER_NAME = "simulators.binance"


class _StdlibLogger:
    """Minimal structlog-like facade over :mod:`logging` (``log.info("event", key=value)``)."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def _log(self, level: int, event: str, **kw: Any) -> None:
        if self._logger.isEnabledFor(level):
            extra = " ".join(f"{k}={v!r}" for k, v in kw.items())
            self._logger.log(level, "%s %s", event, extra) if extra else self._logger.log(level, event)

    def debug(self, event: str, **kw: Any) -> None:
        self._log(logging.DEBUG, event, **kw)

    def info(self, event: str, **kw: Any) -> None:
        self._log(logging.INFO, event, **kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._log(logging.WARNING, event, **kw)

    def error(self, event: str, **kw: Any) -> None:
        self._log(logging.ERROR, event, **kw)

    def exception(self, event: str, **kw: Any) -> None:
        self._logger.exception("%s %s", event, " ".join(f"{k}={v!r}" for k, v in kw.items()))


def get_logger() -> Any:
    """Return the simulator logger (a structlog bound logger, or the stdlib adapter)."""
    if structlog is not None:
        return structlog.get_logger(LOGGER_NAME)
    return _StdlibLogger(logging.getLogger(LOGGER_NAME))


def configure_cli_logging(level: str = "INFO") -> None:
    """Send all logs to stderr at ``level`` (used by the CLI only; libraries must not configure logging)."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    logging.basicConfig(stream=sys.stderr, level=numeric, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if structlog is not None:
        structlog.configure(
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.dev.ConsoleRenderer(colors=False),
            ],
            wrapper_class=structlog.make_filtering_bound_logger(numeric),
            logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
            cache_logger_on_first_use=False,
        )
