"""The credential watcher on rotor's /v1/watch stream."""

from __future__ import annotations

import asyncio

import pytest

from rotor_client import ApiError, CredentialChange, CredentialWatcher, RotorApi

from conftest import Rotor, async_wait_until


def test_watcher_calls_back_on_rotation_and_retire(rotor: Rotor) -> None:
    async def main() -> None:
        seen: list[CredentialChange] = []
        other: list[CredentialChange] = []
        async with RotorApi(rotor.url, rotor.app_token) as api:
            async with CredentialWatcher(api, ["session"]) as watcher:
                watcher.on_change(seen.append)  # a plain function works as well as a coroutine
                watcher.on_change(other.append, ["database"])  # filtered: never called here
                before = await api.current_version("session")
                await asyncio.to_thread(rotor.rotate, "session")  # grace 0s: finish, then retire
                await async_wait_until(lambda: any(c.change == "retired" for c in seen), "retired event")
                now = await api.current_version("session")
        assert now is not None and now != before
        finished = [c for c in seen if c.change == "finished"]
        assert finished == [CredentialChange("session", "finished", now)], seen
        assert [c.change for c in seen] == ["finished", "retired"]
        assert other == []

    asyncio.run(main())


def test_watcher_refuses_a_bad_token_at_once(rotor: Rotor) -> None:
    async def main() -> None:
        async with RotorApi(rotor.url, "rtr_not-a-real-token") as api:
            watcher = CredentialWatcher(api, ["session"])
            with pytest.raises(ApiError) as e:
                await asyncio.wait_for(watcher.start(), 10)
        assert e.value.status == 401 and e.value.code == "unauthorized"
        assert watcher.error is e.value, "the app can see why the watcher stopped"
        assert "rtr_not-a-real-token" not in str(e.value)

    asyncio.run(main())


def test_watcher_start_fails_when_rotor_is_unreachable() -> None:
    async def main() -> None:
        # A port nothing listens on: bind one, then close it.
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        async with RotorApi(f"http://127.0.0.1:{port}", "rtr_x") as api:
            with pytest.raises(ApiError) as e:
                await asyncio.wait_for(CredentialWatcher(api, ["session"]).start(), 10)
        assert e.value.code == "unreachable" and str(port) in e.value.message

    asyncio.run(main())


def test_app_token_reads_only_its_own_credentials(rotor: Rotor) -> None:
    async def main() -> None:
        async with RotorApi(rotor.url, rotor.app_token) as api:
            cred = await api.credential("database")
            assert cred.username.startswith("app_user_") and cred.password
            assert cred.password.reveal() not in repr(cred)
            with pytest.raises(ApiError) as e:
                await api.value("jwt-signing")
        # A secret outside the token's scopes reads like one that does not exist (no name probing).
        assert e.value.status == 404 and e.value.code == "not_found"

    asyncio.run(main())


class CuttableProxy:
    """A TCP proxy in front of rotor serve that can drop every connection and refuse new
    ones for a while: the network failing under the watcher (real sockets, no mock)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.refusing = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, up_writer}

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                w.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> None:
        self.refusing = True
        for w in self._writers:
            w.close()
        self._writers.clear()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()


def test_watcher_reports_a_rotation_it_missed_while_disconnected(rotor: Rotor) -> None:
    async def main() -> None:
        host, _, port = rotor.url.removeprefix("http://").partition(":")
        proxy = CuttableProxy(host, int(port))
        via = f"http://127.0.0.1:{await proxy.start()}"
        seen: list[CredentialChange] = []
        async with RotorApi(via, rotor.app_token) as api:
            watcher = CredentialWatcher(api, ["session"], max_backoff=0.2)
            watcher.on_change(seen.append)
            async with watcher:
                assert watcher.connects == 1
                proxy.cut()
                # Rotated (finished and retired) while the watcher cannot hear it.
                await asyncio.to_thread(rotor.rotate, "session")
                await asyncio.sleep(0.5)
                assert seen == [], "nothing can arrive over a cut network"
                proxy.refusing = False
                await async_wait_until(lambda: seen, "the resync after reconnect")
                now = await api.current_version("session")
            assert watcher.connects >= 2
        await proxy.close()
        assert seen == [CredentialChange("session", "resync", now)], seen

    asyncio.run(main())
