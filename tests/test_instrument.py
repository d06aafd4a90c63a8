"""logpath instrument: the rule text (library and CLI) and the errors a user can make."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from logpath.cli import app
from logpath.errors import UsageError
from logpath.instrument import (
    Place,
    Plan,
    Selection,
    log_prefix,
    parse_places,
    render,
)

runner = CliRunner()
PREFIX_SCHEME = re.compile(
    r"lp:(raw|mangle|nat|filter|security):(pre|in|fwd|out|post)(:[A-Za-z0-9_-]{1,8})? "
)


def test_prefix_scheme():
    assert log_prefix("nat", "post", "web") == "lp:nat:post:web "
    assert log_prefix("raw", "pre") == "lp:raw:pre "
    assert len(log_prefix("security", "post", "12345678")) == 26  # within iptables' 29


def test_default_hooks_are_every_hook_of_the_four_tables_in_packet_order():
    assert parse_places(None) == (
        Place("raw", "pre"),
        Place("raw", "out"),
        Place("mangle", "pre"),
        Place("mangle", "in"),
        Place("mangle", "fwd"),
        Place("mangle", "out"),
        Place("mangle", "post"),
        Place("nat", "pre"),
        Place("nat", "in"),
        Place("nat", "out"),
        Place("nat", "post"),
        Place("filter", "in"),
        Place("filter", "fwd"),
        Place("filter", "out"),
    )


def test_hooks_by_table_by_hook_and_both():
    assert parse_places("fwd") == (Place("mangle", "fwd"), Place("filter", "fwd"))
    assert parse_places("security,raw:pre") == (
        Place("raw", "pre"),
        Place("security", "in"),
        Place("security", "fwd"),
        Place("security", "out"),
    )


NOTE = (
    "# --port after raw: the connection's port (conntrack's original destination, original\n"
    "# source, reply source), so a connection DNAT sends elsewhere logs at every hook\n"
)


def test_iptables_port_rules_insert_at_the_top_and_delete_by_spec():
    plan = Plan(Selection(ports=("8080", "9000-9099")), parse_places("raw:pre"), tag="web")
    assert render(plan, "iptables") == (
        "# logpath instrument: load with iptables-restore --noflush\n"
        "*raw\n"
        '-I PREROUTING 1 -p tcp -m multiport --ports 8080,9000:9099 -j LOG --log-prefix "lp:raw:pre:web "\n'
        '-I PREROUTING 2 -p udp -m multiport --ports 8080,9000:9099 -j LOG --log-prefix "lp:raw:pre:web "\n'
        "COMMIT\n"
    )
    assert render(plan, "iptables", remove=True) == (
        "# logpath instrument: remove with iptables-restore --noflush\n"
        "*raw\n"
        '-D PREROUTING -p tcp -m multiport --ports 8080,9000:9099 -j LOG --log-prefix "lp:raw:pre:web "\n'
        '-D PREROUTING -p udp -m multiport --ports 8080,9000:9099 -j LOG --log-prefix "lp:raw:pre:web "\n'
        "COMMIT\n"
    )


def test_iptables_ports_after_raw_are_the_connections_through_dnat():
    """A published port's DNAT changes the packet's port in nat PREROUTING: from there on the
    rules test conntrack's tuples (issue 15), each excluding the ones before it."""
    plan = Plan(Selection(ports=("8080",), protos=("tcp",)), parse_places("filter:fwd"))
    assert render(plan, "iptables") == (
        "# logpath instrument: load with iptables-restore --noflush\n" + NOTE + "*filter\n"
        '-I FORWARD 1 -p tcp -m conntrack --ctorigdstport 8080 -j LOG --log-prefix "lp:filter:fwd "\n'
        '-I FORWARD 2 -p tcp -m conntrack ! --ctorigdstport 8080 --ctorigsrcport 8080 -j LOG --log-prefix "lp:filter:fwd "\n'
        '-I FORWARD 3 -p tcp -m conntrack ! --ctorigdstport 8080 ! --ctorigsrcport 8080 --ctreplsrcport 8080 -j LOG --log-prefix "lp:filter:fwd "\n'
        '-I FORWARD 4 -p tcp -m multiport --ports 8080 -m conntrack --ctstate INVALID,UNTRACKED -j LOG --log-prefix "lp:filter:fwd "\n'
        "COMMIT\n"
    )


