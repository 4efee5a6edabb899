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
            with pytest.raises(ApiError) as e:
                await asyncio.wait_for(CredentialWatcher(api, ["session"]).start(), 10)
        assert e.value.status == 401 and e.value.code == "unauthorized"
        assert "rtr_not-a-real-token" not in str(e.value)

    asyncio.run(main())


def test_app_token_reads_only_its_own_credentials(rotor: Rotor) -> None:
    async def main() -> None:
        async with RotorApi(rotor.url, rotor.app_token) as api:
            cred = await api.credential("database")
            assert cred.username.startswith("app_user_") and cred.password
            assert cred.password.reveal() not in repr(cred)
            with pytest.raises(ApiError) as e:
                await api.value("jwt-signing")
        assert e.value.status == 403 and e.value.code == "forbidden"

    asyncio.run(main())
