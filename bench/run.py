"""
Run the xmeet benchmarks: every scenario against every server, interleaved.

    python bench/run.py [--quick] [--scenario NAME ...] [--server NAME ...]

Each run starts one server fresh on its own 127.0.0.1 port, drives it from a
separate Node process (bench/gen.js), samples the server's CPU and RSS from
/proc at the generator's marks, prints one JSON line, and kills both process
groups whatever happened. Servers take turns within each repetition (A B C D,
A B C D, ...) so that a drift of the machine hits them all alike. The end is
a table of medians with each server's ratio to xmeet.

bench/README.rst says what each scenario measures and what to install first.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PEERS = BENCH / "peers"
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") / 1024
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
RUN_DEADLINE_S = 240.0

# The server and the generator each get one of the two cores, so neither
# steals the other's CPU and every server sees the same conditions.
SERVER_CPU = 1
GENERATOR_CPU = 0


@dataclass(frozen=True)
class Server:
    """
    A server under test: how to start it on a port and which protocol the
    generator speaks to it.
    """

    name: str
    proto: str
    argv: Callable[[int, str], list[str]]
    available: Callable[[], str | None] = lambda: None
    nodes: int = 1
    redis: bool = False


def twistd_argv(port: int) -> list[str]:
    """
    C{twistd -n xmeet} on 127.0.0.1:C{port} with default options, run from
    the working directory's tree rather than an installed xmeet.
    """
    return [
        sys.executable,
        "-c",
        "from twisted.scripts.twistd import run; run()",
        "-n",
        "--pidfile=",
        "xmeet",
        "--port",
        f"tcp:{port}:interface=127.0.0.1",
    ]


def _xmeet_argv(port: int, tag: str) -> list[str]:
    # The rate limit is raised so it never caps a benchmark.
    return [
        *twistd_argv(port),
        "--rate",
        "100000",
        "--burst",
        "100000",
    ]


def _xmeet_cluster_available() -> str | None:
    """
    The cluster variant needs redis-server.
    """
    if shutil.which("redis-server") is None:
        return "no redis-server (apt-get install redis-server)"
    return None


def _start_redis(log: TextIO) -> tuple[subprocess.Popen[bytes], str]:
    """
    A Redis of the run's own, on a free port, keeping nothing on disk, on
    the generator's core: the server's core is the nodes', and Redis runs
    apart as it would on a machine of its own (its CPU is reported as
    C{redis_cpu_pct}). Nothing of it outlives the run.
    """
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    redis = subprocess.Popen(
        _pinned(GENERATOR_CPU, [*argv, "--appendonly", "no"]),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    wait_listening(port, redis)
    return redis, f"redis://127.0.0.1:{port}/0"


def _xmeet_sio_available() -> str | None:
    """
    xmeet's Socket.IO joins the matrix as soon as it handles xnest/join.
    """
    for path in (REPO / "xmeet").rglob("*.py"):
        if "xnest/join" in path.read_text(encoding="utf-8"):
            return None
    return "xmeet has no Socket.IO xnest/join handler yet (grep -rn xnest/join xmeet/)"


def _module_available(*modules: str) -> Callable[[], str | None]:
    def check() -> str | None:
        import importlib.util

        missing = [name for name in modules if importlib.util.find_spec(name) is None]
        return (
            f"missing Python packages {missing}: pip install -r bench/requirements.txt"
            if (missing)
            else None
        )

    return check


def _node_modules_available() -> str | None:
    if not (BENCH / "node_modules" / "socket.io").is_dir():
        return "missing Node packages: (cd bench && npm ci)"
    return None


SERVERS = {
    server.name: server
    for server in (
        Server("xmeet", "xgate", _xmeet_argv),
        Server(
            "autobahn",
            "xgate",
            lambda port, tag: [sys.executable, str(PEERS / "autobahn_room.py"), str(port)],
        ),
        Server("xmeet-cluster", "xgate", _xmeet_argv, _xmeet_cluster_available, 2, redis=True),
        Server("xmeet-sio", "sio", _xmeet_argv, _xmeet_sio_available),
        Server(
            "psio",
            "sio",
            lambda port, tag: [sys.executable, str(PEERS / "psio_room.py"), str(port)],
            _module_available("socketio", "uvicorn", "uvloop", "httptools"),
        ),
        Server(
            "node-sio",
            "sio",
            lambda port, tag: ["node", str(PEERS / "node_sio_room.js"), str(port)],
            _node_modules_available,
        ),
    )
}


@dataclass(frozen=True)
class Scenario:
    """
    A workload: the generator's C{kind}, its parameters for the full and
    the quick run, and the figures the final table shows.
    """

    name: str
    kind: str
    full: dict[str, Any]
    quick: dict[str, Any]
    columns: tuple[str, ...]
    protos: tuple[str, ...] = ("xgate", "sio")

    @property
    def ratio_on(self) -> str:
        """
        The figure each server is compared to xmeet on: the first column.
        """
        return self.columns[0]


_FANOUT_COLUMNS = (
    "deliveries_per_s",
    "deliveries_per_cpu_s",
    "delivery_ratio",
    "latency_ms_p50",
    "latency_ms_p99",
    "server_cpu_pct",
    "gen_cpu_pct",
    "redis_cpu_pct",
    "other_cpu_pct",
    "server_rss_mb",
)
_QUICK_TIMES = {"settle_ms": 300, "warmup_ms": 300, "measure_ms": 1500}
_FULL_TIMES = {"settle_ms": 500, "warmup_ms": 1000, "measure_ms": 4000}
_POLLING = {"rooms": 1, "senders": 10, "payload_bytes": 64, "transport": "polling"}
_SLOW = {"rooms": 1, "members": 100, "senders": 10, "payload_bytes": 2048, "stalled": 1}

SCENARIOS = {
    scenario.name: scenario
    for scenario in (
        Scenario(
            "hold",
            "hold",
            {"connections": 10000, "room_size": 10, "settle_ms": 500, "hold_ms": 500},
            {"connections": 1000, "room_size": 10, "settle_ms": 500, "hold_ms": 500},
            (
                "rss_per_conn_kib",
                "connected",
                "failures",
                "connects_per_s",
                "server_rss_mb",
                "server_cpu_pct",
                "gen_cpu_pct",
                "other_cpu_pct",
            ),
        ),
        Scenario(
            "fanout-1x1000",
            "fanout",
            {"rooms": 1, "members": 1000, "senders": 10, "payload_bytes": 64, **_FULL_TIMES},
            {"rooms": 1, "members": 1000, "senders": 10, "payload_bytes": 64, **_QUICK_TIMES},
            _FANOUT_COLUMNS,
        ),
        Scenario(
            "fanout-100x10",
            "fanout",
            {"rooms": 100, "members": 10, "senders": 100, "payload_bytes": 64, **_FULL_TIMES},
            {"rooms": 100, "members": 10, "senders": 100, "payload_bytes": 64, **_QUICK_TIMES},
            _FANOUT_COLUMNS,
        ),
        Scenario(
            "churn",
            "churn",
            {"concurrency": 50, "warmup_ms": 1000, "measure_ms": 4000},
            {"concurrency": 50, "warmup_ms": 500, "measure_ms": 2000},
            (
                "sessions_per_s",
                "session_ms_p50",
                "session_ms_p99",
                "failures",
                "server_cpu_pct",
                "other_cpu_pct",
            ),
        ),
        Scenario(
            "slow",
            "fanout",
            {
                **_SLOW,
                "settle_ms": 500,
                "warmup_ms": 1000,
                "measure_ms": 16000,
                "stall_after_ms": 4000,
            },
            {**_SLOW, **_QUICK_TIMES, "measure_ms": 4000, "stall_after_ms": 1500},
            (
                "after_over_before",
                "others_per_s_before_stall",
                "others_per_s_after_stall",
                "rss_at_stall_mb",
                "rss_growth_after_stall_mb",
                "stalled_dropped_by_server",
                "other_cpu_pct",
            ),
        ),
        Scenario(
            "polling",
            "fanout",
            {**_POLLING, "members": 100, **_FULL_TIMES},
            {**_POLLING, "members": 50, **_QUICK_TIMES},
            _FANOUT_COLUMNS,
            protos=("sio",),
        ),
    )
}


def raise_fd_limit() -> int:
    """
    10,000 held connections need more than the usual 1024 descriptors, in
    the generator and in the server; children inherit the raised limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    """
    A port nobody listens on now, on 127.0.0.1.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """
    Return once C{port} accepts connections; fail if the server died or
    took longer than C{timeout}.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port} within {timeout}s")