def test_iptables_several_port_ranges_repeat_the_conntrack_match():
    """One conntrack match takes each option once: the second range needs a match of its own."""
    plan = Plan(Selection(ports=("80", "9000-9099"), protos=("tcp",)), parse_places("nat:post"))
    assert render(plan, "iptables").splitlines()[4:7] == [
        '-I POSTROUTING 1 -p tcp -m conntrack --ctorigdstport 80 -j LOG --log-prefix "lp:nat:post "',
        "-I POSTROUTING 2 -p tcp -m conntrack ! --ctorigdstport 80 -m conntrack --ctorigdstport 9000:9099"
        ' -j LOG --log-prefix "lp:nat:post "',
        "-I POSTROUTING 3 -p tcp -m conntrack ! --ctorigdstport 80 -m conntrack ! --ctorigdstport 9000:9099"
        ' --ctorigsrcport 80 -j LOG --log-prefix "lp:nat:post "',
    ]
    assert len(render(plan, "iptables").splitlines()) == 4 + 6 + 1 + 1


def test_iptables_address_and_bridge_split_into_disjoint_rules():
    plan = Plan(
        Selection(addr="172.17.0.2", protos=("icmp",), bridge="docker0"),
        parse_places("filter:fwd,nat:post"),
        rate="5/second",
    )
    assert render(plan, "iptables").splitlines()[1:] == [
        "*nat",
        '-I POSTROUTING 1 -p icmp -s 172.17.0.2 -o docker0 -m limit --limit 5/second -j LOG --log-prefix "lp:nat:post "',
        '-I POSTROUTING 2 -p icmp -d 172.17.0.2 ! -s 172.17.0.2 -o docker0 -m limit --limit 5/second -j LOG --log-prefix "lp:nat:post "',
        "COMMIT",
        "*filter",
        '-I FORWARD 1 -p icmp -s 172.17.0.2 -i docker0 -m limit --limit 5/second -j LOG --log-prefix "lp:filter:fwd "',
        '-I FORWARD 2 -p icmp -s 172.17.0.2 -o docker0 ! -i docker0 -m limit --limit 5/second -j LOG --log-prefix "lp:filter:fwd "',
        '-I FORWARD 3 -p icmp -d 172.17.0.2 ! -s 172.17.0.2 -i docker0 -m limit --limit 5/second -j LOG --log-prefix "lp:filter:fwd "',
        '-I FORWARD 4 -p icmp -d 172.17.0.2 ! -s 172.17.0.2 -o docker0 ! -i docker0 -m limit --limit 5/second -j LOG --log-prefix "lp:filter:fwd "',
        "COMMIT",
    ]


def test_iptables_both_families_is_a_shell_script_feeding_each_tool():
    plan = Plan(Selection(protos=("icmp",)), parse_places("filter:in"), family="both")
    assert render(plan, "iptables") == (
        "#!/bin/sh\n"
        "# logpath instrument: IPv4 and IPv6 rules; run with sh\n"
        "set -e\n"
        "iptables-restore --noflush <<'LOGPATH'\n"
        "# logpath instrument: load with iptables-restore --noflush\n"
        "*filter\n"
        '-I INPUT 1 -p icmp -j LOG --log-prefix "lp:filter:in "\n'
        "COMMIT\n"
        "LOGPATH\n"
        "ip6tables-restore --noflush <<'LOGPATH'\n"
        "# logpath instrument: load with ip6tables-restore --noflush\n"
        "*filter\n"
        '-I INPUT 1 -p ipv6-icmp -j LOG --log-prefix "lp:filter:in "\n'
        "COMMIT\n"
        "LOGPATH\n"
    )


def test_nft_script_uses_its_own_table_at_the_standard_priorities():
    plan = Plan(
        Selection(ports=("80",), protos=("tcp",)), parse_places("raw:pre,nat:pre,nat:in,filter:out")
    )
    connection = [
        "meta l4proto tcp ct original proto-dst 80",
        "meta l4proto tcp ct original proto-dst != 80 ct original proto-src 80",
        "meta l4proto tcp ct original proto-dst != 80 ct original proto-src != 80 ct reply proto-src 80",
        "ct state invalid,untracked tcp dport { 80 }",
        "ct state invalid,untracked tcp sport { 80 } tcp dport != { 80 }",
    ]

    def rules(prefix: str) -> str:
        return "".join(f'\t\t{match} log prefix "{prefix}"\n' for match in connection)

    assert render(plan, "nft") == (
        "# logpath instrument: load with nft -f\n" + NOTE + "table ip logpath\n"
        "delete table ip logpath\n"
        "table ip logpath {\n"
        "\tchain raw_pre {\n"
        "\t\ttype filter hook prerouting priority raw; policy accept;\n"
        '\t\ttcp dport { 80 } log prefix "lp:raw:pre "\n'
        '\t\ttcp sport { 80 } tcp dport != { 80 } log prefix "lp:raw:pre "\n'
        "\t}\n"
        "\tchain nat_pre {\n"
        "\t\ttype nat hook prerouting priority dstnat; policy accept;\n"
        + rules("lp:nat:pre ")
        + "\t}\n"
        "\tchain nat_in {\n"
        "\t\ttype nat hook input priority 100; policy accept;\n" + rules("lp:nat:in ") + "\t}\n"
        "\tchain filter_out {\n"
        "\t\ttype filter hook output priority filter; policy accept;\n"
        + rules("lp:filter:out ")
        + "\t}\n"
        "}\n"
    )


