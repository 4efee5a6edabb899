"""PyJWT side of the rotor-keyring interop test.

usage:
  interop.py verify <alg> <keyfile> <token>   keyfile: JWKS JSON, or hex secret for HS*
  interop.py sign   <alg> <keyfile> <kid> <claims-json>
                                              keyfile: PKCS#8 PEM, or hex secret for HS*
Prints the decoded claims (verify) or the token (sign) on stdout.
"""
import json
import sys

import jwt


def load_secret(path):
    with open(path) as f:
        return bytes.fromhex(f.read().strip())


def verify(alg, keyfile, token):
    if alg.startswith("HS"):
        key = load_secret(keyfile)
    else:
        with open(keyfile) as f:
            jwks = jwt.PyJWKSet.from_json(f.read())
        kid = jwt.get_unverified_header(token)["kid"]
        jwk = next(k for k in jwks.keys if k.key_id == kid)
        if jwk.algorithm_name != alg:
            raise SystemExit(f"JWKS alg {jwk.algorithm_name} != {alg}")
        key = jwk.key
    claims = jwt.decode(token, key, algorithms=[alg], options={"require": ["exp"]})
    print(json.dumps(claims, sort_keys=True))


def sign(alg, keyfile, kid, claims_json):
    if alg.startswith("HS"):
        key = load_secret(keyfile)
    else:
        with open(keyfile) as f:
            key = f.read()
    print(jwt.encode(json.loads(claims_json), key, algorithm=alg, headers={"kid": kid}))


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"verify": verify, "sign": sign}[cmd](*args)
