"""NATS bus benchmarks: predictions published on NATS, signals read back from it.
Run with `python -m bench.bus` (3 to 4 minutes; `--quick` for a short smoke run,
`--no-risk` to leave out the engine with a risk service: 2 to 3 minutes).

The run starts a private nats-server on a free loopback port, then three
subjects in turn, never together: the engine (`trading-engine serve` with the
NATS bus on, Kafka off, SQLite in a temporary folder), the same engine with
`--risk-service-address` of the reference risk service (engine_risk: the
bench starts `trading-engine risk-service` on a free loopback port before it
and stops it after it; rules only, no injected latency or failures; the
engine's defaults: a 50 ms deadline, the breaker open after 5 failures in a
row), and the null relay (`bench/null_relay.py`: decodes the envelope and the
batch with the protobuf runtime and publishes them again, no rules). This
process is the load generator: one nats-py connection publishes serialized
envelopes on `trading-engine.ml-predictions` and reads
`trading-engine.signals-out`, matching each output to its input by the
`message-id` header (`<input id>:signals`). Each subject gets the same phases:

- warm-up: one empty batch per tenant (the engine loads each tenant's
  strategy layers from the store the first time it sees them), then a short
  run that primes each company's market view; not measured, and it need not
  keep pace, only complete (engine_risk makes one call per batch of 10 there).
- latency: 1,000 predictions/s offered in batches of 10 (100 batches/s on an
  absolute schedule, so a late send does not push the next ones back); each
  message from just before its publish to the arrival of its output, p50, p90,
  p99 and max in µs. Budget: p99 <= 2,000 µs. Before any subject runs, the
  generator sends the same messages to itself through nats-server for 3 s:
  the transport floor under all of them (reported as transport_floor).
- throughput: batches of 100 predictions, the offered rate stepped up (10,000
  predictions/s and on) for a few seconds a step. A step holds when every
  output arrives, none missing, none to spare, the last within 1 s of the last
  send, and the generator really offered the rate; the steps stop at the first
  that does not hold. Budget: >= 50,000 predictions/s for the engine, which
  has no risk service to call (`require_risk_assessment` is off in every
  tier's default), and >= 20,000 predictions/s for engine_risk (one
  AssessSignal call per batch of 100). Also reported: the fastest step whose
  last output came within 200 ms (the subject kept pace rather than caught up
  afterwards), and the rate of outputs actually received. engine_risk steps
  up from the start as the engine does; the null relay starts at the plain
  engine's best step and goes up by a quarter or more a step, with the
  generated batches as they are (it reads no field, and they are faster to
  prepare).

Results, one JSON line each: bus_latency and bus_throughput with the null
relay's figures as their reference and the ratio to them, then bus_memory:
the engine's resident memory (VmRSS, and its peak VmHWM) after the throughput
steps, budget 150 MB; then bus_latency_risk_on and bus_throughput_risk_on,
engine_risk's, with the plain engine's figures as their reference. A
throughput with the breaker open is not one with the risk service on: of the
signals risk management had to judge in the sampled outputs, the share
RISK_STATUS_ASSESSED rather than a fallback (assessed_share, per step too) must
be at least 0.99 in the highest step held, or meets_definition is false. Each
phase also reports the CPU used by the subject, by nats-server, by the risk
service (engine_risk) and by this generator (% of one core; the machine's
cores are shared by all of them, and "other_processes" is what the rest of
the machine took meanwhile, from /proc/stat; it is approximate, a few % either
way, even below zero: above 25% the figures are marked disturbed), and what
the engine decided (dispositions, signal types, the commonest reasons and the
risk statuses, from a sample of decoded outputs). Progress goes to stderr as
each phase ends.

The workload is bench/workload.py's, placed on a live clock. Its price walk
moves one step per batch and was drawn for 10 batches/s; played faster on one
company's market view it would read as an extreme volatility, and the rules
would reject everything early. So the tenants are spread over up to 100
companies, each with its own walk, as many as keep each company at about 10
batches/s (above 1,000 batches/s each company goes faster). Each company has
100 traders (10,000 in all, each user id used in one company only), taken in
turn; every batch is stamped with the wall-clock time it is scheduled to go
out, its predictions 20 ms before that, and its ids are made new.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Final

import nats
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from bench import workload
from bench.cpu import CLOCK_TICKS, cpu_ticks
from bench.null_relay import CLIENT_NAME as RELAY_CLIENT_NAME
from bench.null_relay import SUFFIX
from tradeflow.common.v1 import envelope_pb2
from tradeflow.ml.v1 import prediction_pb2
from tradeflow.trading.v1 import signal_pb2
from trading_engine.bus.names import NATS_DEAD_LETTER, NATS_PREDICTIONS, NATS_SIGNALS
from trading_engine.runtime import tune_runtime
from trading_engine_client.transports import server_has_read

VOID_SUBJECT: Final = "bench.void"
LOOPBACK_SUBJECT: Final = "bench.loopback"

LATENCY_BUDGET_US: Final = 2_000.0
THROUGHPUT_BUDGET: Final = 50_000  # predictions/s
THROUGHPUT_RISK_BUDGET: Final = 20_000  # predictions/s, with the risk service on
MEMORY_BUDGET_MB: Final = 150.0

LATENCY_RATE: Final = 1_000  # predictions/s
LATENCY_BATCH: Final = 10
THROUGHPUT_BATCH: Final = 100
STEPS: Final = (10_000, 20_000, 30_000, 40_000, 50_000, 60_000, 70_000, 80_000, 90_000,
                100_000, 120_000, 150_000, 200_000, 250_000, 300_000, 400_000, 500_000,
                600_000, 700_000, 800_000, 1_000_000, 1_250_000, 1_500_000,
                2_000_000)  # fmt: skip
# The null relay starts at the engine's best step and goes up by at least this factor.
RELAY_STEP_FACTOR: Final = 1.25
# A step holds when its last output arrives within this long after its last send.
HOLD_WINDOW_NS: Final = 1_000_000_000
# How long a step that did not hold may take to finish, before the next subject runs.
DRAIN_S: Final = 20.0
# Other processes using more than this (% of a core) in a phase make its figures suspect.
DISTURBED_PERCENT: Final = 25.0
# A step keeps pace when its last output comes within this long after its last send.
PACE_LAG_MS: Final = 200.0
# The generator must really offer the rate: at least this share of it.
OFFERED_SHARE: Final = 0.95
# Below this share of assessed signals the engine mostly fell back (breaker open, calls
# failing): a throughput measured so is not one with the risk service on.
ASSESSED_SHARE: Final = 0.99

COMPANIES: Final = 100
USERS: Final = 100  # per company
COMPANY_RATE: Final = 1_000_000_000 // workload.STEP_NS  # batches/s the walk was drawn for
POOL: Final = 40  # batches generated per company and batch size, used in turn
PREDICTION_LEAD_NS: Final = 20_000_000  # a prediction's price is 20 ms older than its batch

ENGINE: Final = "engine"
ENGINE_RISK: Final = "engine_risk"
RELAY: Final = "null_relay"
# Each subject's prefix of message and prediction ids: one's late output never matches another's.
_TAGS: Final = {ENGINE: "e", ENGINE_RISK: "r", RELAY: "n"}
# What `trading-engine risk-service` prints once it accepts calls, before HOST:PORT.
_RISK_LISTENING: Final = "risk service listening on "
_BIN = Path(sys.executable).parent
_ROOT = Path(__file__).resolve().parents[1]
_PREDICTIONS = envelope_pb2.MESSAGE_TYPE_ML_PREDICTION_BATCH


@dataclasses.dataclass(frozen=True)
class Plan:
    latency_seconds: float
    step_seconds: float
    steps: tuple[int, ...]
    warm_seconds: float = 1.5
    floor_seconds: float = 3.0


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bus",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="length of the latency run (default 10)"
    )
    parser.add_argument(
        "--step-seconds", type=float, default=4.0, help="length of a throughput step (default 4)"
    )
    parser.add_argument(
        "--steps",
        type=lambda text: tuple(int(rate) for rate in text.split(",")),
        default=STEPS,
        help="offered rates of the throughput steps, predictions/s, comma-separated",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 2 s of latency, 1.5 s steps"
    )
    parser.add_argument(
        "--no-risk",
        action="store_true",
        help=f"skip {ENGINE_RISK}, the engine calling the reference risk service",
    )
    args = parser.parse_args()
    subjects = (ENGINE, RELAY) if args.no_risk else (ENGINE, ENGINE_RISK, RELAY)
    plan = Plan(args.seconds, args.step_seconds, args.steps)
    if args.quick:
        plan = Plan(2.0, 1.5, args.steps, warm_seconds=0.5, floor_seconds=1.0)
    tune_runtime()
    with (
        tempfile.TemporaryDirectory(prefix="bench-bus-") as folder,
        NatsServer(Path(folder)) as server,
    ):
        results = asyncio.run(run(plan, server, Path(folder), subjects))
    for result in results:
        print(json.dumps(result), flush=True)


# --- Processes -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class NatsServer:
    """A private nats-server on loopback, with its monitoring endpoint."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.http_port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self._log_path = folder / "nats-server.log"
        self._log: IO[bytes] | None = None
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> NatsServer:
        self._log = self._log_path.open("wb")
        self.process = subprocess.Popen(
            [str(_BIN / "nats-server"), "-a", "127.0.0.1", "-p", str(self.port),
             "-m", str(self.http_port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                self.monitor("varz")
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.__exit__()
                    raise RuntimeError(
                        f"nats-server did not start:\n{_tail(self._log_path)}"
                    ) from None
                time.sleep(0.05)

    def __exit__(self, *_: object) -> None:
        if self.process is not None:
            _stop(self.process)
        if self._log is not None:
            self._log.close()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def monitor(self, endpoint: str) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.http_port}/{endpoint}"
        with urllib.request.urlopen(url, timeout=2) as response:
            answer: dict[str, Any] = json.load(response)
            return answer

    def subscribed(self, client_name: str) -> bool:
        """Whether the named client subscribes to the prediction subject."""
        for connection in self.monitor("connz?subs=1").get("connections", []):
            if connection.get("name") == client_name and NATS_PREDICTIONS in connection.get(
                "subscriptions_list", []
            ):
                return True
        return False


class Subject:
    """The engine (with or without a risk service) or the null relay, as a child process."""

    def __init__(
        self, name: str, server: NatsServer, folder: Path, risk_address: str | None = None
    ) -> None:
        self.name = name
        self.log_path = folder / f"{name}.log"
        self.data_dir: Path | None = None
        if name == RELAY:
            command = [sys.executable, "-m", "bench.null_relay", server.url]
            self.client_name = RELAY_CLIENT_NAME
        else:
            data = self.data_dir = folder / f"{name}-data"
            data.mkdir()
            command = [str(_BIN / "trading-engine"), "serve", "--grpc-port", "0",
                       "--data-dir", str(data), "--bus-nats-url", server.url,
                       "--log-level", "WARNING"]  # fmt: skip
            if risk_address is not None:
                command += ["--risk-service-address", risk_address]
            self.client_name = "trading-engine"
        self.process = _start(command, self.log_path)
        self._server = server

    @property
    def pid(self) -> int:
        return self.process.pid

    async def ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self._server.subscribed(self.client_name):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not subscribe:\n{_tail(self.log_path)}")
            await asyncio.sleep(0.05)

    def alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self.process.returncode}:\n{_tail(self.log_path)}"
            )

    def memory_mb(self) -> dict[str, float]:
        figures = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                figures[key] = round(int(value.split()[0]) / 1024, 1)
        return figures

    def stop(self) -> dict[str, object]:
        """Stop it; its exit status and what it logged."""
        return _stop_and_report(self.process, self.log_path)


