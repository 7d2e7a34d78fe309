"""`sts-broker credential-process` from a warm cache, as a whole process, against the floor of any Python
credential_process: the same interpreter starting, printing a fixed credential_process JSON and exiting.

    python -m bench.cli_credential_process        (make bench runs it)

Every `aws` call that uses a profile written by `sts-broker configure` pays this start-up, so the target is
within 2x of the floor. Both run the same number of times, interleaved (a busy neighbour slows both), each
figure the median. A third line, for the record: the floor plus importing AES-GCM from `cryptography` (what
encrypting the cache at rest would add before a single byte is decrypted).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS, MAX_SECONDS, TARGET = 41, 90.0, 2.0
ROLE = "arn:aws:iam::111122223333:role/Bench"


def warm_home(home: str) -> str:
    """A logged-in client home with fresh credentials for ROLE cached; returns the credential JSON."""
    os.environ["STS_BROKER_HOME"] = home
    from broker.client import cache, files, keystore, state

    dirs = state.dirs()
    broker = "http://127.0.0.1:9"
    info = state.SessionInfo(broker, "bench", time.time() + 3600, keystore.store(dirs.config, broker, "t"))
    state.save_session(info)
    now = time.time()
    creds = {"Version": 1, "AccessKeyId": "ASIABENCHBENCHBENCH0", "SecretAccessKey": "s" * 40,
             "SessionToken": "t" * 600, "Expiration": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600))}
    files.private_dir(dirs.cache)
    cache.write(cache.cache_file(dirs.cache, ROLE, None), info, ROLE, cache.Entry(creds, now, now + 3600))
    return json.dumps(creds)


def run(command: list[str], env: dict[str, str], expect: str) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=30)
    elapsed = time.perf_counter() - start
    if done.returncode != 0 or json.loads(done.stdout) != json.loads(expect):
        raise SystemExit(f"{command[0]} failed: {done.returncode} {done.stderr.strip()[:300]}")
    return elapsed


def main() -> int:
    python = sys.executable
    script = str(Path(python).with_name("sts-broker"))
    with tempfile.TemporaryDirectory() as home:
        expect = warm_home(home)
        env = {**os.environ, "STS_BROKER_HOME": home}
        printer = f"import sys; sys.stdout.write({expect!r} + '\\n')"
        variants = {
            "floor: python printing fixed JSON": [python, "-c", printer],
            "sts-broker credential-process": [script, "credential-process", "--role", ROLE],
            "floor + import AES-GCM (for the record)":
                [python, "-c", "from cryptography.hazmat.primitives.ciphers.aead import AESGCM; " + printer],
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        deadline = time.perf_counter() + MAX_SECONDS
        for _ in range(RUNS):
            for name, command in variants.items():
                times[name].append(run(command, env, expect))
            if time.perf_counter() > deadline:
                break
    medians = {name: statistics.median(values) for name, values in times.items()}
    floor = medians["floor: python printing fixed JSON"]
    print(f"credential-process from a warm cache, median of {len(times[next(iter(times))])} runs each:")
    for name, value in medians.items():
        print(f"  {name:42} {value * 1000:7.1f} ms  {value / floor:5.2f}x floor")
    ratio = medians["sts-broker credential-process"] / floor
    print(f"  target: within {TARGET:.0f}x of the floor: {'met' if ratio <= TARGET else 'MISSED'} ({ratio:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
