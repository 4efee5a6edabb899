"""A small async client of rotor's HTTP API (``rotor serve``), bearer-token authenticated.

Only what an app needs: a secret's metadata and current version, a value (``read:`` scope),
a rotation (``rotate:`` scope). Errors are :class:`~rotor_client.errors.ApiError` with
rotor's stable ``code``; values come back as :class:`~rotor_client.secret.Secret`.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from .errors import ApiError
from .secret import Secret


@dataclass(frozen=True)
class Value:
    """One stored version of a secret, as ``GET /v1/secrets/NAME/value`` answers it."""

    secret: str
    version: str
    stage: str
    value: Secret


@dataclass(frozen=True)
class Credential:
    """A PostgreSQL or Redis credential (rotor stores ``{"username", "password"}``)."""

    secret: str
    version: str
    username: str
    password: Secret


def error_of(r: httpx.Response) -> ApiError:
    """rotor's ``{"error": {"code", "message"}}``, or the bare status when the body is not."""
    try:
        body = r.json()
        err = body["error"]
        return ApiError(r.status_code, str(err["code"]), str(err["message"]))
    except (ValueError, KeyError, TypeError):
        return ApiError(r.status_code, "http", r.reason_phrase or "no rotor error body")


class RotorApi:
    """``url`` is the daemon's base URL (``http://127.0.0.1:8700``), ``token`` an API token
    from ``rotor token new`` (never logged: it is kept only in the Authorization header)."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 10.0,
        verify: bool | str = True,
    ) -> None:
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._timeout = timeout
        self._verify = verify
        self._client = httpx.AsyncClient(
            base_url=self.url, headers=self._headers, timeout=timeout, verify=verify
        )

    def __repr__(self) -> str:
        return f"RotorApi({self.url!r}, token=<redacted>)"

    def stream_client(self, read_timeout: float) -> httpx.AsyncClient:
        """A client for long-lived streams (the watch): same auth, its own read timeout."""
        return httpx.AsyncClient(
            base_url=self.url,
            headers=self._headers,
            timeout=httpx.Timeout(self._timeout, read=read_timeout),
            verify=self._verify,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> RotorApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            r = await self._client.request(method, path, **kw)
        except httpx.HTTPError as e:
            raise ApiError(0, "unreachable", f"cannot reach {self.url}: {e}") from None
        if r.status_code >= 400:
            raise error_of(r)
        return r

    async def secret(self, name: str) -> dict[str, Any]:
        """``GET /v1/secrets/NAME``: state, policy and versions (never values)."""
        r = await self._request("GET", f"/v1/secrets/{quote(name, safe='')}")
        result: dict[str, Any] = r.json()
        return result

    async def current_version(self, name: str) -> str | None:
        """The id of the version holding ``current``, if any."""
        for v in (await self.secret(name)).get("versions", []):
            if "current" in v.get("stages", []):
                return str(v["id"])
        return None

    async def value(self, name: str, stage: str = "current") -> Value:
        """``GET /v1/secrets/NAME/value?stage=S`` (needs ``read:NAME``)."""
        r = await self._request(
            "GET", f"/v1/secrets/{quote(name, safe='')}/value", params={"stage": stage}
        )
        body = r.json()
        text = body["value"]
        if body.get("encoding") == "base64":
            text = base64.b64decode(text).decode("utf-8", errors="strict")
        return Value(name, str(body["version"]), str(body["stage"]), Secret(text))

    async def credential(self, name: str, stage: str = "current") -> Credential:
        """A PostgreSQL/Redis credential: the value read as ``{"username","password"}``."""
        v = await self.value(name, stage)
        try:
            obj = json.loads(v.value.reveal())
            user, pw = obj["username"], obj["password"]
        except (ValueError, KeyError, TypeError):
            raise ApiError(
                200, "not_a_credential",
                f"secret {name} is not a {{\"username\", \"password\"}} credential",
            ) from None
        return Credential(name, v.version, str(user), Secret(str(pw)))

    async def rotate(self, name: str, *, reason: str | None = None) -> dict[str, Any]:
        """``POST /v1/secrets/NAME/rotate`` (needs ``rotate:NAME``)."""
        body: dict[str, Any] = {} if reason is None else {"reason": reason}
        r = await self._request("POST", f"/v1/secrets/{quote(name, safe='')}/rotate", json=body)
        result: dict[str, Any] = r.json()
        return result
