"""JWT sign and verify across rotations: drop-ins for the seed's ``encode_access`` and
``decode_access`` (backend/app/infra/jwt.py in the policy).

What changes against the seed's module:

* a token is verified with the key its header ``kid`` names, with that key's algorithm
  pinned (the header ``alg`` is compared, never trusted); tokens without a kid (issued by the
  seed's module, or keys rendered as plain strings) are tried against current, then previous;
* the previous key verifies only while rotor keeps it (grace): after retire it is gone from
  the rendered file (or past its ``not_after`` in a keyring), and its tokens are rejected;
* keys are re-read when the file changes, and a JWKS is fetched again on an unknown kid;
* ``encode_access`` does not modify the caller's payload (the seed wrote ``kid`` into it).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jwt

from .errors import KeyFormError
from .keyform import Key
from .keys import EnvFileKeys, EnvironKeys, JwksKeys, KeyringFileKeys, KeySource


class TokenCodec:
    """Signs with the current key of the first source that has one; verifies with all."""

    def __init__(self, *sources: KeySource) -> None:
        if not sources:
            raise ValueError("TokenCodec needs at least one key source")
        self.sources: Sequence[KeySource] = sources

    def _all(self) -> list[Key]:
        return [k for s in self.sources for k in s.keys()]

    def signing_key(self) -> Key:
        for k in self._all():
            if k.stage == "current" and k.sign is not None:
                return k
        raise KeyFormError(
            "no current key that can sign: a JWKS verifies only; give a keyring file or the "
            "rendered env file of the signer"
        )

    def encode(self, payload: Mapping[str, Any], *, headers: Mapping[str, Any] | None = None) -> str:
        key = self.signing_key()
        h = dict(headers or {})
        if key.kid is not None:
            h["kid"] = key.kid
        return jwt.encode(dict(payload), key.sign, algorithm=key.alg, headers=h or None)

    def _candidates(self, kid: str | None, alg: str | None, now: float) -> list[Key]:
        keys = [k for k in self._all() if k.valid_at(now)]
        if kid is not None:
            named = [k for k in keys if k.kid == kid]
            if named:
                if all(k.alg != alg for k in named):
                    # The algorithm is pinned to the key: a token naming this key with another
                    # alg (alg confusion, "none") is refused, not tried.
                    raise jwt.InvalidAlgorithmError(
                        f"the token says alg {alg!r} but key {kid!r} is {named[0].alg}"
                    )
                return [k for k in named if k.alg == alg]
        # No kid, or a kid none of our keys has while some have none (plain-string keys):
        # try the kid-less keys, current first, as the seed's module did.
        order = {"current": 0, "previous": 1, "pending": 2}
        plain = [k for k in keys if k.kid is None and k.alg == alg]
        return sorted(plain, key=lambda k: order.get(k.stage, 3))

    def decode(self, token: str, **kwargs: Any) -> dict[str, Any]:
        """The verified claims of `token`; ``kwargs`` go to :func:`jwt.decode` (audience,
        leeway, options...). Raises PyJWT's errors, as the seed's module did."""
        header = jwt.get_unverified_header(token)
        kid, alg = header.get("kid"), header.get("alg")
        if kid is not None and not isinstance(kid, str):
            raise jwt.InvalidTokenError("the token's kid is not a string")
        now = time.time()
        keys = self._candidates(kid, alg, now)
        if not keys and kid is not None:
            for s in self.sources:
                s.refresh()
            keys = self._candidates(kid, alg, time.time())
        if not keys:
            if kid is not None:
                raise jwt.InvalidTokenError(
                    f"unknown kid {kid!r} for {alg}: not a key rotor holds now (retired, or "
                    "not from this issuer)"
                )
            raise jwt.InvalidTokenError(f"no {alg} key to verify this token with")
        for k in keys:
            try:
                return jwt.decode(token, k.verify, algorithms=[k.alg], **kwargs)
            except jwt.InvalidSignatureError:
                continue
        raise jwt.InvalidSignatureError("Invalid signature")


def codec_from_env(environ: Mapping[str, str] | None = None) -> TokenCodec:
    """The codec the module-level functions use, chosen by environment variables:

    * ``ROTOR_KEYRING_FILE``: a keyring document (HMAC or asymmetric, signs and verifies);
    * ``ROTOR_ENV_FILE``: a rendered dotenv file (``ROTOR_JWT_CURRENT_VAR``, default
      ``SECRET_KEY``; ``ROTOR_JWT_PREVIOUS_VAR``, default ``SECRET_KEY_PREVIOUS``);
    * ``ROTOR_JWKS_URL``: rotor's JWKS (verify only), in addition to either of the above;
    * otherwise ``SECRET_KEY`` / ``SECRET_KEY_PREVIOUS`` from the environment (the seed).
    """
    env = os.environ if environ is None else environ
    cur = env.get("ROTOR_JWT_CURRENT_VAR", "SECRET_KEY")
    prev = env.get("ROTOR_JWT_PREVIOUS_VAR", "SECRET_KEY_PREVIOUS")
    sources: list[KeySource] = []
    if env.get("ROTOR_KEYRING_FILE"):
        sources.append(KeyringFileKeys(env["ROTOR_KEYRING_FILE"]))
    elif env.get("ROTOR_ENV_FILE"):
        sources.append(EnvFileKeys(env["ROTOR_ENV_FILE"], current=cur, previous=prev))
    if env.get("ROTOR_JWKS_URL"):
        sources.append(JwksKeys(env["ROTOR_JWKS_URL"]))
    if not sources:
        sources.append(EnvironKeys(current=cur, previous=prev, environ=env))
    return TokenCodec(*sources)


_default: TokenCodec | None = None
_default_lock = threading.Lock()


def configure(codec: TokenCodec | None) -> None:
    """Sets the codec behind :func:`encode_access`/:func:`decode_access` (``None``: from the
    environment again, at next use)."""
    global _default
    with _default_lock:
        _default = codec


def default_codec() -> TokenCodec:
    global _default
    with _default_lock:
        if _default is None:
            _default = codec_from_env()
        return _default


def encode_access(payload: dict[str, Any]) -> str:
    """Always encode with the current key (the token's header names it by kid)."""
    return default_codec().encode(payload)


def decode_access(token: str, **kwargs: Any) -> dict[str, Any]:
    """Verify with the key the token names: current, previous during grace, or a newly
    published key (reloaded on demand)."""
    return default_codec().decode(token, **kwargs)
