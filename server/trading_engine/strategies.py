"""Strategy management: who may change which layer, versions, and the strategies the engine applies.

Reads and changes go through the store; the strategies the hot path applies
come from a cache of layers, filled by `prepare` before a caller's batch is
decided and kept current in two ways: a change made here updates the cache at
once, and `follow_changes` polls the store for revisions other engine
instances made (every `poll_interval_s`, so a change reaches every instance
within that interval, not a TTL later).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from tradeflow.trading.v1 import strategy_pb2
from trading_engine import audit, errors, paging
from trading_engine.audit import Actor, AdminAction
from trading_engine.clock import Clock
from trading_engine.core import tiers
from trading_engine.core.strategy import Strategy, from_config
from trading_engine.core.strategy_layers import (
    ADAPTIVE,
    EMPTY_LAYER,
    FIELD_PATHS,
    Layer,
    MergedStrategy,
    apply_update,
    bound_violations,
    defined_values,
    layer_from_stored,
    merge,
    update_paths,
    validate_effective,
    validate_values,
)
from trading_engine.stores.base import (
    COMPANY_LAYER,
    USER_LAYER,
    LayerKey,
    NewRevision,
    Store,
    StrategyRevision,
    VersionConflict,
)
from trading_engine.tenancy import Caller, require_admin, subject_user, tier_name

_log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE: Final = 20
MAX_PAGE_SIZE: Final = 100
_LAYER_NAMES: Final = {USER_LAYER: "USER", COMPANY_LAYER: "COMPANY", ADAPTIVE: "ADAPTIVE"}
# `changed_by` of the adaptive layer's revisions.
ADAPTIVE_ACTOR: Final = "adaptive"
_ADAPTIVE_RULES: Final = Actor(ADAPTIVE_ACTOR)
_TOKEN_KIND: Final = "v1"
# Times a change without expected_version is redone over changes that land meanwhile.
_WRITE_ATTEMPTS: Final = 5


@dataclasses.dataclass(frozen=True)
class CachedLayer:
    """A layer as its newest revision left it; version 0 when it was never changed."""

    layer: Layer
    version: int
    changed_at_ns: int

    @classmethod
    def of(cls, revision: StrategyRevision | None) -> CachedLayer:
        if revision is None:
            return NEVER_CHANGED
        return cls(
            layer_from_stored(revision.layer_fields, revision.layer_config),
            revision.version,
            revision.changed_at_ns,
        )


NEVER_CHANGED: Final = CachedLayer(EMPTY_LAYER, 0, 0)


@dataclasses.dataclass(frozen=True)
class EffectiveStrategy:
    """What the engine applies to one user, and where each value came from."""

    company_id: str
    user_id: str
    tier: int
    merged: MergedStrategy
    user: CachedLayer
    company: CachedLayer
    adaptive: CachedLayer

    @property
    def version(self) -> int:
        return max(self.user.version, self.company.version, self.adaptive.version)

    @property
    def updated_at_ns(self) -> int:
        return max(self.user.changed_at_ns, self.company.changed_at_ns, self.adaptive.changed_at_ns)

    def strategy(self) -> Strategy:
        return from_config(self.merged.config, tiers.policy_for(self.tier), self.version)


@dataclasses.dataclass(frozen=True)
class Change:
    """The outcome of an update or reset: the revision and the subject's strategy after it."""

    revision: StrategyRevision
    strategy: EffectiveStrategy


@dataclasses.dataclass(frozen=True)
class VersionPage:
    revisions: list[StrategyRevision]
    next_page_token: str


