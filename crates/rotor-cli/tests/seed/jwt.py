# The seed's JWT module, verbatim from the policy document (O1-02, "Architecture for Graceful
# Rotation"), for tests: the app must work unchanged with what rotor renders into its .env.
# backend/app/infra/jwt.py

import os
import jwt  # the only line added: the seed's snippet uses jwt without importing it
from datetime import datetime

# Support multiple keys for rotation
JWT_KEYS = {
    "current": os.getenv("SECRET_KEY"),
    "previous": os.getenv("SECRET_KEY_PREVIOUS", ""),  # For graceful rotation
}

def encode_access(payload: dict) -> str:
    """Always encode with current key."""
    payload["kid"] = "current"  # Key ID
    return jwt.encode(payload, JWT_KEYS["current"], algorithm="HS256")

def decode_access(token: str) -> dict:
    """Try current key, fall back to previous."""
    # Try current key first
    try:
        return jwt.decode(token, JWT_KEYS["current"], algorithms=["HS256"])
    except jwt.InvalidSignatureError:
        pass
    
    # Fall back to previous key during rotation window
    if JWT_KEYS["previous"]:
        try:
            return jwt.decode(token, JWT_KEYS["previous"], algorithms=["HS256"])
        except jwt.InvalidSignatureError:
            pass
    
    raise jwt.InvalidTokenError("Invalid signature")
