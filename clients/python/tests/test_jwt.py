"""JWT keys across real rotations made by `rotor serve`: the rendered env file, a keyring
file, and the JWKS. Old tokens verify during grace and are rejected after retire; tokens
made here verify in rotor (`rotor jwt verify`) and rotor's verify in here."""

from __future__ import annotations

import os
import time

import jwt
import pytest

import rotor_client
from rotor_client import EnvFileKeys, EnvironKeys, JwksKeys, KeyringFileKeys, TokenCodec
from rotor_client.envfile import read_dotenv

from conftest import Rotor, wait_until


def claims(sub: str) -> dict[str, object]:
    now = int(time.time())
    return {"sub": sub, "iat": now, "exp": now + 600}


def test_drop_ins_on_the_rendered_env_file_across_rotation_and_retire(rotor: Rotor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROTOR_ENV_FILE", rotor.env_file)
    rotor_client.configure(None)  # the drop-ins read ROTOR_ENV_FILE, as an app would
    try:
        old_token = rotor_client.encode_access(claims("before"))
        old_key = read_dotenv(rotor.env_file)["SECRET_KEY"].reveal()
        only_old = TokenCodec(EnvironKeys(environ={"SECRET_KEY": old_key}))
        assert rotor_client.decode_access(old_token)["sub"] == "before"
        # rotor itself accepts what the drop-in signed: same key, same kid.
        assert "before" in rotor.cli("jwt", "verify", "jwt-signing", stdin=old_token.encode())
        before = os.stat(rotor.env_file).st_mtime_ns

        rotor.rotate("jwt-signing")
        wait_until(lambda: os.stat(rotor.env_file).st_mtime_ns != before, "app.env rewritten at finish")
        # No restart, no reload call: the file changed, so the next use reads it.
        new_token = rotor_client.encode_access(claims("after"))
        with pytest.raises(jwt.InvalidTokenError):
            only_old.decode(new_token)  # signed with the new key, not the old one
        assert rotor_client.decode_access(new_token)["sub"] == "after"
        assert rotor_client.decode_access(old_token)["sub"] == "before", "previous verifies in grace"
        assert "after" in rotor.cli("jwt", "verify", "jwt-signing", stdin=new_token.encode())
        rotor_signed = rotor.cli("jwt", "sign", "jwt-signing", "--claims", '{"sub":"from-rotor"}').strip()
        assert rotor_client.decode_access(rotor_signed)["sub"] == "from-rotor"

        # The scheduler retires after grace and re-renders: SECRET_KEY_PREVIOUS is empty.
        wait_until(
            lambda: read_dotenv(rotor.env_file)["SECRET_KEY_PREVIOUS"].reveal() == "",
            "retire (SECRET_KEY_PREVIOUS emptied)",
            timeout=rotor.grace + 20,
        )
        with pytest.raises(jwt.InvalidTokenError):  # "unknown kid", or a bad signature for kid-less keys
            rotor_client.decode_access(old_token)
        assert rotor_client.decode_access(new_token)["sub"] == "after"
    finally:
        rotor_client.configure(None)


def test_keyring_file_reload_and_not_after(rotor: Rotor) -> None:
    path = os.path.join(rotor.dir, "keyring.json")
    rotor.write_keyring("jwt-signing", path)
    source = KeyringFileKeys(path)
    codec = TokenCodec(source)
    old_token = codec.encode(claims("old"))
    old_kid = jwt.get_unverified_header(old_token)["kid"]

    rotor.rotate("jwt-signing")
    rotor.write_keyring("jwt-signing", path)
    loads = source.loads
    new_token = codec.encode(claims("new"))
    assert source.loads == loads + 1, "the changed file was read again"
    assert jwt.get_unverified_header(new_token)["kid"] != old_kid
    assert codec.decode(old_token)["sub"] == "old", "previous verifies during grace"
    assert "new" in rotor.cli("jwt", "verify", "jwt-signing", stdin=new_token.encode())
    previous = [k for k in source.keys() if k.stage == "previous"]
    assert [k.kid for k in previous] == [old_kid] and previous[0].not_after is not None

    # Past not_after the previous key stops verifying even if nobody rewrote the file.
    wait_until(lambda: time.time() > previous[0].not_after + 0.1, "grace to end", timeout=rotor.grace + 10)
    with pytest.raises(jwt.InvalidTokenError):
        codec.decode(old_token)
    assert codec.decode(new_token)["sub"] == "new"
    # And once rotor retired it, the rewritten keyring no longer holds it at all.
    wait_until(lambda: "previous" not in rotor.stages("jwt-signing"), "retire", timeout=20)
    rotor.write_keyring("jwt-signing", path)
    assert [k.stage for k in source.keys()] == ["current"]


def test_jwks_is_fetched_again_on_an_unknown_kid(rotor: Rotor) -> None:
    url = f"{rotor.url}/v1/secrets/jwt-es/jwks.json"
    keys = JwksKeys(url, cooldown=2.0)
    codec = TokenCodec(keys)
    first = rotor.cli("jwt", "sign", "jwt-es", "--claims", '{"sub":"one"}').strip()
    assert codec.decode(first)["sub"] == "one"
    assert keys.fetches == 1

    rotor.rotate("jwt-es")
    second = rotor.cli("jwt", "sign", "jwt-es", "--claims", '{"sub":"two"}').strip()
    assert jwt.get_unverified_header(second)["kid"] not in {k.kid for k in keys.keys()}
    assert codec.decode(second)["sub"] == "two", "unknown kid: JWKS fetched again"
    assert keys.fetches == 2
    assert codec.decode(first)["sub"] == "one", "the previous public key is published in grace"

    # Forged kids cannot make the client hammer rotor: one fetch per cooldown at most.
    forged = jwt.encode({"sub": "x"}, "k" * 32, algorithm="HS256", headers={"kid": "nope"})
    for _ in range(20):
        with pytest.raises(jwt.InvalidTokenError):
            codec.decode(forged)
    assert keys.fetches <= 3
    with pytest.raises(rotor_client.KeyFormError, match="verifies only"):
        codec.encode({"sub": "x"})
    wait_until(lambda: "previous" not in rotor.stages("jwt-es"), "retire", timeout=rotor.grace + 20)


def test_env_file_source_names_the_fix_for_a_missing_variable(rotor: Rotor) -> None:
    with pytest.raises(rotor_client.KeyFormError, match="no variable JWT_KEY"):
        EnvFileKeys(rotor.env_file, current="JWT_KEY")
