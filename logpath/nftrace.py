"""nf_tables traces: ``nft monitor trace`` and ``xtables-monitor --trace`` output made into hops,
and the verdict a packet's trace shows.

Both tools print one line per trace event (grammars/trace.py): the packet's headers when it
enters a base chain, then one line per rule that matched and one for the chain's policy (or a
user chain's return). A hop here is one *chain visit*: the packet as it entered a base chain,
with the verdict of the last line of the visit (the rule that decided, or the policy). A jump
(or goto) ends a visit with ``jump <chain>`` and opens one of the user chain, which carries the
packet's headers of its base chain and names where it came from (``trace_from``); back from a
user chain, the caller's later lines are another visit.

The trace id groups the lines of one visit, but it is no packet identity: on Linux 6.18 it is a
hash of the socket buffer's address and interface, so one packet changes id between
PREROUTING and FORWARD, and a later packet of the connection reuses an id
(samples/lab/trace/nft-trace.txt, lines 3-26). ``logpath.packets`` groups the visits by what
the packet shows, in line order.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from logpath.conditions import ICMP_TYPES, ICMPV6_TYPES
from logpath.netfilter import DECIMAL_LIMITS, IPV6_LIMITS, NAME_LIMITS, normal_address

__all__ = [
    "TRACE_FIELDS",
    "TraceReader",
    "is_trace_line",
    "trace_verdicts",
    "with_trace_verdicts",
]

TRACE_FIELDS = (
    "trace_id",
    "trace_family",
    "trace_table",
    "trace_chain",
    "trace_type",
    "trace_verdict",
    "trace_rule",
    "trace_handle",
    "trace_from",
)
"""The hop fields of a trace visit (trace_table, trace_chain, trace_type are the legacy TRACE
line's too)."""

SKIP_ORPHAN = "trace line whose packet line is not in the input (the capture started after it)"
# A visit's hop stands at the line that gave its verdict; its other lines are in it, not lost.
SKIP_FOLDED = "trace line read into the hop of its chain visit (stored at the visit's last line)"
SKIP_UNBOUND = "xtables-monitor PACKET line no TRACE line of its trace id followed"

# NFPROTO_* numbers xtables-monitor prints for the table's family (linux/netfilter.h)
NFPROTO_FAMILIES = {"1": "inet", "2": "ip", "3": "arp", "5": "netdev", "7": "bridge", "10": "ip6"}
# nft's names of ICMP codes (nftables src/proto.c: icmp_code_type, icmpv6_code_type)
ICMP_CODES = {
    "net-unreachable": 0,
    "host-unreachable": 1,
    "prot-unreachable": 2,
    "port-unreachable": 3,
    "frag-needed": 4,
    "net-prohibited": 9,
    "host-prohibited": 10,
    "admin-prohibited": 13,
}
ICMPV6_CODES = {
    "no-route": 0,
    "admin-prohibited": 1,
    "addr-unreachable": 3,
    "port-unreachable": 4,
    "policy-fail": 5,
    "reject-route": 6,
}
# TCP flags in the order the kernel's LOG prints them (the hop vocabulary), with their bits
TCP_FLAG_BITS = [("CWR", 0x80), ("ECE", 0x40), ("URG", 0x20), ("ACK", 0x10), ("PSH", 0x08),
                 ("RST", 0x04), ("SYN", 0x02), ("FIN", 0x01)]  # fmt: skip
_FLAG_BIT = {name.lower(): bit for name, bit in TCP_FLAG_BITS}
_TRANSPORT = {"tcp": "TCP", "udp": "UDP", "udplite": "UDPLITE", "sctp": "SCTP", "dccp": "DCCP"}
# nf_tables rule handles are u64; the hop column an int64
MAX_HANDLE = 2**63 - 1


@dataclass(frozen=True)
class Impossible:
    """A value of a trace line that no packet or ruleset has, and where it is on the line."""

    column: int  # 1-based
    expected: str
    found: str


def is_trace_line(line: str) -> bool:
    """Whether a line starts like one of the two tools' trace lines."""
    return line.startswith(("trace id ", "PACKET: ", " TRACE: "))


def tcp_flags(printed: str) -> str | None:
    """nft's ``syn``, ``0x18``, ``(syn | ack)`` or xtables-monitor's ``ACK PSH`` as LOG prints
    flags (``ACK PSH``); None when a name is not a TCP flag."""
    text = printed.strip("()")
    if text.startswith("0x"):
        bits = int(text, 16)
    else:
        words = [w.lower() for w in text.replace("|", " ").split()]
        if any(w not in _FLAG_BIT for w in words):
            return None
        bits = sum(_FLAG_BIT[w] for w in set(words))
    return " ".join(name for name, bit in TCP_FLAG_BITS if bits & bit) or None


def packet_fields(parsed: dict[str, str]) -> dict[str, str]:
    """A packet line's fields in the hop vocabulary (the strings ``logpath.hops`` types)."""
    plain = ("in_iface", "out_iface", "macsrc", "macdst", "macproto", "len", "ttl", "id", "tos",
             "df", "mf", "ce", "frag", "ipopt", "sport", "dport", "window", "udplen", "icmp_id",
             "icmp_seq", "tc", "flowlbl", "mark")  # fmt: skip
    out = {name: parsed[name] for name in plain if name in parsed}
    out.update(_macs(parsed))
    if "src6" in parsed:  # IPv6: the hop limit is the TTL, LOG's LEN counts the 40-byte header
        out["src"], out["dst"] = parsed["src6"], parsed["dst6"]
        out["ttl"] = parsed.get("hoplimit", "")
        if "payload_len" in parsed:
            out["len"] = str(int(parsed["payload_len"]) + 40)
        if "len6" in parsed:
            out["len"] = parsed["len6"]
    elif "src" in parsed:
        out["src"], out["dst"] = parsed["src"], parsed.get("dst", "")
    out.update(_transport(parsed))
    return {k: v for k, v in out.items() if v}


def _macs(parsed: dict[str, str]) -> dict[str, str]:
    """MAC addresses zero padded, as LOG prints them (xtables-monitor prints ``2:0:ac:...``)."""
    return {
        name: ":".join(octet.rjust(2, "0") for octet in parsed[name].lower().split(":"))
        for name in ("macsrc", "macdst")
        if name in parsed
    }


def _transport(parsed: dict[str, str]) -> dict[str, str]:
    """PROTO, flags and ICMP type/code as LOG names them."""
    out: dict[str, str] = {}
    if "l4" in parsed:
        out["proto"] = _TRANSPORT[parsed["l4"]]
    if "tcp_flags" in parsed or "xt_flags" in parsed:
        # xtables-monitor prints no protocol: TCP flags show it is TCP; ports alone do not
        out["proto"] = "TCP"
        out["flags"] = tcp_flags(parsed.get("tcp_flags") or parsed["xt_flags"]) or ""
    if "icmp" in parsed:
        v6 = parsed["icmp"] == "icmpv6"
        out["proto"] = "ICMPv6" if v6 else "ICMP"
        types, codes = (ICMPV6_TYPES, ICMPV6_CODES) if v6 else (ICMP_TYPES, ICMP_CODES)
        out["icmp_type"] = _number_or_name(parsed.get("icmp_type_name", ""), types)
        out["icmp_code"] = _number_or_name(parsed.get("icmp_code_name", ""), codes)
    return out


def _number_or_name(text: str, names: dict[str, int]) -> str:
    if text.isdigit():
        return text
    return str(names[text]) if text in names else ""


def impossible(line: str, fields: dict[str, str]) -> Impossible | None:
    """The first value of a line's hop fields outside what the kernel can hold there (a TTL of
    300, an address 999.1.1.1, a 20-byte interface name), with the same limits as a LOG line's
    (``logpath.hops``); None when every value fits."""
    v6 = ":" in fields.get("src", "")
    for name, value in fields.items():
        limits = IPV6_LIMITS if v6 and name in IPV6_LIMITS else DECIMAL_LIMITS
        if name in limits and value.isdigit() and int(value) > limits[name][0]:
            return _where(line, value, limits[name][1])
        if name in ("src", "dst") and normal_address(value) is None:
            return _where(line, value, "an IPv6 address" if v6 else "an IPv4 address")
        if name in ("in_iface", "out_iface") and len(value.encode()) > NAME_LIMITS[name]:
            return _where(line, value, f"a name of at most {NAME_LIMITS[name]} bytes")
    return None


def _where(line: str, value: str, expected: str) -> Impossible:
    """The value's place on the line: the first whole word (or quoted name) that it is."""
    for start in range(len(line)):
        start = line.find(value, start)
        end = start + len(value)
        if start < 0:
            break
        if line[start - 1 : start] in (" ", "=", '"') and line[end : end + 1] in ("", " ", '"'):
            return Impossible(start + 1, expected, value[:64])
    return Impossible(1, expected, value[:64])


def verdict_word(printed: str) -> str:
    """A verdict as nft writes it: ``accept``, ``jump sub`` (xtables-monitor: ``JUMP:sub``)."""
    return printed.lower().replace(":", " ", 1)


@dataclass
class _Visit:
    """A chain visit being read: the packet's headers and the last line seen of the visit."""

    fields: dict[str, str]
    family: str
    table: str
    chain: str
    came_from: str | None
    lineno: int
    raw: str
    kind: str = "packet"  # rule | policy | return, or packet while no verdict line was seen
    verdict: str | None = None
    rule: str | None = None
    handle: str | None = None
    lines: int = 1  # lines read into this visit

    def hop(self, trace_id: str) -> dict[str, str]:
        trace = {
            "trace_id": trace_id,
            "trace_family": self.family,
            "trace_table": self.table,
            "trace_chain": self.chain,
            "trace_type": self.kind,
            "trace_verdict": self.verdict,
            "trace_rule": self.rule,
            "trace_handle": self.handle,
            "trace_from": self.came_from,
        }
        return {**self.fields, **{k: v for k, v in trace.items() if v}}


@dataclass
class _Trace:
    """What is known of one trace id so far."""

    fields: dict[str, str] | None = None  # the headers of its last packet line
    fresh: bool = False  # a PACKET line (counted) not yet bound to a chain (xtables-monitor)
    visit: _Visit | None = None  # the visit being read
    last_chain: str | None = None  # the chain of its last visit (a jump's or return's origin)


@dataclass
class TraceReader:
    """Reads the trace lines of one block, in line order, into one hop per chain visit.

    ``add`` takes a line's parsed fields; ``hops`` gives the visits with their line number and
    the line that closed them (the one giving the verdict), in line order.
    """

    skipped: Counter[str] = field(default_factory=Counter)
    _traces: dict[str, _Trace] = field(default_factory=dict)
    _done: list[tuple[int, str, dict[str, str]]] = field(default_factory=list)

    def add(self, lineno: int, line: str, parsed: dict[str, str]) -> Impossible | None:
        """One trace line (``grammars.trace.parse_line``'s fields); what is impossible in it
        if anything (the line is then not read: its packet's later lines are skipped)."""
        trace_id = parsed["trace_id"]
        trace = self._traces.setdefault(trace_id, _Trace())
        kind = parsed["trace_type"]
        if kind in ("packet", "PACKET"):
            self._close(trace_id, trace)
            self._unbind(trace)
            fields = packet_fields(parsed)
            wrong = impossible(line, fields)
            trace.fields = None if wrong else fields
            if wrong:
                return wrong
            trace.fields = fields
            if kind == "PACKET":
                trace.fresh = True
                return None
            trace.visit = _Visit(trace.fields, parsed["trace_family"], parsed["trace_table"],
                                 parsed["trace_chain"], None, lineno, line)  # fmt: skip
            return None
        handle = parsed.get("trace_handle")
        number = int(handle, 16 if "trace_nfproto" in parsed else 10) if handle else None
        if number is not None and number > MAX_HANDLE:
            return _where(line, handle or "", f"a rule handle 0-{MAX_HANDLE}")
        visit = self._visit_of(trace_id, trace, lineno, line, parsed)
        if visit is None:
            self.skipped[SKIP_ORPHAN] += 1
            return None
        visit.lineno, visit.raw = lineno, line
        visit.lines += 1
        visit.kind = {"verdict": "return", "unknown": "rule"}.get(kind, kind)
        visit.verdict = verdict_word(parsed["trace_verdict"])
        visit.rule = parsed.get("trace_rule")
        visit.handle = None if number is None else str(number)
        if visit.kind != "rule" or visit.verdict != "continue":
            self._close(trace_id, trace)
        return None

    def _visit_of(
        self, trace_id: str, trace: _Trace, lineno: int, line: str, parsed: dict[str, str]
    ) -> _Visit | None:
        """The visit a rule, policy or return line belongs to: the open one if in its chain,
        else a new one (the packet's base chain after a PACKET line, or a chain jumped to or
        returned to)."""
        family = parsed.get("trace_family") or NFPROTO_FAMILIES.get(parsed["trace_nfproto"], "")
        where = (family, parsed["trace_table"], parsed["trace_chain"])
        visit = trace.visit
        if visit is not None and (visit.family, visit.table, visit.chain) == where:
            return visit
        self._close(trace_id, trace)
        if trace.fields is None:
            return None
        came_from = None if trace.fresh else trace.last_chain
        # the PACKET line is the visit's too (add counts the line being read)
        trace.visit = _Visit(trace.fields, *where, came_from, lineno, line, lines=int(trace.fresh))
        trace.fresh = False
        return trace.visit

    def _close(self, trace_id: str, trace: _Trace) -> None:
        visit = trace.visit
        if visit is not None:
            self._done.append((visit.lineno, visit.raw, visit.hop(trace_id)))
            if visit.lines > 1:
                self.skipped[SKIP_FOLDED] += visit.lines - 1
            trace.last_chain = visit.chain
            trace.visit = None

    def _unbind(self, trace: _Trace) -> None:
        """A PACKET line no TRACE line took: counted, as every line read is."""
        if trace.fresh:
            self.skipped[SKIP_UNBOUND] += 1
            trace.fresh = False

    def hops(self) -> list[tuple[int, str, dict[str, str]]]:
        """Every visit (those still open at the block's end too), in line order."""
        for trace_id, trace in self._traces.items():
            self._close(trace_id, trace)
            self._unbind(trace)
        return sorted(self._done, key=lambda done: done[0])


# --- verdicts ------------------------------------------------------------------------------------

# What a packet's last decisive verdict makes of it. nf_tables prints a reject statement's
# verdict as drop (the rule text says reject); queue and stolen hand the packet elsewhere.
_ACTIONS = {"accept": "accept", "drop": "drop"}


@dataclass(frozen=True)
class TraceVerdict:
    """A packet's verdict as its trace shows it (the journey contract's ``verdict``)."""

    action: str  # accept | drop | reject | undecided
    hook: str | None
    table: str
    chain: str
    rule: int | str | None  # the nft rule handle, "policy", or None (unknown)
    text: str | None  # the rule as the tool printed it, or "policy <verdict>"
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "hook": self.hook,
            "table": self.table,
            "chain": self.chain,
            "rule": self.rule,
            "text": self.text,
            "evidence": "nft-trace",
            "reason": self.reason,
        }


