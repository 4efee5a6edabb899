"""Replacing a database or Redis client's credential while requests keep running.

Both wrappers follow one rule: **build and prove the new client first, switch new work to
it, and close the old one only after the work it already had is done.** A rotation with
grace keeps the previous credential valid until retire, so the old client finishes its
in-flight requests with it; every request that starts after the swap uses the new one.

``follow(watcher, secret)`` wires either wrapper to a :class:`CredentialWatcher`: on
``finished``, ``put`` or ``resync`` of ``secret`` it reads the new credential from rotor
(``read:SECRET`` scope) and swaps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from .api import Credential
from .watch import CredentialChange, CredentialWatcher

log = logging.getLogger("rotor_client")

_SWAP_ON = frozenset({"finished", "put", "resync"})


class _Follower:
    """Swaps on a watcher's changes of one secret; swaps of one wrapper never overlap."""

    _lock: asyncio.Lock
    swaps: int
    last_error: BaseException | None

    async def swap_credential(self, cred: Credential) -> None:
        raise NotImplementedError

    def follow(self, watcher: CredentialWatcher, secret: str) -> None:
        async def on_change(change: CredentialChange) -> None:
            if change.change not in _SWAP_ON:
                return
            try:
                cred = await watcher.api.credential(secret)
                await self.swap_credential(cred)
            except Exception as e:  # keep serving on the old client; the error is kept
                self.last_error = e
                log.error("rotor_client: cannot swap to the new %s credential: %s", secret, e)
                raise

        watcher.on_change(on_change, [secret])


class SwappablePool(_Follower):
    """An asyncpg pool whose credential rotor rotates.

    Use it as the pool: ``async with pool.acquire() as conn``, or ``pool.fetchval(...)``,
    ``fetch``, ``fetchrow``, ``execute``. A swap creates a pool with the new user/password
    (``min_size`` connections, so a wrong credential fails the swap, not a request), then
    switches; asyncpg's ``Pool.close()`` waits until every connection taken from the old
    pool is released (``drain_timeout``, then it is terminated).
    """

    def __init__(self, pool: Any, connect_kwargs: dict[str, Any], *, drain_timeout: float = 60.0) -> None:
        self._pool = pool
        self._kwargs = dict(connect_kwargs)
        self._lock = asyncio.Lock()
        self.drain_timeout = drain_timeout
        self.swaps = 0
        self.last_error: BaseException | None = None
        self._closing: set[asyncio.Task[None]] = set()

    @classmethod
    async def create(cls, *, drain_timeout: float = 60.0, **connect_kwargs: Any) -> SwappablePool:
        """``connect_kwargs`` as for ``asyncpg.create_pool`` (host, port, database, user,
        password, min_size, ...)."""
        import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints

        pool = await asyncpg.create_pool(**connect_kwargs)
        return cls(pool, connect_kwargs, drain_timeout=drain_timeout)

    @property
    def pool(self) -> Any:
        """The pool new work goes to."""
        return self._pool

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        async with self._pool.acquire() as conn:
            yield conn

    async def fetchval(self, query: str, *args: Any, **kw: Any) -> Any:
        async with self.acquire() as c:
            return await c.fetchval(query, *args, **kw)

    async def fetchrow(self, query: str, *args: Any, **kw: Any) -> Any:
        async with self.acquire() as c:
            return await c.fetchrow(query, *args, **kw)

    async def fetch(self, query: str, *args: Any, **kw: Any) -> Any:
        async with self.acquire() as c:
            return await c.fetch(query, *args, **kw)

    async def execute(self, query: str, *args: Any, **kw: Any) -> Any:
        async with self.acquire() as c:
            return await c.execute(query, *args, **kw)

    async def swap(self, **changes: Any) -> None:
        """Switches to a pool made with ``changes`` (e.g. ``user=..., password=...``)."""
        import asyncpg

        async with self._lock:
            kwargs = {**self._kwargs, **changes}
            new = await asyncpg.create_pool(**kwargs)
            try:
                await new.fetchval("SELECT 1")
            except BaseException:
                await new.close()
                raise
            old, self._pool, self._kwargs = self._pool, new, kwargs
            self.swaps += 1
        task = asyncio.create_task(self._close_old(old))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close_old(self, old: Any) -> None:
        try:
            await asyncio.wait_for(old.close(), self.drain_timeout)
        except asyncio.TimeoutError:
            log.warning("rotor_client: old pool still busy after %ss; terminating it", self.drain_timeout)
            old.terminate()

    async def swap_credential(self, cred: Credential) -> None:
        await self.swap(user=cred.username, password=cred.password.reveal())

    async def close(self) -> None:
        await asyncio.gather(*self._closing, return_exceptions=True)
        await self._pool.close()