def test_nft_remove_deletes_the_tagged_table_even_if_absent():
    plan = Plan(Selection(), parse_places("all"), tag="case1", family="both")
    assert render(plan, "nft", remove=True) == (
        "# logpath instrument: remove with nft -f\ntable inet logpath-case1\ndelete table inet logpath-case1\n"
    )


def test_nft_ipv6_address_and_icmp():
    plan = Plan(
        Selection(addr="fd00::/64", protos=("icmp",)), parse_places("filter:in"), family="6"
    )
    assert render(plan, "nft").splitlines()[3:7] == [
        "table ip6 logpath {",
        "\tchain filter_in {",
        "\t\ttype filter hook input priority filter; policy accept;",
        '\t\tmeta l4proto ipv6-icmp ip6 saddr fd00::/64 log prefix "lp:filter:in "',
    ]


def test_every_prefix_written_follows_the_scheme_and_fits():
    plan = Plan(Selection(ports=("1-65535",)), parse_places("all,security"), tag="Zz_-9")
    for output_format in ("iptables", "nft"):
        prefixes = re.findall(r'prefix "([^"]*)"', render(plan, output_format))
        assert len(set(prefixes)) == 17
        assert all(PREFIX_SCHEME.fullmatch(p) and len(p) <= 29 for p in prefixes)


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        (
            Plan(Selection(), (), tag="toolongtag"),
            "--tag 'toolongtag': use 1 to 8 of A-Z a-z 0-9 _ -",
        ),
        (
            Plan(Selection(), (Place("raw", "pre"),), rate="fast"),
            "--rate 'fast': expected N/second, N/minute, N/hour or N/day",
        ),
        (
            Plan(Selection(ports=("70000",)), (Place("raw", "pre"),)),
            "--port '70000': expected a port (0-65535) or a range LOW-HIGH",
        ),
        (
            Plan(Selection(ports=("80",), protos=("icmp",)), (Place("raw", "pre"),)),
            "--port needs --proto tcp or udp (ICMP has no ports)",
        ),
        (
            Plan(Selection(addr="fd00::1"), (Place("raw", "pre"),), family="4"),
            "--addr fd00::1 is IPv6 but --family is 4",
        ),
        (
            Plan(Selection(addr="nowhere"), (Place("raw", "pre"),)),
            "--addr 'nowhere': not an IPv4 or IPv6 address or network",
        ),
        (
            Plan(Selection(protos=("sctp",)), (Place("raw", "pre"),)),
            "--proto 'sctp': expected one of tcp, udp, icmp",
        ),
    ],
)
def test_bad_requests_are_usage_errors(plan, message):
    with pytest.raises(UsageError) as error:
        render(plan, "iptables")
    assert str(error.value) == message


def test_too_many_multiport_ports():
    plan = Plan(Selection(ports=tuple(str(p) for p in range(1, 17))), (Place("raw", "pre"),))
    with pytest.raises(UsageError, match="at most 15 ports"):
        render(plan, "iptables")


def test_hook_a_table_does_not_have():
    with pytest.raises(UsageError) as error:
        parse_places("raw:fwd")
    assert str(error.value) == "--hooks: the raw table has no fwd hook (it has pre, out)"


def test_cli_prints_the_rules():
    result = runner.invoke(
        app, ["instrument", "--port", "8080", "--hooks", "raw:pre", "--proto", "tcp"]
    )
    assert result.exit_code == 0
    assert result.output == (
        "# logpath instrument: load with iptables-restore --noflush\n"
        "*raw\n"
        '-I PREROUTING 1 -p tcp -m multiport --ports 8080 -j LOG --log-prefix "lp:raw:pre "\n'
        "COMMIT\n"
    )


def test_cli_remove_nft():
    result = runner.invoke(app, ["instrument", "--format", "nft", "--tag", "t1", "--remove"])
    assert result.exit_code == 0
    assert (
        result.output
        == "# logpath instrument: remove with nft -f\ntable ip logpath-t1\ndelete table ip logpath-t1\n"
    )


def test_cli_error_is_one_message_and_the_usage_exit_code():
    result = runner.invoke(app, ["instrument", "--hooks", "nat:fwd"])
    assert result.exit_code == 2  # ExitStatus.USAGE, as click's own option errors
    assert (
        result.output
        == "logpath: --hooks: the nat table has no fwd hook (it has pre, in, out, post)\n"
    )
