"""rotor_client: use secrets rotated by rotor from a Python service.

* JWT keys across rotations: :func:`decode_access` / :func:`encode_access` (drop-ins for the
  seed's module), :class:`TokenCodec` over :class:`EnvFileKeys`, :class:`KeyringFileKeys`,
  :class:`EnvironKeys` or :class:`JwksKeys`.
* Credentials that rotate: :class:`CredentialWatcher` on rotor's ``/v1/watch`` stream, and
  :class:`SwappablePool` (asyncpg) / :class:`SwappableRedis` (redis-py) that swap to the new
  credential without dropping requests.
"""

from .api import Credential, RotorApi, Value
from .envfile import parse_dotenv, read_dotenv
from .errors import ApiError, KeyFormError, RotorClientError
from .keyform import Key
from .keys import EnvFileKeys, EnvironKeys, JwksKeys, KeyringFileKeys, KeySource
from .secret import Secret
from .swap import SwappablePool, SwappableRedis
from .tokens import TokenCodec, codec_from_env, configure, decode_access, encode_access
from .watch import CredentialChange, CredentialWatcher

__all__ = [
    "ApiError",
    "Credential",
    "CredentialChange",
    "CredentialWatcher",
    "EnvFileKeys",
    "EnvironKeys",
    "JwksKeys",
    "Key",
    "KeyFormError",
    "KeySource",
    "KeyringFileKeys",
    "RotorApi",
    "RotorClientError",
    "Secret",
    "SwappablePool",
    "SwappableRedis",
    "TokenCodec",
    "Value",
    "codec_from_env",
    "configure",
    "decode_access",
    "encode_access",
    "parse_dotenv",
    "read_dotenv",
]
