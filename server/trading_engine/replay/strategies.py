"""The strategies a replay decides with: as they were in force, or a candidate over them.

In force: a signal records the strategy version that decided it, and versions
are numbered across every layer in the order they were made, so the version
a batch was decided at names, for each layer (user, adaptive, company), its
newest revision up to that version. With nothing stored (a replay of a file),
every user has their tier's defaults.

A candidate is a StrategyConfig in JSON whose fields are the change to try,
e.g. `{"minConfidenceThreshold": 0.75}` (the fields present, zeros included):
it is checked as a user-layer update would be and applied over every layer,
so the question "what if my threshold had been 0.75" is answered for exactly
that field. Signals decided
with a candidate carry strategy version 0: no stored version decided them.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from google.protobuf import json_format

from tradeflow.trading.v1 import strategy_pb2
from trading_engine.core import tiers
from trading_engine.core.strategy import Strategy, from_config
from trading_engine.core.strategy_layers import (
    ADAPTIVE,
    EMPTY_LAYER,
    Layer,
    apply_update,
    bound_violations,
    layer_from_stored,
    merge,
    update_paths,
    validate_effective,
    validate_values,
)
from trading_engine.core.tiers import TierPolicy
from trading_engine.errors import FieldViolation
from trading_engine.stores.base import COMPANY_LAYER, USER_LAYER, LayerKey, Store
from trading_engine.tenancy import Caller

_PAGE: Final = 200


class CandidateError(ValueError):
    """A candidate strategy that cannot be applied; names each bad field."""


@dataclasses.dataclass(frozen=True)
class Candidate:
    # Where it came from, to name it in reports: a file name, "candidate".
    name: str
    change: Layer

    @classmethod
    def checked(
        cls,
        name: str,
        values: strategy_pb2.StrategyConfig,
        mask: Sequence[str],
        policy: TierPolicy | None,
    ) -> tuple[Candidate, list[FieldViolation]]:
        """The candidate of the `mask` fields of `values` (without a mask, of the fields
        present), and why it cannot be applied (fields named as `update_paths` names
        them), checked as a user-layer update of `policy`'s tier."""
        paths, violations = update_paths(values, mask)
        violations += validate_values(values, paths, policy)
        if policy is not None and not policy.allowed.custom_strategies_enabled:
            # Held to the tier's bounds by the merge, a value past one would replay as the
            # bound: the answer to another question than the one asked (decision 31).
            violations += bound_violations(values, paths, policy)
        return cls(name, apply_update(EMPTY_LAYER, values, paths)), violations

    @classmethod
    def from_file(cls, path: Path) -> Candidate:
        return cls.from_json(path.name, path.read_text(encoding="utf-8"), str(path))

    @classmethod
    def from_json(cls, name: str, text: str, where: str = "") -> Candidate:
        """The candidate a StrategyConfig in JSON names; CandidateError saying, after `where`
        (default: the name), what is wrong."""
        where = where or name
        try:
            values = json_format.Parse(text, strategy_pb2.StrategyConfig())
        except json_format.ParseError as error:
            raise CandidateError(f"{where}: not a StrategyConfig in JSON: {error}") from None
        candidate, violations = cls.checked(name, values, (), None)
        if violations:
            problems = "; ".join(f"{v.field}: {v.description}" for v in violations)
            raise CandidateError(f"{where}: {problems}")
        return candidate


@dataclasses.dataclass(frozen=True)
class LayersInForce:
    user: Layer = EMPTY_LAYER
    adaptive: Layer = EMPTY_LAYER
    company: Layer = EMPTY_LAYER
    version: int = 0


NO_LAYERS: Final = LayersInForce()


class ReplayStrategies:
    """The engine's StrategySource for a replay: the layers in force for the batch being
    decided (set before each batch), and the candidate over them when there is one."""

    def __init__(self, candidate: Candidate | None = None, base: str = "tier defaults") -> None:
        self.candidate = candidate
        # What the side is called without a candidate: where its strategies come from.
        self._base = base
        self.layers = NO_LAYERS
        # By tier, user and version: a version names the user's layers.
        self._built: dict[tuple[int, str, str, int], Strategy] = {}

    def strategy_for(self, caller: Caller) -> Strategy:
        key = (caller.tier, caller.company_id, caller.user_id, self.layers.version)
        strategy = self._built.get(key)
        if strategy is None:
            strategy = self._built[key] = self._build(caller.tier, self.layers)
        return strategy

    def _build(self, tier: int, layers: LayersInForce) -> Strategy:
        policy = tiers.policy_for(tier)
        company, version = layers.company, layers.version
        if self.candidate is not None:
            change = self.candidate.change
            company = apply_update(company, change.config, sorted(change.fields))
            version = 0
        merged = merge(policy, layers.user, company, layers.adaptive)
        violations = validate_effective(merged.config)
        if violations:
            problems = "; ".join(f"{v.field}: {v.description}" for v in violations)
            raise CandidateError(f"{self.name}: {problems}")
        return from_config(merged.config, policy, version)

    @property
    def name(self) -> str:
        return self.candidate.name if self.candidate is not None else self._base


class StoredVersions:
    """Each user's layers at any version, read from the store once per layer."""

    def __init__(self, store: Store) -> None:
        self._store = store
        # Per layer: versions ascending, and the layer each left.
        self._layers: dict[LayerKey, tuple[list[int], list[Layer]]] = {}

    async def at(self, company_id: str, user_id: str, version: int) -> LayersInForce:
        if not version:
            return NO_LAYERS
        user = await self._newest(LayerKey(company_id, user_id, USER_LAYER), version)
        adaptive = await self._newest(LayerKey(company_id, user_id, ADAPTIVE), version)
        company = await self._newest(LayerKey(company_id, "", COMPANY_LAYER), version)
        return LayersInForce(user, adaptive, company, version)

    async def _newest(self, key: LayerKey, version: int) -> Layer:
        versions, layers = await self._history(key)
        index = bisect.bisect_right(versions, version)
        return layers[index - 1] if index else EMPTY_LAYER

    async def _history(self, key: LayerKey) -> tuple[list[int], list[Layer]]:
        history = self._layers.get(key)
        if history is None:
            revisions: list[tuple[int, Layer]] = []
            before: int | None = None
            while page := await self._store.list_revisions(key, before, _PAGE):
                revisions += [
                    (r.version, layer_from_stored(r.layer_fields, r.layer_config)) for r in page
                ]
                before = page[-1].version
            revisions.sort(key=lambda revision: revision[0])
            history = self._layers[key] = (
                [version for version, _ in revisions],
                [layer for _, layer in revisions],
            )
        return history
