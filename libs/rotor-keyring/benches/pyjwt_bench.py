"""PyJWT side of scripts/bench-jwt: decode ops/s for the tokens the Rust bench wrote,
then the ratio table. usage: pyjwt_bench.py <dir written by ROTOR_BENCH_OUT>"""
import json
import sys
import time

import jwt

ISS = "https://auth.example.com"
AUD = "api.example.com"
TARGETS = {"HS256": 15.0, "EdDSA": 3.0, "ES256": 1.8}


def key_for(alg, raw):
    if alg.startswith("HS"):
        return bytes.fromhex(raw)
    # Pre-parsed key object: PyJWT's best case (no per-call PEM/JWK parsing).
    return jwt.PyJWK(json.loads(raw)).key


def ops_per_sec(fn, rounds=7, round_time=0.3):
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 0.1:
        fn()
        n += 1
    iters = max(10, int(n * round_time / 0.1))
    results = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        results.append(iters / (time.perf_counter() - t0))
    results.sort()
    return results[len(results) // 2]


def main(d):
    rust = json.load(open(f"{d}/rust.json"))
    print(f"PyJWT {jwt.__version__}, Python {sys.version.split()[0]}")
    print(f"{'alg':<6} {'PyJWT op/s':>12} {'keyring op/s':>13} {'ring/PyJWT':>11} {'target':>7}  "
          f"{'ring/jwt':>8} {'prev/cur':>8}")
    ok = True
    for alg in ["HS256", "EdDSA", "ES256"]:
        token = open(f"{d}/{alg}.token").read().strip()
        key = key_for(alg, open(f"{d}/{alg}.key").read().strip())
        jwt.decode(token, key, algorithms=[alg], audience=AUD, issuer=ISS)
        py = ops_per_sec(lambda: jwt.decode(token, key, algorithms=[alg], audience=AUD, issuer=ISS))
        r = rust[alg]
        ratio = r["keyring"] / py
        ring_jwt = r["keyring"] / r["jsonwebtoken"]
        prev_cur = r["keyring"] / r["previous"]
        t = TARGETS[alg]
        met = ratio >= t and ring_jwt >= 0.9 and prev_cur <= 1.05
        ok &= met
        print(f"{alg:<6} {py:>12.0f} {r['keyring']:>13.0f} {ratio:>10.1f}x {t:>6.1f}x  "
              f"{ring_jwt:>7.3f}x {prev_cur:>7.3f}x  {'ok' if met else 'MISS'}")
    print("targets: ring/PyJWT as listed, ring/jwt >= 0.9, prev/cur <= 1.05")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