class RiskService:
    """The reference risk service (`trading-engine risk-service`) on a free loopback port."""

    def __init__(self, folder: Path) -> None:
        self.log_path = folder / "risk-service.log"
        # Port 0: the service binds a free port itself and prints it, so no other can take it.
        self.process = _start(
            [str(_BIN / "trading-engine"), "risk-service", "--host", "127.0.0.1", "--port", "0"],
            self.log_path,
        )
        self.address = ""

    @property
    def pid(self) -> int:
        return self.process.pid

    async def ready(self, timeout_s: float = 30.0) -> None:
        """Wait until it listens; its HOST:PORT becomes `address`."""
        deadline = time.monotonic() + timeout_s
        while True:
            for line in self.log_path.read_text(errors="replace").splitlines():
                if line.startswith(_RISK_LISTENING):
                    self.address = line.removeprefix(_RISK_LISTENING).strip()
                    return
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the risk service did not start:\n{_tail(self.log_path)}")
            await asyncio.sleep(0.05)

    def stop(self) -> dict[str, object]:
        return _stop_and_report(self.process, self.log_path)


def _start(command: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    """A child process logging to `log_path`, without the caller's TRADING_ settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TRADING_")}
    with log_path.open("wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=_ROOT, env=env)


def _stop_and_report(process: subprocess.Popen[bytes], log_path: Path) -> dict[str, object]:
    """Stop `process`; its exit status and what it logged."""
    code = _stop(process)
    lines = log_path.read_text(errors="replace").splitlines()
    levels = collections.Counter(
        level for line in lines for level in ("WARNING", "ERROR", "CRITICAL", "Traceback")
        if level in line
    )  # fmt: skip
    report: dict[str, object] = {"exit_code": code, "log_lines": len(lines), **levels}
    if levels or code not in (0, -signal.SIGTERM):
        report["log_tail"] = lines[-8:]
    return report


def _stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class CpuMeter:
    """CPU time of some processes over an interval, in % of one core."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids
        self._start = self._sample()
        self._started = time.monotonic()

    def _sample(self) -> dict[str, int]:
        # All CPUs: user, nice, system, irq, softirq, steal; the rest are idle or waiting.
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        ticks = {"machine": sum(int(fields[index]) for index in (0, 1, 2, 5, 6, 7))}
        for name, pid in self._pids.items():
            ticks[name] = cpu_ticks(f"/proc/{pid}/stat")
            if name == next(iter(self._pids)):
                # The subject's main thread: its event loop.
                ticks[f"{name}_loop_thread"] = cpu_ticks(f"/proc/{pid}/task/{pid}/stat")
        return ticks

    def read(self) -> dict[str, float]:
        elapsed = time.monotonic() - self._started
        end = self._sample()
        used = {
            name: round((end[name] - start) / CLOCK_TICKS / elapsed * 100, 1)
            for name, start in self._start.items()
        }
        # What the rest of the machine took meanwhile: other processes disturb the figures.
        used["other_processes"] = round(
            used.pop("machine") - sum(used[name] for name in self._pids), 1
        )
        return used


# --- Workload ------------------------------------------------------------------------------


class Messages:
    """Envelopes of prediction batches for tenants spread over companies, stamped live."""

    def __init__(self, producer_id: str) -> None:
        self._producer_id = producer_id
        self._sequence = 0
        self._pools: dict[int, list[list[bytes]]] = {}
        # How many batches each company has had: its traders take turns.
        self._turns = [0] * COMPANIES

    def _pool(self, size: int) -> list[list[bytes]]:
        pool = self._pools.get(size)
        if pool is None:
            # One price walk per company (its own seed).
            pool = self._pools[size] = [
                workload.batches(POOL, size, seed=1_000 + company, users=USERS)
                for company in range(COMPANIES)
            ]
        return pool

    def tenants(self, tag: str) -> list[tuple[str, bytes]]:
        """One empty batch per tenant."""
        template = workload.batches(1, 0, start_ns=time.time_ns())[0]
        now_ns = time.time_ns()
        return [
            self._envelope(f"{tag}.{index}", template, f"company-{index // USERS}",
                           _trader(index // USERS, index), now_ns, f"{tag}.{index}.")
            for index in range(COMPANIES * USERS)
        ]  # fmt: skip

    def phase(
        self, tag: str, size: int, batch_rate: float, seconds: float, live: bool = True
    ) -> list[tuple[str, bytes]]:
        """`seconds` of batches of `size` at `batch_rate`, each stamped with its send time.

        Not `live`, the batches go as generated (stamped in 2027, for company "acme"):
        for the null relay, which reads no field, and faster to prepare.
        """
        pool = self._pool(size)
        count = max(1, round(batch_rate * seconds))
        companies = min(COMPANIES, max(1, round(batch_rate / COMPANY_RATE)))
        interval_ns = 1e9 / batch_rate
        start_ns = time.time_ns()
        messages = []
        for index in range(count):
            company = index % companies
            turn = self._turns[company]
            self._turns[company] += 1
            messages.append(
                self._envelope(
                    f"{tag}.{index}",
                    pool[company][_there_and_back(turn)],
                    f"company-{company}",
                    _trader(company, turn),
                    start_ns + int(index * interval_ns),
                    f"{tag}.{index}." if live else "",
                )
            )
        return messages

    def _envelope(
        self, message_id: str, batch_bytes: bytes, company: str, user: str, at_ns: int, prefix: str
    ) -> tuple[str, bytes]:
        """The batch for `user` of `company`, stamped `at_ns`, its ids prefixed, in an envelope.

        Without a prefix, the batch bytes go into the envelope untouched.
        """
        payload = batch_bytes
        if prefix:
            batch = prediction_pb2.MLPredictionBatch.FromString(batch_bytes)
            batch.user_context.company_id = company
            batch.user_context.user_id = user
            batch.batch_id = prefix + batch.batch_id
            batch.correlation_id = prefix + batch.correlation_id
            batch.produced_at.FromNanoseconds(at_ns)
            for prediction in batch.predictions:
                # Prediction ids name the decision (and its replay) per tenant: new ones each time.
                prediction.prediction_id = prefix + prediction.prediction_id
                prediction.timestamp.FromNanoseconds(at_ns - PREDICTION_LEAD_NS)
            payload = batch.SerializeToString()
        self._sequence += 1
        envelope = envelope_pb2.TradingProcessingEnvelope(
            message_type=_PREDICTIONS,
            user_id=user,
            company_id=company,
            payload=payload,
            message_id=message_id,
            service_source="bench.bus",
            producer_id=self._producer_id,
            sequence=self._sequence,
        )
        envelope.timestamp.FromNanoseconds(at_ns)
        return message_id, envelope.SerializeToString()


def _there_and_back(turn: int) -> int:
    """The pool's batches forwards, then backwards: the price walk never jumps."""
    index = turn % (2 * POOL - 2)
    return index if index < POOL else 2 * POOL - 2 - index


def _trader(company: int, turn: int) -> str:
    # User ids unique across companies: the engine's signal memory (duplicates, rate
    # limit) is keyed by user id alone, so a shared id would couple two tenants.
    return f"trader-{company * USERS + turn % USERS}"


# --- The load generator --------------------------------------------------------------------


@dataclasses.dataclass
class Offered:
    first_ns: int
    last_ns: int
    # Furthest a send fell behind its schedule.
    behind_max_ns: int


class Generator:
    """Publishes inputs on a schedule and times the outputs that answer them."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self.sent: dict[str, int] = {}
        self.arrived: dict[str, int] = {}
        self.kept: list[bytes] = []
        self._keep_every = 1
        self._complete = asyncio.Event()
        # Set at each output: a windowed offer waits on it.
        self._room = asyncio.Event()
        self.strays = 0
        self.repeats = 0
        self.dead_letters = 0
        self.shed = 0

    async def start(self) -> None:
        # Generous limits: what this process cannot take in must not look like a loss.
        await self._client.subscribe(
            NATS_SIGNALS,
            cb=self._on_signals,
            pending_msgs_limit=2_000_000,
            pending_bytes_limit=4 * 1024**3,
        )
        await self._client.subscribe(NATS_DEAD_LETTER, cb=self._on_dead_letter)
        await server_has_read(self._client)

    def begin(self, keep_every: int = 0) -> None:
        """Forget the previous phase; keep every `keep_every`th output for decoding."""
        self.sent, self.arrived, self.kept = {}, {}, []
        self._keep_every = keep_every
        self._complete.clear()
        self.strays = self.repeats = self.dead_letters = self.shed = 0

    async def _on_signals(self, msg: Msg) -> None:
        arrived_ns = time.perf_counter_ns()
        headers = msg.headers
        message_id = headers.get("message-id", "") if headers else ""
        if message_id.endswith(SUFFIX):
            message_id = message_id[: -len(SUFFIX)]
        if message_id not in self.sent:
            self.strays += 1
            return
        arrived = self.arrived
        if message_id in arrived:
            self.repeats += 1
            return
        arrived[message_id] = arrived_ns
        self._room.set()
        if self._keep_every and len(arrived) % self._keep_every == 0:
            self.kept.append(msg.data)
        if len(arrived) == len(self.sent):
            self._complete.set()

    async def _on_dead_letter(self, msg: Msg) -> None:
        self.dead_letters += 1

    async def offer(
        self, messages: Sequence[tuple[str, bytes]], batch_rate: float, window: int = 0
    ) -> Offered:
        """Publish on an absolute schedule; with `window`, no faster than outputs come back."""
        clock = time.perf_counter_ns
        publish = self._client.publish
        sent = self.sent
        arrived = self.arrived
        interval_ns = 1e9 / batch_rate
        start_ns = clock() + 2_000_000
        behind_max = 0
        first_ns = 0
        for index, (message_id, data) in enumerate(messages):
            target_ns = start_ns + int(index * interval_ns)
            now_ns = clock()
            if now_ns < target_ns:
                await asyncio.sleep((target_ns - now_ns) / 1e9)
            else:
                behind_max = max(behind_max, now_ns - target_ns)
                if index % 32 == 0:
                    # Let the subscription and nats-py's flusher run.
                    await asyncio.sleep(0)
            while window and len(sent) - len(arrived) >= window:
                self._room.clear()
                await self._room.wait()
            now_ns = clock()
            sent[message_id] = now_ns
            if not first_ns:
                first_ns = now_ns
            await publish(NATS_PREDICTIONS, data)
        return Offered(first_ns, clock(), behind_max)

    async def complete(self, by_ns: int) -> bool:
        """Wait until every output is in or the clock passes `by_ns`; whether all came."""
        while True:
            self._complete.clear()
            if len(self.arrived) >= len(self.sent):
                return True
            timeout = (by_ns - time.perf_counter_ns()) / 1e9
            if timeout <= 0:
                return False
            try:
                await asyncio.wait_for(self._complete.wait(), timeout)
            except TimeoutError:
                return False

    async def quiet(self, seconds: float = 0.5) -> None:
        """Wait until no output has come for `seconds`: the previous subject's are all in."""
        while True:
            before = self.strays + len(self.arrived)
            await asyncio.sleep(seconds)
            if self.strays + len(self.arrived) == before:
                return

    async def publish_limit(self, messages: Sequence[tuple[str, bytes]]) -> float:
        """Messages per second this process can publish with nobody listening."""
        publish = self._client.publish
        started = time.perf_counter()
        for index, (_, data) in enumerate(messages):
            await publish(VOID_SUBJECT, data)
            if index % 32 == 0:
                await asyncio.sleep(0)
        await server_has_read(self._client)
        return len(messages) / (time.perf_counter() - started)

    async def loopback(self, data: Sequence[tuple[str, bytes]], batch_rate: float) -> list[int]:
        """Latencies (ns) of messages this process sends itself through nats-server."""
        sent: dict[bytes, int] = {}
        latencies: list[int] = []

        async def on_message(msg: Msg) -> None:
            latencies.append(time.perf_counter_ns() - sent[msg.data[:16]])

        subscription = await self._client.subscribe(LOOPBACK_SUBJECT, cb=on_message)
        await server_has_read(self._client)
        start_ns = time.perf_counter_ns()
        for index, (_, payload) in enumerate(data):
            target_ns = start_ns + int(index * 1e9 / batch_rate)
            now_ns = time.perf_counter_ns()
            if now_ns < target_ns:
                await asyncio.sleep((target_ns - now_ns) / 1e9)
            key = f"{index:016d}".encode()
            sent[key] = time.perf_counter_ns()
            await self._client.publish(LOOPBACK_SUBJECT, key + payload)
        await server_has_read(self._client)
        await asyncio.sleep(0.1)
        await subscription.unsubscribe()
        return sorted(latencies)

    async def on_error(self, error: Exception) -> None:
        if isinstance(error, nats.errors.SlowConsumerError):
            self.shed += 1


# --- Phases --------------------------------------------------------------------------------


async def run(
    plan: Plan, server: NatsServer, folder: Path, subjects: Sequence[str]
) -> list[dict[str, object]]:
    generator: Generator | None = None

    async def on_error(error: Exception) -> None:
        if generator is not None:
            await generator.on_error(error)

    client = await nats.connect(
        server.url, name="bench-generator", pending_size=256 * 1024 * 1024, error_cb=on_error
    )
    try:
        generator = Generator(client)
        await generator.start()
        messages = Messages(f"bench-{os.getpid()}")
        sample = messages.phase("limit", THROUGHPUT_BATCH, 1_000, 3.0, live=False)
        limit = await generator.publish_limit(sample) * THROUGHPUT_BATCH
        del sample
        # The floor under both subjects' latency: nats-server and this process alone.
        batch_rate = LATENCY_RATE / LATENCY_BATCH
        data = messages.phase("floor", LATENCY_BATCH, batch_rate, plan.floor_seconds, live=False)
        floor = await generator.loopback(data, batch_rate)
        figures: dict[str, dict[str, Any]] = {}
        for name in subjects:
            rates: Sequence[int] = plan.steps
            if name == RELAY:
                rates = relay_rates(plan.steps, _highest(figures[ENGINE]["steps"]))
            figures[name] = await measure(name, plan, server, folder, generator, messages, rates)
            # What the subject published as it stopped is not the next one's.
            generator.begin()
            await generator.quiet()
    finally:
        await client.drain()
    return report(figures, limit, floor)


async def measure(
    name: str,
    plan: Plan,
    server: NatsServer,
    folder: Path,
    generator: Generator,
    messages: Messages,
    rates: Sequence[int],
) -> dict[str, Any]:
    """Every phase against one subject, started here and stopped at the end.

    ENGINE_RISK's risk service too: started before it, stopped after it.
    """
    figures: dict[str, Any] = {}
    rss: dict[str, float] = {}
    figures["rss_mb"] = rss
    risk = RiskService(folder) if name == ENGINE_RISK else None
    subject: Subject | None = None
    try:
        if risk is not None:
            await risk.ready()
        subject = Subject(name, server, folder, risk.address if risk is not None else None)
        await subject.ready()
        rss["ready"] = subject.memory_mb()["VmRSS"]
        pids = {name: subject.pid, "nats_server": server.pid, "generator": os.getpid()}
        if risk is not None:
            pids["risk_service"] = risk.pid
        slow_before = server.monitor("varz").get("slow_consumers", 0)
        figures["warm_up_tenants_s"] = await warm_up(name, plan, generator, messages, pids)
        rss["after_warm_up"] = subject.memory_mb()["VmRSS"]
        subject.alive()
        figures["latency"] = await latency_run(name, plan, generator, messages, pids)
        rss["after_latency"] = subject.memory_mb()["VmRSS"]
        subject.alive()
        figures["steps"] = await throughput_steps(
            name, plan, generator, messages, pids, subject, rates
        )
        figures["memory_mb"] = subject.memory_mb()
        rss["after_throughput"] = figures["memory_mb"]["VmRSS"]
        if subject.data_dir is not None:
            figures["data_dir_mb"] = round(
                sum(path.stat().st_size for path in subject.data_dir.iterdir()) / 1e6, 1
            )
        figures["slow_consumers_on_server"] = (
            server.monitor("varz").get("slow_consumers", 0) - slow_before
        )
    finally:
        try:
            if subject is not None:
                figures["process"] = subject.stop()
        finally:
            if risk is not None:
                figures["risk_service_process"] = risk.stop()
    return figures


def relay_rates(steps: Sequence[int], engine_best: int) -> list[int]:
    """The engine's best rate, then steps at least RELAY_STEP_FACTOR apart."""
    rates = [engine_best or steps[0]]
    for rate in steps:
        if rate >= rates[-1] * RELAY_STEP_FACTOR:
            rates.append(rate)
    return rates


async def warm_up(
    name: str, plan: Plan, generator: Generator, messages: Messages, pids: dict[str, int]
) -> float:
    """Every tenant once (as fast as outputs come back), then every company's market view."""
    started = time.monotonic()
    generator.begin()
    await generator.offer(messages.tenants(f"{_TAGS[name]}w"), 1e6, window=200)
    if not await generator.complete(time.perf_counter_ns() + int(DRAIN_S * 1e9)):
        raise RuntimeError(f"{name}: the tenants' warm-up did not complete")
    seconds = round(time.monotonic() - started, 2)
    _progress(name, "tenants", {"seconds": seconds})
    batch_rate = COMPANIES * COMPANY_RATE
    data = messages.phase(f"{_TAGS[name]}m", LATENCY_BATCH, batch_rate, plan.warm_seconds)
    warm = await phase(generator, data, batch_rate, pids)
    _progress(name, "warm-up", warm)
    # Not measured, so it need not keep pace, only complete: with the risk service on, the
    # engine may fall behind at one call per batch of 10 (1,000 calls/s here).
    lost = ("missing", "unmatched_outputs", "dead_letters", "generator_shed")
    if any(warm[key] for key in lost):
        raise RuntimeError(f"{name}: the warm-up run did not complete: {warm}")
    return seconds


async def latency_run(
    name: str, plan: Plan, generator: Generator, messages: Messages, pids: dict[str, int]
) -> dict[str, Any]:
    batch_rate = LATENCY_RATE / LATENCY_BATCH
    data = messages.phase(f"{_TAGS[name]}l", LATENCY_BATCH, batch_rate, plan.latency_seconds)
    latency = await phase(generator, data, batch_rate, pids, keep_every=1)
    latency["latencies"] = sorted(
        generator.arrived[message_id] - sent_ns
        for message_id, sent_ns in generator.sent.items()
        if message_id in generator.arrived
    )
    latency["mix"] = mix(generator.kept) if name != RELAY else None
    _progress(name, "latency", {**latency, "latencies": _latency(latency)})
    return latency


async def throughput_steps(
    name: str,
    plan: Plan,
    generator: Generator,
    messages: Messages,
    pids: dict[str, int],
    subject: Subject,
    rates: Sequence[int],
) -> list[dict[str, Any]]:
    """Step the offered rate up until a step does not hold."""
    steps = []
    for rate in rates:
        batch_rate = rate / THROUGHPUT_BATCH
        data = messages.phase(
            f"{_TAGS[name]}t{rate}", THROUGHPUT_BATCH, batch_rate, plan.step_seconds, name != RELAY
        )
        step = await phase(generator, data, batch_rate, pids, max(1, len(data) // 100))
        step["offered"] = rate
        # After each step: memory at the budget's rate, not only after the overload.
        step["rss_mb"] = subject.memory_mb()["VmRSS"]
        if name != RELAY:
            step["mix"] = mix(generator.kept)
        steps.append(step)
        _progress(name, f"step {rate}", step)
        subject.alive()
        if not step["held"]:
            break
    return steps


async def phase(
    generator: Generator,
    data: Sequence[tuple[str, bytes]],
    batch_rate: float,
    pids: dict[str, int],
    keep_every: int = 0,
) -> dict[str, Any]:
    """Offer `data` at `batch_rate` and wait for its outputs; keep every `keep_every`th."""
    generator.begin(keep_every)
    meter = CpuMeter(pids)
    offered = await generator.offer(data, batch_rate)
    on_time = await generator.complete(offered.last_ns + HOLD_WINDOW_NS)
    cpu = meter.read()
    received_on_time = len(generator.arrived)
    if not on_time:
        await generator.complete(time.perf_counter_ns() + int(DRAIN_S * 1e9))
    sent = len(generator.sent)
    arrived = generator.arrived.values()
    last_ns = max(arrived, default=offered.last_ns)
    span_s = max(offered.last_ns - offered.first_ns, 1) / 1e9
    offered_rate = (sent - 1) / span_s if sent > 1 else batch_rate
    clean = not (generator.strays or generator.repeats or generator.dead_letters or generator.shed)
    kept_up = offered_rate >= OFFERED_SHARE * batch_rate
    return {
        "held": on_time and clean and kept_up,
        "generator_kept_up": kept_up,
        "batches": sent,
        "received_in_1s": received_on_time,
        "received": len(generator.arrived),
        "missing": sent - len(generator.arrived),
        "dead_letters": generator.dead_letters,
        "unmatched_outputs": generator.strays + generator.repeats,
        "generator_shed": generator.shed,
        # How long after the last send the last output came.
        "lag_ms": round((last_ns - offered.last_ns) / 1e6, 1),
        "offered_batches_per_s": round(offered_rate, 1),
        "generator_behind_max_ms": round(offered.behind_max_ns / 1e6, 1),
        "achieved_batches_per_s": round(
            len(generator.arrived) / (max(last_ns - offered.first_ns, 1) / 1e9), 1
        ),
        "cpu_percent": cpu,
    }


def _progress(name: str, what: str, figures: dict[str, Any]) -> None:
    """A line on stderr as each phase ends: the JSON on stdout comes at the very end."""
    shown = {key: value for key, value in figures.items() if key != "mix"}
    print(f"{name} {what}: {json.dumps(shown)}", file=sys.stderr, flush=True)


def mix(outputs: Sequence[bytes]) -> dict[str, object]:
    """What a sample of signal batches decided."""
    dispositions: collections.Counter[str] = collections.Counter()
    types: collections.Counter[str] = collections.Counter()
    reasons: collections.Counter[str] = collections.Counter()
    risk: collections.Counter[str] = collections.Counter()
    for data in outputs:
        envelope = envelope_pb2.TradingProcessingEnvelope.FromString(data)
        for signal_ in signal_pb2.TradingSignalBatch.FromString(envelope.payload).signals:
            dispositions[_name(signal_pb2.SignalDisposition, signal_.disposition)] += 1
            types[_name(signal_pb2.SignalType, signal_.signal_type)] += 1
            reasons[_name(signal_pb2.DispositionReason, signal_.reason)] += 1
            # Only signals actionable when risk management saw them: the rest need no assessment
            # (one the service judged EXTREME is a HOLD now, but was assessed).
            if signal_.risk_status != signal_pb2.RISK_STATUS_NOT_REQUIRED:
                risk[_name(signal_pb2.RiskStatus, signal_.risk_status)] += 1
    return {
        "batches_decoded": len(outputs),
        "dispositions": dict(dispositions.most_common()),
        "signal_types": dict(types.most_common()),
        "reasons": dict(reasons.most_common(5)),
        "risk_statuses": dict(risk.most_common()),
    }


def _name(enum: Any, value: int) -> str:
    name: str = enum.Name(value)
    return name.split("_", 2)[-1].lower() if name.count("_") >= 2 else name.lower()


# --- Report --------------------------------------------------------------------------------


def report(
    subjects: dict[str, dict[str, Any]], publish_limit: float, floor: list[int]
) -> list[dict[str, object]]:
    engine, relay = subjects[ENGINE], subjects[RELAY]
    # Processes outside this benchmark that took CPU during a measured phase.
    others = {
        name: max(
            phase["cpu_percent"]["other_processes"]
            for phase in (figures["latency"], *figures["steps"])
        )
        for name, figures in subjects.items()
    }
    disturbed = {
        "other_processes_cpu_max_percent": others,
        "disturbed": any(value > DISTURBED_PERCENT for value in others.values()),
    }
    latency = _latency(engine["latency"])
    relay_latency = _latency(relay["latency"])
    held = _highest(engine["steps"])
    relay_held = _highest(relay["steps"])
    memory = engine.get("memory_mb", {})
    rss = memory.get("VmRSS", 0.0)
    risk_on = _risk_on(subjects[ENGINE_RISK], engine, disturbed) if ENGINE_RISK in subjects else []
    return [
        {
            "name": "bus_latency",
            "unit": "us",
            "value": latency["p99"],
            **latency,
            "budget": LATENCY_BUDGET_US,
            "ratio_to_budget": round(latency["p99"] / LATENCY_BUDGET_US, 3),
            "offered": {"predictions_per_s": LATENCY_RATE, "batch_size": LATENCY_BATCH},
            "reference": {"name": "null_relay_bus_latency", "unit": "us", **relay_latency},
            "ratio_to_reference_p50": _ratio(latency["p50"], relay_latency["p50"]),
            "ratio_to_reference_p99": _ratio(latency["p99"], relay_latency["p99"]),
            # The generator sending the same messages to itself through nats-server.
            "transport_floor": {"name": "generator_loopback", "unit": "us", **_percentiles(floor)},
            "mix": engine["latency"]["mix"],
            "phase": _phase_summary(engine["latency"]),
            "reference_phase": _phase_summary(relay["latency"]),
            **disturbed,
        },
        {
            "name": "bus_throughput",
            "unit": "predictions/s",
            "value": held,
            "budget": THROUGHPUT_BUDGET,
            "ratio_to_budget": round(held / THROUGHPUT_BUDGET, 2),
            "batch_size": THROUGHPUT_BATCH,
            "achieved_predictions_per_s": _achieved(engine["steps"]),
            # The fastest step whose outputs never fell more than a fraction of a second behind.
            "highest_keeping_pace": _highest(engine["steps"], PACE_LAG_MS),
            "reference": {
                "name": "null_relay_bus_throughput",
                "unit": "predictions/s",
                "value": relay_held,
                "achieved_predictions_per_s": _achieved(relay["steps"]),
                "highest_keeping_pace": _highest(relay["steps"], PACE_LAG_MS),
            },
            "ratio_to_reference": _ratio(held, relay_held),
            "stopped_by": {
                ENGINE: _stopped_by(engine["steps"]),
                RELAY: _stopped_by(relay["steps"]),
            },
            "generator_publish_limit_predictions_per_s": round(publish_limit),
            "steps": [_step(step) for step in engine["steps"]],
            "reference_steps": [_step(step) for step in relay["steps"]],
            **disturbed,
            "warm_up_tenants_s": engine.get("warm_up_tenants_s"),
            "engine_process": engine["process"],
            "reference_process": relay["process"],
            "slow_consumers_on_server": {
                ENGINE: engine.get("slow_consumers_on_server"),
                RELAY: relay.get("slow_consumers_on_server"),
            },
        },
        {
            "name": "bus_memory",
            "unit": "MB",
            "value": rss,
            "peak": memory.get("VmHWM"),
            "budget": MEMORY_BUDGET_MB,
            "ratio_to_budget": round(rss / MEMORY_BUDGET_MB, 3),
            "measured": "engine VmRSS and VmHWM after the throughput steps",
            "rss_by_phase": engine["rss_mb"],
            "rss_after_each_step": {step["offered"]: step["rss_mb"] for step in engine["steps"]},
            # Mostly signal history: the writer's backlog is what the RSS holds on to.
            "engine_data_dir_mb": engine.get("data_dir_mb"),
            "reference": {"name": "null_relay_memory", "unit": "MB", **relay.get("memory_mb", {})},
        },
        *risk_on,
    ]


def _risk_on(
    risk: dict[str, Any], engine: dict[str, Any], disturbed: dict[str, object]
) -> list[dict[str, object]]:
    """bus_latency_risk_on and bus_throughput_risk_on, the plain engine's figures as reference."""
    latency = _latency(risk["latency"])
    engine_latency = _latency(engine["latency"])
    held = _highest(risk["steps"])
    engine_held = _highest(engine["steps"])
    last_held = [step for step in risk["steps"] if step["held"] and step["offered"] == held]
    share = _assessed_share(last_held[0]["mix"]) if last_held else None
    return [
        {
            "name": "bus_latency_risk_on",
            "unit": "us",
            "value": latency["p99"],
            **latency,
            "offered": {"predictions_per_s": LATENCY_RATE, "batch_size": LATENCY_BATCH},
            "assessed_share": _assessed_share(risk["latency"]["mix"]),
            "reference": {"name": "bus_latency", "unit": "us", **engine_latency},
            "ratio_to_reference_p50": _ratio(latency["p50"], engine_latency["p50"]),
            "ratio_to_reference_p99": _ratio(latency["p99"], engine_latency["p99"]),
            "mix": risk["latency"]["mix"],
            "phase": _phase_summary(risk["latency"]),
            "reference_phase": _phase_summary(engine["latency"]),
            **disturbed,
        },
        {
            "name": "bus_throughput_risk_on",
            "unit": "predictions/s",
            "value": held,
            "budget": THROUGHPUT_RISK_BUDGET,
            "ratio_to_budget": round(held / THROUGHPUT_RISK_BUDGET, 2),
            "batch_size": THROUGHPUT_BATCH,
            # Of the sampled signals risk management had to judge in the highest step held, the
            # share the service assessed; the rest fell back (breaker open, call failed).
            "assessed_share": share,
            "meets_definition": share is not None and share >= ASSESSED_SHARE,
            "definition": f"the highest step held with an assessed share >= {ASSESSED_SHARE}",
            "achieved_predictions_per_s": _achieved(risk["steps"]),
            "highest_keeping_pace": _highest(risk["steps"], PACE_LAG_MS),
            "reference": {
                "name": "bus_throughput",
                "unit": "predictions/s",
                "value": engine_held,
                "achieved_predictions_per_s": _achieved(engine["steps"]),
                "highest_keeping_pace": _highest(engine["steps"], PACE_LAG_MS),
            },
            "ratio_to_reference": _ratio(held, engine_held),
            "stopped_by": _stopped_by(risk["steps"]),
            "steps": [_step(step, risk=True) for step in risk["steps"]],
            **disturbed,
            "warm_up_tenants_s": risk.get("warm_up_tenants_s"),
            "engine_process": risk["process"],
            "risk_service_process": risk["risk_service_process"],
            "slow_consumers_on_server": risk.get("slow_consumers_on_server"),
        },
    ]


def _assessed_share(mix: dict[str, Any]) -> float | None:
    """Of the sampled signals risk management had to judge, the share the service assessed."""
    statuses: dict[str, int] = mix["risk_statuses"]
    judged = sum(statuses.values())
    return round(statuses.get("assessed", 0) / judged, 4) if judged else None


def _latency(phase: dict[str, Any]) -> dict[str, float]:
    return _percentiles(phase["latencies"])


def _percentiles(samples: list[int]) -> dict[str, float]:
    """p50, p90, p99 and max in µs of sorted nanosecond samples."""
    if not samples:
        return {"p50": math.nan, "p90": math.nan, "p99": math.nan, "max": math.nan, "samples": 0}
    count = len(samples)
    return {
        "p50": round(samples[count // 2] / 1000, 1),
        "p90": round(samples[int(count * 0.90)] / 1000, 1),
        "p99": round(samples[int(count * 0.99)] / 1000, 1),
        "max": round(samples[-1] / 1000, 1),
        "samples": count,
    }


def _phase_summary(phase: dict[str, Any]) -> dict[str, object]:
    return {
        key: phase[key]
        for key in ("held", "batches", "missing", "offered_batches_per_s", "cpu_percent")
    }


def _highest(steps: list[dict[str, Any]], lag_ms: float = math.inf) -> int:
    return max(
        (step["offered"] for step in steps if step["held"] and step["lag_ms"] <= lag_ms),
        default=0,
    )


def _stopped_by(steps: list[dict[str, Any]]) -> str:
    """Why the steps ended."""
    last = steps[-1] if steps else None
    if last is None or last["held"]:
        return "the last step held: the limit lies higher"
    if not last["generator_kept_up"]:
        return f"the generator could not offer {last['offered']} predictions/s"
    if last["missing"] or last["unmatched_outputs"] or last["dead_letters"]:
        return f"outputs lost or wrong at {last['offered']} predictions/s"
    return f"outputs more than 1 s late at {last['offered']} predictions/s"


def _achieved(steps: list[dict[str, Any]]) -> int:
    """Predictions per second out, in the fastest step that held."""
    rates = [step["achieved_batches_per_s"] for step in steps if step["held"]]
    return round(max(rates, default=0.0) * THROUGHPUT_BATCH)


def _step(step: dict[str, Any], risk: bool = False) -> dict[str, object]:
    summary = {
        key: value
        for key, value in step.items()
        if key not in ("mix", "offered_batches_per_s", "achieved_batches_per_s")
    }
    summary["offered_actual"] = round(step["offered_batches_per_s"] * THROUGHPUT_BATCH)
    summary["achieved"] = round(step["achieved_batches_per_s"] * THROUGHPUT_BATCH)
    if step.get("mix"):
        summary["dispositions"] = step["mix"]["dispositions"]
        summary["reasons"] = step["mix"]["reasons"]
        if risk:
            summary["assessed_share"] = _assessed_share(step["mix"])
            summary["risk_statuses"] = step["mix"]["risk_statuses"]
    return summary


def _ratio(value: float, reference: float) -> float | None:
    return round(value / reference, 2) if reference else None


if __name__ == "__main__":
    main()
