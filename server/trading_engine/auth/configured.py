"""The verifier and signing secret the engine's settings describe.

In development, tokens may also be signed with a secret kept in the data
directory (created on first use), which `trading-engine token` signs with; in
production that secret is never read, development tokens are refused and at
least one key must be configured.
"""

from __future__ import annotations

from pathlib import Path

from trading_engine.auth.tokens import (
    KeyConfigurationError,
    TokenPolicy,
    TokenVerifier,
    VerificationKeys,
    development_secret,
    hs256_secret_from_file,
    jwks_from_file,
    public_key_from_file,
)
from trading_engine.config import EngineSettings


def token_policy(settings: EngineSettings) -> TokenPolicy:
    return TokenPolicy(
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
        leeway_seconds=settings.auth_leeway_seconds,
        accept_development_tokens=not settings.production,
    )


def token_verifier(settings: EngineSettings) -> TokenVerifier:
    keys = VerificationKeys(
        hs256_secret=_hs256_secret(settings),
        public_key=(
            public_key_from_file(Path(settings.auth_public_key_file))
            if settings.auth_public_key_file
            else None
        ),
        jwks=jwks_from_file(Path(settings.auth_jwks_file)) if settings.auth_jwks_file else {},
    )
    if keys.empty:
        raise KeyConfigurationError(
            "production needs a key to verify tokens: set --auth-hs256-secret-file, "
            "--auth-public-key-file or --auth-jwks-file"
        )
    return TokenVerifier(keys, token_policy(settings))


def signing_secret(settings: EngineSettings) -> bytes:
    """The HS256 secret development tokens are signed with; refused in production."""
    if settings.production:
        raise KeyConfigurationError(
            "development tokens are refused in production: get a token from your identity provider"
        )
    secret = _hs256_secret(settings)
    assert secret is not None  # development always has one
    return secret


def _hs256_secret(settings: EngineSettings) -> bytes | None:
    if settings.auth_hs256_secret_file:
        return hs256_secret_from_file(Path(settings.auth_hs256_secret_file))
    if settings.production:
        return None
    return development_secret(Path(settings.data_dir))
