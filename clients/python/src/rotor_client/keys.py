"""Where JWT keys come from, and when they are read again.

* :class:`EnvFileKeys`: the dotenv file ``rotor render`` rewrites after every finish and
  retire (``SECRET_KEY`` current, ``SECRET_KEY_PREVIOUS`` during grace, empty after retire).
* :class:`KeyringFileKeys`: the keyring document (``rotor keyring NAME --reveal``): every
  key with its stage and ``not_after``.
* :class:`EnvironKeys`: the process environment (the seed's ``os.getenv``), read once.
* :class:`JwksKeys`: rotor's public JWKS (``/v1/secrets/NAME/jwks.json``) for asymmetric
  keys, fetched again when a token names a kid it does not know.

Files are re-read when they change (size, mtime or inode: rotor replaces them atomically),
checked with one ``stat`` per use. A reload that fails keeps the keys already loaded, so a
half-deployed file never locks users out; only a first load that fails raises.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

import httpx

from .envfile import read_dotenv
from .errors import KeyFormError
from .keyform import Key, parse_hmac_value, parse_jwk, parse_material
from .secret import Secret

log = logging.getLogger("rotor_client")


class KeySource(Protocol):
    """Something that knows the keys a token may be verified (or signed) with."""

    def keys(self) -> Sequence[Key]:
        """The keys now; cheap (files: one stat)."""
        ...

    def refresh(self) -> bool:
        """Called on an unknown kid: look again now if allowed. True if the keys changed."""
        ...


class _FileKeys:
    """Shared reload logic of the file sources."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._sig: tuple[int, int, int] | None = None
        self._keys: Sequence[Key] = ()
        self.loads = 0
        self._load(first=True)

    def _parse(self) -> Sequence[Key]:
        raise NotImplementedError

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _load(self, *, first: bool = False) -> bool:
        with self._lock:
            sig = self._signature()
            if not first and sig == self._sig:
                return False
            try:
                keys = self._parse()
            except KeyFormError:
                if first:
                    raise
                log.warning("rotor_client: cannot reload %s; keeping the keys loaded before",
                            self.path)
                self._sig = sig
                return False
            self._sig, self._keys = sig, keys
            self.loads += 1
            return True

    def keys(self) -> Sequence[Key]:
        if self._signature() != self._sig:
            self._load()
        return self._keys

    def refresh(self) -> bool:
        return self._load()


