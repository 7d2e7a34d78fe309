"""The image's start command, run as the image runs it where no container engine is: as uid 10001 and gid
10001 (setpriv), in a mount namespace whose root filesystem is read-only (the work tree and the venv with
it) with a tmpfs on /tmp, the example config tree mounted read-only (its files without write bits, the key
made by `sts-broker keys generate --group 10001`), the command, environment and health check read from the
Dockerfile. It gets ready (/readyz 200), its health check passes as the same user, and SIGTERM ends it
with exit 0. The key as `keys generate` made it before `--group` (mode 600, the host user's) is refused.

The only substitution: /config cannot be created on this host's root, so the tree is mounted at /srv and
$STS_BROKER_CONFIG (the image's default for --config) points there; the listener's host and port are the
image's environment variables set to loopback and a free port."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from broker.devstack.servers import free_port
from tests.deploy.broker_process import ROOT, STS_BROKER, broker_env, start, stop, wait_ready
from tests.deploy.dockerfile import env_of, exec_form, final_stage, instructions

UID = 10001
MOUNT_POINT = "/srv"
# In a private mount namespace: the config tree read-only at MOUNT_POINT, a tmpfs at /tmp, then the root
# filesystem (this work tree, the venv, /etc) read-only; then the image's user, and its command.
# A work tree under /tmp (a clone there) would vanish under the tmpfs: it is held at /mnt meanwhile and
# bound back, read-only, at its own path on the tmpfs ($KEEP is empty otherwise).
NAMESPACE_SCRIPT = f"""set -e
mount --make-rprivate /
mount --bind "$CONFIG_TREE" {MOUNT_POINT}
mount -o remount,bind,ro {MOUNT_POINT}
if [ -n "$KEEP" ]; then mount --bind "$KEEP" /mnt; fi
mount -t tmpfs -o size=16m,mode=1777 tmpfs /tmp
if [ -n "$KEEP" ]; then mkdir -p "$KEEP"; mount --bind /mnt "$KEEP"; mount -o remount,bind,ro "$KEEP"; fi
mount -o remount,bind,ro /
cd /tmp
exec setpriv --reuid {UID} --regid {UID} --clear-groups --no-new-privs -- "$@"
"""


def _config_tree(tmp: Path, group: str | None) -> Path:
    tree = tmp / "config"
    shutil.copytree(ROOT / "examples" / "config", tree)
    command = [STS_BROKER, "keys", "generate", "--out", str(tree / "keys" / "k2026a.pem"), "--bits", "2048"]
    done = subprocess.run([*command, *(["--group", group] if group else [])], capture_output=True, text=True,
                          check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    subprocess.run(["chmod", "-R", "a-w", str(tree)], check=True)
    return tree


def _image_env(port: int) -> dict[str, str]:
    stage = final_stage(instructions())
    env = broker_env(**env_of(stage))
    env.update(STS_BROKER_CONFIG=f"{MOUNT_POINT}/broker.yaml", STS_BROKER_HOST="127.0.0.1", STS_BROKER_PORT=str(port),
               PATH=f"{Path(STS_BROKER).parent}:{env['PATH']}",
               KEEP=str(ROOT) if Path(ROOT).resolve().is_relative_to("/tmp") else "")
    return env


def _start_image(tree: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    assert os.geteuid() == 0, "this test drops to uid 10001 in a mount namespace: run it as root (as CI does)"
    command = exec_form(final_stage(instructions()), "CMD")
    env = {**_image_env(port), "CONFIG_TREE": str(tree)}
    return start(["unshare", "--mount", "sh", "-c", NAMESPACE_SCRIPT, "image", *command], env, log)


def test_the_image_command_runs_as_10001_on_a_read_only_root(tmp_path: Path) -> None:
    tree = _config_tree(tmp_path, group=str(UID))
    key = (tree / "keys" / "k2026a.pem").stat()
    assert (stat.S_IMODE(key.st_mode), key.st_uid, key.st_gid) == (0o440, 0, UID)  # 640 less write bits
    port, log = free_port(), tmp_path / "image.log"
    process = _start_image(tree, port, log)
    try:
        wait_ready(port, process, log)
        status = subprocess.run(["ps", "-o", "uid=,gid=", "-p", str(process.pid)], capture_output=True, text=True,
                                check=True).stdout.split()
        assert status == [str(UID), str(UID)]
        probe = exec_form(final_stage(instructions()), "HEALTHCHECK")
        for extra in ([], ["--ready"]):
            checked = subprocess.run(["setpriv", "--reuid", str(UID), "--regid", str(UID), "--clear-groups", "--",
                                      *probe, *extra], env=_image_env(port), capture_output=True, text=True,
                                     check=False, timeout=10)
            assert checked.returncode == 0, checked.stdout + checked.stderr
            assert f"127.0.0.1:{port}/" in checked.stdout
        process.send_signal(signal.SIGTERM)
        assert process.wait(40) == 0, log.read_text()
    finally:
        stop(process)
    assert "Read-only file system" not in log.read_text() and "Permission denied" not in log.read_text()


def test_check_runs_in_the_image_as_10001(tmp_path: Path) -> None:
    """`docker run IMAGE sts-broker check`: the same user, mounts and environment, the config found by default."""
    tree = _config_tree(tmp_path, group=str(UID))
    env = {**_image_env(free_port()), "CONFIG_TREE": str(tree)}
    done = subprocess.run(["unshare", "--mount", "sh", "-c", NAMESPACE_SCRIPT, "image", "sts-broker", "check"], env=env,
                          capture_output=True, text=True, check=False, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, f"{MOUNT_POINT}/broker.yaml: OK"), done.stderr


def test_a_key_only_its_owner_can_read_stops_the_image(tmp_path: Path) -> None:
    tree = _config_tree(tmp_path, group=None)
    port, log = free_port(), tmp_path / "image.log"
    process = _start_image(tree, port, log)
    try:
        assert process.wait(60) == 2
    finally:
        stop(process)
    assert "/srv/keys/k2026a.pem is not readable by this user (uid 10001)" in log.read_text()


def test_the_healthcheck_fails_when_nothing_answers() -> None:
    port = free_port()
    done = subprocess.run([STS_BROKER, "healthcheck"], env={**os.environ, "STS_BROKER_PORT": str(port)},
                          capture_output=True, text=True, check=False, timeout=10)
    assert done.returncode == 1 and f"127.0.0.1:{port}/healthz: no answer" in done.stdout


@pytest.mark.parametrize("group", ["10001", "nosuchgroup-xyz"])
def test_keys_generate_group(tmp_path: Path, group: str) -> None:
    out = tmp_path / "k.pem"
    done = subprocess.run([STS_BROKER, "keys", "generate", "--out", str(out), "--bits", "2048", "--group", group],
                          capture_output=True, text=True, check=False, timeout=60)
    if group.isdigit():
        assert done.returncode == 0 and "mode 640, group 10001" in done.stdout
        assert (stat.S_IMODE(out.stat().st_mode), out.stat().st_gid) == (0o640, 10001)
    else:
        assert done.returncode == 1 and "no group named 'nosuchgroup-xyz'" in done.stderr
        assert not out.exists()  # no key left behind with the wrong owner


def test_the_healthcheck_loads_nothing_of_the_server() -> None:
    """It runs every few seconds in every replica: no web framework, server, config or YAML import."""
    code = ("import sys; from broker.cli import main; main(['healthcheck', '--port', '1', '--timeout', '0.5']); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in {'starlette', 'uvicorn', 'yaml', 'pydantic', "
            "'cryptography', 'httpx'} or m in {'broker.config', 'broker.service', 'broker.settings'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30)
    assert done.stdout.splitlines()[-1] == "[]"
