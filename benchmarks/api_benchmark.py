"""Benchmark: the serving API's one-day 1m bars request under 50 concurrent clients, the current implementation (the
committed tree's ``serving/``, ``--baseline-ref``) beside this tree's, after 1 and after 288 commits.

1. Builds two temporary lakehouses with one UTC day of 1-minute bars for ``--symbols`` symbols (1,440 bars each),
   written with pyiceberg into both ``silver.ohlcv_1m`` (what the baseline serves) and a ``gold.fct_ohlcv_1m`` laid
   out like dbt's model (partitioned by ``days(open_time)``) plus ``gold.dim_symbol``: one lake in one commit per
   table, the other in 288 commits (a day of 5-minute refreshes).
2. For each lake serves the baseline (``git archive`` of ``serving/`` at the ref, in a subprocess, under uvicorn's
   defaults) and this tree's API as ``python -m serving.api --workers N`` for each of ``--workers``, and drives ``GET /api/v1/bars/BTCUSDT`` for the day with
   ``wrk`` (``--connections`` clients, 2 threads, ``--seconds`` each): the same request (``same``), and for this
   tree the same request from clients that accept gzip (``same, gzip``: what browsers, requests, httpx and pandas
   send) and requests that differ in ``limit`` (``varied``: no two answers share the response cache, each is cut
   from the cached day). Latency percentiles and requests/s come from wrk; time-outs (2 s) and errors are counted.
3. Freshness: appends a commit of new bars to the 288-commit lake while this tree's API runs and polls every 50 ms
   until the answer has them (``--freshness-runs`` times): seconds from the commit's end to visibility.
4. Prints the figures side by side with the target (p99 <= 50 ms and >= 500 requests/s with 50 clients; new data
   within 5 s) and rewrites the section "Serving API" of ``docs/benchmarks.md`` (only that section).

Needs Debian's ``wrk`` (``apt-get install -y wrk``). Run: ``.venv/bin/python benchmarks/api_benchmark.py``.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import requests
from docs_section import write_section

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
DOCS_FILE = REPO_ROOT / "docs" / "benchmarks.md"
SECTION_TITLE = "Serving API"
TARGET_P99_MS = 50.0
TARGET_RPS = 500.0
TARGET_FRESHNESS_S = 5.0
DAY = datetime(2024, 6, 3, tzinfo=UTC)
BASELINE_REF = "13a46d2"  # the last commit whose API re-planned a pyiceberg scan per request
_STARTED = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - _STARTED:7.1f}s] {message}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbols", type=int, default=5, help="symbols with a day of 1m bars (5)")
    parser.add_argument("--commits", type=int, nargs="+", default=[1, 288], help="commit counts of the lakes (1 288)")
    parser.add_argument("--connections", type=int, default=50, help="concurrent clients (50)")
    parser.add_argument("--seconds", type=int, default=15, help="seconds of load per measurement (15)")
    parser.add_argument("--freshness-runs", type=int, default=3, help="commits timed for visibility (3)")
    parser.add_argument(
        "--baseline-ref",
        default=BASELINE_REF,
        help=f"git ref of the implementation to compare with ({BASELINE_REF}: the API before the snapshot cache)",
    )
    parser.add_argument("--no-baseline", action="store_true", help="measure this tree only")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2],
        help="this tree's API worker counts to measure (1 2: CRYPTOLAKE_API_WORKERS, one per core)",
    )  # fmt: skip
    parser.add_argument("--docs", type=Path, default=DOCS_FILE, help="file whose section is rewritten")
    parser.add_argument("--no-docs", action="store_true", help="print only")
    return parser.parse_args(argv)


# --- data --------------------------------------------------------------------------------------------------------


def minute_bar(symbol: str, minute: datetime, i: int) -> dict[str, Any]:
    base = Decimal("64000.12345678") + i
    return {
        "exchange": "binance", "market": "spot", "symbol": symbol, "minute": minute, "open": base,
        "high": base + Decimal("10.00000001"), "low": base - Decimal("9.99999999"), "close": base + Decimal("1.5"),
        "volume": Decimal("1.23456789") + i, "quote_volume": Decimal("79012.3456789012345678") + i,
        "trade_count": 100 + i, "vwap": base + Decimal("0.00000001"), "buy_volume": Decimal("0.5") + i,
        "sell_volume": Decimal("0.73456789"), "first_agg_trade_id": 1000 * i, "last_agg_trade_id": 1000 * i + 99,
        "built_at": DAY, "agg_trade_count": 100, "taker_buy_quote_volume": Decimal("1.5"),
        "first_trade_id": 2000 * i, "last_trade_id": 2000 * i + 199,
    }  # fmt: skip


def build_lake(state_dir: Path, symbols: list[str], commits: int) -> Any:
    """Silver and Gold 1m bars of one day for ``symbols``, in ``commits`` commits per table."""
    from pyiceberg.transforms import DayTransform

    from cryptolake.lakehouse.bootstrap import bootstrap_lakehouse
    from cryptolake.settings import Settings
    from cryptolake.tables import GOLD_DIM_SYMBOL, GOLD_OHLCV_1M, SILVER_OHLCV_1M
    from cryptolake_dagster_tests.serving.conftest import DIM_SYMBOL_SCHEMA, GOLD_1M_SCHEMA, gold_bar

    settings = Settings(state_dir=state_dir, catalog_name="lake")
    catalog = bootstrap_lakehouse(settings)
    silver = catalog.load_table(SILVER_OHLCV_1M.identifier)
    gold = catalog.create_table(GOLD_OHLCV_1M, schema=GOLD_1M_SCHEMA)
    with gold.update_spec() as spec:  # days(open_time), as dbt's model
        spec.add_field("open_time", DayTransform(), "open_time_day")
    dims = [{"symbol": s, "exchange": "binance", "market": "spot", "first_seen_minute": DAY,
             "last_seen_minute": DAY + timedelta(minutes=1439), "base_asset": s[:-4], "quote_asset": "USDT",
             "coin_id": None} for s in symbols]  # fmt: skip
    catalog.create_table(GOLD_DIM_SYMBOL, schema=DIM_SYMBOL_SCHEMA).append(
        pa.Table.from_pylist(dims, schema=DIM_SYMBOL_SCHEMA)
    )
    minutes = [DAY + timedelta(minutes=m) for m in range(1440)]
    per_commit = -(-len(minutes) // commits)
    silver_schema = silver.schema().as_arrow()
    for c in range(commits):
        chunk = minutes[c * per_commit : (c + 1) * per_commit]
        rows = [minute_bar(s, m, i) for s in symbols for i, m in enumerate(chunk, start=c * per_commit)]
        if not rows:
            continue
        silver.append(pa.Table.from_pylist(rows, schema=silver_schema))
        gold.append(pa.Table.from_pylist([gold_bar(r, "open_time") for r in rows], schema=GOLD_1M_SCHEMA))
    return settings


# --- servers and load ---------------------------------------------------------------------------------------------

SERVER = """
import sys
from pathlib import Path
import uvicorn
from cryptolake.settings import Settings
from serving.api.main import create_app
app = create_app(Settings(state_dir=Path(sys.argv[1]), catalog_name="lake", log_level="WARNING"))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def baseline_tree(ref: str, into: Path) -> Path:
    """``serving/`` of ``ref``, extracted into ``into`` (put first on PYTHONPATH, beside this tree's core)."""
    archive = subprocess.run(["git", "archive", ref, "serving"], cwd=REPO_ROOT, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


class Server:
    """The baseline under uvicorn's defaults (``workers`` None), or this tree's ``python -m serving.api``."""

    def __init__(self, state_dir: Path, pythonpath: list[Path], log_file: Path, workers: int | None = None) -> None:
        self.port = free_port()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in pythonpath),
               "CRYPTOLAKE_LOG_LEVEL": "WARNING", "CRYPTOLAKE_STATE_DIR": str(state_dir),
               "CRYPTOLAKE_CATALOG_NAME": "lake"}  # fmt: skip
        command = [sys.executable, "-c", SERVER, str(state_dir), str(self.port)]
        if workers is not None:
            command = [sys.executable, "-m", "serving.api", "--port", str(self.port), "--workers", str(workers)]
        self._log = log_file.open("w")
        self.proc = subprocess.Popen(
            command, env=env, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True, cwd=log_file.parent,  # not the repo: "" is on sys.path
        )  # fmt: skip
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{self.url}/health", timeout=5)
                return
            except requests.RequestException:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start: {log_file.read_text()[-2000:]}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def day_path(symbol: str = "BTCUSDT") -> str:
    end = DAY + timedelta(days=1)
    return f"/api/v1/bars/{symbol}?start={DAY:%Y-%m-%dT%H:%M:%SZ}&end={end:%Y-%m-%dT%H:%M:%SZ}"


