"""examples/deploy/kubernetes read as kubectl would: every document of every file, by kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "examples" / "deploy" / "kubernetes"
COMPOSE = ROOT / "examples" / "deploy" / "compose"


def documents() -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for file in sorted(KUBERNETES.glob("*.yaml")):
        found += [(file, doc) for doc in yaml.safe_load_all(file.read_text()) if doc]
    return found


def by_kind(kind: str) -> dict[str, Any]:
    matches = [doc for _, doc in documents() if doc["kind"] == kind]
    assert len(matches) == 1, f"{len(matches)} {kind} documents"
    return matches[0]


def broker_container() -> dict[str, Any]:
    containers: list[dict[str, Any]] = by_kind("Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["broker"]
    return containers[0]


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]
