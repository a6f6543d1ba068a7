"""The ``cryptolake`` command: run the platform, bootstrap the lakehouse, show the settings."""

from __future__ import annotations

import argparse
import json

from cryptolake.logging import configure_logging
from cryptolake.settings import Settings, render_env_example


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cryptolake",
        description="CryptoLake: a Dagster-orchestrated Iceberg lakehouse for crypto market data. Settings come "
        "from CRYPTOLAKE_* environment variables or .env (see .env.example).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run",
        help="run the whole platform on this machine (embedded default) until Ctrl-C",
        description="Start the local broker, the exchange simulator (or live Binance with --live), the producer, "
        "the Bronze writer, Dagster (webserver + daemon), the API and the dashboard; print their URLs; stop "
        "them all on Ctrl-C. The Bronze sensor materializes Silver and Gold as trades arrive.",
    )
    run.add_argument("--live", action="store_true", help="stream live Binance trades instead of the simulator")
    run.add_argument(
        "--commit-interval", type=float, default=10.0, help="Bronze commit interval for the demo (default 10 s)"
    )
    sub.add_parser("bootstrap", help="create the catalog, the namespaces and the registered tables (idempotent)")
    sub.add_parser("settings", help="print the effective settings as JSON")
    sub.add_parser("env-example", help="print the documented list of every CRYPTOLAKE_* setting (.env.example)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "run":
        from cryptolake.runtime.supervisor import run_platform

        return run_platform(settings, live=args.live, commit_interval_s=args.commit_interval)
    if args.command == "bootstrap":
        from cryptolake.lakehouse.bootstrap import bootstrap_lakehouse

        bootstrap_lakehouse(settings)
        print(f"lakehouse ready: catalog {settings.resolved_catalog_uri}, warehouse {settings.resolved_warehouse}")
        return 0
    if args.command == "env-example":
        print(render_env_example(), end="")
        return 0
    print(json.dumps(settings.model_dump(mode="json"), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
