"""Swapping an asyncpg pool and a redis-py client to a rotated credential while requests
keep running: zero failed requests across rotation, grace and retire, and the old
credential is really dead afterwards (so the swap was needed, not luck)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import pytest
import redis.asyncio
import redis.exceptions

from rotor_client import CredentialChange, CredentialWatcher, RotorApi, SwappablePool, SwappableRedis

from conftest import Rotor, async_wait_until


async def run_load(work: Any, workers: int, stop: asyncio.Event) -> tuple[list[Any], list[BaseException]]:
    results: list[Any] = []
    errors: list[BaseException] = []

    async def worker() -> None:
        while not stop.is_set():
            try:
                results.append(await work())
            except Exception as e:  # every failure counts: the point is that there are none
                errors.append(e)
            await asyncio.sleep(0.002)

    await asyncio.gather(*(worker() for _ in range(workers)))
    return results, errors


async def rotate_and_wait_for_retire(rotor: Rotor, watcher: CredentialWatcher, secret: str, swapper: Any) -> None:
    retired = asyncio.Event()
    watcher.on_change(lambda c: retired.set() if c.change == "retired" else None, [secret])
    await asyncio.to_thread(rotor.rotate, secret)
    await async_wait_until(lambda: swapper.swaps == 1, f"the swap to the new {secret} credential")
    await asyncio.wait_for(retired.wait(), rotor.grace + 20)
    await asyncio.sleep(0.5)  # keep the load on after retire


def test_asyncpg_pool_swap_drops_no_query_during_rotation(rotor: Rotor) -> None:
    async def main() -> None:
        async with RotorApi(rotor.url, rotor.app_token) as api:
            old = await api.credential("database")
            pool = await SwappablePool.create(
                **rotor.pg, user=old.username, password=old.password.reveal(),
                min_size=2, max_size=6,
                # Recycle idle connections quickly, so a pool still on the old credential
                # would have to log in again after retire (and fail).
                max_inactive_connection_lifetime=0.3,
            )
            async with CredentialWatcher(api, ["database"]) as watcher:
                pool.follow(watcher, "database")
                stop = asyncio.Event()
                load = asyncio.create_task(run_load(lambda: pool.fetchval("SELECT current_user"), 6, stop))
                await asyncio.sleep(0.3)
                await rotate_and_wait_for_retire(rotor, watcher, "database", pool)
                stop.set()
                users, errors = await load
                new = await api.credential("database")
            await pool.close()
        assert errors == [], f"{len(errors)} failed queries, first: {errors[:1]!r}"
        assert pool.last_error is None
        assert new.username != old.username, "alternating: the other login role"
        assert users[0] == old.username and users[-1] == new.username
        assert len(users) > 200, f"only {len(users)} queries ran"
        with pytest.raises(asyncpg.PostgresError):
            conn = await asyncpg.connect(**rotor.pg, user=old.username, password=old.password.reveal())
            await conn.close()

    asyncio.run(main())


def test_redis_client_swap_drops_no_command_during_rotation(rotor: Rotor) -> None:
    async def main() -> None:
        key = f"pytest:swap:{time.time_ns()}"
        async with RotorApi(rotor.url, rotor.app_token) as api:
            old = await api.credential("redis")
            client = await SwappableRedis.create(
                **rotor.redis, username=old.username, password=old.password.reveal()
            )
            whoami = await client.acl_whoami()
            assert whoami in ("app", b"app")
            async with CredentialWatcher(api, ["redis"]) as watcher:
                client.follow(watcher, "redis")
                stop = asyncio.Event()
                load = asyncio.create_task(run_load(lambda: client.incr(key), 6, stop))
                await asyncio.sleep(0.3)
                await rotate_and_wait_for_retire(rotor, watcher, "redis", client)
                stop.set()
                counts, errors = await load
                new = await api.credential("redis")
            total = int(await client.get(key))
            await client.close()
        assert errors == [], f"{len(errors)} failed commands, first: {errors[:1]!r}"
        assert client.last_error is None
        assert total == len(counts) > 200, "every INCR landed exactly once"
        assert new.password != old.password
        stale = redis.asyncio.Redis(**rotor.redis, username=old.username, password=old.password.reveal())
        with pytest.raises(redis.exceptions.AuthenticationError):
            await stale.ping()
        await stale.aclose()

    asyncio.run(main())
