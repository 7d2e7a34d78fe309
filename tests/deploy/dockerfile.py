"""The Dockerfile read as the image builder reads it, enough for the tests: each instruction with its
arguments (continuation lines joined), and the final stage's ENV, USER, CMD and HEALTHCHECK."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Instruction:
    keyword: str
    text: str


def instructions(path: Path = ROOT / "Dockerfile") -> list[Instruction]:
    found, pending = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        pending += stripped[:-1] + " " if stripped.endswith("\\") else stripped
        if not stripped.endswith("\\"):
            keyword, _, text = pending.partition(" ")
            found.append(Instruction(keyword.upper(), text.strip()))
            pending = ""
    return found


def final_stage(found: list[Instruction]) -> list[Instruction]:
    starts = [i for i, ins in enumerate(found) if ins.keyword == "FROM"]
    return found[starts[-1]:]


def env_of(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in stage:
        if ins.keyword == "ENV":
            env.update(word.split("=", 1) for word in shlex.split(ins.text))  # type: ignore[misc]
    return env


def exec_form(stage: list[Instruction], keyword: str) -> list[str]:
    """The JSON (exec) form of CMD, or of HEALTHCHECK's CMD after its options."""
    text = next(ins.text for ins in stage if ins.keyword == keyword)
    if keyword == "HEALTHCHECK":
        text = text[text.index("CMD ") + 4:]
    words: list[str] = json.loads(text)
    return words
