"""examples/deploy/kubernetes: valid against the Kubernetes JSON schemas (kubernetes-validate's offline copy,
strict: an unknown or misplaced field fails), consistent with itself (selectors, ports, probes, timings),
locked down as the image allows (non-root, read-only root, no capabilities), and its ConfigMap and Secret
make a config tree that `sts-broker check` accepts as the Deployment projects it at /config."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.deploy.broker_process import STS_BROKER, broker_env
from tests.deploy.manifests import KUBERNETES, broker_container, by_kind, documents, option

# The oldest Kubernetes release still commonly run and the newest the schemas know.
VERSIONS = ["1.32.0", kubernetes_validate.latest_version()]
KINDS = {"Namespace", "ServiceAccount", "ConfigMap", "Secret", "Deployment", "Service", "PodDisruptionBudget",
         "NetworkPolicy"}


def test_the_expected_resources_are_there() -> None:
    assert {doc["kind"] for _, doc in documents()} == KINDS
    assert {doc["metadata"].get("namespace", doc["metadata"]["name"]) for _, doc in documents()} == {"sts-broker"}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("document", documents(), ids=lambda d: f"{d[0].name}:{d[1]['kind']}")
def test_schema(document: tuple[Path, dict[str, Any]], version: str) -> None:
    kubernetes_validate.validate(document[1], version, strict=True)


def test_the_schema_check_catches_a_misplaced_field() -> None:
    deployment = by_kind("Deployment")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def _labels() -> dict[str, str]:
    labels: dict[str, str] = by_kind("Deployment")["spec"]["template"]["metadata"]["labels"]
    return labels


def test_selectors_match_the_pods() -> None:
    labels = _labels()
    deployment = by_kind("Deployment")
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert by_kind("Service")["spec"]["selector"].items() <= labels.items()
    assert by_kind("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert by_kind("NetworkPolicy")["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert by_kind("PodDisruptionBudget")["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_ports_and_probes() -> None:
    container = broker_container()
    env = {e["name"]: e for e in container["env"]}
    port = int(env["STS_BROKER_PORT"]["value"])  # serve's --port default, and the health check's
    assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert by_kind("Service")["spec"]["ports"][0]["targetPort"] == "http"
    assert [p["port"] for p in by_kind("NetworkPolicy")["spec"]["ingress"][0]["ports"]] == [port]
    probes = {name: container[name]["httpGet"] for name in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes == {"startupProbe": {"path": "/healthz", "port": "http"},
                      "livenessProbe": {"path": "/healthz", "port": "http"},
                      "readinessProbe": {"path": "/readyz", "port": "http"}}
    assert {"requests", "limits"} <= container["resources"].keys()


def test_the_shutdown_fits_the_grace_period() -> None:
    """A pod is taken out of the Service within the drain (readiness probed every periodSeconds, 503 from the
    first moment of SIGTERM), and the drain plus the deadline end before the kubelet's SIGKILL."""
    container = broker_container()
    command = container["command"]
    assert command[:2] == ["sts-broker", "serve"]
    drain, deadline = float(option(command, "--drain")), float(option(command, "--shutdown-deadline"))
    readiness = container["readinessProbe"]
    assert readiness["periodSeconds"] * readiness["failureThreshold"] < drain
    grace = by_kind("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert drain + deadline < grace


def test_locked_down() -> None:
    pod = by_kind("Deployment")["spec"]["template"]["spec"]
    container = broker_container()
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["fsGroup"] == 10001  # the projected key file's group: mode 0440 is enough
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True, "runAsUser": 10001,
        "runAsGroup": 10001, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts.keys() == {"/config", "/tmp"} and mounts["/config"]["readOnly"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/tmp"]["name"]]["emptyDir"]["medium"] == "Memory"
    assert pod["automountServiceAccountToken"] is False
    account = by_kind("ServiceAccount")
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
    assert "@sha256:" in container["image"]


def _projected_tree(into: Path) -> Path:
    """The /config the Deployment's projected volume makes: ConfigMap and Secret keys at their item paths,
    the Secret's placeholder key replaced by a generated one (as `kubectl create secret --from-file` would)."""
    volume = next(v for v in by_kind("Deployment")["spec"]["template"]["spec"]["volumes"] if v["name"] == "config")
    data = {"configMap": by_kind("ConfigMap")["data"], "secret": by_kind("Secret")["stringData"]}
    for source in volume["projected"]["sources"]:
        (kind, spec), = source.items()
        assert spec["name"] == (by_kind("ConfigMap") if kind == "configMap" else by_kind("Secret"))["metadata"]["name"]
        for item in spec["items"]:
            path = into / item["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            if item["path"].endswith(".pem"):
                done = subprocess.run([STS_BROKER, "keys", "generate", "--out", str(path), "--bits", "2048"],
                                      capture_output=True, check=False, timeout=60)
                assert done.returncode == 0
            else:
                path.write_text(data[kind][item["key"]])
    return into / "broker.yaml"


def test_the_configmap_and_secret_make_a_config_the_broker_accepts(tmp_path: Path) -> None:
    config = _projected_tree(tmp_path / "config")
    env_names = {e["name"] for e in broker_container()["env"]}
    secret_keys = set(by_kind("Secret")["stringData"])
    assert {"BROKER_SESSION_SECRET", "BROKER_STORE_URL", "OKTA_CLIENT_SECRET"} <= env_names & secret_keys
    env = broker_env(BROKER_STORE_URL="redis://127.0.0.1:6379/0", BROKER_SESSION_SECRET=secrets.token_urlsafe(48))
    done = subprocess.run([STS_BROKER, "check", "--config", str(config)], env=env, capture_output=True, text=True,
                          check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (config.parent / "idp_configs" / "okta.yaml").exists()


def test_the_kubernetes_directory_holds_only_manifests() -> None:
    assert sorted(p.suffix for p in KUBERNETES.iterdir()) == [".yaml"] * len(list(KUBERNETES.iterdir()))
