"""Twenty processes wanting the same role's credentials at once: one of them fetches, the others wait on the
lock and read what it wrote."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

from broker.client import cache, state
from tests.client.conftest import credentials

ROLE = "arn:aws:iam::111122223333:role/Dev"
PROCESSES = 20


def _worker(home: str, info: state.SessionInfo, log: str, out: multiprocessing.Queue[str]) -> None:
    os.environ["STS_BROKER_HOME"] = home

    def fetch() -> dict[str, object]:
        with open(log, "a") as counter:
            counter.write("fetch\n")
        time.sleep(0.5)  # an STS call: long enough that every other process arrives while it runs
        return credentials(f"ASIA{os.getpid()}", time.time() + 3600)

    out.put(str(cache.credentials(state.dirs().cache, info, ROLE, None, fetch)["AccessKeyId"]))


def test_twenty_parallel_processes_fetch_once(session: state.SessionInfo, home: Path, tmp_path: Path) -> None:
    log = tmp_path / "fetches"
    log.touch()
    context = multiprocessing.get_context("fork")
    results: multiprocessing.Queue[str] = context.Queue()
    workers = [context.Process(target=_worker, args=(str(home), session, str(log), results))
               for _ in range(PROCESSES)]
    for worker in workers:
        worker.start()
    keys = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert log.read_text().count("fetch") == 1
    assert len(set(keys)) == 1 and all(w.exitcode == 0 for w in workers)
