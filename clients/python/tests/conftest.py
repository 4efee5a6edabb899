"""What the suite needs from the Rust test that starts it (crates/rotor-cli/tests/
python_client.rs): a running `rotor serve`, its tokens, the CLI and config, PostgreSQL and
Redis addresses. A missing variable or an unreachable server FAILS a test, never skips it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest


def need(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(
            f"{name} is not set: run this suite through `cargo test -p rotor-cli --test "
            "python_client` (or scripts/test), which starts rotor serve, PostgreSQL and Redis",
            pytrace=False,
        )
    return value


@dataclass
class Rotor:
    url: str
    admin_token: str
    app_token: str
    bin: str
    config: str
    dir: str
    env_file: str
    grace: float
    pg: dict[str, Any]
    redis: dict[str, Any]

    def cli(self, *args: str, stdin: bytes | None = None) -> str:
        """Runs the real `rotor` CLI on the same store as the daemon."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROTOR_")}
        env["ROTOR_CONFIG"] = self.config
        r = subprocess.run([self.bin, *args], input=stdin, capture_output=True, env=env, timeout=30)
        assert r.returncode == 0, f"rotor {' '.join(args)}: {r.stderr.decode()}"
        return r.stdout.decode()

    def rotate(self, name: str) -> dict[str, Any]:
        """Rotates through the API, as an operator or the scheduler would."""
        r = httpx.post(
            f"{self.url}/v1/secrets/{name}/rotate",
            headers={"Authorization": f"Bearer {self.admin_token}"},
            json={"reason": "pytest of the Python client"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        return r.json()

    def secret(self, name: str) -> dict[str, Any]:
        r = httpx.get(
            f"{self.url}/v1/secrets/{name}",
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        return r.json()

    def stages(self, name: str) -> dict[str, str]:
        """stage -> version id."""
        out = {}
        for v in self.secret(name)["versions"]:
            for s in v.get("stages", []):
                out[s] = v["id"]
        return out

    def write_keyring(self, name: str, path: str) -> None:
        """`rotor keyring NAME --reveal` into `path`, 0600 and atomically (as a deploy would)."""
        doc = self.cli("keyring", name, "--reveal")
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path))
        with os.fdopen(fd, "w") as f:
            f.write(doc)
        os.replace(tmp, path)


def wait_until(pred: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.05)


async def async_wait_until(pred: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        await asyncio.sleep(0.05)


@pytest.fixture(scope="session")
def rotor() -> Rotor:
    r = Rotor(
        url=need("ROTOR_TEST_URL"),
        admin_token=need("ROTOR_TEST_ADMIN_TOKEN"),
        app_token=need("ROTOR_TEST_APP_TOKEN"),
        bin=need("ROTOR_TEST_BIN"),
        config=need("ROTOR_TEST_CONFIG"),
        dir=need("ROTOR_TEST_DIR"),
        env_file=need("ROTOR_TEST_ENV_FILE"),
        grace=float(need("ROTOR_TEST_GRACE_SECONDS")),
        pg={
            "host": need("ROTOR_TEST_PG_HOST"),
            "port": int(need("ROTOR_TEST_PG_PORT")),
            "database": need("ROTOR_TEST_PG_DB"),
        },
        redis={"host": need("ROTOR_TEST_REDIS_HOST"), "port": int(need("ROTOR_TEST_REDIS_PORT"))},
    )
    try:
        ok = httpx.get(f"{r.url}/healthz", timeout=5).status_code == 200
    except httpx.HTTPError as e:
        pytest.fail(f"rotor serve at {r.url} is not reachable: {e}", pytrace=False)
    assert ok, f"rotor serve at {r.url} is not healthy"
    return r
