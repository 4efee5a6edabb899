"""The errors of rotor_client. Messages name the thing and the fix, never a secret value."""

from __future__ import annotations


class RotorClientError(Exception):
    """Base class of every error this package raises (besides PyJWT's token errors)."""


class KeyFormError(RotorClientError):
    """A rendered key, env file, keyring or JWKS cannot be read as rotor writes it."""


class ApiError(RotorClientError):
    """`rotor serve` answered with an error (`{"error": {"code", "message"}}`) or not at all."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"rotor API: {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