def rss_mb(pids: list[int]) -> float:
    """
    Resident memory of the processes C{pids} together, in MiB, from /proc.
    """
    pages = 0
    for pid in pids:
        with open(f"/proc/{pid}/statm") as statm:
            pages += int(statm.read().split()[1])
    return pages * PAGE_KIB / 1024


def cpu_seconds(pid: int) -> float:
    """
    User plus system CPU of the process C{pid} (all its threads), from
    /proc.
    """
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def context_switches(pids: list[int]) -> tuple[int, int]:
    """
    How many times the processes C{pids} left the CPU to wait, and how
    many times they were preempted, together, from /proc/PID/status.
    """
    waits = preempted = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("voluntary_ctxt_switches:"):
                    waits += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches:"):
                    preempted += int(line.split()[1])
    return waits, preempted


def read_calls(pid: int) -> int:
    """
    How many read system calls the process C{pid} has made, from
    /proc/PID/io (C{syscr}).
    """
    with open(f"/proc/{pid}/io") as io_counts:
        for line in io_counts:
            if line.startswith("syscr:"):
                return int(line.split()[1])
    return 0


def machine_busy_seconds() -> float:
    """
    CPU time all cores spent busy since boot, from /proc/stat: what else
    ran on the machine during a run is this minus the server and the
    generator.
    """
    with open("/proc/stat") as stat:
        ticks = [int(value) for value in stat.readline().split()[1:]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks[:8]) - idle) / CLOCK_TICKS


