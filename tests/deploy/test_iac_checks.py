"""A static IaC checker over the deployment files: checkov (pinned in the Makefile's `iac-tools` venv, .venv-iac:
its own pins, boto3 1.35 among them, clash with the broker's) on the Kubernetes manifests and the Dockerfile,
offline (--skip-download). Every check passes; the one waiver is written in the manifest with its reason."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.deploy.manifests import KUBERNETES, ROOT

CHECKOV = ROOT / ".venv-iac" / "bin" / "checkov"
WAIVED = {"CKV_K8S_35"}  # secrets as environment variables: broker.yaml reads ${NAME} (deployment.yaml says why)


def _checkov(*args: str) -> dict[str, Any]:
    assert CHECKOV.exists(), "checkov is not installed: run `make iac-tools` (it makes .venv-iac)"
    done = subprocess.run([str(CHECKOV), *args, "--output", "json", "--skip-download"], cwd=ROOT,
                          capture_output=True, text=True, check=False, timeout=300)
    report = json.loads(done.stdout)
    reports: list[dict[str, Any]] = report if isinstance(report, list) else [report]
    assert len(reports) == 1, done.stdout[:2000]
    return reports[0]


def _failures(report: dict[str, Any]) -> list[str]:
    return [f"{c['check_id']} {c['resource']} {c['file_path']}" for c in report["results"]["failed_checks"]]


def test_checkov_passes_the_kubernetes_manifests() -> None:
    report = _checkov("--directory", str(KUBERNETES), "--framework", "kubernetes")
    assert report["summary"]["passed"] > 50
    assert _failures(report) == []
    assert {c["check_id"] for c in report["results"]["skipped_checks"]} == WAIVED


def test_checkov_passes_the_dockerfile() -> None:
    report = _checkov("--file", "Dockerfile", "--framework", "dockerfile")
    assert report["summary"]["passed"] > 10
    assert _failures(report) == [] and report["results"]["skipped_checks"] == []


def test_checkov_fails_a_manifest_that_runs_as_root(tmp_path: Path) -> None:
    """The checker does check: the same Deployment with its securityContext removed fails."""
    text = (KUBERNETES / "deployment.yaml").read_text()
    broken = text.replace("readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false")
    assert broken != text
    (tmp_path / "deployment.yaml").write_text(broken)
    report = _checkov("--directory", str(tmp_path), "--framework", "kubernetes")
    assert "CKV_K8S_22" in {c["check_id"] for c in report["results"]["failed_checks"]}