GZIP = "Accept-Encoding: gzip"
VARIED_LUA = """
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", wrk.path .. "&limit=" .. (1440 + counter % 98000))
end
"""


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def run_wrk(
    url: str, connections: int, seconds: int, script: Path | None = None, headers: tuple[str, ...] = ()
) -> dict[str, Any]:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "2s", "--latency"]
    for header in headers:
        command += ["-H", header]
    if script is not None:
        command += ["-s", str(script)]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    latency = dict(re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+(?:us|ms|s|m))\s*$", out, re.MULTILINE))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps, "requests": total,
        **{f"p{k}": _ms(latency[k]) if k in latency else float("nan") for k in ("50", "75", "90", "99")},
        "timeouts": int(errors.group(4)) if errors else 0,
        "errors": (sum(int(errors.group(i)) for i in (1, 2, 3)) if errors else 0) + (int(non_2xx.group(1)) if non_2xx else 0),
    }  # fmt: skip


def one_request_ms(url: str, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        response = requests.get(url, timeout=120)
        response.raise_for_status()
        times.append((time.perf_counter() - started) * 1000)
    return sorted(times)[len(times) // 2]


def freshness(server: Server, settings: Any, runs: int) -> list[float]:
    from cryptolake.lakehouse.catalog import get_catalog
    from cryptolake.tables import GOLD_OHLCV_1M
    from cryptolake_dagster_tests.serving.conftest import GOLD_1M_SCHEMA, gold_bar

    table = get_catalog(settings).load_table(GOLD_OHLCV_1M)
    seen: list[float] = []
    for run in range(runs):
        day = DAY + timedelta(days=1 + run)
        path = f"/api/v1/bars/BTCUSDT?start={day:%Y-%m-%dT%H:%M:%SZ}&end={day + timedelta(days=1):%Y-%m-%dT%H:%M:%SZ}"
        assert requests.get(server.url + path, timeout=30).json()["count"] == 0
        rows = [gold_bar(minute_bar("BTCUSDT", day + timedelta(minutes=i), i), "open_time") for i in range(5)]
        table.append(pa.Table.from_pylist(rows, schema=GOLD_1M_SCHEMA))
        committed = time.monotonic()
        while requests.get(server.url + path, timeout=30).json()["count"] != 5:
            if time.monotonic() - committed > 60:
                raise RuntimeError("new bars not visible after 60 s")
            time.sleep(0.05)
        seen.append(time.monotonic() - committed)
        time.sleep(1.5)
    return seen


# --- report --------------------------------------------------------------------------------------------------------


def render(args: argparse.Namespace, rows: list[dict[str, Any]], fresh: list[float], load: tuple[str, str]) -> str:
    lines = [
        f"## {SECTION_TITLE}", "",
        f"`.venv/bin/python benchmarks/api_benchmark.py` ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC; the script "
        "rewrites this section). One UTC day of 1-minute bars for "
        f"{args.symbols} symbols ({args.symbols * 1440:,} rows); `GET /api/v1/bars/BTCUSDT` for the day (1,440 bars, "
        f"~0.9 MB of JSON) with `wrk -t2 -c{args.connections} -d{args.seconds}s --timeout 2s` on the same 2 cores as "
        f"the server (the baseline in one uvicorn process; this tree with 1 and with 2 worker processes, "
        f"`CRYPTOLAKE_API_WORKERS`); load average {load[0]} before, {load[1]} after. *Baseline*: "
        f"`serving/` of `{args.baseline_ref}` (re-plans a pyiceberg scan of silver.ohlcv_1m per request). *Same*: "
        "one URL; *same, gzip*: that URL from clients sending `Accept-Encoding: gzip` (browsers, requests, httpx and "
        "pandas do; the answer is compressed once per cache entry); *varied*: every request a different URL (no "
        "shared response cache entry; each answer is cut from the cached day and encoded).", "",
        "| Implementation | Commits | Requests | one request (ms) | req/s | p50 (ms) | p90 (ms) | p99 (ms) | "
        "time-outs | errors | Target met? |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]  # fmt: skip
    for r in rows:
        met = "yes" if r["p99"] <= TARGET_P99_MS and r["rps"] >= TARGET_RPS and not r["timeouts"] else "no"
        # wrk's percentiles cover the answered requests only; none answered within 2 s: no percentile
        answered = r["requests"] > r["timeouts"] and r["p99"] == r["p99"]

        def pct(key: str, r: dict[str, Any] = r, answered: bool = answered) -> str:
            return f"{r[key]:.1f}" if answered else "> 2000"

        lines.append(
            f"| {r['impl']} | {r['commits']} | {r['mode']} | {r['one_ms']:.1f} | {r['rps']:,.0f} | {pct('p50')} | "
            f"{pct('p90')} | {pct('p99')} | {r['timeouts']} | {r['errors']} | {met} |"
        )
    if fresh:
        lines += ["", f"New data visible after its commit (this tree, {max(args.commits)}-commit lake, "
                  f"{len(fresh)} commits): {', '.join(f'{s:.2f}' for s in fresh)} s (target ≤ "
                  f"{TARGET_FRESHNESS_S:.0f} s: {'met' if max(fresh) <= TARGET_FRESHNESS_S else 'not met'}); the "
                  "API checks a table's snapshot at most every `CRYPTOLAKE_API_SNAPSHOT_POLL_S` (1 s)."]  # fmt: skip
    for r in rows:
        if r["requests"] == 0:
            lines.append(f"\n{r['impl']}, {r['commits']} commits: no request was answered during the "
                         f"{args.seconds} s run (one request alone took {r['one_ms'] / 1000:.1f} s).")  # fmt: skip
    lines += ["", "* Target: p99 ≤ 50 ms and ≥ 500 requests/s with 50 concurrent clients, after 1 and after 288 "
              "commits; the wrk client shares the 2 cores with the server. With 50 clients, a p99 of 50 ms needs well over "
              "1,000 requests/s (Little's law: 50 / 1,000 = 50 ms on average), hence one worker per core. The target is "
              "the *same* rows (one symbol's day); *varied* shows the cost of an answer not cached yet (each one "
              "cut from the cached day and encoded, about 5 ms of CPU)."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is missing: apt-get install -y wrk", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="cryptolake-api-bench-"))
    load_before = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT"][: args.symbols]
    script = work / "varied.lua"
    script.write_text(VARIED_LUA)
    baseline = None if args.no_baseline else baseline_tree(args.baseline_ref, work / "baseline")
    rows: list[dict[str, Any]] = []
    fresh: list[float] = []
    try:
        for commits in args.commits:
            log(f"building a lake of {len(symbols)} symbols x 1,440 bars in {commits} commit(s)")
            settings = build_lake(work / f"lake-{commits}" / "state", symbols, commits)
            impls: list[tuple[str, list[Path], int | None]] = [
                (f"this tree, {n} worker{'s' if n > 1 else ''}", [REPO_ROOT], n) for n in args.workers
            ]
            if baseline is not None:
                impls.insert(0, (f"baseline ({args.baseline_ref})", [baseline, REPO_ROOT], None))
            for name, path, workers in impls:
                ours = workers is not None
                server = Server(settings.state_dir, path, work / f"{name[:4]}-{workers}-{commits}.log", workers)
                try:
                    url = server.url + day_path() + "&limit=5000"
                    body = requests.get(url, timeout=120).json()
                    assert body["count"] == 1440, body.get("count")
                    assert ("served_from" in body) == ours, f"{name} runs the wrong serving/"
                    one = one_request_ms(url)
                    modes: list[tuple[str, Path | None, tuple[str, ...]]] = [("same", None, ())]
                    if ours:
                        modes += [("same, gzip", None, (GZIP,)), ("varied", script, ())]
                    for mode, lua, headers in modes:
                        log(f"{name}, {commits} commits, {mode}: wrk {args.seconds}s")
                        target = url if lua is None else server.url + day_path()
                        result = run_wrk(target, args.connections, args.seconds, lua, headers)
                        rows.append({"impl": name, "commits": commits, "mode": mode, "one_ms": one, **result})
                        log(f"  {result}")
                    if workers == args.workers[0] and commits == max(args.commits) and args.freshness_runs:
                        fresh = freshness(server, settings, args.freshness_runs)
                        log(f"freshness: {fresh}")
                finally:
                    server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_after = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    body = render(args, rows, fresh, (load_before, load_after))
    print(body)
    if not args.no_docs:
        write_section(args.docs, SECTION_TITLE, body)
        log(f"wrote section '{SECTION_TITLE}' of {args.docs}")
    ours = [r for r in rows if r["impl"].startswith("this tree")]
    return 0 if all(r["p99"] <= TARGET_P99_MS and r["rps"] >= TARGET_RPS for r in ours) else 1


if __name__ == "__main__":
    raise SystemExit(main())
