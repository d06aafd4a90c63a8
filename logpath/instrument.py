"""LOG rules for a case, so that nobody writes them by hand (``logpath instrument``).

Every rule logs with a logpath-native prefix ``lp:<table>:<hook>[:<tag>] `` that names where it
sits, so the lines resolve to their hook with no ruleset (at most 29 characters: the limit of
iptables ``--log-prefix``). Two outputs:

- ``iptables``: input for ``iptables-restore --noflush`` (both the legacy and the nft backend);
  rules are inserted at the top of each built-in chain, so they log before any rule that
  accepts, drops or translates the packet; ``remove`` gives the same rules as ``-D`` lines.
- ``nft``: an ``nft -f`` script with its own table (``logpath`` or ``logpath-<tag>``) whose base
  chains sit at the priority of the iptables table they are named after; ``remove`` deletes
  that table.

"Either direction" conditions (a port, an address, the bridge) are split into rules that
cannot both match one packet (``-s A`` and ``-d A ! -s A``), so each packet logs once per hook.

A port is matched on the packet only in raw, which runs before conntrack. In every later hook
it is matched on the packet's connection, as conntrack keeps it: a published port's DNAT
(``--dport 8080 -j DNAT --to-destination 172.17.0.2:12580``) rewrites the packet's port in nat
PREROUTING, and its replies' in nat POSTROUTING, so ``--dport 8080`` would log nothing of the
connection in FORWARD or POSTROUTING; its original tuple still says 8080, in both directions
(issue 15). ``--port`` names a port of the connection: the original destination (``-m conntrack
--ctorigdstport``, nft ``ct original proto-dst``), else the original source, else the reply's
source (the container's port behind a DNAT: ``--port 12580``). A packet conntrack has no
connection for (invalid, untracked) is matched on its own ports.

Example:
    >>> plan = Plan(Selection(ports=("8080",)), places=parse_places("raw:pre"))
    >>> print(render(plan, "iptables"), end="")  # doctest: +NORMALIZE_WHITESPACE
    # logpath instrument: load with iptables-restore --noflush
    *raw
    -I PREROUTING 1 -p tcp -m multiport --ports 8080 -j LOG --log-prefix "lp:raw:pre "
    -I PREROUTING 2 -p udp -m multiport --ports 8080 -j LOG --log-prefix "lp:raw:pre "
    COMMIT
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from dataclasses import dataclass, field
from typing import NamedTuple

from logpath.errors import UsageError
from logpath.netfilter import BUILTIN_CHAINS

HOOK_CHAINS = {
    "pre": "PREROUTING",
    "in": "INPUT",
    "fwd": "FORWARD",
    "out": "OUTPUT",
    "post": "POSTROUTING",
}
NFT_HOOKS = {
    "pre": "prerouting",
    "in": "input",
    "fwd": "forward",
    "out": "output",
    "post": "postrouting",
}
# The built-in chains of each iptables table, in packet order (words as in HOOK_CHAINS).
TABLE_HOOKS = {
    table: tuple(word for word, hook in HOOK_CHAINS.items() if hook in BUILTIN_CHAINS[table])
    for table in ("raw", "mangle", "nat", "filter", "security")
}
DEFAULT_TABLES = ("raw", "mangle", "nat", "filter")
# nft base chain type and priority that match each iptables table (nft(8), "Standard priority
# names"). nft accepts the names dstnat/srcnat only at prerouting/postrouting, so nat INPUT
# and OUTPUT get iptables' numbers (NF_IP_PRI_NAT_SRC 100, NF_IP_PRI_NAT_DST -100).
NFT_PRIORITIES = {"raw": "raw", "mangle": "mangle", "filter": "filter", "security": "security"}
NFT_NAT_PRIORITIES = {"pre": "dstnat", "out": "-100", "in": "100", "post": "srcnat"}
PROTOCOLS = ("tcp", "udp", "icmp")
# The ends of a connection a --port may name, in the order the rules test them: the original
# destination (a service, a published port), the original source, the reply's source (the port
# a DNAT sent the connection to). The reply's destination is the original source unless an
# SNAT changed the port, which MASQUERADE does only on a clash.
CONNECTION_PORTS = (("orig", "dst"), ("orig", "src"), ("reply", "src"))
PORTED = ("tcp", "udp")
TAG = re.compile(r"[A-Za-z0-9_-]{1,8}")
RATE = re.compile(r"[1-9]\d*/(second|minute|hour|day)")
PORT = re.compile(r"(\d{1,5})(?:[-:](\d{1,5}))?")
# An interface name as the kernel takes one (IFNAMSIZ: at most 15 bytes) in the characters
# names are made of: the name is written into rules for iptables-restore and nft, where a space,
# a quote or a control character would make other rules than the ones asked for.
IFACE_NAME = re.compile(r"[A-Za-z0-9_.@+-]{1,15}")
PREFIX_LIMIT = 29  # iptables LOG --log-prefix holds at most 29 characters
MULTIPORT_LIMIT = 15  # xt_multiport: a range counts as two


class Place(NamedTuple):
    """Where a LOG rule sits: an iptables table and a hook (pre, in, fwd, out, post)."""

    table: str
    hook: str


@dataclass(frozen=True)
class Selection:
    """Which packets to log; every field empty means every packet."""

    ports: tuple[str, ...] = ()  # "80" or "9000-9099", matched as source or destination port
    addr: str | None = None  # an address or network, matched as source or destination
    protos: tuple[str, ...] = ()  # tcp, udp, icmp; empty: tcp and udp with ports, else any
    bridge: str | None = None  # an interface (a bridge), matched as input or output


@dataclass(frozen=True)
class Plan:
    """A complete request: what to log, where, with which tag, family and rate limit."""

    selection: Selection = field(default_factory=Selection)
    places: tuple[Place, ...] = ()
    tag: str | None = None
    family: str = "4"  # "4", "6" or "both"
    rate: str | None = None  # e.g. "10/second"


# Said above the rules, which would otherwise surprise whoever asked for --port 8080.
CONNECTION_PORTS_NOTE = (
    "# --port after raw: the connection's port (conntrack's original destination, original\n"
    "# source, reply source), so a connection DNAT sends elsewhere logs at every hook"
)


def port_note(plan: Plan) -> list[str]:
    """``CONNECTION_PORTS_NOTE`` when some rule matches ports on the connection."""
    ported = plan.selection.ports and set(protocols(plan.selection)) & set(PORTED)
    return [CONNECTION_PORTS_NOTE] if ported and any(map(tracked, plan.places)) else []


def log_prefix(table: str, hook: str, tag: str | None = None) -> str:
    """The logpath-native prefix: ``log_prefix("nat", "post", "web") == "lp:nat:post:web "``."""
    prefix = f"lp:{table}:{hook}" + (f":{tag}" if tag else "") + " "
    assert len(prefix) <= PREFIX_LIMIT, prefix  # longest: "lp:security:post:12345678 " (26)
    return prefix


def parse_places(spec: str | None) -> tuple[Place, ...]:
    """Read ``--hooks``: comma-separated ``all``, ``TABLE``, ``HOOK`` or ``TABLE:HOOK`` items.

    ``all`` (the default) is every hook of raw, mangle, nat and filter; ``security`` is only
    included when named. The result is in table order, each table's hooks in packet order.
    """
    wanted: set[Place] = set()
    for item in (spec or "all").split(","):
        wanted |= places_of(item.strip().lower())
    order = list(TABLE_HOOKS)
    return tuple(
        sorted(wanted, key=lambda p: (order.index(p.table), TABLE_HOOKS[p.table].index(p.hook)))
    )


def places_of(item: str) -> set[Place]:
    """The places one ``--hooks`` item names."""
    table, _, hook = item.partition(":")
    if item == "all":
        return {Place(t, h) for t in DEFAULT_TABLES for h in TABLE_HOOKS[t]}
    if not hook and table in HOOK_CHAINS:  # a hook alone: every default table that has it
        return {Place(t, table) for t in DEFAULT_TABLES if table in TABLE_HOOKS[t]}
    if table not in TABLE_HOOKS:
        raise UsageError(
            f"--hooks: unknown table or hook {item!r}\n\n"
            f"Use all, a table ({', '.join(TABLE_HOOKS)}), a hook ({', '.join(HOOK_CHAINS)}) "
            "or TABLE:HOOK, e.g. --hooks raw:pre,nat:post,filter"
        )
    if not hook:
        return {Place(table, h) for h in TABLE_HOOKS[table]}
    if hook not in TABLE_HOOKS[table]:
        raise UsageError(
            f"--hooks: the {table} table has no {hook} hook "
            f"(it has {', '.join(TABLE_HOOKS[table])})"
        )
    return {Place(table, hook)}


def check_plan(plan: Plan) -> None:
    """Raise UsageError for a value iptables or nft would reject, naming the option."""
    bridge = plan.selection.bridge
    if bridge is not None and (not IFACE_NAME.fullmatch(bridge) or bridge in (".", "..")):
        raise UsageError(
            f"--bridge {bridge!r}: expected an interface name, 1 to 15 of A-Z a-z 0-9 _ . @ + -"
        )
    if plan.tag is not None and not TAG.fullmatch(plan.tag):
        raise UsageError(f"--tag {plan.tag!r}: use 1 to 8 of A-Z a-z 0-9 _ -")
    if plan.rate is not None and not RATE.fullmatch(plan.rate):
        raise UsageError(f"--rate {plan.rate!r}: expected N/second, N/minute, N/hour or N/day")
    if plan.family not in ("4", "6", "both"):
        raise UsageError(f"--family {plan.family!r}: expected 4, 6 or both")
    for proto in plan.selection.protos:
        if proto not in PROTOCOLS:
            raise UsageError(f"--proto {proto!r}: expected one of {', '.join(PROTOCOLS)}")
    if plan.selection.ports and not set(protocols(plan.selection)) & set(PORTED):
        raise UsageError("--port needs --proto tcp or udp (ICMP has no ports)")
    for port in plan.selection.ports:
        port_range(port)
    if plan.selection.addr is not None:
        address_family(plan.selection.addr, plan.family)
    if not plan.places:
        raise UsageError("--hooks selects no hook")


def port_range(port: str) -> tuple[int, int]:
    """``"80"`` -> (80, 80); ``"9000-9099"`` or ``"9000:9099"`` -> (9000, 9099)."""
    match = PORT.fullmatch(port)
    low, high = (int(match.group(1)), int(match.group(2) or match.group(1))) if match else (1, 0)
    if not match or not 0 <= low <= high <= 65535:
        raise UsageError(f"--port {port!r}: expected a port (0-65535) or a range LOW-HIGH")
    return low, high


def address_family(addr: str, family: str) -> int:
    """4 or 6 for an address or network; UsageError when it contradicts --family."""
    try:
        version = ipaddress.ip_network(addr, strict=False).version
    except ValueError:
        raise UsageError(f"--addr {addr!r}: not an IPv4 or IPv6 address or network") from None
    if family != "both" and str(version) != family:
        raise UsageError(f"--addr {addr} is IPv{version} but --family is {family}")
    return version


def protocols(selection: Selection) -> tuple[str, ...]:
    """The protocols to match: as given, else tcp and udp when ports are given, else any ("")."""
    if selection.protos:
        return selection.protos
    return PORTED if selection.ports else ("",)


def families(plan: Plan) -> tuple[int, ...]:
    """The IP families the rules are for (an address narrows ``both`` to its own)."""
    if plan.selection.addr is not None:
        return (address_family(plan.selection.addr, plan.family),)
    return (4, 6) if plan.family == "both" else (int(plan.family),)


# --- iptables-restore ------------------------------------------------------------------------


class PortTerm(NamedTuple):
    """One end of a connection in a port range: ``PortTerm("orig", "dst", (8080, 8080))``."""

    direction: str  # "orig" or "reply" (conntrack's two tuples)
    end: str  # "src" or "dst"
    ports: tuple[int, int]


def tracked(place: Place) -> bool:
    """Whether conntrack has given the packet its connection when it reaches this place: raw
    runs at priority -300, conntrack at -200 (NF_IP_PRI_CONNTRACK), every other table after."""
    return place.table != "raw"


def connection_port_rules(ports: tuple[str, ...]) -> list[tuple[list[PortTerm], PortTerm]]:
    """Disjoint port conditions on the connection: each term, with every earlier one excluded
    (a connection from 8080 to 8080 logs once, by the first term)."""
    ranges = [port_range(port) for port in ports]
    terms = [PortTerm(direction, end, r) for direction, end in CONNECTION_PORTS for r in ranges]
    return [(terms[:n], term) for n, term in enumerate(terms)]


def iptables_matches(plan: Plan, place: Place, family: int) -> list[str]:
    """The match parts of the rules at one place: one string per rule, disjoint."""
    selection = plan.selection
    proto_parts = [
        part
        for proto in protocols(selection)
        for part in iptables_proto_alternatives(proto, selection.ports, family, tracked(place))
    ]
    addr_parts = [""]
    if selection.addr:
        addr_parts = [f"-s {selection.addr}", f"-d {selection.addr} ! -s {selection.addr}"]
    iface_parts = iface_alternatives(place.hook, selection.bridge, "-i {}", "-o {}", "! -i {}")
    limit = f"-m limit --limit {plan.rate}" if plan.rate else ""
    return [
        " ".join(part for part in (proto, addr, iface, limit) if part)
        for proto, addr, iface in itertools.product(proto_parts, addr_parts, iface_parts)
    ]


def iptables_proto_alternatives(
    proto: str, ports: tuple[str, ...], family: int, on_connection: bool
) -> list[str]:
    """Protocol and ports, on the packet (``iptables_proto``) or on its connection: a rule per
    port term, and one for the packets conntrack has no connection for."""
    packet = iptables_proto(proto, ports, family)
    if not (on_connection and proto in PORTED and ports):
        return [packet]
    rules = [
        f"-p {proto} {iptables_conntrack(excluded, term)}"
        for excluded, term in connection_port_rules(ports)
    ]
    return [*rules, f"{packet} -m conntrack --ctstate INVALID,UNTRACKED"]


def iptables_conntrack(excluded: list[PortTerm], term: PortTerm) -> str:
    """``-m conntrack ! --ctorigdstport 8080 --ctorigsrcport 8080``: the excluded terms negated,
    then the term; a new ``-m conntrack`` where an option would repeat (several ranges)."""
    matches: list[list[str]] = []
    options: set[str] = set()
    for negated, each in [(True, t) for t in excluded] + [(False, term)]:
        option = f"--ct{each.direction[:4]}{each.end}port"  # --ctorigdstport, --ctreplsrcport
        if not matches or option in options:
            matches.append(["-m conntrack"])
            options = set()
        options.add(option)
        low, high = each.ports
        value = str(low) if low == high else f"{low}:{high}"
        matches[-1].append(f"{'! ' if negated else ''}{option} {value}")
    return " ".join(" ".join(match) for match in matches)


def iptables_proto(proto: str, ports: tuple[str, ...], family: int) -> str:
    """``-p tcp -m multiport --ports 80,9000:9099`` (either direction) or ``-p icmp``."""
    if proto == "icmp":
        return "-p ipv6-icmp" if family == 6 else "-p icmp"
    if not proto:
        return ""
    if not ports:
        return f"-p {proto}"
    ranges = [port_range(port) for port in ports]
    if sum(1 if low == high else 2 for low, high in ranges) > MULTIPORT_LIMIT:
        raise UsageError(f"--port: iptables multiport takes at most {MULTIPORT_LIMIT} ports")
    spec = ",".join(str(low) if low == high else f"{low}:{high}" for low, high in ranges)
    return f"-p {proto} -m multiport --ports {spec}"


def iface_alternatives(hook: str, bridge: str | None, in_: str, out: str, not_in: str) -> list[str]:
    """Interface conditions for "in or out of the bridge", split so that they are disjoint."""
    if not bridge:
        return [""]
    if hook in ("pre", "in"):  # these hooks know only the input interface
        return [in_.format(bridge)]
    if hook in ("out", "post"):  # and these only the output interface (iptables rejects -i)
        return [out.format(bridge)]
    return [in_.format(bridge), f"{out.format(bridge)} {not_in.format(bridge)}"]


def iptables_table(plan: Plan, table: str, family: int, remove: bool) -> list[str]:
    """One ``*table ... COMMIT`` block."""
    lines = [f"*{table}"]
    for place in (p for p in plan.places if p.table == table):
        chain = HOOK_CHAINS[place.hook]
        target = f'-j LOG --log-prefix "{log_prefix(table, place.hook, plan.tag)}"'
        for number, match in enumerate(iptables_matches(plan, place, family), start=1):
            command = f"-D {chain}" if remove else f"-I {chain} {number}"
            lines.append(" ".join(part for part in (command, match, target) if part))
    return [*lines, "COMMIT"]


def iptables_restore_input(plan: Plan, family: int, remove: bool = False) -> str:
    """``iptables-restore --noflush`` input (``ip6tables-restore`` for family 6)."""
    tool = "ip6tables-restore" if family == 6 else "iptables-restore"
    lines = [
        f"# logpath instrument: {'remove' if remove else 'load'} with {tool} --noflush",
        *port_note(plan),
    ]
    for table in TABLE_HOOKS:
        if any(place.table == table for place in plan.places):
            lines += iptables_table(plan, table, family, remove)
    return "\n".join(lines) + "\n"


def iptables_script(plan: Plan, remove: bool = False) -> str:
    """Restore input for one family, or for both a shell script feeding each tool its part."""
    selected = families(plan)
    if len(selected) == 1:
        return iptables_restore_input(plan, selected[0], remove)
    parts = ["#!/bin/sh", "# logpath instrument: IPv4 and IPv6 rules; run with sh", "set -e"]
    for family in selected:
        tool = "ip6tables-restore" if family == 6 else "iptables-restore"
        body = iptables_restore_input(plan, family, remove)
        parts += [f"{tool} --noflush <<'LOGPATH'", body.rstrip("\n"), "LOGPATH"]
    return "\n".join(parts) + "\n"


# --- nft -f --------------------------------------------------------------------------------


def nft_table_name(plan: Plan) -> str:
    """``ip|ip6|inet logpath[-tag]``: one table per tag, so several cases can coexist."""
    selected = families(plan)
    nft_family = "inet" if len(selected) == 2 else ("ip6" if selected == (6,) else "ip")
    return f"{nft_family} logpath" + (f"-{plan.tag}" if plan.tag else "")


def nft_set(ports: tuple[str, ...]) -> str:
    """``{ 80, 9000-9099 }``."""
    return "{ " + ", ".join(nft_range(port_range(port)) for port in ports) + " }"


def nft_proto_alternatives(
    proto: str, ports: tuple[str, ...], fams: tuple[int, ...], on_connection: bool = False
) -> list[str]:
    """Protocol and port conditions, either direction split into disjoint rules; on the
    connection (``nft_connection_ports``) where conntrack has given the packet one."""
    if on_connection and proto in PORTED and ports:
        return nft_connection_ports(proto, ports)
    if proto == "icmp":
        names = [{4: "icmp", 6: "ipv6-icmp"}[family] for family in fams]
        return [
            f"meta l4proto {names[0]}" if len(names) == 1 else "meta l4proto { icmp, ipv6-icmp }"
        ]
    if not proto:
        return [""]
    if not ports:
        return [f"meta l4proto {proto}"]
    ports_set = nft_set(ports)
    return [
        f"{proto} dport {ports_set}",
        f"{proto} sport {ports_set} {proto} dport != {ports_set}",
    ]


def nft_connection_ports(proto: str, ports: tuple[str, ...]) -> list[str]:
    """``meta l4proto tcp ct original proto-dst 8080``, a rule per port term (one range a rule:
    nft 1.0.6 gives an anonymous set of ``ct ... proto-dst`` no type), then the packets
    conntrack has no connection for, on their own ports."""
    rules = []
    for excluded, term in connection_port_rules(ports):
        parts = [f"{nft_ct_port(t)} != {nft_range(t.ports)}" for t in excluded]
        parts.append(f"{nft_ct_port(term)} {nft_range(term.ports)}")
        rules.append(" ".join([f"meta l4proto {proto}", *parts]))
    untracked = nft_proto_alternatives(proto, ports, ())
    return [*rules, *(f"ct state invalid,untracked {part}" for part in untracked)]


def nft_ct_port(term: PortTerm) -> str:
    """``ct original proto-dst``, ``ct reply proto-src``."""
    return f"ct {'original' if term.direction == 'orig' else 'reply'} proto-{term.end}"


def nft_range(ports: tuple[int, int]) -> str:
    low, high = ports
    return str(low) if low == high else f"{low}-{high}"


def nft_matches(plan: Plan, place: Place) -> list[str]:
    """The match parts of the rules at one place: one string per rule, disjoint."""
    selection = plan.selection
    fams = families(plan)
    proto_parts = [
        part
        for proto in protocols(selection)
        for part in nft_proto_alternatives(proto, selection.ports, fams, tracked(place))
    ]
    addr_parts = [""]
    if selection.addr:
        ip = "ip6" if fams == (6,) else "ip"
        addr = selection.addr
        addr_parts = [f"{ip} saddr {addr}", f"{ip} daddr {addr} {ip} saddr != {addr}"]
    iface_parts = iface_alternatives(
        place.hook, selection.bridge, 'iifname "{}"', 'oifname "{}"', 'iifname != "{}"'
    )
    limit = f"limit rate {plan.rate}" if plan.rate else ""
    return [
        " ".join(part for part in (proto, addr, iface, limit) if part)
        for proto, addr, iface in itertools.product(proto_parts, addr_parts, iface_parts)
    ]


def nft_chain(plan: Plan, place: Place) -> list[str]:
    """One base chain at the hook and priority of the iptables table it is named after."""
    if place.table == "nat":
        kind, priority = "nat", NFT_NAT_PRIORITIES[place.hook]
    else:
        kind, priority = "filter", NFT_PRIORITIES[place.table]
    target = f'log prefix "{log_prefix(place.table, place.hook, plan.tag)}"'
    lines = [
        f"\tchain {place.table}_{place.hook} {{",
        f"\t\ttype {kind} hook {NFT_HOOKS[place.hook]} priority {priority}; policy accept;",
    ]
    lines += [
        "\t\t" + " ".join(p for p in (match, target) if p) for match in nft_matches(plan, place)
    ]
    return [*lines, "\t}"]


def nft_script(plan: Plan, remove: bool = False) -> str:
    """An ``nft -f`` script: (re)create the table with its chains, or delete it."""
    table = nft_table_name(plan)
    # "table X" then "delete table X" deletes whether or not it existed (nft 1.0.6 has no
    # "destroy"), so loading twice does not double the rules and removing twice is no error.
    lines = [
        f"# logpath instrument: {'remove' if remove else 'load'} with nft -f",
        *(port_note(plan) if not remove else []),
        f"table {table}",
        f"delete table {table}",
    ]
    if not remove:
        lines.append(f"table {table} {{")
        for place in plan.places:
            lines += nft_chain(plan, place)
        lines.append("}")
    return "\n".join(lines) + "\n"


def render(plan: Plan, output_format: str, remove: bool = False) -> str:
    """The rules (or what removes them) as ``iptables`` restore input or an ``nft`` script."""
    check_plan(plan)
    if output_format == "iptables":
        return iptables_script(plan, remove)
    if output_format == "nft":
        return nft_script(plan, remove)
    raise UsageError(f"--format {output_format!r}: expected iptables or nft")
