"""Token verification with real keys: every way a token can be wrong is refused with its reason."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeflow.common.v1 import tier_pb2
from trading_engine import errors
from trading_engine.auth.tokens import (
    KeyConfigurationError,
    TokenPolicy,
    TokenVerifier,
    VerificationKeys,
    bearer_token,
    development_secret,
    hs256_secret_from_file,
    jwks_from_file,
    mint_development_token,
    public_key_from_file,
)
from trading_engine.tenancy import Caller

SECRET = b"s" * 32
POLICY = TokenPolicy(issuer="tradeflow", audience="trading-engine", leeway_seconds=30)
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "sub": "trader-1",
        "company_id": "acme",
        "tier": "PRO",
        "roles": ["admin"],
        "iss": "tradeflow",
        "aud": "trading-engine",
        "exp": now + 300,
    }
    values.update(overrides)
    return {key: value for key, value in values.items() if value is not None}


def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def hs256_verifier(policy: TokenPolicy = POLICY) -> TokenVerifier:
    return TokenVerifier(VerificationKeys(hs256_secret=SECRET), policy)


def refusal(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(errors.Unauthenticated) as raised:
        verifier.verify(token)
    return raised.value.reason


def test_a_valid_token_names_the_caller() -> None:
    caller = hs256_verifier().verify(jwt.encode(claims(), SECRET, algorithm="HS256"))
    assert caller == Caller(
        "trader-1", "acme", tier_pb2.SUBSCRIPTION_TIER_PRO, frozenset({"admin"})
    )
    assert caller.is_admin


@pytest.mark.parametrize(
    ("token_claims", "reason"),
    [
        pytest.param(claims(exp=int(time.time()) - 120), "TOKEN_EXPIRED", id="expired"),
        pytest.param(claims(nbf=int(time.time()) + 600), "TOKEN_NOT_YET_VALID", id="not-yet"),
        pytest.param(claims(aud="other-service"), "TOKEN_AUDIENCE_INVALID", id="other-audience"),
        pytest.param(claims(iss="someone-else"), "TOKEN_ISSUER_INVALID", id="other-issuer"),
        pytest.param(claims(exp=None), "TOKEN_CLAIMS_INVALID", id="no-exp"),
        pytest.param(claims(aud=None), "TOKEN_CLAIMS_INVALID", id="no-aud"),
        pytest.param(claims(iss=None), "TOKEN_CLAIMS_INVALID", id="no-iss"),
        pytest.param(claims(sub=None), "TOKEN_CLAIMS_INVALID", id="no-sub"),
        pytest.param(claims(company_id=None), "TOKEN_CLAIMS_INVALID", id="no-company"),
        pytest.param(claims(company_id=""), "TOKEN_CLAIMS_INVALID", id="empty-company"),
        pytest.param(claims(tier="GOLD"), "TOKEN_CLAIMS_INVALID", id="unknown-tier"),
        pytest.param(claims(roles="admin"), "TOKEN_CLAIMS_INVALID", id="roles-not-a-list"),
    ],
)
def test_bad_claims_are_refused_with_their_reason(
    token_claims: dict[str, Any], reason: str
) -> None:
    token = jwt.encode(token_claims, SECRET, algorithm="HS256")
    assert refusal(hs256_verifier(), token) == reason


def test_expiry_within_the_leeway_is_accepted() -> None:
    token = jwt.encode(claims(exp=int(time.time()) - 10), SECRET, algorithm="HS256")
    assert hs256_verifier().verify(token).user_id == "trader-1"


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = jwt.encode(claims(), b"x" * 32, algorithm="HS256")
    assert refusal(hs256_verifier(), token) == "TOKEN_SIGNATURE_INVALID"


def test_alg_none_is_refused() -> None:
    token = jwt.encode(claims(), "", algorithm="none")
    assert refusal(hs256_verifier(), token) == "TOKEN_ALGORITHM_REFUSED"


def test_a_tampered_payload_is_refused() -> None:
    header, _, signature = jwt.encode(claims(), SECRET, algorithm="HS256").split(".")
    forged = jwt.utils.base64url_encode(json.dumps(claims(company_id="rival")).encode()).decode()
    assert refusal(hs256_verifier(), f"{header}.{forged}.{signature}") == "TOKEN_SIGNATURE_INVALID"


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b", "a.b.c"])
def test_garbage_is_refused_as_malformed(token: str) -> None:
    assert refusal(hs256_verifier(), token) == "TOKEN_MALFORMED"


def test_rs256_and_es256_tokens_verify_against_their_public_keys(tmp_path: Path) -> None:
    for key, algorithm in ((RSA_KEY, "RS256"), (EC_KEY, "ES256")):
        path = tmp_path / f"{algorithm}.pem"
        path.write_bytes(pem(key))
        verifier = TokenVerifier(VerificationKeys(public_key=public_key_from_file(path)), POLICY)
        assert verifier.verify(jwt.encode(claims(), key, algorithm=algorithm)).company_id == "acme"


def test_the_public_key_cannot_serve_as_an_hmac_secret(tmp_path: Path) -> None:
    # The classic algorithm confusion: sign HS256 with the PEM text of the RS256 public key.
    path = tmp_path / "rsa.pem"
    path.write_bytes(pem(RSA_KEY))
    verifier = TokenVerifier(VerificationKeys(public_key=public_key_from_file(path)), POLICY)
    header = jwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT"}')
    payload = jwt.utils.base64url_encode(json.dumps(claims()).encode())
    signing_input = header + b"." + payload
    signature = jwt.utils.base64url_encode(
        hmac.new(pem(RSA_KEY), signing_input, hashlib.sha256).digest()
    )
    assert refusal(verifier, (signing_input + b"." + signature).decode()) == (
        "TOKEN_ALGORITHM_REFUSED"
    )


def test_an_rs256_header_on_an_es256_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ec.pem"
    path.write_bytes(pem(EC_KEY))
    verifier = TokenVerifier(VerificationKeys(public_key=public_key_from_file(path)), POLICY)
    token = jwt.encode(claims(), RSA_KEY, algorithm="RS256")
    assert refusal(verifier, token) == "TOKEN_ALGORITHM_REFUSED"


def test_jwks_keys_are_chosen_by_kid(tmp_path: Path) -> None:
    rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY.public_key()))
    ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(EC_KEY.public_key()))
    keys = [{**rsa_jwk, "kid": "r1", "alg": "RS256"}, {**ec_jwk, "kid": "e1", "alg": "ES256"}]
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": keys}))
    verifier = TokenVerifier(VerificationKeys(jwks=jwks_from_file(path)), POLICY)

    rs = jwt.encode(claims(), RSA_KEY, algorithm="RS256", headers={"kid": "r1"})
    es = jwt.encode(claims(sub="trader-2"), EC_KEY, algorithm="ES256", headers={"kid": "e1"})
    assert verifier.verify(rs).user_id == "trader-1"
    assert verifier.verify(es).user_id == "trader-2"
    # The right key under another key's kid, an unknown kid, and no kid among two keys.
    swapped = jwt.encode(claims(), RSA_KEY, algorithm="RS256", headers={"kid": "e1"})
    assert refusal(verifier, swapped) == "TOKEN_ALGORITHM_REFUSED"
    unknown = jwt.encode(claims(), RSA_KEY, algorithm="RS256", headers={"kid": "zz"})
    assert refusal(verifier, unknown) == "TOKEN_KEY_UNKNOWN"
    assert refusal(verifier, jwt.encode(claims(), RSA_KEY, algorithm="RS256")) == (
        "TOKEN_KEY_UNKNOWN"
    )


# Any JSON value at all, as a forger may put it in a header or a claim.
_JSON = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False),
        st.sampled_from(["HS256", "RS256", "r1", "b64", "exp", "trading-engine", "tradeflow"]),
        st.text(max_size=5),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=6,
)
_HEADER_NAMES = ["alg", "kid", "crit", "typ", "b64", "cty", "jku", "x5c"]
_CLAIM_NAMES = ["sub", "company_id", "tier", "roles", "iss", "aud", "exp", "nbf", "iat", "jti"]


def _hand_signed(header: dict[str, Any], payload: object) -> str:
    encode = jwt.utils.base64url_encode
    signing_input = (
        encode(json.dumps(header).encode()) + b"." + encode(json.dumps(payload).encode())
    )
    signature = hmac.new(SECRET, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + encode(signature)).decode()


@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(
    st.dictionaries(st.sampled_from(_HEADER_NAMES), _JSON, max_size=3),
    st.one_of(st.dictionaries(st.sampled_from(_CLAIM_NAMES), _JSON, max_size=4), _JSON),
)
def test_a_signed_token_with_any_header_and_claims_is_a_caller_or_a_refusal(
    header: dict[str, Any], changed: object
) -> None:
    """Properly signed, so only the header and claims can go wrong: never an exception."""
    rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY.public_key()))
    keys = VerificationKeys(
        hs256_secret=SECRET, jwks={"r1": jwt.PyJWK.from_dict({**rsa_jwk, "alg": "RS256"})}
    )
    payload = {**claims(), **changed} if isinstance(changed, dict) else changed
    token = _hand_signed({"alg": "HS256", **header}, payload)
    try:
        outcome: Caller | errors.Unauthenticated = TokenVerifier(keys, POLICY).verify(token)
    except errors.Unauthenticated as refused:
        outcome = refused
    if isinstance(outcome, Caller):
        assert outcome.company_id
        assert outcome.user_id
    else:
        assert outcome.reason.startswith("TOKEN_")


def test_development_tokens_are_refused_in_production() -> None:
    caller = Caller("trader-1", "acme", tier_pb2.SUBSCRIPTION_TIER_FREE)
    token = mint_development_token(SECRET, POLICY, caller, int(time.time()), 60)
    assert hs256_verifier().verify(token) == caller
    production = TokenPolicy("tradeflow", "trading-engine", accept_development_tokens=False)
    assert refusal(hs256_verifier(production), token) == "TOKEN_DEVELOPMENT_REFUSED"


def test_a_short_hs256_secret_is_refused_at_start(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(b"short")
    with pytest.raises(KeyConfigurationError, match="at least 32 bytes"):
        hs256_secret_from_file(path)


def test_small_rsa_keys_and_other_curves_are_refused(tmp_path: Path) -> None:
    small = tmp_path / "small.pem"
    small.write_bytes(pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)))
    with pytest.raises(KeyConfigurationError, match="at least 2048 bits"):
        public_key_from_file(small)
    curve = tmp_path / "p384.pem"
    curve.write_bytes(pem(ec.generate_private_key(ec.SECP384R1())))
    with pytest.raises(KeyConfigurationError, match="only RSA"):
        public_key_from_file(curve)
    with pytest.raises(KeyConfigurationError, match="cannot read"):
        public_key_from_file(tmp_path / "missing.pem")


def test_the_development_secret_is_created_once_and_private(tmp_path: Path) -> None:
    first = development_secret(tmp_path / "data")
    assert development_secret(tmp_path / "data") == first
    assert len(first) >= 32
    assert (tmp_path / "data" / "dev-jwt-secret").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        pytest.param([], "TOKEN_MISSING", id="absent"),
        pytest.param(["Basic dXNlcjpwYXNz"], "TOKEN_MALFORMED", id="basic"),
        pytest.param(["Bearer "], "TOKEN_MALFORMED", id="empty"),
    ],
)
def test_the_authorization_header_must_carry_a_bearer_token(values: list[str], reason: str) -> None:
    with pytest.raises(errors.Unauthenticated) as raised:
        bearer_token(values)
    assert raised.value.reason == reason
    assert bearer_token(["bearer abc.def.ghi"]) == "abc.def.ghi"