class StrategyService:
    def __init__(self, store: Store, clock: Clock, poll_interval_s: float = 0.5) -> None:
        self._store = store
        self._clock = clock
        self._poll_interval_s = poll_interval_s
        self._layers: dict[LayerKey, CachedLayer] = {}
        # The hot path's strategies by (company, user, tier), built from the cached layers.
        self._applied: dict[tuple[str, str, int], Strategy] = {}
        # (company, user) -> tier already recorded in the store by this process.
        self._recorded_tiers: dict[tuple[str, str], int] = {}
        self._seen_version = 0

    # --- The hot path ---------------------------------------------------------------------

    async def prepare(self, company_id: str, user_id: str) -> None:
        """Make `strategy_for` answerable for the user without waiting: load their layers."""
        await self._layer(LayerKey(company_id, user_id, USER_LAYER))
        await self._layer(LayerKey(company_id, user_id, ADAPTIVE))
        await self._layer(LayerKey(company_id, "", COMPANY_LAYER))

    async def remember(self, caller: Caller) -> None:
        """Record the caller's tier, so their company's admins can manage their strategy."""
        user = (caller.company_id, caller.user_id)
        if self._recorded_tiers.get(user) != caller.tier:
            await self._store.record_user(*user, caller.tier, self._clock.now_ns())
            self._recorded_tiers[user] = caller.tier

    def strategy_for(self, caller: Caller) -> Strategy:
        """The strategy in force for the caller; `prepare` must have loaded their layers."""
        key = (caller.company_id, caller.user_id, caller.tier)
        strategy = self._applied.get(key)
        if strategy is not None:
            return strategy
        effective = self._cached_effective(*key)
        if effective is None:
            # Deciding with a guessed strategy could trade against the user's settings.
            raise errors.Unavailable(
                f"the strategy of user {caller.user_id!r} is not loaded yet; retry",
                reason="STRATEGY_NOT_LOADED",
            )
        if effective.merged.clamped:
            _log_clamped(effective)
        strategy = self._applied[key] = effective.strategy()
        return strategy

    def in_force(self) -> int:
        """Distinct user strategies built for the hot path (dropped when their layers change)."""
        return len(self._applied)

    async def start(self) -> None:
        """Begin following changes from now on."""
        self._seen_version = await self._store.latest_version()

    async def follow_changes(self) -> None:
        """Apply other instances' revisions to the cache, until cancelled."""
        while True:
            await asyncio.sleep(self._poll_interval_s)
            try:
                await self.catch_up()
            except errors.EngineError as error:
                _log.warning("cannot read strategy changes: %s", error.message)

    async def catch_up(self) -> None:
        """Apply every revision stored since the last one seen."""
        for revision in await self._store.revisions_since(self._seen_version):
            self._cache(revision.key, CachedLayer.of(revision))
            self._seen_version = max(self._seen_version, revision.version)

    # --- Operations -----------------------------------------------------------------------

    async def get(self, caller: Caller, user_id: str) -> EffectiveStrategy:
        await self.remember(caller)
        subject = subject_user(caller, user_id)
        return await self._effective(
            caller.company_id, subject, await self.tier_of(caller, subject)
        )

    async def update(
        self,
        caller: Caller,
        layer: int,
        user_id: str,
        values: strategy_pb2.StrategyConfig,
        mask: Sequence[str],
        expected_version: int | None,
        request_id: str,
        reason: str,
    ) -> Change:
        """Change `layer` by the fields of `values` that `mask` names, or that are present.

        `expected_version` None: no check; otherwise the layer's current revision
        (0: it has none yet), FAILED_PRECONDITION when it is at another one.
        """
        if layer not in (USER_LAYER, COMPANY_LAYER):
            raise errors.InvalidArgument(
                "the adaptive layer changes only by itself; reset it to undo its adjustments"
                if layer == ADAPTIVE
                else "layer must be STRATEGY_LAYER_USER or STRATEGY_LAYER_COMPANY",
                (errors.FieldViolation("layer", "must be USER or COMPANY"),),
            )
        key, tier = await self._writable(caller, layer, user_id)
        paths, violations = update_paths(values, mask)
        policy = tiers.policy_for(tier) if layer == USER_LAYER else None
        violations += validate_values(values, paths, policy)
        if violations:
            raise errors.invalid("the strategy update is invalid", violations)
        changes = apply_update(EMPTY_LAYER, values, paths)

        async def write(current: CachedLayer, based_on: int) -> Change:
            layer = apply_update(current.layer, values, paths)
            return await self._commit(
                Actor.of(caller),
                key,
                tier,
                based_on,
                current.layer,
                layer,
                paths,
                changes,
                request_id,
                reason,
                "strategy.update",
            )

        return await self._write(key, expected_version, write)

    async def reset(
        self,
        caller: Caller,
        layer: int,
        user_id: str,
        to_version: int | None,
        expected_version: int | None,
        request_id: str,
        reason: str,
    ) -> Change:
        """Restore `layer` to revision `to_version`, or clear it with 0 (None is refused:
        a reset must say what to restore); `expected_version` as in `update`."""
        if to_version is None:
            raise errors.InvalidArgument(
                "a reset must say what to restore: to_version is required",
                (
                    errors.FieldViolation(
                        "to_version", "required: the revision to restore, or 0 to clear the layer"
                    ),
                ),
            )
        if to_version < 0:
            raise errors.InvalidArgument(
                "to_version must be 0 (clear the layer) or an earlier revision",
                (errors.FieldViolation("to_version", "must be >= 0"),),
            )
        key, tier = await self._writable(caller, layer, user_id)
        target = EMPTY_LAYER
        if to_version:
            revision = await self._store.revision(key, to_version)
            if revision is None:
                raise errors.NotFound(
                    f"the {_LAYER_NAMES[key.layer]} layer has no revision {to_version}",
                    reason="REVISION_NOT_FOUND",
                )
            target = CachedLayer.of(revision).layer

        async def write(current: CachedLayer, based_on: int) -> Change:
            changed = tuple(
                path for path in FIELD_PATHS if _value(current.layer, path) != _value(target, path)
            )
            changes = apply_update(EMPTY_LAYER, target.config, changed)
            return await self._commit(
                Actor.of(caller),
                key,
                tier,
                based_on,
                current.layer,
                target,
                changed,
                changes,
                request_id,
                reason,
                "strategy.reset",
            )

        return await self._write(key, expected_version, write)

    async def list_versions(
        self, caller: Caller, layer: int, user_id: str, page_size: int, page_token: str
    ) -> VersionPage:
        await self.remember(caller)
        key = self._readable_key(caller, layer, user_id)
        if not 0 <= page_size <= MAX_PAGE_SIZE:
            raise errors.InvalidArgument(
                f"page_size must be in [1, {MAX_PAGE_SIZE}], or 0 for {DEFAULT_PAGE_SIZE}",
                (errors.FieldViolation("page_size", f"must be in [0, {MAX_PAGE_SIZE}]"),),
            )
        limit = page_size or DEFAULT_PAGE_SIZE
        before = _read_page_token(page_token)
        revisions = await self._store.list_revisions(key, before, limit + 1)
        more = len(revisions) > limit
        revisions = revisions[:limit]
        token = paging.page_token(_TOKEN_KIND, revisions[-1].version) if more else ""
        return VersionPage(revisions, token)

    async def effective_for(self, company_id: str, user_id: str) -> EffectiveStrategy | None:
        """A user's strategy as the engine applies it; None for a user never seen."""
        tier = await self._store.user_tier(company_id, user_id)
        if tier is None:
            return None
        return await self._effective(company_id, user_id, tier)

    async def adapt(
        self,
        effective: EffectiveStrategy,
        values: strategy_pb2.StrategyConfig,
        paths: Sequence[str],
        reason: str,
    ) -> Change:
        """Store an adaptive adjustment of `effective`'s user as a new adaptive revision."""
        key = LayerKey(effective.company_id, effective.user_id, ADAPTIVE)
        current = await self._fresh_layer(key)
        changes = apply_update(EMPTY_LAYER, values, paths)
        layer = apply_update(current.layer, values, paths)
        # Two reviews of the same evidence make one revision.
        request_id = f"adaptive:{current.version}"
        try:
            return await self._commit(
                _ADAPTIVE_RULES,
                key,
                effective.tier,
                current.version,
                current.layer,
                layer,
                paths,
                changes,
                request_id,
                reason,
                "strategy.adapt",
            )
        except VersionConflict as conflict:
            raise _conflict(conflict) from None

    # --- Inside -----------------------------------------------------------------------------

    async def _write(
        self,
        key: LayerKey,
        expected_version: int | None,
        write: Callable[[CachedLayer, int], Awaitable[Change]],
    ) -> Change:
        """`write` over the layer as stored now, checked against `expected_version`.

        Without one the caller asked for no check, but the write is still checked
        against the revision it was based on, and done again over a change that
        landed in between: a layer is stored whole, so writing over a stale one
        would undo that change unsaid.
        """
        conflict = None
        for _ in range(_WRITE_ATTEMPTS):
            current = await self._fresh_layer(key)
            based_on = current.version if expected_version is None else expected_version
            try:
                return await write(current, based_on)
            except VersionConflict as raised:
                if expected_version is not None:
                    raise _conflict(raised) from None
                conflict = raised
        assert conflict is not None
        raise _conflict(conflict)

    async def _writable(self, caller: Caller, layer: int, user_id: str) -> tuple[LayerKey, int]:
        """The layer a change may go to, and the tier that bounds it: the user's for their
        layers, the admin's own for the company's (its users' tiers are held by the merge)."""
        await self.remember(caller)
        if layer == COMPANY_LAYER:
            require_admin(caller, "changing the company's strategy overrides")
            return LayerKey(caller.company_id, "", COMPANY_LAYER), caller.tier
        key = self._readable_key(caller, layer, user_id)
        return key, await self.tier_of(caller, key.user_id)

    def _readable_key(self, caller: Caller, layer: int, user_id: str) -> LayerKey:
        if layer == COMPANY_LAYER:
            # Every user of the company may read the overrides that apply to them.
            return LayerKey(caller.company_id, "", COMPANY_LAYER)
        if layer not in (USER_LAYER, ADAPTIVE):
            raise errors.InvalidArgument(
                "layer must be STRATEGY_LAYER_USER, STRATEGY_LAYER_ADAPTIVE or "
                "STRATEGY_LAYER_COMPANY",
                (errors.FieldViolation("layer", "must be USER, ADAPTIVE or COMPANY"),),
            )
        return LayerKey(caller.company_id, subject_user(caller, user_id), layer)

    async def tier_of(self, caller: Caller, user_id: str) -> int:
        """The tier of a user of the caller's company; NOT_FOUND for a user never seen."""
        if user_id == caller.user_id:
            return caller.tier
        tier = await self._store.user_tier(caller.company_id, user_id)
        if tier is None:
            raise errors.NotFound(
                f"user {user_id!r} of company {caller.company_id!r} has not used the engine "
                "yet, so their tier is unknown",
                reason="USER_NOT_FOUND",
            )
        return tier

    async def _commit(
        self,
        actor: Actor,
        key: LayerKey,
        tier: int,
        expected_version: int,
        before: Layer,
        layer: Layer,
        changed: Sequence[str],
        changes: Layer,
        request_id: str,
        reason: str,
        action: str,
    ) -> Change:
        await self._check_layer(key, tier, layer, changed)
        layer_fields, layer_config = layer.stored()
        # A VersionConflict goes to the caller, which knows whether to redo the change.
        appended = await self._store.append_revision(
            NewRevision(
                key=key,
                expected_version=expected_version,
                changed_by=actor.user_id,
                changed_at_ns=self._clock.now_ns(),
                changed_fields=tuple(changed),
                changes=changes.stored()[1],
                layer_fields=layer_fields,
                layer_config=layer_config,
                reason=reason,
                request_id=request_id,
            )
        )
        revision = appended.revision
        if appended.replayed and revision.key != key:
            # Request ids are unique per company: answering with that revision would show
            # another layer (perhaps another user's) and drop this change unsaid.
            raise errors.FailedPrecondition(
                f"request_id {request_id!r} was already used for another strategy layer of the "
                "company; send this change with a new request_id",
                reason="REQUEST_ID_REUSED",
            )
        if not appended.replayed:
            self._cache(key, CachedLayer.of(revision))
            await audit.record(
                self._store,
                AdminAction(
                    company_id=key.company_id,
                    actor=actor,
                    action=action,
                    scope=f"{_LAYER_NAMES[key.layer]} layer",
                    subject_user_id=key.user_id,
                    at_ns=revision.changed_at_ns,
                    reason=reason,
                    old=defined_values(before, changed),
                    new=defined_values(layer, changed),
                    detail={
                        "layer": _LAYER_NAMES[key.layer],
                        "version": revision.version,
                        "fields": list(revision.changed_fields),
                        "reason": reason,
                    },
                ),
            )
        # A company layer's change is shown as the strategy of the admin who made it.
        subject = key.user_id or actor.user_id
        strategy = await self._effective(key.company_id, subject, tier)
        return Change(revision, strategy)

    async def _check_layer(
        self, key: LayerKey, tier: int, layer: Layer, changed: Sequence[str]
    ) -> None:
        """Refuse a layer that would leave some strategy self-contradictory, or whose
        `changed` paths go past the bounds of `tier` where they apply.

        Only the paths a change sets are held to the bounds: a value stored earlier
        past them (before a downgrade, say) is clamped by the merge, and must not
        block a change to another field. The adaptive layer is only clamped: its
        rules never lower the confidence floor below the tier's (core/adaptive.py).
        """
        policy = tiers.policy_for(tier)
        if key.layer != COMPANY_LAYER:
            company = await self._layer(LayerKey(key.company_id, "", COMPANY_LAYER))
            other = await self._layer(
                LayerKey(
                    key.company_id, key.user_id, ADAPTIVE if key.layer == USER_LAYER else USER_LAYER
                )
            )
            user, adaptive = (
                (layer, other.layer) if key.layer == USER_LAYER else (other.layer, layer)
            )
            subject = merge(policy, user, company.layer, adaptive)
            merged = [subject]
        else:
            # The company's users have their own layers and tiers; check it against each
            # tier's defaults, which is what users without customisations get. Its bounds
            # are the admin's tier's: each user's own tier then holds it in the merge.
            subject = merge(policy, EMPTY_LAYER, layer)
            merged = [merge(other, EMPTY_LAYER, layer) for other in tiers.POLICIES]
        for candidate in merged:
            violations = validate_effective(candidate.config)
            if violations:
                raise errors.invalid("the change would contradict other settings", violations)
        if key.layer == ADAPTIVE or policy.bounds_lifted(subject.config):
            return
        set_now = [path for path in changed if path in layer.fields]
        violations = bound_violations(layer.config, set_now, policy)
        if violations:
            raise errors.invalid(
                f"the change would loosen the bounds of the {tier_name(tier)} tier", violations
            )

    async def _effective(self, company_id: str, user_id: str, tier: int) -> EffectiveStrategy:
        await self.prepare(company_id, user_id)
        effective = self._cached_effective(company_id, user_id, tier)
        assert effective is not None  # prepare loaded both layers
        return effective

    def _cached_effective(
        self, company_id: str, user_id: str, tier: int
    ) -> EffectiveStrategy | None:
        """The user's strategy from the cached layers; None while they are not loaded."""
        user = self._layers.get(LayerKey(company_id, user_id, USER_LAYER))
        adaptive = self._layers.get(LayerKey(company_id, user_id, ADAPTIVE))
        company = self._layers.get(LayerKey(company_id, "", COMPANY_LAYER))
        if user is None or adaptive is None or company is None:
            return None
        merged = merge(tiers.policy_for(tier), user.layer, company.layer, adaptive.layer)
        return EffectiveStrategy(company_id, user_id, tier, merged, user, company, adaptive)

    async def _layer(self, key: LayerKey) -> CachedLayer:
        """The layer as cached, loaded on first use."""
        if key not in self._layers:
            await self._fresh_layer(key)
        return self._layers[key]

    async def _fresh_layer(self, key: LayerKey) -> CachedLayer:
        """The layer as the store has it now; a change is based on this, never on the cache."""
        self._cache(key, CachedLayer.of(await self._store.current_revision(key)))
        return self._layers[key]

    def _cache(self, key: LayerKey, layer: CachedLayer) -> None:
        """Keep the newer of the cached and the given layer, and drop what it invalidates."""
        cached = self._layers.get(key)
        if cached is not None and (cached.version > layer.version or cached == layer):
            return
        self._layers[key] = layer
        if cached is None:
            # No strategy was built from a layer not loaded before: nothing to drop. (Scanning
            # here made a cold start with many users quadratic.)
            return
        # A company layer changes every user's strategy in the company; a user layer, one.
        stale = [
            applied
            for applied in self._applied
            if applied[0] == key.company_id and (not key.user_id or applied[1] == key.user_id)
        ]
        for applied in stale:
            del self._applied[applied]


