"""Following rotations: rotor's ``GET /v1/watch`` server-sent events, with callbacks.

The stream (crates/rotor-daemon/src/watch.rs) sends ``event: ready`` once connected, then
``event: stage_change`` with ``{"secret", "stage_change": "finished"|"retired"|"put",
"version": <current version id>}`` and ``event: lagged`` when this client fell behind.

The watcher never misses a rotation for long: it reconnects with backoff when the stream
ends, and after every (re)connect and every ``lagged`` it reads the current version of each
watched secret and reports those that changed meanwhile (``change = "resync"``). A token
rotor refuses (401/403) stops it (``watcher.error``) instead of retrying forever, and any
failure before the first connect is raised from ``start()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import httpx

from .api import RotorApi, error_of
from .errors import ApiError

log = logging.getLogger("rotor_client")


@dataclass(frozen=True)
class CredentialChange:
    """A secret's stages moved: ``finished`` (new current; the old one is previous, still
    valid during grace), ``put`` (an operator stored a new current), ``retired`` (the
    previous value is dead now), or ``resync`` (a new current seen after a reconnect)."""

    secret: str
    change: str
    version: str | None


Callback = Callable[[CredentialChange], "Awaitable[None] | None"]


class CredentialWatcher:
    """Calls back when a watched secret rotates.

    ``async with CredentialWatcher(api, ["database"]) as w: w.on_change(cb)``; entering waits
    until the stream is connected, so a rotation started afterwards is never missed.
    Callbacks run one at a time, in order, inside the watcher's task; one that raises is
    logged and the watcher goes on.
    """

    def __init__(
        self,
        api: RotorApi,
        secrets: Iterable[str] | None = None,
        *,
        read_timeout: float = 45.0,
        max_backoff: float = 5.0,
    ) -> None:
        self.api = api
        self.secrets = None if secrets is None else set(secrets)
        self.read_timeout = read_timeout
        self.max_backoff = max_backoff
        self._callbacks: list[tuple[set[str] | None, Callback]] = []
        self._versions: dict[str, str | None] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self.connects = 0
        #: Why the watcher stopped for good (a refused token), else None.
        self.error: ApiError | None = None

    def on_change(self, callback: Callback, secrets: Iterable[str] | None = None) -> None:
        """Registers ``callback`` (sync or async) for ``secrets`` (default: every watched one)."""
        self._callbacks.append((None if secrets is None else set(secrets), callback))

    def watches(self, secret: str) -> bool:
        return self.secrets is None or secret in self.secrets

    async def start(self) -> None:
        """Connects and returns once the stream is live; raises ApiError for a bad token."""
        if self._task is not None:
            return
        self._ready = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._run(), name="rotor-credential-watcher")
        self._task.add_done_callback(self._ended)
        await asyncio.shield(self._ready)

    def _ended(self, task: asyncio.Task[None]) -> None:
        """A watcher task that died before the stream was live must not leave start() hanging."""
        if self._ready is None or self._ready.done():
            return
        if task.cancelled():
            self._ready.cancel()
        else:
            self._ready.set_exception(
                task.exception() or ApiError(0, "stopped", "the watcher stopped before connecting")
            )

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def __aenter__(self) -> CredentialWatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- the stream ------------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = 0.1
        async with self.api.stream_client(self.read_timeout) as client:
            while True:
                try:
                    await self._stream(client)
                    backoff = 0.1  # a stream that ended cleanly (daemon restart): retry soon
                except ApiError as e:
                    if e.status in (401, 403) or self.connects == 0:
                        # A refused token does not get better by retrying; and before the
                        # first connect the caller is waiting in start(): tell it.
                        log.error("rotor_client: the watch stream failed: %s", e)
                        self._fail(e)
                        return
                    log.warning("rotor_client: watch stream: %s; reconnecting", e)
                except (httpx.HTTPError, OSError) as e:
                    if self.connects == 0:
                        self._fail(ApiError(0, "unreachable", f"cannot reach {self.api.url}: {e}"))
                        return
                    log.warning("rotor_client: watch stream lost (%s); reconnecting", e)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)

    def _fail(self, e: ApiError) -> None:
        self.error = e
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(e)

    async def _stream(self, client: httpx.AsyncClient) -> None:
        async with client.stream("GET", "/v1/watch", headers={"Accept": "text/event-stream"}) as r:
            if r.status_code != 200:
                await r.aread()
                raise error_of(r)
            event, data = "message", list[str]()
            async for line in r.aiter_lines():
                if line == "":
                    if data or event != "message":
                        await self._event(event, "\n".join(data))
                    event, data = "message", []
                elif line.startswith(":"):
                    continue  # keep-alive comment
                else:
                    name, _, val = line.partition(":")
                    val = val[1:] if val.startswith(" ") else val
                    if name == "event":
                        event = val
                    elif name == "data":
                        data.append(val)

    async def _event(self, event: str, data: str) -> None:
        if event == "ready":
            self.connects += 1
            await self._resync(report=self.connects > 1)
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
        elif event == "lagged":
            log.warning("rotor_client: watch stream lagged (%s); re-reading versions", data)
            await self._resync(report=True)
        elif event == "stage_change":
            try:
                ev = json.loads(data)
                change = CredentialChange(str(ev["secret"]), str(ev["stage_change"]), ev.get("version"))
            except (ValueError, KeyError, TypeError):
                log.warning("rotor_client: unreadable watch event; re-reading versions")
                await self._resync(report=True)
                return
            if self.watches(change.secret):
                self._versions[change.secret] = change.version
                await self._dispatch(change)

    async def _resync(self, *, report: bool) -> None:
        """Reads each watched secret's current version; reports those that moved unseen."""
        if self.secrets is None:
            return  # watching everything: nothing to compare against but the stream
        for name in sorted(self.secrets):
            try:
                now = await self.api.current_version(name)
            except ApiError as e:
                log.warning("rotor_client: cannot read %s after reconnect: %s", name, e)
                continue
            before = self._versions.get(name)
            self._versions[name] = now
            if report and now != before:
                await self._dispatch(CredentialChange(name, "resync", now))

    async def _dispatch(self, change: CredentialChange) -> None:
        for only, cb in self._callbacks:
            if only is not None and change.secret not in only:
                continue
            try:
                result = cb(change)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # a broken callback must not stop the watcher
                log.exception("rotor_client: callback for %s failed", change.secret)
