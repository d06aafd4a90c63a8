"""`logpath doctor` run for real inside the lab's namespaces: its findings match the lab."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .conftest import CLI

pytestmark = pytest.mark.lab


def doctor_in(*wrapper: str) -> dict[str, dict]:
    done = subprocess.run(
        [*wrapper, *CLI, "doctor", "--json"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return {check["name"]: check for check in json.loads(done.stdout)}


def test_doctor_in_the_lab_host_namespace(lab):
    checks = doctor_in("ip", "netns", "exec", lab.ns("host"))
    assert checks["where"]["status"] == "warn"
    assert checks["where"]["value"].startswith("non-initial network namespace")
    assert (checks["nf_log_all_netns"]["status"], checks["nf_log_all_netns"]["value"]) == (
        "unknown",
        None,
    )
    # the lab set these in its host namespace (topology.configure_host)
    assert checks["ip_forward"]["value"] == "1 (IPv6 forwarding 1)"
    assert (
        checks["bridge-nf-call-iptables"]["status"],
        checks["bridge-nf-call-iptables"]["value"],
    ) == ("ok", "1")
    assert checks["br_netfilter"]["value"] == "loaded"


def test_doctor_in_a_container_namespace(lab):
    checks = doctor_in("ip", "netns", "exec", lab.ns("c1"))
    assert checks["ip_forward"]["status"] == "warn"  # a container does not route
    assert checks["ip_forward"]["value"].startswith("0 ")
    assert "belongs to this network namespace" in checks["ip_forward"]["advice"]


def test_doctor_as_a_user_namespace_root(lab):
    # like a rootless container: its own user and network namespaces
    checks = doctor_in("unshare", "--user", "--map-root-user", "--net")
    assert "user namespace (uid 0 here is not root on the host)" in checks["where"]["value"]
    assert checks["nf_log_all_netns"]["status"] == "unknown"
    restrict = Path("/proc/sys/kernel/dmesg_restrict").read_text().strip()
    assert checks["dmesg_restrict"]["status"] == ("warn" if restrict == "1" else "ok")
