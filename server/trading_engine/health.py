"""The engine's health: component probes and the report the HealthCheck RPC serves."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable

from trading_engine.clock import Clock
from trading_engine.stats import DecisionFigures, DecisionStats


class ComponentState(enum.Enum):
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"
    DISABLED = "disabled"


class ServingState(enum.Enum):
    SERVING = "serving"
    DEGRADED = "degraded"
    NOT_SERVING = "not_serving"


@dataclasses.dataclass(frozen=True, slots=True)
class ComponentReport:
    name: str
    state: ComponentState
    detail: str
    # A required component that is not UP makes the engine NOT_SERVING; an
    # optional one only makes it DEGRADED.
    required: bool = True


Probe = Callable[[], ComponentReport]


@dataclasses.dataclass(frozen=True, slots=True)
class HealthReport:
    status: ServingState
    version: str
    started_at_ns: int
    checked_at_ns: int
    components: tuple[ComponentReport, ...]
    decisions: DecisionFigures
    # Distinct user strategies in force (built from their layers) in this instance.
    active_strategies: int
    # Signals closed since start, and how many of them won.
    signals_closed: int
    wins: int

    @property
    def uptime_ns(self) -> int:
        return self.checked_at_ns - self.started_at_ns


class HealthMonitor:
    """Collects component probes and turns them into one health report."""

    def __init__(
        self,
        version: str,
        clock: Clock,
        stats: DecisionStats,
        strategies_in_force: Callable[[], int] = lambda: 0,
        closed_and_won: Callable[[], tuple[int, int]] = lambda: (0, 0),
    ) -> None:
        self._version = version
        self._clock = clock
        self._stats = stats
        self._strategies_in_force = strategies_in_force
        self._closed_and_won = closed_and_won
        self._started_at_ns = clock.now_ns()
        self._probes: list[Probe] = []
        self._shutting_down = False

    def register(self, probe: Probe) -> None:
        self._probes.append(probe)

    def mark_shutting_down(self) -> None:
        self._shutting_down = True

    def report(self) -> HealthReport:
        components = tuple(probe() for probe in self._probes)
        now_ns = self._clock.now_ns()
        closed, wins = self._closed_and_won()
        return HealthReport(
            status=self._overall(components),
            version=self._version,
            started_at_ns=self._started_at_ns,
            checked_at_ns=now_ns,
            components=components,
            decisions=self._stats.figures(now_ns),
            active_strategies=self._strategies_in_force(),
            signals_closed=closed,
            wins=wins,
        )

    def _overall(self, components: tuple[ComponentReport, ...]) -> ServingState:
        if self._shutting_down:
            return ServingState.NOT_SERVING
        impaired = [
            c for c in components if c.state in (ComponentState.DOWN, ComponentState.DEGRADED)
        ]
        if any(c.required and c.state is ComponentState.DOWN for c in impaired):
            return ServingState.NOT_SERVING
        return ServingState.DEGRADED if impaired else ServingState.SERVING