def visit_verdict(hop: dict[str, Any]) -> TraceVerdict | None:
    """What one visit decided, if its last line decided (not ``continue``, a jump or a
    return); None otherwise."""
    verdict = hop.get("trace_verdict")
    if not isinstance(verdict, str) or verdict not in ("accept", "drop", "queue", "stolen"):
        return None
    rule, text = hop.get("trace_rule"), None
    action = _ACTIONS.get(verdict, "undecided")
    reason = None if action != "undecided" else f"the trace hands the packet on ({verdict})"
    if hop.get("trace_type") == "policy":
        number: int | str | None = "policy"
        text = f"policy {verdict}"
    else:
        handle = hop.get("trace_handle")
        number = None if handle is None else int(handle)
        text = rule if isinstance(rule, str) else None
        if action == "drop" and text is not None and _rejects(text):
            action = "reject"
    hook = hop.get("hook")
    return TraceVerdict(action, hook if isinstance(hook, str) else None,
                        str(hop.get("trace_table")), str(hop.get("trace_chain")),
                        number, text, reason)  # fmt: skip


def _rejects(text: str) -> bool:
    words = text.replace('"', " ").split()
    return "reject" in words or "REJECT" in words


def trace_verdicts(hops: Iterable[dict[str, Any]]) -> dict[int, TraceVerdict]:
    """Per packet whose hops hold trace visits, the verdict of its last visit that decided
    (hops in the packet's order, as dicts with ``packet``)."""
    found: dict[int, TraceVerdict] = {}
    for hop in hops:
        verdict = visit_verdict(hop)
        if verdict is not None:
            found[int(hop["packet"])] = verdict
    return found


