"""``python -m serving.api``: serve the API with uvicorn."""

from __future__ import annotations

import argparse

import uvicorn

from cryptolake.logging import configure_logging, get_logger
from cryptolake.settings import get_settings
from serving.api.main import create_app


def build_parser() -> argparse.ArgumentParser:
    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="python -m serving.api",
        description="Serve the CryptoLake read API (OHLCV bars from the Iceberg lakehouse) with uvicorn. "
        "Settings come from CRYPTOLAKE_* environment variables or .env.",
    )
    parser.add_argument("--host", default=settings.api_host, help=f"bind host (default {settings.api_host})")
    parser.add_argument("--port", type=int, default=settings.api_port, help=f"port (default {settings.api_port})")
    parser.add_argument(
        "--workers", type=int, default=settings.api_workers,
        help=f"worker processes, each with its own cache (default {settings.api_workers}: CRYPTOLAKE_API_WORKERS)",
    )  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    log = get_logger("serving.api")
    log.info(
        "api_starting", host=args.host, port=args.port, workers=args.workers, catalog=settings.resolved_catalog_uri
    )
    options = {"host": args.host, "port": args.port, "log_config": None, "log_level": settings.log_level.lower()}
    if args.workers > 1:  # worker processes import the app themselves; their settings come from the environment
        uvicorn.run("serving.api.main:create_served_app", factory=True, workers=args.workers, **options)
    else:
        uvicorn.run(create_app(settings, freeze_gc=True), **options)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