class EnvFileKeys(_FileKeys):
    """HMAC keys from a rendered dotenv file (``current`` and ``previous`` variable names)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        current: str = "SECRET_KEY",
        previous: str = "SECRET_KEY_PREVIOUS",
        alg: str = "HS256",
    ) -> None:
        self.current_var, self.previous_var, self.alg = current, previous, alg
        super().__init__(path)

    def _parse(self) -> Sequence[Key]:
        env = read_dotenv(self.path)
        if self.current_var not in env:
            raise KeyFormError(
                f"{self.path}: no variable {self.current_var}; add it to the [[render]] vars "
                f"(e.g. {self.current_var} = \"{{{{ jwt-signing.current }}}}\")"
            )
        return _env_keys(env, self.current_var, self.previous_var, self.alg, self.path)


class EnvironKeys:
    """HMAC keys from environment variables, as the seed's module read them."""

    def __init__(
        self,
        *,
        current: str = "SECRET_KEY",
        previous: str = "SECRET_KEY_PREVIOUS",
        alg: str = "HS256",
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._environ = os.environ if environ is None else environ
        self.current_var, self.previous_var, self.alg = current, previous, alg
        if not self._environ.get(current):
            raise KeyFormError(f"the environment variable {current} is not set")
        self._keys = self._read()

    def _read(self) -> Sequence[Key]:
        env = {k: Secret(self._environ.get(k, "")) for k in (self.current_var, self.previous_var)}
        return _env_keys(env, self.current_var, self.previous_var, self.alg, "the environment")

    def keys(self) -> Sequence[Key]:
        return self._keys

    def refresh(self) -> bool:
        return False


def _env_keys(env: Mapping[str, Any], cur: str, prev: str, alg: str, where: str) -> list[Key]:
    keys = []
    for var, stage in ((cur, "current"), (prev, "previous")):
        if var in env:
            key = parse_hmac_value(env[var].reveal(), stage=stage, what=f"{where}: {var}", alg=alg)
            if key is not None:
                keys.append(key)
    if not any(k.stage == "current" for k in keys):
        raise KeyFormError(f"{where}: {cur} is empty; run `rotor rotate` (or `rotor render`)")
    return keys


_FRACTION = re.compile(r"(\.\d{6})\d+")


def _timestamp(text: Any, what: str) -> float | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise KeyFormError(f"{what}: \"not_after\" must be an RFC 3339 time or null")
    try:
        return datetime.fromisoformat(_FRACTION.sub(r"\1", text.replace("Z", "+00:00"))).timestamp()
    except ValueError:
        raise KeyFormError(f"{what}: \"not_after\" {text!r} is not an RFC 3339 time") from None


class KeyringFileKeys(_FileKeys):
    """Every key of a keyring document, with its stage and ``not_after``."""

    def _parse(self) -> Sequence[Key]:
        try:
            with open(self.path, "rb") as f:
                doc = json.load(f)
        except OSError as e:
            raise KeyFormError(f"cannot read the keyring file {self.path!r} ({e.strerror})") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise KeyFormError(f"{self.path}: not JSON; write it with `rotor keyring NAME --reveal`") from None
        entries = doc.get("keys") if isinstance(doc, dict) else None
        if not isinstance(entries, list) or not entries:
            raise KeyFormError(f"{self.path}: expected {{\"keys\": [...]}} with at least one key")
        keys = []
        for i, entry in enumerate(entries):
            what = f"{self.path}: keys[{i}]"
            if not isinstance(entry, dict) or entry.get("stage") not in ("pending", "current", "previous"):
                raise KeyFormError(f"{what}: needs \"stage\": pending, current or previous")
            key = parse_material(entry, stage=entry["stage"], what=what)
            keys.append(Key(key.kid, key.alg, key.stage, key.verify, key.sign,
                            _timestamp(entry.get("not_after"), what)))
        if sum(k.stage == "current" for k in keys) > 1:
            raise KeyFormError(f"{self.path}: more than one current key")
        return keys


class JwksKeys:
    """Public keys from rotor's JWKS endpoint.

    Fetched on first use, again when the server's ``Cache-Control: max-age`` has passed, and
    when a token names an unknown kid. Unknown-kid fetches happen at most once per
    ``cooldown`` however many requests race (one fetch, the others wait for it), so a flood
    of forged kids cannot make this process hammer rotor; the cooldown counts from the last
    unknown-kid fetch only, so the first token signed with a new key is never refused
    because of a routine fetch just before. A failed fetch keeps the keys fetched before.
    """

    def __init__(
        self,
        url: str,
        *,
        cooldown: float = 5.0,
        timeout: float = 5.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.url, self.cooldown = url, cooldown
        self._client = client or httpx.Client(timeout=timeout)
        self._lock = threading.Lock()
        self._keys: Sequence[Key] = ()
        self._fetched_at = float("-inf")
        self._refetched_at = float("-inf")
        self._max_age = 60.0
        self.fetches = 0

    def _fetch(self) -> bool:
        self._fetched_at = time.monotonic()
        self.fetches += 1
        try:
            r = self._client.get(self.url)
            r.raise_for_status()
            body = r.json()
        except (httpx.HTTPError, ValueError) as e:
            log.warning("rotor_client: cannot fetch the JWKS %s (%s); keeping %d keys",
                        self.url, e, len(self._keys))
            return False
        m = re.search(r"max-age=(\d+)", r.headers.get("cache-control", ""))
        if m:
            self._max_age = float(m.group(1))
        keys = []
        for i, jwk in enumerate(body.get("keys", []) if isinstance(body, dict) else []):
            try:
                keys.append(parse_jwk(jwk, what=f"{self.url}: keys[{i}]"))
            except KeyFormError as e:  # an algorithm this client does not know: skip it
                log.warning("rotor_client: %s", e)
        changed = {k.kid for k in keys} != {k.kid for k in self._keys}
        self._keys = keys
        return changed

    def keys(self) -> Sequence[Key]:
        if time.monotonic() - self._fetched_at > self._max_age:
            with self._lock:
                if time.monotonic() - self._fetched_at > self._max_age:
                    self._fetch()
        return self._keys

    def refresh(self) -> bool:
        seen = self._fetched_at
        with self._lock:
            if self._fetched_at != seen:
                return True  # another caller fetched while we waited: use its result
            if time.monotonic() - self._refetched_at < self.cooldown:
                return False
            self._refetched_at = time.monotonic()
            return self._fetch()
