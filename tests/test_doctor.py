"""logpath doctor: every check on fake /proc trees, the CLI, and once on this machine."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from logpath.cli import app
from logpath.doctor import Status, run_checks

runner = CliRunner()

HOST = {
    "proc/sys/net/bridge/bridge-nf-call-iptables": "1\n",
    "proc/sys/net/bridge/bridge-nf-call-ip6tables": "1\n",
    "proc/sys/net/netfilter/nf_log_all_netns": "1\n",
    "proc/sys/net/netfilter/nf_log/2": "nf_log_ipv4\n",
    "proc/sys/net/netfilter/nf_log/10": "nf_log_ipv6\n",
    "proc/sys/net/ipv4/ip_forward": "1\n",
    "proc/sys/net/ipv6/conf/all/forwarding": "0\n",
    "proc/sys/kernel/printk": "4\t4\t1\t7\n",
    "proc/sys/kernel/printk_ratelimit": "5\n",
    "proc/sys/kernel/printk_ratelimit_burst": "10\n",
    "proc/sys/kernel/dmesg_restrict": "0\n",
    "proc/sys/net/core/message_cost": "5\n",
    "proc/sys/net/core/message_burst": "10\n",
    "proc/self/uid_map": "         0          0 4294967295\n",
    "proc/self/mounts": "proc /proc proc rw,relatime 0 0\n",
    "proc/412/comm": "rsyslogd\n",
    "proc/1/comm": "systemd\n",
    "proc/2/comm": "kthreadd\n",  # kernel threads: the host's PID namespace
    "proc/1/cgroup": "0::/init.scope\n",
    "etc/rsyslog.conf": (
        'module(load="imklog")   # provides kernel logging support\n'
        "*.*;auth,authpriv.none\t\t-/var/log/syslog\n"
        "kern.*\t\t\t\t-/var/log/kern.log\n"
        "mail.*\t\t\t\t-/var/log/mail.log\n"
        "#kern.*\t\t\t\t/var/log/old.log\n"
    ),
    "sys/class/net/docker0/bridge/bridge_id": "8000.0242f9f8c9ad\n",
}


def fake_root(tmp_path: Path, files: dict[str, str | None]) -> Path:
    """A directory tree standing for /; a None value removes that file from the tree."""
    for name, text in files.items():
        if text is not None:
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    iptables = tmp_path / "usr/sbin/iptables"
    iptables.parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "etc/alternatives").mkdir(parents=True, exist_ok=True)
    os.symlink("/etc/alternatives/iptables", iptables)
    os.symlink(
        files.get("#backend") or "/usr/sbin/iptables-nft", tmp_path / "etc/alternatives/iptables"
    )
    return tmp_path


def checks_of(root: Path) -> dict[str, tuple[str, str | None, str]]:
    return {c.name: (str(c.status), c.value, c.advice) for c in run_checks(root, runner=None)}


def test_a_healthy_docker_host(tmp_path):
    checks = checks_of(fake_root(tmp_path, HOST))
    assert {name: (status, value) for name, (status, value, _) in checks.items()} == {
        "where": ("ok", "initial network namespace, /proc/sys writable"),
        "br_netfilter": ("ok", "loaded"),
        "bridge-nf-call-iptables": ("ok", "1"),
        "bridge-nf-call-ip6tables": ("ok", "1"),
        "nf_log_all_netns": ("ok", "1"),
        "ip_forward": ("ok", "1 (IPv6 forwarding 0)"),
        "iptables-backend": ("ok", "nf_tables"),
        "nf_log binding": ("ok", "ipv4=nf_log_ipv4, ipv6=nf_log_ipv6"),
        "syslog": ("ok", "rsyslog -> /var/log/syslog, /var/log/kern.log"),
        "dmesg_restrict": ("ok", "0"),
        "console loglevel": ("ok", "4 4 1 7 (console level 4)"),
        "rate limits": (
            "ok",
            "printk_ratelimit=5, printk_ratelimit_burst=10, net message_cost=5, net message_burst=10",
        ),
    }
    assert "nft monitor trace" in checks["iptables-backend"][2]


def test_no_br_netfilter_with_a_bridge_fails(tmp_path):
    files = {k: v for k, v in HOST.items() if not k.startswith("proc/sys/net/bridge")}
    status, value, advice = checks_of(fake_root(tmp_path, files))["br_netfilter"]
    assert (status, value) == ("fail", "not loaded")
    assert "modprobe br_netfilter" in advice
    assert advice.endswith("Bridges here: docker0.")


def test_bridge_nf_call_off(tmp_path):
    files = {**HOST, "proc/sys/net/bridge/bridge-nf-call-iptables": "0\n"}
    status, value, advice = checks_of(fake_root(tmp_path, files))["bridge-nf-call-iptables"]
    assert (status, value) == ("fail", "0")
    assert advice == (
        "Bridged frames skip iptables: no PHYSIN/PHYSOUT and no hops for traffic between ports "
        "of a bridge. Run `sysctl -w net.bridge.bridge-nf-call-iptables=1`."
    )


def test_bridge_nf_call_off_without_bridges_is_only_a_warning(tmp_path):
    files = {**HOST, "proc/sys/net/bridge/bridge-nf-call-ip6tables": "0\n"}
    files["sys/class/net/docker0/bridge/bridge_id"] = None
    assert checks_of(fake_root(tmp_path, files))["bridge-nf-call-ip6tables"][0] == "warn"


def test_nf_log_all_netns_off(tmp_path):
    files = {**HOST, "proc/sys/net/netfilter/nf_log_all_netns": "0\n"}
    status, value, advice = checks_of(fake_root(tmp_path, files))["nf_log_all_netns"]
    assert (status, value) == ("warn", "0")
    assert "sysctl -w net.netfilter.nf_log_all_netns=1" in advice


def test_inside_an_unprivileged_container(tmp_path):
    files = {
        **HOST,
        # nf_log_all_netns exists only in the initial network namespace
        "proc/sys/net/netfilter/nf_log_all_netns": None,
        "proc/sys/net/bridge/bridge-nf-call-iptables": "0\n",
        "proc/self/uid_map": "         0     100000      65536\n",
        "proc/self/mounts": "proc /proc proc rw 0 0\nproc /proc/sys proc ro,nosuid 0 0\n",
        ".dockerenv": "",
        "proc/2/comm": None,  # a container's PID namespace shows no kernel threads
        "proc/sys/kernel/dmesg_restrict": "1\n",
    }
    checks = checks_of(fake_root(tmp_path, files))
    assert checks["where"][:2] == (
        "warn",
        "non-initial network namespace, /.dockerenv exists (docker), "
        "user namespace (uid 0 here is not root on the host), /proc/sys read-only",
    )
    assert "kernel.shmmax" in checks["where"][2]
    assert checks["nf_log_all_netns"][:2] == ("unknown", None)
    assert "host" in checks["nf_log_all_netns"][2]
    assert "`--sysctl`" in checks["bridge-nf-call-iptables"][2]
    assert checks["dmesg_restrict"][:2] == ("warn", "1")  # CAP_SYSLOG of a userns root: none


def test_a_marker_file_in_the_host_pid_namespace_is_not_a_container(tmp_path):
    checks = checks_of(fake_root(tmp_path, {**HOST, ".dockerenv": ""}))
    assert checks["where"][:2] == ("ok", "initial network namespace, /proc/sys writable")


def test_rebound_logger_and_loud_console(tmp_path):
    files = {**HOST, "proc/sys/net/netfilter/nf_log/2": "nfnetlink_log\n"}
    files["proc/sys/kernel/printk"] = "7\t4\t1\t7\n"
    checks = checks_of(fake_root(tmp_path, files))
    assert checks["nf_log binding"][:2] == ("warn", "ipv4=nfnetlink_log, ipv6=nf_log_ipv6")
    assert checks["console loglevel"][:2] == ("warn", "7 4 1 7 (console level 7)")


def test_legacy_backend_and_legacy_tables(tmp_path):
    files = {
        **HOST,
        "#backend": "/usr/sbin/iptables-legacy",
        "proc/net/ip_tables_names": "nat\nfilter\n",
    }
    status, value, advice = checks_of(fake_root(tmp_path, files))["iptables-backend"]
    assert (status, value) == ("ok", "legacy; legacy tables loaded: nat filter")
    assert "TRACE" in advice


def test_rsyslog_configured_but_not_running(tmp_path):
    files = {**HOST, "proc/412/comm": "bash\n"}
    status, value, advice = checks_of(fake_root(tmp_path, files))["syslog"]
    assert (status, value) == (
        "warn",
        "running: none; rsyslog configured for /var/log/syslog, /var/log/kern.log but not running",
    )
    assert "dmesg > FILE" in advice


def test_journald_and_syslog_ng(tmp_path):
    files = {
        **HOST,
        "proc/412/comm": "syslog-ng\n",
        "proc/300/comm": "systemd-journal\n",
        "etc/syslog-ng/syslog-ng.conf": 'destination d_kern { file("/var/log/kern.log"); };\n',
        "var/log/journal/.keep": "",
    }
    assert checks_of(fake_root(tmp_path, files))["syslog"][:2] == (
        "ok",
        "syslog-ng -> /var/log/kern.log; journald (persistent)",
    )


def test_unreadable_setting_is_unknown_with_the_reason(tmp_path):
    root = fake_root(tmp_path, {**HOST, "proc/sys/net/ipv4/ip_forward": None})
    (root / "proc/sys/net/ipv4/ip_forward").mkdir(parents=True)  # unreadable even for root
    assert checks_of(root)["ip_forward"] == (
        "unknown",
        None,
        "Could not read /proc/sys/net/ipv4/ip_forward: Is a directory.",
    )


def test_cli_json_on_a_fake_root(tmp_path):
    root = fake_root(tmp_path, {**HOST, "proc/sys/net/ipv4/ip_forward": "0\n"})
    result = runner.invoke(app, ["doctor", "--root", str(root), "--json"])
    assert result.exit_code == 0
    found = {item["name"]: item for item in json.loads(result.output)}
    assert found["ip_forward"]["status"] == "warn"
    assert found["ip_forward"]["value"] == "0 (IPv6 forwarding 0)"
    assert set(found["where"]) == {"name", "status", "value", "advice"}


def test_cli_text(tmp_path):
    root = fake_root(tmp_path, HOST)
    result = runner.invoke(app, ["doctor", "--root", str(root)])
    assert result.exit_code == 0
    assert result.output.splitlines()[:2] == [
        "[ok] where: initial network namespace, /proc/sys writable",
        "    Settings below are this host's own and can be changed here (as root).",
    ]


def read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


@pytest.mark.skipif(not Path("/proc/sys/net").is_dir(), reason="no /proc/sys/net here")
def test_on_this_machine_values_match_proc():
    checks = {c.name: c for c in run_checks()}
    expected_netns = read("/proc/sys/net/netfilter/nf_log_all_netns")
    if expected_netns is None:
        assert checks["nf_log_all_netns"].status == Status.UNKNOWN
    else:
        assert checks["nf_log_all_netns"].value == expected_netns
        assert (checks["nf_log_all_netns"].status == Status.OK) == (expected_netns == "1")
    assert checks["ip_forward"].value.split()[0] == read("/proc/sys/net/ipv4/ip_forward")
    bridge_call = read("/proc/sys/net/bridge/bridge-nf-call-iptables")
    if bridge_call is not None:
        assert checks["bridge-nf-call-iptables"].value == bridge_call
    console = read("/proc/sys/kernel/printk").split()[0]
    assert checks["console loglevel"].value.endswith(f"(console level {console})")