def _pinned(cpu: int, argv: list[str]) -> list[str]:
    if shutil.which("taskset") and os.cpu_count() and os.cpu_count() > cpu:  # type: ignore[operator]
        return ["taskset", "-c", str(cpu), *argv]
    return argv


def _kill_group(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()


@dataclass
class Sample:
    """
    The server and generator counters at one generator mark.
    """

    at: float
    node_cpu: tuple[float, ...]
    gen_cpu: float
    server_rss: float
    machine_busy: float
    gen_reads: int
    redis_cpu: float
    server_switches: tuple[int, int]

    @property
    def server_cpu(self) -> float:
        """
        The CPU seconds of the server's processes (a cluster's nodes)
        together.
        """
        return sum(self.node_cpu)


@dataclass
class RssSampler:
    """
    Samples the server's RSS every half second in a thread: the slow
    consumer scenario needs memory over time, not only at the marks.
    """

    pids: list[int]
    series: list[tuple[float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        """
        Sample until L{stop}, or until the server is gone.
        """
        while not self._stop.wait(0.5):
            try:
                self.series.append((time.monotonic(), rss_mb(self.pids)))
            except OSError:
                return

    def stop(self) -> None:
        """
        End the sampling thread's loop.
        """
        self._stop.set()


def run_once(
    server: Server,
    scenario: Scenario,
    params: dict[str, Any],
    log: TextIO,
    xmeet_root: Path = REPO,
    profile_dir: Path | None = None,
) -> dict[str, Any]:
    """
    One server (one or more nodes), one scenario, fresh processes; always
    kills them all. CPU and RSS of a multi-node server are the nodes' sums.

    @param xmeet_root: the directory the servers run in; C{python -c}
        imports xmeet (and twistd finds its plugin) from there.
    """
    ports = [free_port() for _ in range(server.nodes)]
    tag = f"xmeet-bench-{ports[0]}:"
    config = {"kind": scenario.kind, "proto": server.proto, "ports": ports, **params}
    config.setdefault("connect_concurrency", 200)
    nodes: list[subprocess.Popen[bytes]] = []
    redis: subprocess.Popen[bytes] | None = None
    generator: subprocess.Popen[str] | None = None
    profiler: subprocess.Popen[bytes] | None = None
    python_server = server.argv(ports[0], tag)[0] == sys.executable
    profile_to = (
        profile_dir / f"{scenario.name}-{server.name}.txt"
        if profile_dir is not None and python_server
        else None
    )
    sampler = RssSampler([])
    try:
        cluster: list[str] = []
        if server.redis:
            # One Redis per run and one key prefix: no run sees another's rooms.
            redis, redis_url = _start_redis(log)
            cluster = ["--redis", redis_url, "--redis-prefix", tag]
        for port in ports:
            nodes.append(
                subprocess.Popen(
                    _pinned(SERVER_CPU, [*server.argv(port, tag), *cluster]),
                    cwd=xmeet_root,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
            )
        pids = [node.pid for node in nodes]
        for port, node in zip(ports, nodes, strict=True):
            wait_listening(port, node)
        time.sleep(0.3)
        base_rss = rss_mb(pids)
        generator = subprocess.Popen(
            _pinned(GENERATOR_CPU, ["node", str(BENCH / "gen.js"), json.dumps(config)]),
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,
        )
        watchdog = threading.Timer(RUN_DEADLINE_S, _kill_group, (generator,))
        watchdog.start()
        sampler.pids = pids
        threading.Thread(target=sampler.run, daemon=True).start()
        marks: dict[str, Sample] = {}
        result: dict[str, Any] = {"error": "generator ended without a result"}
        assert generator.stdout is not None and generator.stdin is not None
        try:
            for line in generator.stdout:
                if line.startswith("MARK "):
                    marks[line[5:].strip()] = Sample(
                        time.monotonic(),
                        tuple(cpu_seconds(pid) for pid in pids),
                        cpu_seconds(generator.pid),
                        rss_mb(pids),
                        machine_busy_seconds(),
                        read_calls(generator.pid),
                        cpu_seconds(redis.pid) if redis is not None else 0.0,
                        context_switches(pids),
                    )
                    if profile_to is not None and line.strip() == "MARK measure_start":
                        profiler = _start_profiler(pids[0], profile_to, params)
                    generator.stdin.write("ok\n")
                    generator.stdin.flush()
                elif line.startswith("RESULT "):
                    result = json.loads(line[7:])
                    break
        finally:
            watchdog.cancel()
        for node in nodes:
            if node.poll() is not None:
                result.setdefault("error", f"server exited with {node.returncode}")
        return {**result, **_server_figures(result, base_rss, marks, sampler.series)}
    finally:
        sampler.stop()
        if profiler is not None:
            profiler.wait(timeout=60)
        if generator is not None:
            _kill_group(generator)
        for node in nodes:
            _kill_group(node)
        if redis is not None:
            _kill_group(redis)


def _start_profiler(pid: int, output: Path, params: dict[str, Any]) -> subprocess.Popen[bytes]:
    """
    Sample the server's Python stacks with py-spy over the measured window:
    collapsed stacks, to sum by function (bench/profile_summary.py) or to
    feed any flame graph tool.
    Profiled runs are slowed by the sampling; their figures are not for
    the table.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    seconds = max(1, int(params.get("measure_ms", 3000) / 1000))
    return subprocess.Popen(
        [
            "py-spy",
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(seconds),
            "--rate",
            "200",
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _server_figures(
    result: dict[str, Any],
    base_rss: float,
    marks: dict[str, Sample],
    series: list[tuple[float, float]],
) -> dict[str, Any]:
    figures: dict[str, Any] = {"server_rss_base_mb": round(base_rss, 1)}
    start, end = marks.get("measure_start"), marks.get("measure_end")
    if start is None or end is None:
        return figures
    wall = end.at - start.at
    figures["server_cpu_pct"] = round(100 * (end.server_cpu - start.server_cpu) / wall, 1)
    figures["gen_cpu_pct"] = round(100 * (end.gen_cpu - start.gen_cpu) / wall, 1)
    # Other engineers' tests share this machine: say how much they took.
    others = (end.machine_busy - start.machine_busy) - (end.server_cpu - start.server_cpu)
    others -= end.gen_cpu - start.gen_cpu
    redis = end.redis_cpu - start.redis_cpu
    if redis:
        figures["redis_cpu_pct"] = round(100 * redis / wall, 1)
    figures["other_cpu_pct"] = round(max(0.0, 100 * (others - redis) / wall), 1)
    # A cluster's nodes share one core: how they split it, and how often
    # they hand it to each other.
    if len(end.node_cpu) > 1:
        figures["node_cpu_pct"] = [
            round(100 * (after - before) / wall, 1)
            for before, after in zip(start.node_cpu, end.node_cpu, strict=True)
        ]
    waits, preempted = (
        b - a for a, b in zip(start.server_switches, end.server_switches, strict=True)
    )
    figures["server_waits_per_s"] = round(waits / wall)
    figures["server_preempted_per_s"] = round(preempted / wall)
    figures["server_rss_mb"] = round(end.server_rss, 1)
    figures["rss_growth_mb"] = round(end.server_rss - start.server_rss, 1)
    window = [rss for at, rss in series if start.at <= at <= end.at]
    figures["server_rss_peak_mb"] = round(max([*window, end.server_rss]), 1)
    figures["server_rss_series_mb"] = [round(rss, 1) for rss in window[::2]]
    # Deliveries per second of server CPU: the server's efficiency, which
    # the other load on this shared machine disturbs far less than the rate.
    cpu = end.server_cpu - start.server_cpu
    if result.get("deliveries") and cpu > 0:
        figures["deliveries_per_cpu_s"] = round(result["deliveries"] / cpu)
    # The same for the generator: while it is above the server's figure, the
    # generator spends less per delivery than the server and is not what
    # limits the rate, however the rest of the machine loads either core.
    gen_cpu = end.gen_cpu - start.gen_cpu
    if result.get("deliveries") and gen_cpu > 0:
        figures["gen_deliveries_per_cpu_s"] = round(result["deliveries"] / gen_cpu)
    # Below 1 when the server packs several frames into one segment; 1 when
    # every delivery costs the generator a read of its own.
    if result.get("deliveries"):
        reads = end.gen_reads - start.gen_reads
        figures["gen_reads_per_delivery"] = round(reads / result["deliveries"], 3)
    stall = marks.get("stall")
    if stall is not None:
        figures["rss_at_stall_mb"] = round(stall.server_rss, 1)
        figures["rss_growth_after_stall_mb"] = round(end.server_rss - stall.server_rss, 1)
        figures["server_cpu_pct_before_stall"] = round(
            100 * (stall.server_cpu - start.server_cpu) / (stall.at - start.at), 1
        )
        figures["server_cpu_pct_after_stall"] = round(
            100 * (end.server_cpu - stall.server_cpu) / (end.at - stall.at), 1
        )
    held = marks.get("held")
    if held is not None:
        figures["held_rss_mb"] = round(held.server_rss, 1)
    return figures


def _finish_hold(result: dict[str, Any]) -> None:
    connected = result.get("connected") or 0
    if connected and "held_rss_mb" in result:
        per_conn = (result["held_rss_mb"] - result["server_rss_base_mb"]) * 1024 / connected
        result["rss_per_conn_kib"] = round(per_conn, 1)


def table(results: list[dict[str, Any]], scenarios: list[Scenario], servers: list[Server]) -> str:
    """
    Medians per scenario and server, and each server's ratio to xmeet (and
    to xmeet's Socket.IO when it ran) on the scenario's first column.
    """
    lines = []
    for scenario in scenarios:
        header = ["server", "runs", *scenario.columns, "ratio"]
        rows: list[list[Any]] = [header]
        medians: dict[str, dict[str, float | None]] = {}
        for server in servers:
            runs = [
                r for r in results if r["scenario"] == scenario.name and r["server"] == server.name
            ]
            if not runs:
                continue
            medians[server.name] = {
                column: _median([run.get(column) for run in runs]) for column in scenario.columns
            }
            ok = sum(1 for run in runs if "error" not in run)
            rows.append([server.name, f"{ok}/{len(runs)}", *medians[server.name].values()])
        first = scenario.ratio_on
        # Socket.IO-only scenarios compare to xmeet's Socket.IO.
        references = [name for name in ("xmeet", "xmeet-sio") if name in medians]
        header.pop()
        header.extend(f"ratio_to_{name}" for name in references)
        for row in rows[1:]:
            value = medians[row[0]][first]
            for name in references:
                reference = medians[name][first]
                row.append(round(value / reference, 2) if value is not None and reference else None)
        widths = [max(len(_cell(row[i])) for row in rows) for i in range(len(header))]
        lines.append(f"\n{scenario.name} (ratio on {first}; medians)")
        lines.extend(
            "  ".join(_cell(value).rjust(width) for value, width in zip(row, widths, strict=True))
            for row in rows
        )
    return "\n".join(lines)


def table_from(path: Path) -> str:
    """
    The table of a finished run, from the JSON lines it wrote with C{--out}.
    """
    results = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    results = [r for r in results if "scenario" in r and "server" in r]
    names = {r["scenario"] for r in results}
    servers = {r["server"] for r in results}
    return table(
        results,
        [scenario for name, scenario in SCENARIOS.items() if name in names],
        [server for name, server in SERVERS.items() if name in servers],
    )


def _median(values: list[Any]) -> float | None:
    numbers = [value for value in values if isinstance(value, int | float)]
    return round(statistics.median(numbers), 2) if numbers else None


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """
    The command line; every choice has a default that runs the whole matrix.
    """
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small, short runs (about 3 minutes)")
    parser.add_argument(
        "--scenario", action="append", choices=sorted(SCENARIOS), help="repeatable; default all"
    )
    parser.add_argument(
        "--server", action="append", choices=sorted(SERVERS), help="repeatable; default all"
    )
    parser.add_argument("--reps", type=int, help="repetitions (default 3, quick 1)")
    parser.add_argument(
        "--xmeet-rev",
        metavar="REV",
        help="run the committed xmeet of this git revision (e.g. HEAD) instead of "
        "the working tree, which others may be editing during the run",
    )
    parser.add_argument("--out", type=Path, help="also append the JSON lines to this file")
    parser.add_argument(
        "--table-from",
        type=Path,
        metavar="FILE",
        help="print the table of the JSON lines in FILE (from --out) and exit",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="py-spy the Python servers over each measured window into DIR "
        "(collapsed stacks); profiled figures are slowed, not comparable",
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """
    Run the matrix, print JSON lines as runs finish, then the table.
    """
    args = parse_args(argv)
    if args.table_from is not None:
        print(table_from(args.table_from))
        return 0
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGINT, _exit_on_signal)
    fd_limit = raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="xmeet-bench-tree-") as snapshot:
        if args.xmeet_rev:
            xmeet_root = export_tree(args.xmeet_rev, Path(snapshot))
            version = _git("rev-parse", "--short", args.xmeet_rev)
        else:
            xmeet_root = REPO
            dirty = _git("status", "--porcelain", "--", "xmeet", "twisted")
            version = _git("rev-parse", "--short", "HEAD") + ("+working-tree" if dirty else "")
        return _run_matrix(args, fd_limit, xmeet_root, version)


def _run_matrix(args: argparse.Namespace, fd_limit: int, xmeet_root: Path, version: str) -> int:
    scenarios = [SCENARIOS[name] for name in args.scenario or SCENARIOS]
    servers = []
    for name in args.server or SERVERS:
        reason = SERVERS[name].available()
        if reason is None:
            servers.append(SERVERS[name])
        else:
            _emit({"server": name, "skipped": reason}, args.out)
    reps = args.reps or (1 if args.quick else 3)
    mode = "quick" if args.quick else "full"
    log_path = Path(tempfile.gettempdir()) / f"xmeet-bench-servers-{os.getpid()}.log"
    results: list[dict[str, Any]] = []
    started = time.monotonic()
    with log_path.open("w") as log:
        for scenario in scenarios:
            params = scenario.quick if args.quick else scenario.full
            if scenario.kind == "hold" and params["connections"] * 1.1 > fd_limit:
                params = {**params, "connections": int(fd_limit / 1.1)}
            for rep in range(reps):
                for server in servers:
                    if server.proto not in scenario.protos:
                        continue
                    try:
                        result = run_once(server, scenario, params, log, xmeet_root, args.profile)
                    except Exception as error:  # noqa: BLE001 - one failed run must not stop the matrix
                        result = {"error": repr(error)}
                    result = {
                        "scenario": scenario.name,
                        "server": server.name,
                        "rep": rep,
                        "mode": mode,
                        "xmeet": version,
                        **result,
                    }
                    if scenario.kind == "hold":
                        _finish_hold(result)
                    results.append(result)
                    _emit(result, args.out)
    print(table(results, scenarios, servers))
    print(
        f"\n{mode} run of xmeet {version}, {reps} repetition(s), "
        f"{time.monotonic() - started:.0f}s; "
        f"nproc {os.cpu_count()}; server on CPU {SERVER_CPU}, generator on CPU {GENERATOR_CPU}; "
        f"server logs in {log_path}"
    )
    return 0


def _exit_on_signal(signum: int, frame: Any) -> None:
    # SystemExit unwinds through every finally, which kill the process
    # groups; a shell's background job would otherwise ignore SIGINT.
    raise SystemExit(128 + signum)


def _git(*arguments: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *arguments], check=True, capture_output=True, text=True
    ).stdout.strip()


def export_tree(rev: str, into: Path) -> Path:
    """
    The committed xmeet of C{rev} (its C{xmeet/} and C{twisted/plugins/}),
    unpacked into C{into}: a snapshot that other engineers' edits to the
    working tree cannot change in the middle of a run.
    """
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", rev, "xmeet", "twisted"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def _emit(record: dict[str, Any], out: Path | None) -> None:
    line = json.dumps(record)
    print(line, flush=True)
    if out is not None:
        with out.open("a") as file:
            file.write(line + "\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
