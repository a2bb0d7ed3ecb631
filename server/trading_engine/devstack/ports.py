"""Every port a command will listen on, checked before anything starts.

A port the user chose (by flag or TRADING_ENGINE_* variable) that is in use
refuses the start, naming the flag to change; a default one that is in use
(another stack on 50051, 8080, 9901) is replaced by a free one, said aloud.
Without this a stack started beside another ran its migrations before the
gRPC port clashed, and its Envoy shared the other's REST port, routing half
the requests to the other engine.
"""

from __future__ import annotations

import dataclasses
import errno
import socket
from collections.abc import Collection, Sequence

from trading_engine.config import GatewaySettings


@dataclasses.dataclass(frozen=True)
class Port:
    """One port to listen on."""

    # What listens there, as people name it: "gRPC", "REST".
    what: str
    # The flag that sets it, which an error names.
    flag: str
    host: str
    # 0: any free port.
    number: int
    # Named by the user: never moved, refused when in use.
    chosen: bool


@dataclasses.dataclass(frozen=True)
class Moved:
    """A default port that was in use, and the free one used instead."""

    port: Port
    to: int

    def __str__(self) -> str:
        return (
            f"{self.port.what} port {self.port.number} is in use; using {self.to} instead "
            f"({self.port.flag} chooses one)"
        )


@dataclasses.dataclass(frozen=True)
class PortPlan:
    # The port to use, by flag.
    numbers: dict[str, int]
    moved: tuple[Moved, ...]


class PortsInUse(OSError):
    """Ports the user chose are in use: nothing was started."""


def listening_possible(host: str, number: int) -> bool:
    """Whether a server could listen on host:number now (as servers do, with SO_REUSEADDR,
    so connections of an earlier process in TIME_WAIT do not count)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, number))
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def free_port_on(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def plan_ports(ports: Sequence[Port]) -> PortPlan:
    """The port each will use; PortsInUse naming every chosen port in use (or asked for
    twice), before anything listens."""
    numbers: dict[str, int] = {}
    owners: dict[int, Port] = {}
    moved: list[Moved] = []
    refused: list[str] = []
    for port in ports:
        number = port.number
        if number == 0:
            number = _unclaimed(port.host, owners)
        elif number in owners:
            if port.chosen:
                refused.append(
                    f"{port.what} port {number} is also the {owners[number].what} port: "
                    f"choose another with {port.flag}"
                )
                continue
            number = _unclaimed(port.host, owners)
        elif not listening_possible(port.host, number):
            if port.chosen:
                refused.append(
                    f"{port.what} port {port.host}:{number} is in use: choose another with "
                    f"{port.flag}"
                )
                continue
            number = _unclaimed(port.host, owners)
        if port.number not in (number, 0):
            moved.append(Moved(port, number))
        numbers[port.flag] = number
        owners[number] = port
    if refused:
        raise PortsInUse("nothing started: " + "; ".join(refused) + " (is another stack running?)")
    return PortPlan(numbers, tuple(moved))


def _unclaimed(host: str, owners: dict[int, Port]) -> int:
    while (number := free_port_on(host)) in owners:
        pass
    return number


def gateway_ports(settings: GatewaySettings, named: Collection[str]) -> list[Port]:
    """The ports Envoy listens on: REST and admin; `named`, the settings the user gave."""
    return [
        Port("REST", "--http-port", settings.http_host, settings.http_port, "http_port" in named),
        Port(
            "Envoy admin",
            "--envoy-admin-port",
            settings.envoy_admin_host,
            settings.envoy_admin_port,
            "envoy_admin_port" in named,
        ),
    ]