class SwappableRedis(_Follower):
    """A redis-py asyncio client whose ACL password rotor rotates.

    Call commands on it as on ``redis.asyncio.Redis`` (``await r.get("k")``), or pin one
    client for several calls (pipelines): ``async with r.use() as client``. A swap makes a
    client with the new credential and PINGs it, switches, waits until no call still runs on
    the old client (``drain_timeout``), then closes it.
    """

    def __init__(self, client: Any, connect_kwargs: dict[str, Any], *, drain_timeout: float = 30.0) -> None:
        self._client = client
        self._kwargs = dict(connect_kwargs)
        self._lock = asyncio.Lock()
        self._inflight: dict[int, int] = {}
        self._idle: dict[int, asyncio.Event] = {}
        self.drain_timeout = drain_timeout
        self.swaps = 0
        self.last_error: BaseException | None = None
        self._closing: set[asyncio.Task[None]] = set()

    @classmethod
    async def create(cls, *, drain_timeout: float = 30.0, **connect_kwargs: Any) -> SwappableRedis:
        """``connect_kwargs`` as for ``redis.asyncio.Redis`` (host, port, username, password...).
        The first client is PINGed, so a wrong credential fails here."""
        from redis.asyncio import Redis

        client = Redis(**connect_kwargs)
        await client.ping()
        return cls(client, connect_kwargs, drain_timeout=drain_timeout)

    @property
    def client(self) -> Any:
        return self._client

    @contextlib.asynccontextmanager
    async def use(self) -> AsyncIterator[Any]:
        """The current client, kept open until the block ends even if a swap happens."""
        client = self._client
        key = id(client)
        self._inflight[key] = self._inflight.get(key, 0) + 1
        try:
            yield client
        finally:
            left = self._inflight.get(key, 1) - 1
            if key in self._inflight:  # gone if the drain timed out and the client closed
                self._inflight[key] = left
            if left == 0 and key in self._idle:
                self._idle[key].set()

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        if name.startswith("_"):
            raise AttributeError(name)
        if not callable(getattr(self._client, name)):
            raise AttributeError(f"{name} is not a command; use .client.{name}")

        async def call(*args: Any, **kw: Any) -> Any:
            async with self.use() as client:
                return await getattr(client, name)(*args, **kw)

        return call

    async def swap(self, **changes: Any) -> None:
        """Switches to a client made with ``changes`` (e.g. ``username=..., password=...``)."""
        from redis.asyncio import Redis

        async with self._lock:
            kwargs = {**self._kwargs, **changes}
            new = Redis(**kwargs)
            try:
                await new.ping()
            except BaseException:
                await new.aclose()
                raise
            old, self._client, self._kwargs = self._client, new, kwargs
            self.swaps += 1
            self._idle[id(old)] = asyncio.Event()
            if self._inflight.get(id(old), 0) == 0:
                self._idle[id(old)].set()
        task = asyncio.create_task(self._close_old(old))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close_old(self, old: Any) -> None:
        key = id(old)
        try:
            await asyncio.wait_for(self._idle[key].wait(), self.drain_timeout)
        except asyncio.TimeoutError:
            log.warning("rotor_client: old Redis client still busy after %ss; closing it", self.drain_timeout)
        finally:
            self._idle.pop(key, None)
            self._inflight.pop(key, None)
            await old.aclose()

    async def swap_credential(self, cred: Credential) -> None:
        await self.swap(username=cred.username, password=cred.password.reveal())

    async def close(self) -> None:
        await asyncio.gather(*self._closing, return_exceptions=True)
        await self._client.aclose()
