"""The Dockerfile's shape (what a build would do, read statically: no container engine runs here) and the
.dockerignore allow-list, checked against the files a local run leaves behind."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

from tests.deploy.dockerfile import ROOT, env_of, exec_form, final_stage, instructions

FOUND = instructions()
FINAL = final_stage(FOUND)


def test_the_base_image_is_pinned_to_a_release() -> None:
    stages = [ins.text.split() for ins in FOUND if ins.keyword == "FROM"]
    assert [stage[1:] for stage in stages] == [["AS", "build"], ["AS", "runtime"]]
    assert stages[0][0] == stages[1][0]  # one base for both stages (the wheels are built for it)
    # An exact Python patch release on a named Debian release, and perhaps a digest: never python:3.11-slim.
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", stages[0][0]), stages[0]


def test_the_build_stage_makes_wheels_dependencies_first() -> None:
    build = FOUND[:FOUND.index(FINAL[0])]
    texts = [f"{ins.keyword} {ins.text}" for ins in build]
    deps = next(i for i, t in enumerate(texts) if "--requirement requirements.txt" in t)
    code = next(i for i, t in enumerate(texts) if t == "COPY broker ./broker")
    assert texts.index("COPY pyproject.toml ./") < deps < code
    assert "pip wheel --no-deps --wheel-dir /wheels/app ." in texts[code + 1]


def test_the_runtime_installs_dependencies_before_the_broker() -> None:
    texts = [f"{ins.keyword} {ins.text}" for ins in FINAL]
    deps = next(i for i, t in enumerate(texts) if t.startswith("RUN pip install --no-index --find-links /wheels/deps"))
    app = texts.index("COPY --from=build /wheels/app /wheels/app")
    assert deps < app
    assert not any(t.startswith("COPY") and "broker" in t.split()[1:2] for t in texts)  # no source in the image


def test_the_runtime_user_and_start_command() -> None:
    assert [ins.text for ins in FINAL if ins.keyword == "USER"] == ["10001:10001"]
    env = env_of(FINAL)
    assert env["STS_BROKER_CONFIG"] == "/config/broker.yaml" and env["STS_BROKER_PORT"] == "8000"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["HOME"] == env["TMPDIR"] == "/tmp"
    assert exec_form(FINAL, "CMD")[:2] == ["sts-broker", "serve"]
    assert exec_form(FINAL, "HEALTHCHECK") == ["sts-broker", "healthcheck"]


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes; a directory pattern covers its files."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        bare = pattern.lstrip("!").rstrip("/")
        if (fnmatch.fnmatch(path, bare) or path.startswith(bare + "/")
                or (bare.startswith("**/") and fnmatch.fnmatch(path.split("/")[-1], bare[3:]))):
            ignored = not negate
    return ignored


def test_dockerignore_is_an_allow_list() -> None:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*"
    for kept in ("pyproject.toml", "README.md", "broker/cli.py", "broker/web/templates/base.html"):
        assert not _ignored(kept, patterns), kept
    for left_out in (".venv/bin/python", ".git/HEAD", ".pytest_cache/v/x", ".mypy_cache/3.11/x.json", "tests/x.py",
                     "keys/k2026a.pem", "examples/config/keys/k.pem", ".demo/broker.yaml", "broker/__pycache__/cli.pyc",
                     "broker/keys/dev.pem", ".venv-iac/bin/checkov", "sts_broker.egg-info/PKG-INFO"):
        assert _ignored(left_out, patterns), left_out


def test_every_file_the_build_copies_is_in_the_context() -> None:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    copied = [ins.text.split()[0] for ins in FOUND if ins.keyword == "COPY" and not ins.text.startswith("--from")]
    assert copied == ["pyproject.toml", "README.md", "broker"]
    for source in copied:
        assert (ROOT / source).exists() and not _ignored(source, patterns)
    assert Path(ROOT / "broker" / "healthcheck.py").exists()