def _log_clamped(effective: EffectiveStrategy) -> None:
    policy = tiers.policy_for(effective.tier)
    clamped = ", ".join(
        f"{path} {asked:g} -> {policy.bound(path):g}"
        for path, asked in effective.merged.clamped.items()
    )
    _log.warning(
        "the strategy of user %s of company %s sets values past the bounds of the %s tier; "
        "the bounds apply: %s",
        effective.user_id,
        effective.company_id,
        tier_name(effective.tier),
        clamped,
    )


def _value(layer: Layer, path: str) -> object:
    """The value a layer gives a path, or None when it leaves the path to the layers below."""
    if path not in layer.fields:
        return None
    name, _, flag = path.partition(".")
    value = getattr(layer.config, name)
    if flag:
        return getattr(value, flag)
    if name == "available_instruments":
        return tuple(value)
    if hasattr(value, "SerializeToString"):
        return value.SerializeToString(deterministic=True)
    return value


def _conflict(conflict: VersionConflict) -> errors.FailedPrecondition:
    return errors.FailedPrecondition(
        f"the strategy layer changed meanwhile: expected_version was {conflict.expected}, "
        f"the layer is at revision {conflict.current}; read it again and retry",
        reason="VERSION_CONFLICT",
    )


def _read_page_token(token: str) -> int | None:
    if not token:
        return None
    return int(paging.read_page_token(token, _TOKEN_KIND, parts=1, numbers=1)[0])
