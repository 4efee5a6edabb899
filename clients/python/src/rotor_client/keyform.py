"""The one place that knows what rotor's key material looks like as text.

Everything else (env files, keyring files, JWKS) hands its text here, so a change of the
rendered form is a change in this file only.

Forms read:

* **rotor's key material** (what ``{{ jwt-secret.current }}`` renders today, and each entry
  of ``rotor keyring NAME --reveal``): ``{"kid": "...", "alg": "HS256", "k": "<base64url>"}``
  for HMAC; asymmetric entries carry ``public_jwk`` and, for signers, ``private_pkcs8``
  (base64url PKCS#8 DER).
* **a plain string** (the seed's ``SECRET_KEY``): its UTF-8 bytes are the HMAC key, as
  PyJWT uses a ``str`` key. Such a key has no kid: tokens are matched by trying current,
  then previous, as the seed's module did.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.serialization import load_der_private_key

from .errors import KeyFormError

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC_ALGORITHMS = frozenset({"ES256", "EdDSA", "RS256"})


@dataclass(frozen=True)
class Key:
    """One verification (and maybe signing) key.

    `verify` is the HMAC secret (bytes) or a public key object; `sign` is the HMAC secret or
    the private key, present only where this process may sign. Never printed.
    """

    kid: str | None
    alg: str
    stage: str
    verify: Any = field(repr=False)
    sign: Any = field(default=None, repr=False)
    not_after: float | None = None

    def valid_at(self, now: float) -> bool:
        return self.not_after is None or now <= self.not_after


def _b64url(text: str, what: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise KeyFormError(f"{what} is not base64url") from None


def parse_material(obj: dict[str, Any], *, stage: str, what: str) -> Key:
    """A key from rotor's material object (a keyring entry or a rendered JWT value)."""
    alg = obj.get("alg")
    kid = obj.get("kid")
    if not isinstance(alg, str) or alg not in HMAC_ALGORITHMS | ASYMMETRIC_ALGORITHMS:
        raise KeyFormError(
            f"{what}: unknown or missing \"alg\" {alg!r}; rotor writes one of "
            f"{sorted(HMAC_ALGORITHMS | ASYMMETRIC_ALGORITHMS)}"
        )
    if kid is not None and not isinstance(kid, str):
        raise KeyFormError(f"{what}: \"kid\" must be a string")
    if alg in HMAC_ALGORITHMS:
        k = obj.get("k")
        if not isinstance(k, str) or not k:
            raise KeyFormError(f"{what}: an {alg} key needs \"k\" (the base64url secret)")
        secret = _b64url(k, f"{what}: \"k\"")
        return Key(kid=kid, alg=alg, stage=stage, verify=secret, sign=secret)
    public = obj.get("public_jwk")
    private = obj.get("private_pkcs8")
    sign = None
    if isinstance(private, str) and private:
        try:
            sign = load_der_private_key(_b64url(private, f"{what}: \"private_pkcs8\""), None)
        except ValueError:
            raise KeyFormError(f"{what}: \"private_pkcs8\" is not a PKCS#8 private key") from None
    if isinstance(public, dict):
        verify = parse_jwk(public, what=what).verify
    elif sign is not None:
        verify = sign.public_key()
    else:
        raise KeyFormError(f"{what}: an {alg} key needs \"public_jwk\" or \"private_pkcs8\"")
    return Key(kid=kid, alg=alg, stage=stage, verify=verify, sign=sign)


def parse_jwk(jwk: dict[str, Any], *, what: str, stage: str = "published") -> Key:
    """A public key from a JWK (RFC 7517) as rotor publishes it (`kid` and `alg` set)."""
    alg = jwk.get("alg")
    if alg not in ASYMMETRIC_ALGORITHMS:
        raise KeyFormError(f"{what}: JWK with unsupported \"alg\" {alg!r}")
    if any(m in jwk for m in ("d", "p", "q", "k")):
        raise KeyFormError(f"{what}: a JWK with private members; a JWKS holds public keys only")
    try:
        verify = jwt.PyJWK(jwk, algorithm=alg).key
    except jwt.PyJWKError as e:
        raise KeyFormError(f"{what}: cannot read JWK {jwk.get('kid')!r}: {e}") from None
    return Key(kid=jwk.get("kid"), alg=alg, stage=stage, verify=verify)


def parse_hmac_value(text: str, *, stage: str, what: str, alg: str = "HS256") -> Key | None:
    """A rendered JWT key value (an env variable): rotor's material JSON or a plain string.

    Returns ``None`` for the empty string (rotor renders a stage no version holds, such as
    ``previous`` after retire, as empty).
    """
    text = text.strip()
    if not text:
        return None
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            raise KeyFormError(f"{what}: starts with '{{' but is not JSON key material") from None
        if not isinstance(obj, dict):
            raise KeyFormError(f"{what}: key material must be a JSON object")
        return parse_material(obj, stage=stage, what=what)
    secret = text.encode("utf-8")
    return Key(kid=None, alg=alg, stage=stage, verify=secret, sign=secret)
