"""Bearer tokens: verification with pinned algorithms, and development tokens.

Each key is bound to one algorithm when it is loaded: an HS256 shared secret,
an RSA public key (RS256) or a P-256 public key (ES256), or the keys of a JWKS
file (each with its own algorithm, chosen by `kid`). A token's header only
picks among the configured keys; it never chooses how a key is used, so a
public key can never serve as an HMAC secret and `alg: none` has no key.

Required claims: `exp`, `iss`, `aud`, `sub`, plus `company_id` and `tier`
(`FREE`, `PRO`, `ENTERPRISE`); `roles` is optional (a list, `admin` for
company admins). `nbf`, when present, is checked; both with bounded leeway.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tradeflow.common.v1 import tier_pb2
from trading_engine import errors
from trading_engine.tenancy import Caller

HS256: Final = "HS256"
RS256: Final = "RS256"
ES256: Final = "ES256"
_ASYMMETRIC: Final = (RS256, ES256)
# RFC 7518 §3.2: an HS256 key must be at least as long as the hash.
MIN_SECRET_BYTES: Final = 32
MIN_RSA_BITS: Final = 2048
# Marks a token minted by `trading-engine token`; refused in production.
DEVELOPMENT_CLAIM: Final = "development"
REQUIRED_CLAIMS: Final = ("exp", "iss", "aud", "sub")

_TIERS: Final = {
    "FREE": tier_pb2.SUBSCRIPTION_TIER_FREE,
    "PRO": tier_pb2.SUBSCRIPTION_TIER_PRO,
    "ENTERPRISE": tier_pb2.SUBSCRIPTION_TIER_ENTERPRISE,
}


class KeyConfigurationError(ValueError):
    """A configured key cannot be used: wrong type, too weak, or unreadable."""


@dataclasses.dataclass(frozen=True)
class TokenPolicy:
    """What a valid token must say besides its signature."""

    issuer: str
    audience: str
    leeway_seconds: float = 30.0
    accept_development_tokens: bool = True


@dataclasses.dataclass(frozen=True)
class VerificationKeys:
    """The keys tokens may be signed with, each bound to its algorithm."""

    hs256_secret: bytes | None = None
    # (algorithm, public key) from a PEM file.
    public_key: tuple[str, Any] | None = None
    # kid -> key from a JWKS file; each PyJWK carries its algorithm.
    jwks: Mapping[str, jwt.PyJWK] = dataclasses.field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return self.hs256_secret is None and self.public_key is None and not self.jwks

    @property
    def algorithms(self) -> tuple[str, ...]:
        found = {HS256} if self.hs256_secret is not None else set()
        if self.public_key is not None:
            found.add(self.public_key[0])
        found.update(key.algorithm_name for key in self.jwks.values())
        return tuple(sorted(found))


def hs256_secret_from_file(path: Path) -> bytes:
    secret = _read(path).strip()
    if len(secret) < MIN_SECRET_BYTES:
        raise KeyConfigurationError(
            f"{path}: an HS256 secret needs at least {MIN_SECRET_BYTES} bytes, "
            f"this one has {len(secret)}"
        )
    return secret


def public_key_from_file(path: Path) -> tuple[str, Any]:
    """An RSA (RS256, at least 2048 bits) or P-256 (ES256) public key in PEM."""
    try:
        key = serialization.load_pem_public_key(_read(path))
    except ValueError as error:
        raise KeyConfigurationError(f"{path}: not a PEM public key ({error})") from None
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise KeyConfigurationError(
                f"{path}: RSA keys need at least {MIN_RSA_BITS} bits, this one has {key.key_size}"
            )
        return RS256, key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return ES256, key
    raise KeyConfigurationError(f"{path}: only RSA (RS256) and P-256 (ES256) keys are accepted")


def jwks_from_file(path: Path) -> dict[str, jwt.PyJWK]:
    """The public keys of a JWKS file by `kid`; each must be RS256 or ES256."""
    try:
        document = json.loads(_read(path))
        key_set = jwt.PyJWKSet.from_dict(document)
    except (ValueError, jwt.PyJWKSetError, jwt.InvalidKeyError) as error:
        raise KeyConfigurationError(f"{path}: not a usable JWKS document ({error})") from None
    keys: dict[str, jwt.PyJWK] = {}
    for key in key_set.keys:
        if key.algorithm_name not in _ASYMMETRIC:
            raise KeyConfigurationError(
                f"{path}: key {key.key_id!r} is {key.algorithm_name}; only RS256 and ES256 "
                "keys are accepted from a JWKS file"
            )
        if key.key_id is None and len(key_set.keys) > 1:
            raise KeyConfigurationError(f"{path}: with several keys, each needs a 'kid'")
        keys[key.key_id or ""] = key
    return keys


def development_secret(data_dir: Path) -> bytes:
    """The development HS256 secret of this data directory, created on first use."""
    path = data_dir / "dev-jwt-secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        # Created readable by the owner only; O_EXCL so two processes cannot both write it.
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(descriptor, "w") as file:
                file.write(secrets.token_hex(32))
    return hs256_secret_from_file(path)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise KeyConfigurationError(f"cannot read {path}: {error.strerror}") from None


class TokenVerifier:
    """Turns a bearer token into the Caller it names, or refuses it with a reason."""

    def __init__(self, keys: VerificationKeys, policy: TokenPolicy) -> None:
        if keys.empty:
            raise KeyConfigurationError("no key to verify tokens with")
        self._keys = keys
        self._policy = policy

    def verify(self, token: str) -> Caller:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as error:
            raise _refused("TOKEN_MALFORMED", f"the bearer token is not a JWT: {error}") from None
        except jwt.InvalidTokenError as error:
            # A header that decodes but says nonsense: a `kid` that is not a string, a `crit`
            # that is not a list of extensions PyJWT supports.
            raise _refused("TOKEN_MALFORMED", f"the token's header is invalid: {error}") from None
        algorithm, key = self._key_for(header)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self._policy.audience,
                issuer=self._policy.issuer,
                leeway=self._policy.leeway_seconds,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.InvalidTokenError as error:
            raise _explain(error) from None
        return self._caller(claims)

    def _key_for(self, header: Mapping[str, Any]) -> tuple[str, Any]:
        algorithm = header.get("alg")
        keys = self._keys
        if algorithm == HS256 and keys.hs256_secret is not None:
            return HS256, keys.hs256_secret
        if algorithm in _ASYMMETRIC:
            if keys.jwks:
                kid = header.get("kid") or ""
                # Without a kid, only a JWKS holding a single key is unambiguous.
                sole = next(iter(keys.jwks.values())) if len(keys.jwks) == 1 else None
                jwk = keys.jwks.get(kid) if kid else sole
                if jwk is None:
                    raise _refused("TOKEN_KEY_UNKNOWN", f"no key with kid {kid!r} in the JWKS")
                if jwk.algorithm_name == algorithm:
                    return algorithm, jwk
            if keys.public_key is not None and keys.public_key[0] == algorithm:
                return keys.public_key
        raise _refused(
            "TOKEN_ALGORITHM_REFUSED",
            f"tokens signed with {algorithm!r} are not accepted; "
            f"this engine accepts {', '.join(keys.algorithms)}",
        )

    def _caller(self, claims: Mapping[str, Any]) -> Caller:
        if claims.get(DEVELOPMENT_CLAIM) and not self._policy.accept_development_tokens:
            raise _refused(
                "TOKEN_DEVELOPMENT_REFUSED", "development tokens are refused in production"
            )
        user_id = claims["sub"]
        company_id = claims.get("company_id")
        tier = _tier_named(str(claims.get("tier", "")))
        roles = claims.get("roles", [])
        problems = [
            problem
            for problem, bad in (
                ("'sub' must be a non-empty string", not _is_text(user_id)),
                ("'company_id' must be a non-empty string", not _is_text(company_id)),
                ("'tier' must be FREE, PRO or ENTERPRISE", tier is None),
                ("'roles' must be a list of strings", not _is_text_list(roles)),
            )
            if bad
        ]
        if problems:
            raise _refused("TOKEN_CLAIMS_INVALID", "the token's claims: " + "; ".join(problems))
        assert tier is not None
        return Caller(str(user_id), str(company_id), tier, frozenset(roles))


def _is_text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_text_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


_REASONS: Final[tuple[tuple[type[jwt.InvalidTokenError], str, str], ...]] = (
    (jwt.ExpiredSignatureError, "TOKEN_EXPIRED", "the token has expired"),
    (jwt.ImmatureSignatureError, "TOKEN_NOT_YET_VALID", "the token is not valid yet (nbf)"),
    (jwt.InvalidAudienceError, "TOKEN_AUDIENCE_INVALID", "the token is for another audience"),
    (jwt.InvalidIssuerError, "TOKEN_ISSUER_INVALID", "the token comes from another issuer"),
    (jwt.MissingRequiredClaimError, "TOKEN_CLAIMS_INVALID", "the token lacks a required claim"),
    (jwt.InvalidSignatureError, "TOKEN_SIGNATURE_INVALID", "the token's signature is invalid"),
    (jwt.InvalidAlgorithmError, "TOKEN_ALGORITHM_REFUSED", "the token's algorithm is refused"),
    (jwt.DecodeError, "TOKEN_MALFORMED", "the bearer token does not decode"),
)


def _explain(error: jwt.InvalidTokenError) -> errors.Unauthenticated:
    for kind, reason, message in _REASONS:
        if isinstance(error, kind):
            return _refused(reason, f"{message}: {error}")
    return _refused("TOKEN_INVALID", f"the token is invalid: {error}")


def _refused(reason: str, message: str) -> errors.Unauthenticated:
    return errors.Unauthenticated(message, reason=reason)


def mint_development_token(
    secret: bytes,
    policy: TokenPolicy,
    caller: Caller,
    now_s: int,
    lifetime_s: int,
) -> str:
    """An HS256 token for `caller`, marked as a development token."""
    claims: dict[str, Any] = {
        "sub": caller.user_id,
        "company_id": caller.company_id,
        "tier": caller.tier_name,
        "roles": sorted(caller.roles),
        "iss": policy.issuer,
        "aud": policy.audience,
        "iat": now_s,
        "nbf": now_s,
        "exp": now_s + lifetime_s,
        DEVELOPMENT_CLAIM: True,
    }
    return jwt.encode(claims, secret, algorithm=HS256)


def parse_tier(name: str) -> int:
    """A tier from FREE, PRO or ENTERPRISE (any case, with or without the enum prefix)."""
    tier = _tier_named(name)
    if tier is None:
        raise ValueError(f"unknown tier {name!r}: use FREE, PRO or ENTERPRISE")
    return tier


def _tier_named(name: str) -> int | None:
    return _TIERS.get(name.upper().removeprefix("SUBSCRIPTION_TIER_"))


def bearer_token(values: Sequence[str]) -> str:
    """The token of an `authorization: Bearer <token>` header; refused when absent."""
    if not values:
        raise _refused(
            "TOKEN_MISSING",
            "this call needs a bearer token: send the header 'authorization: Bearer <JWT>' "
            "(`trading-engine token --help` mints one for development)",
        )
    scheme, _, token = values[0].strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _refused("TOKEN_MALFORMED", "the authorization header must read 'Bearer <JWT>'")
    return token.strip()
