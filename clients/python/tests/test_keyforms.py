"""The key forms and the env-file dialect, read without a server (pure parsing), and the
verification rules that do not depend on where keys come from."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from rotor_client import EnvironKeys, KeyFormError, TokenCodec, parse_dotenv
from rotor_client.keyform import parse_hmac_value


def material(kid: str, secret: bytes, alg: str = "HS256") -> str:
    k = base64.urlsafe_b64encode(secret).rstrip(b"=").decode()
    return json.dumps({"kid": kid, "alg": alg, "k": k})


def test_dotenv_reads_rotors_quoting_back_byte_for_byte() -> None:
    # What crates/rotor-deliver writes for the value  a"b\c$d`e<newline>f
    text = '# Written by rotor\nSECRET_KEY="a\\"b\\\\c\\$d\\`e\nf"\nEMPTY=""\nPLAIN=x y\n'
    env = parse_dotenv(text)
    assert env["SECRET_KEY"].reveal() == 'a"b\\c$d`e\nf'
    assert env["EMPTY"].reveal() == ""
    assert env["PLAIN"].reveal() == "x y"
    assert "a\"b" not in repr(env), "values never show in repr"
    with pytest.raises(KeyFormError, match="no closing quote"):
        parse_dotenv('X="open\n')


def test_both_hmac_key_forms_and_empty_previous() -> None:
    secret = b"s" * 32
    jwk = parse_hmac_value(material("kid-1", secret), stage="current", what="SECRET_KEY")
    assert jwk is not None and (jwk.kid, jwk.alg, jwk.verify) == ("kid-1", "HS256", secret)
    plain = parse_hmac_value("seed-style-key", stage="current", what="SECRET_KEY")
    assert plain is not None and (plain.kid, plain.verify) == (None, b"seed-style-key")
    assert parse_hmac_value("", stage="previous", what="SECRET_KEY_PREVIOUS") is None
    assert "sss" not in repr(jwk), "a key's repr never holds its secret"
    with pytest.raises(KeyFormError, match='needs "k"'):
        parse_hmac_value('{"kid":"x","alg":"HS256"}', stage="current", what="SECRET_KEY")


def test_algorithm_is_pinned_to_the_key() -> None:
    secret = b"k" * 64
    codec = TokenCodec(EnvironKeys(environ={"SECRET_KEY": material("kid-1", secret)}))
    good = codec.encode({"sub": "u"})
    assert jwt.get_unverified_header(good)["kid"] == "kid-1"
    assert codec.decode(good)["sub"] == "u"
    confused = jwt.encode({"sub": "u"}, secret, algorithm="HS512", headers={"kid": "kid-1"})
    with pytest.raises(jwt.InvalidAlgorithmError):
        codec.decode(confused)
    unsigned = jwt.encode({"sub": "u"}, None, algorithm="none", headers={"kid": "kid-1"})
    with pytest.raises(jwt.InvalidTokenError):
        codec.decode(unsigned)
    with pytest.raises(jwt.InvalidTokenError, match="unknown kid"):
        codec.decode(jwt.encode({"sub": "u"}, secret, algorithm="HS256", headers={"kid": "other"}))


def test_seed_tokens_and_plain_keys_work_as_the_seed_module_did() -> None:
    old, new = "old-seed-key-" + "o" * 20, "new-seed-key-" + "n" * 20
    # A token the seed's encode_access made before the rotation (kid in the payload).
    seed_token = jwt.encode({"sub": "u", "kid": "current", "exp": int(time.time()) + 60}, old, algorithm="HS256")
    during = TokenCodec(EnvironKeys(environ={"SECRET_KEY": new, "SECRET_KEY_PREVIOUS": old}))
    assert during.decode(seed_token)["sub"] == "u", "previous key verifies during grace"
    assert during.decode(during.encode({"sub": "v"}))["sub"] == "v"
    after = TokenCodec(EnvironKeys(environ={"SECRET_KEY": new, "SECRET_KEY_PREVIOUS": ""}))
    with pytest.raises(jwt.InvalidSignatureError):
        after.decode(seed_token)
    with pytest.raises(KeyFormError, match="SECRET_KEY is not set"):
        EnvironKeys(environ={})