# The fate a trace's verdict gives; an accepted packet keeps the fate its hops give.
TRACE_FATES = {"drop": "dropped", "reject": "rejected", "undecided": "unknown"}


def with_trace_verdicts(hops: pd.DataFrame, fates: pd.DataFrame) -> pd.DataFrame:
    """``fates`` (``logpath.fates``, indexed by packet) with the verdict each traced packet's
    trace shows (evidence ``nft-trace``): the trace saw the rule decide, which no ruleset
    evaluation or LOG line outweighs."""
    if "trace_verdict" not in hops.columns or hops["trace_verdict"].isna().all():
        return fates
    columns = ["packet", "hook", "trace_type", "trace_verdict", "trace_rule", "trace_handle",
               "trace_table", "trace_chain"]  # fmt: skip
    visits = hops.loc[hops["trace_verdict"].notna().to_numpy(), columns]
    plain = visits.astype("object").where(visits.notna(), None)
    found = trace_verdicts(dict(zip(columns, row, strict=True)) for row in plain.itertuples(False))
    if not found:
        return fates
    fates = fates.assign(fate=fates["fate"].astype("object"),
                         verdict=fates["verdict"].astype("object"))  # fmt: skip
    for packet, verdict in found.items():
        fates.at[packet, "verdict"] = json.dumps(verdict.to_json())
        if verdict.action in TRACE_FATES:
            fates.at[packet, "fate"] = TRACE_FATES[verdict.action]
    return fates
