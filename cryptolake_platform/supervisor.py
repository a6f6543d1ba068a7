"""``cryptolake run``: broker, simulator, producer, Bronze writer, Dagster, API and dashboard under one parent.

Each service is a child process in its own process group with PR_SET_PDEATHSIG: Ctrl-C / SIGTERM stops the
children in reverse start order (SIGTERM to the group, then SIGKILL), and if the supervisor itself is killed the
kernel signals the children. Their own descendants (``dagster dev``'s code and gRPC servers) are covered by the
watchdog of :mod:`cryptolake.reaper`: everything started carries the run's marker, and whatever still carries it
once the supervisor is gone is killed, so nothing outlives the platform. Services that exit unexpectedly are restarted
with backoff; their output goes to ``<state>/logs/<service>.log``.

The local broker keeps its log in memory: when it dies it is started again on the same port (a new incarnation, with
its own cluster id, and the platform's topics created again). The producer and the Bronze writer notice the new
incarnation and recover on their own: the writer reads it from its beginning, the producer publishes again, over
REST, everything after what Bronze holds, and the writer drops what Bronze already has.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptolake.broker import BrokerError, LocalBroker, ensure_topics, platform_topics, wait_until_ready
from cryptolake.lakehouse.bootstrap import bootstrap_lakehouse
from cryptolake.logging import get_logger
from cryptolake.processes import die_with_parent, stop_process
from cryptolake.reaper import MARKER, new_run_id, start_watchdog, sweep
from cryptolake.settings import REPO_ROOT, Settings
from cryptolake_dagster.instance import prepare_dagster_home

log = get_logger(__name__)
MAX_RESTARTS = 5


@dataclass
class Service:
    name: str
    argv: list[str]
    port: int | None = None
    restarts: int = 0
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    env: dict[str, str] = field(default_factory=dict)


class PortInUseError(RuntimeError):
    pass


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Supervisor:
    def __init__(self, settings: Settings, *, live: bool = False, commit_interval_s: float = 10.0) -> None:
        self.settings = settings
        self.live = live
        self.commit_interval_s = commit_interval_s
        self.logs = settings.state_dir.resolve() / "logs"
        self.broker: LocalBroker | None = None
        self.services: list[Service] = []
        self.run_id: str | None = None
        self.watchdog: subprocess.Popen | None = None
        self._stopping = False
        self.broker_restarts = 0

    # --- plan -----------------------------------------------------------------------------------------------
    def plan(self) -> list[Service]:
        s, py = self.settings, sys.executable
        services = []
        if not self.live and not s.binance_ws_url:
            services.append(
                Service(
                    "simulator",
                    [py, "-m", "simulators.binance", "--port", str(s.simulator_port), "--mode", "synthetic",
                     "--symbols", ",".join(s.symbols), "--rate", str(s.simulator_rate),
                     "--seed", str(s.simulator_seed if s.simulator_seed is not None else int(time.time()))],
                    port=s.simulator_port,
                )
            )  # fmt: skip
        if not self.live and not (s.coingecko_base_url and s.fear_greed_base_url):
            services.append(
                Service(
                    "batch-sources",
                    [py, "-m", "simulators.batch_apis", "--port", str(s.batch_sources_port)],
                    port=s.batch_sources_port,
                )
            )
        # Against the simulator (a new market each run) a checkpoint from an earlier run means nothing.
        producer = [py, "-m", "streaming.producer"] + (["--live"] if self.live else ["--no-checkpoint"])
        if s.spark_host:  # one long-lived Spark driver the Dagster runs attach to (cryptolake.lakehouse.spark_host)
            services.append(Service("spark-host", [py, "-m", "cryptolake.lakehouse.spark_host"]))
        services += [
            Service("producer", producer),
            Service(
                "bronze-writer",
                [py, "-m", "streaming.bronze_writer", "--commit-interval", str(self.commit_interval_s)],
            ),
            Service(
                "dagster",
                [str(Path(py).parent / "dagster"), "dev", "-w", str(REPO_ROOT / "workspace.yaml"), "-h", "127.0.0.1",
                 "-p", str(s.dagster_port)],
                port=s.dagster_port,
                env={"DAGSTER_HOME": str(s.dagster_home)},
            ),
            Service("api", [py, "-m", "serving.api", "--host", s.api_host, "--port", str(s.api_port)], port=s.api_port),
            Service(
                "dashboard",
                [py, "-m", "streamlit", "run", str(REPO_ROOT / "serving" / "dashboard" / "app.py"),
                 "--server.port", str(s.dashboard_port), "--server.headless", "true",
                 "--browser.gatherUsageStats", "false"],
                port=s.dashboard_port,
            ),
        ]  # fmt: skip
        return services

    # --- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> None:
        s = self.settings
        self.logs.mkdir(parents=True, exist_ok=True)
        self.services = self.plan()
        busy = [f"{svc.name} port {svc.port}" for svc in self.services if svc.port and not _port_free(svc.port)]
        if not s.kafka_bootstrap_servers and not _port_free(s.local_broker_port):
            busy.append(f"broker port {s.local_broker_port}")
        if busy:
            raise PortInUseError(
                f"ports already in use: {', '.join(busy)}. Stop the process holding them or choose other ports "
                "(CRYPTOLAKE_API_PORT, CRYPTOLAKE_DASHBOARD_PORT, CRYPTOLAKE_DAGSTER_PORT, CRYPTOLAKE_SIMULATOR_PORT, "
                "CRYPTOLAKE_LOCAL_BROKER_PORT)"
            )
        # Before anything is started: the watchdog (unmarked, its own session), then the marker every process
        # started from here on inherits (the broker's JVM included).
        self.run_id = new_run_id()
        self.watchdog = start_watchdog(self.run_id, log_file=self.logs / "reaper.log")
        os.environ[MARKER] = self.run_id
        log.info("platform run", run_id=self.run_id, watchdog_pid=self.watchdog.pid)
        bootstrap = s.kafka_bootstrap_servers
        if not bootstrap:
            self.broker = LocalBroker(s.local_broker_port, log_file=self.logs / "broker.log").start()
            bootstrap = self.broker.bootstrap_servers
        else:
            wait_until_ready(bootstrap)
        ensure_topics(bootstrap, platform_topics(s), s.kafka_replication_factor)
        bootstrap_lakehouse(s)
        prepare_dagster_home(s)
        self._env = {
            **os.environ,
            "CRYPTOLAKE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "CRYPTOLAKE_STATE_DIR": str(s.state_dir.resolve()),
            "PYTHONUNBUFFERED": "1",
        }
        if self.live:
            self._env["CRYPTOLAKE_LIVE"] = "true"
        for service in self.services:
            self._spawn(service)

    def _spawn(self, service: Service) -> None:
        out = open(self.logs / f"{service.name}.log", "ab")
        service.proc = subprocess.Popen(
            service.argv,
            cwd=REPO_ROOT,
            env={**self._env, **service.env},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
        out.close()
        service.started_at = time.monotonic()
        log.info(
            "service started", service=service.name, pid=service.proc.pid, log=str(self.logs / f"{service.name}.log")
        )

    def urls(self) -> dict[str, str]:
        s = self.settings
        return {
            "Dashboard": f"http://127.0.0.1:{s.dashboard_port}",
            "Dagster UI": f"http://127.0.0.1:{s.dagster_port}",
            "API": f"{s.resolved_api_url}/docs",
            "Logs": str(self.logs),
        }

    def watch(self, poll_s: float = 2.0) -> None:
        """Restart services that exit unexpectedly, with backoff, until stop()."""
        while not self._stopping:
            time.sleep(poll_s)
            if self.broker is not None and not self.broker.alive and not self._stopping:
                self.restart_broker()
            for service in self.services:
                if self._stopping or service.proc is None or service.proc.poll() is None:
                    continue
                code = service.proc.returncode
                if service.restarts >= MAX_RESTARTS:
                    log.error("service keeps failing; giving up on it", service=service.name, exit_code=code)
                    service.proc = None
                    continue
                service.restarts += 1
                delay = min(30, 2**service.restarts)
                log.warning(
                    "service exited; restarting",
                    service=service.name,
                    exit_code=code,
                    restart=service.restarts,
                    in_s=delay,
                    log=str(self.logs / f"{service.name}.log"),
                )
                time.sleep(delay)
                self._spawn(service)

    def restart_broker(self) -> None:
        """Start the local broker again on its port, after it died (its in-memory log is gone), and its topics."""
        assert self.broker is not None
        if self.broker_restarts >= MAX_RESTARTS:
            raise BrokerError(
                f"the local broker died {self.broker_restarts + 1} times (see {self.logs / 'broker.log'}); stopping "
                "the platform. Check the log for the cause (memory, a port taken) and run `cryptolake run` again"
            )
        self.broker_restarts += 1
        log.warning(
            "the local broker died; starting it again (its log is lost: the producer republishes what Bronze lacks)",
            restart=self.broker_restarts, port=self.broker.port, log=str(self.logs / "broker.log"),
        )  # fmt: skip
        self.broker.stop()
        self.broker = LocalBroker(self.broker.port, log_file=self.logs / "broker.log").start()
        ensure_topics(
            self.broker.bootstrap_servers, platform_topics(self.settings), self.settings.kafka_replication_factor
        )

    def stop(self) -> None:
        self._stopping = True
        for service in reversed(self.services):
            if service.proc is not None and service.proc.poll() is None:
                code = stop_process(service.proc, timeout=20, group=True)
                log.info("service stopped", service=service.name, exit_code=code)
        if self.broker is not None:
            self.broker.stop()
            log.info("local broker stopped")
        if self.run_id is not None:
            left = sweep(self.run_id, grace_s=10.0, exclude=[os.getpid()])
            if left:
                log.warning("stopped processes the services left behind", pids=left)
        if self.watchdog is not None and self.watchdog.stdin is not None:
            self.watchdog.stdin.close()  # the watchdog finds nothing left and exits
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.watchdog.wait(timeout=30)


def run_platform(settings: Settings, *, live: bool, commit_interval_s: float) -> int:
    supervisor = Supervisor(settings, live=live, commit_interval_s=commit_interval_s)
    code = 0

    def _terminate(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # Explicit handlers: a shell may start us with SIGINT ignored (e.g. as a background job).
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    try:
        supervisor.start()
        width = max(len(k) for k in supervisor.urls())
        print("\nCryptoLake is starting (first bars appear within a few minutes):", flush=True)
        for name, url in supervisor.urls().items():
            print(f"  {name:<{width}}  {url}", flush=True)
        print("Press Ctrl-C to stop everything.\n", flush=True)
        supervisor.watch()
    except KeyboardInterrupt:
        log.info("stopping CryptoLake")
    except BrokerError as exc:
        log.error(str(exc))
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        supervisor.stop()
    return code
