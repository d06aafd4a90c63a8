"""Sequence diagram of a journey: lifelines for the places a packet passes, an arrow per hop.

Like Wireshark's Flow Graph, but for the inside of a host. First ``layout()`` computes a plain
model from a Journey (lifelines, arrows, labels, role bands, NAT marks, notes for collapsed
packets); then ``paint()`` draws it with matplotlib (Agg, no screen). The lifelines come from the
hops themselves: the sender (address, MAC), the bridge ports (PHYSIN/PHYSOUT), a bridge (when it
switches, and as the interface it is to the host), the host stack, other interfaces, the receiver.

    python -m logpath.render.diagram STORE FLOW_ID OUT.png
"""

from __future__ import annotations

import re
import sys
import textwrap
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from logpath.errors import NotFoundError, UsageError
from logpath.flows import Flow, format_endpoint
from logpath.journeys import Journey, JourneyHop, Packet
from logpath.render.output import visible
from logpath.render.timeline import LEGEND, fate_text

if TYPE_CHECKING:
    from logpath.store import Store

# Beyond this many packets a connection is summarised: repeated packets collapse into a note.
MAX_PACKETS = 30
# Packets kept at the start and the end when even the collapsed list is longer than that.
KEEP_HEAD, KEEP_TAIL = 20, 8
# Left-to-right rank of each kind of lifeline, the orig direction reading left to right.
RANK = {"sender": 0, "sender-port": 1, "sender-dev": 2, "stack": 3, "receiver-dev": 4,
        "receiver-port": 5, "receiver": 6}  # fmt: skip
HOOK_SHORT = {"PREROUTING": "PRE", "INPUT": "IN", "FORWARD": "FWD", "OUTPUT": "OUT",
              "POSTROUTING": "POST"}  # fmt: skip
# Packets leaving by these fates get a dashed arrow to where they are going.
LEAVING = ("forwarded", "sent", "switched")
# Fates that end a packet's arrows with a mark at its last hop: (marker, colour, legend text).
# A packet the ruleset lets go on where no LOG rule matches gets a dotted arrow instead.
ENDING_STYLE = {
    "dropped": ("X", "#c62828", "dropped or rejected by the rule named (ruleset or trace)"),
    "rejected": ("X", "#c62828", "dropped or rejected by the rule named (ruleset or trace)"),
    "lost": ("v", "#e67e22", "lost: a later LOG rule matches it, no line shows it"),
    "stopped": ("X", "#6d4c41", "stopped: others went on from here; dropped or lost"),
    "unknown": ("o", "#757575", "unknown: logpath cannot tell what became of it"),
    "unlogged": (">", "#757575", "went on where no LOG rule matches (ruleset)"),
}
# A chain name in an ending's text is cut to this many characters.
CHAIN_CHARS = 26


@dataclass(frozen=True)
class Lifeline:
    """A place a packet passes: an endpoint, a bridge port, a bridge, a host stack, a device."""

    key: str
    """Identity: "sender", "receiver", "stack:HOST", "dev:HOST:NAME", "port:HOST:NAME"."""
    kind: str
    """"endpoint", "port", "bridge", "stack" or "iface"."""
    title: str
    """First line of its head: an address, a device name or the host name."""
    detail: str
    """Second line: a MAC, "port of docker0", "bridge 02:42:…", "host stack", "interface"."""


@dataclass(frozen=True)
class Arrow:
    """One hop (or a packet leaving after its last hop) drawn between two lifelines."""

    row: int
    """Row from the top (0-based); rows hold packet headers, arrows and notes."""
    start: int
    """Index of the lifeline it leaves."""
    end: int
    """Index of the lifeline it reaches (equal to start for a hop at the same place)."""
    label: str
    """TCP flags (or summary) and the addresses at that point, e.g. "SYN 1.2.3.4:5 → …"."""
    where: str
    """The hook and table/chain, TTL and role: "raw PREROUTING · TTL 64 · nic"."""
    hook: str | None
    """The hook of the hop (None for a leaving arrow)."""
    kind: str
    """"hop" or "leave" (dashed: the packet goes on, as the fate says)."""
    translated: bool
    """True when the addresses shown are NAT-translated."""
    via: tuple[int, ...]
    """Lifelines the packet is known to cross on this arrow (its PHYSIN/IN or OUT/PHYSOUT)."""
    count: int = 1
    """Hops drawn as this one arrow: folded, consecutive hops at one place that show the same
    addresses and role (``where`` names them all)."""
    last_hook: str | None = None
    """The hook of the last hop folded into it, when it differs from ``hook``."""


@dataclass(frozen=True)
class PacketHeader:
    """The line above a packet's arrows."""

    row: int
    """Its row."""
    n: int
    """Packet number in the flow."""
    direction: str
    """"orig" or "reply"."""
    text: str
    """"#1 → orig SYN ⇒ forwarded"."""


@dataclass(frozen=True)
class RoleBand:
    """Consecutive hops of one packet where a bridge plays one role."""

    first_row: int
    """First row of the band."""
    last_row: int
    """Last row of the band."""
    role: str
    """"bridge" (switching between ports) or "nic" (the host's network card)."""


@dataclass(frozen=True)
class Marker:
    """A mark at one arrow: a role switch or a NAT translation."""

    row: int
    """Row of the arrow it marks."""
    lifeline: int
    """Lifeline it stands on."""
    text: str
    """"bridge ⇄ nic", "SNAT 172.17.0.2:55148 → 10.10.126.101:55148"."""


@dataclass(frozen=True)
class Note:
    """A row of text: packets collapsed or left out."""

    row: int
    """Its row."""
    text: str
    """What was collapsed, with counts and packet numbers."""


@dataclass(frozen=True)
class Ending:
    """Where a packet's journey ends in trouble (or goes on unlogged), and what ended it."""

    row: int
    """Its row: the one after the packet's last hop (and that hop's marks)."""
    lifeline: int
    """The lifeline of the packet's last hop, where the mark stands."""
    fate: str
    """"dropped", "rejected", "lost", "stopped", "unknown" or "unlogged" (``ENDING_STYLE``)."""
    text: str
    """The fate and the rule, shortened: "dropped by filter DOCKER-ISOLATION-STAGE-2 #2"."""


@dataclass(frozen=True)
class Diagram:
    """Everything ``paint`` draws, computed from a Journey by ``layout``."""

    title: str
    """The connection: id, protocol, tuples, NAT, state."""
    lifelines: tuple[Lifeline, ...]
    """Left to right."""
    arrows: tuple[Arrow, ...]
    """In time order."""
    packets: tuple[PacketHeader, ...]
    """Packet headers in order."""
    bands: tuple[RoleBand, ...]
    """Role bands."""
    switches: tuple[Marker, ...]
    """Where a bridge switches role."""
    nat_marks: tuple[Marker, ...]
    """Where NAT changes the addresses."""
    notes: tuple[Note, ...]
    """Collapsed or omitted packets."""
    rows: int
    """Number of rows (the legend's below them)."""
    endings: tuple[Ending, ...] = ()
    """Where packets died, or went on unlogged."""
    legend: tuple[str, ...] = ()
    """The ending fates drawn, each explained in a legend row below the last row (in
    ``ENDING_STYLE`` order)."""
    words: tuple[tuple[str, str], ...] = ()
    """The other marks and words drawn, with what they mean: a legend row each, below the end
    marks' (``WORDS`` and the timeline's ``LEGEND``)."""


def layout(
    journey: Journey, fold: bool = True, bridges: Collection[tuple[str | None, str]] = ()
) -> Diagram:
    """The diagram model of a journey: lifelines from its hops, an arrow per hop (with
    ``fold``, the default, an arrow per run of hops at one place showing the same addresses, and
    a row per run of packets that repeat one drawn before them). ``bridges``: (host, device)
    known as bridges from other connections (``bridges_seen``), where this one does not show it.

    Example:
        >>> [line.title for line in layout(journey).lifelines]
        ['172.17.0.2', 'vethd9f6465', 'docker0', 'pc-baim', 'eth0', '10.10.126.187']
    """
    lifelines = find_lifelines(journey, bridges)
    index = {line.key: i for i, line in enumerate(lifelines)}
    builder = _Rows(journey.flow, index, _endpoints(journey), fold)
    items = fold_packets(journey.packets) if fold else summarise_packets(journey.packets)
    for item in items:
        if isinstance(item, str):
            builder.note(item)
        else:
            builder.packet(item)
    return Diagram(
        title=flow_title(journey.flow),
        lifelines=tuple(lifelines),
        arrows=tuple(builder.arrows),
        packets=tuple(builder.headers),
        bands=tuple(builder.bands),
        switches=tuple(builder.switches),
        nat_marks=tuple(builder.nat_marks),
        notes=tuple(builder.notes),
        rows=builder.row,
        endings=tuple(builder.endings),
        legend=legend_fates(builder.endings),
        words=legend_words(builder),
    )


# What the diagram's own marks mean (its words are the timeline's: ``LEGEND``).
WORDS = {
    "switch (L2)": LEGEND["bridge"],
    "NIC (L3)": LEGEND["nic"],
    "⇄": LEGEND["⇄"],
    "orange": "an arrow or address NAT translated: " + LEGEND["translated"],
    "●": "a device the packet is known to cross on that arrow (PHYSIN/IN, OUT/PHYSOUT)",
    "dashed": "the packet leaves that way, as its fate says; no later hook logged it",
    "PRE–POST": "hooks of the hops an arrow stands for: PRE(ROUTING), IN(PUT), FWD (FORWARD), "
    "OUT(PUT), POST(ROUTING)",
    "×N": "N hops at one place showing the same addresses as one arrow, or N packets that went "
    "the way of one above as one row (render --unfold draws all)",
}


def legend_words(rows: _Rows) -> tuple[tuple[str, str], ...]:
    """The marks and words a diagram draws, each with its meaning, in a fixed order."""
    used: dict[str, str] = {}
    roles = {band.role for band in rows.bands}
    kinds = {marker.text.split()[0] for marker in rows.nat_marks}
    wheres = " ".join(arrow.where for arrow in rows.arrows)
    shown = {
        "switch (L2)": "bridge" in roles,
        "NIC (L3)": "nic" in roles,
        "⇄": bool(rows.switches),
        "orange": any(arrow.translated for arrow in rows.arrows),
        "●": any(arrow.via for arrow in rows.arrows),
        "dashed": any(arrow.kind == "leave" for arrow in rows.arrows),
        "PRE–POST": any(arrow.last_hook for arrow in rows.arrows),
        "×N": any(a.count > 1 for a in rows.arrows) or any("×" in n.text for n in rows.notes),
    }
    for word, drawn in shown.items():
        if drawn:
            used[word] = WORDS[word]
    for word in ("DNAT", "REDIRECT", "SNAT", "DE-SNAT", "DE-DNAT"):
        if word in kinds:
            used[word] = LEGEND[word]
    for word in ("?", "(guess)"):
        if word in wheres.split() or (word == "?" and "? " in wheres):
            used[word] = LEGEND[word]
    return tuple(used.items())


def legend_fates(endings: Sequence[Ending]) -> tuple[str, ...]:
    """The fates whose marks the legend explains: those drawn, one per meaning (dropped and
    rejected share theirs), in ``ENDING_STYLE`` order."""
    drawn = {ending.fate for ending in endings}
    meanings: dict[str, str] = {}
    for fate, (_, _, meaning) in ENDING_STYLE.items():
        if fate in drawn:
            meanings.setdefault(meaning, fate)
    return tuple(meanings.values())


def flow_title(flow: Flow) -> str:
    """``flow ID tcp  orig A → B  reply C → D  SNAT x → y  established``."""
    orig = f"{_at(flow.orig.src, flow.orig.sport)} → {_at(flow.orig.dst, flow.orig.dport)}"
    reply = f"{_at(flow.reply.src, flow.reply.sport)} → {_at(flow.reply.dst, flow.reply.dport)}"
    nat = "".join(f"  {t.type.upper()} {t.from_addr} → {t.to_addr}" for t in flow.nat)
    return f"flow {flow.id} {flow.proto}   orig {orig}   reply {reply}{nat}   {flow.state}"


def _at(addr: str | None, port: int | None) -> str:
    return format_endpoint(addr or "?", port)


def place_key(hop: JourneyHop) -> str:
    """Where a hop was logged: on the bridge when it switches, else in its host's stack."""
    if hop.role == "bridge":
        return f"dev:{hop.host}:{hop.in_iface or hop.out_iface}"
    return f"stack:{hop.host}"


def _all_hops(journey: Journey) -> list[tuple[Packet, JourneyHop]]:
    return [(packet, hop) for packet in journey.packets for hop in packet.hops]


def _endpoints(journey: Journey) -> dict[str, str]:
    """The lifeline keys of the sender and the receiver (a host stack when local)."""
    orig = [hop for packet, hop in _all_hops(journey) if packet.direction == "orig"]
    ends = {"sender": "sender", "receiver": "receiver"}
    if orig and orig[0].hook == "OUTPUT":
        ends["sender"] = f"stack:{orig[0].host}"
    delivered = [hop for hop in orig if hop.hook == "INPUT"]
    if delivered:
        ends["receiver"] = f"stack:{delivered[0].host}"
    return ends


def find_lifelines(
    journey: Journey, known: Collection[tuple[str | None, str]] = ()
) -> list[Lifeline]:
    """The lifelines a journey needs, ordered as the orig direction travels (left to right);
    ``known``: (host, device) other connections show to be bridges."""
    ends = _endpoints(journey)
    found: dict[str, tuple[int, Lifeline]] = {}

    def add(rank: str, line: Lifeline) -> None:
        found.setdefault(line.key, (RANK[rank], line))

    bridges = _bridge_names(journey)
    for key in known:
        bridges.setdefault(key, None)
    if ends["sender"] == "sender":
        add("sender", _endpoint_line(journey, "sender"))
    for packet, hop in _all_hops(journey):
        near, far = ("sender", "receiver") if packet.direction == "orig" else ("receiver", "sender")
        for name, side in ((hop.physin, near), (hop.physout, far)):
            if name:
                add(f"{side}-port", _port_line(hop, name, bridges))
        for name, side in ((hop.in_iface, near), (hop.out_iface, far)):
            if name:
                add(f"{side}-dev", _device_line(hop.host, name, bridges))
        if not place_key(hop).startswith("dev:"):
            add("stack", Lifeline(f"stack:{hop.host}", "stack", hop.host or "host", "host stack"))
    if ends["receiver"] == "receiver":
        add("receiver", _endpoint_line(journey, "receiver"))
    ordered = sorted(enumerate(found.values()), key=lambda item: (item[1][0], item[0]))
    return [line for _, (_, line) in ordered]


def _bridge_names(journey: Journey) -> dict[tuple[str | None, str], str | None]:
    """Bridges seen (a device with PHYSIN in or PHYSOUT out), with their own MAC when known."""
    bridges: dict[tuple[str | None, str], str | None] = {}
    for _, hop in _all_hops(journey):
        if hop.physin and hop.in_iface:
            bridges.setdefault((hop.host, hop.in_iface), None)
        if hop.physout and hop.out_iface:
            bridges.setdefault((hop.host, hop.out_iface), None)
    for _, hop in _all_hops(journey):
        # the host stack sees only frames addressed to the bridge's own MAC
        key = (hop.host, hop.in_iface or "")
        if key in bridges and hop.role == "nic" and hop.hook in ("INPUT", "FORWARD"):
            bridges[key] = bridges[key] or hop.fields.get("macdst")
    return bridges


def bridges_shown(journeys: Iterable[Journey]) -> frozenset[tuple[str | None, str]]:
    """(host, device) the journeys show to be bridges: a device entered or left by a port."""
    return frozenset(key for journey in journeys for key in _bridge_names(journey))


def bridges_seen(store: Store, journey: Journey) -> frozenset[tuple[str | None, str]]:
    """The devices of a journey that other hops of the store show to be bridges (a hop that
    entered one by a port, PHYSIN, or left one by a port, PHYSOUT), when the journey does not:
    a routed packet dropped before the bridge switched it never shows its port.
    Reads only the store's hops through those devices, and nothing when there are none."""
    import pyarrow.dataset as ds

    shown = _bridge_names(journey)
    unknown = {(hop.host, name) for _, hop in _all_hops(journey)
               for name in (hop.in_iface, hop.out_iface) if name} - set(shown)  # fmt: skip
    if not unknown:
        return frozenset()
    names = sorted({name for _, name in unknown})
    entered = ds.field("in_iface").isin(names) & ds.field("physin").is_valid()
    left = ds.field("out_iface").isin(names) & ds.field("physout").is_valid()
    columns = ["host", "in_iface", "out_iface", "physin", "physout"]
    found: set[tuple[str | None, str]] = set()
    for batch in store.hop_batches(columns, filter_=entered | left):
        for row in batch.to_pylist():
            for name, port in (("in_iface", "physin"), ("out_iface", "physout")):
                if row[port] and (row["host"], row[name]) in unknown:
                    found.add((row["host"], row[name]))
    return frozenset(found)


def _port_line(
    hop: JourneyHop, name: str, bridges: Mapping[tuple[str | None, str], object]
) -> Lifeline:
    bridge = hop.in_iface if name == hop.physin else hop.out_iface
    detail = f"port of {bridge}" if (hop.host, bridge or "") in bridges else "bridge port"
    return Lifeline(f"port:{hop.host}:{name}", "port", name, detail)


def _device_line(
    host: str | None, name: str, bridges: dict[tuple[str | None, str], str | None]
) -> Lifeline:
    if (host, name) in bridges:
        mac = bridges[(host, name)]
        return Lifeline(f"dev:{host}:{name}", "bridge", name, f"bridge {mac}" if mac else "bridge")
    return Lifeline(f"dev:{host}:{name}", "iface", name, "interface")


def _endpoint_line(journey: Journey, end: str) -> Lifeline:
    """The sender (orig source) or the receiver (the server that answers, after any DNAT)."""
    flow = journey.flow
    address = flow.orig.src if end == "sender" else flow.reply.src
    # its MAC: the source MAC of the first hop of a packet it sent (when it is on a local link)
    direction = "orig" if end == "sender" else "reply"
    sent = [p.hops[0] for p in journey.packets if p.direction == direction and p.hops]
    mac = sent[0].fields.get("macsrc") if sent else None
    detail = str(mac) if mac else ("client" if end == "sender" else "server")
    if end == "receiver" and flow.reply.src != flow.orig.dst:
        detail += f" (asked as {flow.orig.dst})"
    return Lifeline(end, "endpoint", address, detail)


def summarise_packets(packets: Sequence[Packet]) -> list[Packet | str]:
    """The packets to draw, with notes in place of the ones left out.

    Up to MAX_PACKETS all are drawn. Beyond, a packet that repeats one already drawn (same
    direction, summary, fate and hops at the same places) is collapsed: each run of such
    packets becomes a note with its count; if still too many, the middle is left out.
    """
    if len(packets) <= MAX_PACKETS:
        return list(packets)
    items: list[Packet | str] = []
    seen: set[tuple[object, ...]] = set()
    run: list[Packet] = []
    for packet in packets:
        signature = _signature(packet)
        if signature in seen:
            run.append(packet)
            continue
        if run:
            items.append(_collapsed(run))
            run = []
        items.append(packet)
        seen.add(signature)
    if run:
        items.append(_collapsed(run))
    return _cut_middle(items)


def _signature(packet: Packet) -> tuple[object, ...]:
    return (packet.direction, packet.summary, packet.fate,
            tuple((hop.table, hop.hook, place_key(hop)) for hop in packet.hops))  # fmt: skip


def _collapsed(run: list[Packet]) -> str:
    kinds = sorted({f"{p.direction} {p.summary}" for p in run})
    return f"… {len(run)} more packet(s) like the ones above (#{run[0].n}–#{run[-1].n}: " + (
        ", ".join(kinds) + ")"
    )


def _cut_middle(items: list[Packet | str]) -> list[Packet | str]:
    drawn = [i for i, item in enumerate(items) if not isinstance(item, str)]
    if len(drawn) <= MAX_PACKETS:
        return items
    head_end, tail_start = drawn[KEEP_HEAD], drawn[-KEEP_TAIL]
    left_out = [item for item in items[head_end:tail_start] if not isinstance(item, str)]
    numbers = [p.n for p in left_out]
    note = f"… packets #{numbers[0]}–#{numbers[-1]} left out ({len(numbers)} drawn in summary)"
    return [*items[:head_end], note, *items[tail_start:]]


def fold_packets(packets: Sequence[Packet]) -> list[Packet | str]:
    """The packets to draw, each run of packets that go the way of one already drawn (the
    same direction and fate, hops at the same places showing the same addresses, whatever
    their flags) folded into one row that counts them: ``×20 #5–#24: orig ACK the same way as
    #3``; if still more than MAX_PACKETS, the middle is left out."""
    items: list[Packet | str] = []
    first: dict[tuple[object, ...], int] = {}
    run: list[Packet] = []
    for packet in packets:
        signature = _way(packet)
        if signature in first:
            run.append(packet)
            continue
        if run:
            items.append(_folded(run, first))
            run = []
        items.append(packet)
        first[signature] = packet.n
    if run:
        items.append(_folded(run, first))
    return _cut_middle(items)


def _folded(run: list[Packet], first: Mapping[tuple[object, ...], int]) -> str:
    """``×2 #7, #10: orig ACK, the same way as #3`` for a run of repeated packets."""
    numbers = [p.n for p in run]
    consecutive = numbers == list(range(numbers[0], numbers[-1] + 1))
    named = (f"#{numbers[0]}–#{numbers[-1]}" if consecutive and len(numbers) > 2
             else ", ".join(f"#{n}" for n in numbers))  # fmt: skip
    ways: dict[int, list[str]] = {}  # per packet drawn, the kinds of packets that went its way
    for packet in run:
        kinds = ways.setdefault(first[_way(packet)], [])
        kind = f"{packet.direction} {packet.summary}"
        if kind not in kinds:
            kinds.append(kind)
    told = "; ".join(f"{', '.join(kinds)} the same way as #{n}" for n, kinds in ways.items())
    return f"×{len(run)} {named}: {told}"


def _way(packet: Packet) -> tuple[object, ...]:
    """What a folded packet's drawing would show but its flags: direction, fate, and each hop's
    place and addresses (with its NAT marks)."""
    return (packet.direction, packet.fate, packet.stopped_at, tuple(
        (hop.table, hop.hook, place_key(hop), hop.src, hop.sport, hop.dst, hop.dport, hop.nat)
        for hop in packet.hops))  # fmt: skip


class _Rows:
    """Accumulates rows of the diagram, packet after packet."""

    def __init__(
        self, flow: Flow, index: dict[str, int], ends: dict[str, str], fold: bool = False
    ) -> None:
        self.flow, self.index, self.ends, self.fold = flow, index, ends, fold
        self.row = 0
        self.arrows: list[Arrow] = []
        self.headers: list[PacketHeader] = []
        self.bands: list[RoleBand] = []
        self.switches: list[Marker] = []
        self.nat_marks: list[Marker] = []
        self.notes: list[Note] = []
        self.endings: list[Ending] = []

    def note(self, text: str) -> None:
        self.notes.append(Note(self.row, text))
        self.row += 1

    def packet(self, packet: Packet) -> None:
        arrow = "→" if packet.direction == "orig" else "←"
        text = f"#{packet.n} {arrow} {packet.direction}  {packet.summary}  ⇒ {fate_text(packet)}"
        self.headers.append(PacketHeader(self.row, packet.n, packet.direction, text))
        self.row += 1
        near, far = ("sender", "receiver") if packet.direction == "orig" else ("receiver", "sender")
        previous = self.index[self.ends[near]]
        if packet.hops and packet.hops[0].hook == "OUTPUT":
            previous = self.index[place_key(packet.hops[0])]  # a local socket sent it
        spans = []
        runs = hop_runs(packet.hops) if self.fold else [[hop] for hop in packet.hops]
        for number, run in enumerate(runs):
            first = self.row
            previous = self._hop(packet, run, previous, entering=number == 0)
            spans.append((run[0].role, first, self.row - 1))
        if packet.fate in LEAVING and packet.hops:
            self._leave(packet.hops[-1], previous, self.index[self.ends[far]])
        elif packet.fate in ENDING_STYLE and packet.hops:
            self.endings.append(Ending(self.row, previous, packet.fate, ending_text(packet)))
            self.row += 1
        self._bands(spans)

    def _hop(self, packet: Packet, run: list[JourneyHop], previous: int, entering: bool) -> int:
        """The arrow of a run of hops (one hop unfolded), then a row for each mark its first
        hop (role switch) or its last (NAT) carries."""
        hop, last = run[0], run[-1]
        end = self.index[place_key(hop)]
        via = _via(self.index, hop, ("physin", "in_iface")) if entering else ()
        label = f"{packet.summary}  {_at(hop.src, hop.sport)} → {_at(hop.dst, hop.dport)}"
        self.arrows.append(
            Arrow(
                self.row,
                previous,
                end,
                label,
                run_where(run),
                hop.hook,
                "hop",
                hop.translated,
                _between(via, previous, end),
                len(run),
                last.hook if last.hook != hop.hook else None,
            )
        )
        self.row += 1
        if hop.role_switch and hop.role:
            other = "nic" if hop.role == "bridge" else "bridge"
            bridge = hop.in_iface or hop.out_iface
            self.switches.append(Marker(self.row, end, f"{bridge}: {other} ⇄ {hop.role}"))
            self.row += 1
        for mark in (mark for folded in run for mark in folded.nat):
            self.nat_marks.append(Marker(self.row, end, nat_text(self.flow, mark)))
            self.row += 1
        return end

    def _leave(self, last: JourneyHop, start: int, end: int) -> None:
        src, dst = _at(last.src, last.sport), _at(last.dst, last.dport)
        src = _applied(self.flow, last, src)
        device = last.physout or last.out_iface
        label = f"leaves by {device}  {src} → {dst}" if device else f"{src} → {dst}"
        via = _via(self.index, last, ("out_iface", "physout"))
        translated = last.translated or src != _at(last.src, last.sport)
        self.arrows.append(
            Arrow(
                self.row,
                start,
                end,
                label,
                "",
                None,
                "leave",
                translated,
                _between(via, start, end),
            )
        )
        self.row += 1

    def _bands(self, spans: list[tuple[str | None, int, int]]) -> None:
        """One band per run of consecutive hops (rows first..last) with the same role."""
        run: list[tuple[str | None, int, int]] = []
        for span in [*spans, (None, -1, -1)]:
            if run and span[0] != run[0][0]:
                if run[0][0]:
                    self.bands.append(RoleBand(run[0][1], run[-1][2], str(run[0][0])))
                run = []
            run.append(span)


def _between(lanes: tuple[int, ...], start: int, end: int) -> tuple[int, ...]:
    """The lanes strictly between an arrow's two ends (where a crossing dot can be drawn)."""
    low, high = sorted((start, end))
    return tuple(lane for lane in lanes if low < lane < high)


def _via(index: dict[str, int], hop: JourneyHop, names: tuple[str, str]) -> tuple[int, ...]:
    """Lifelines of the devices a hop names (PHYSIN/IN entering, OUT/PHYSOUT leaving)."""
    keys = []
    for name in names:
        device = getattr(hop, name)
        if device:
            keys.append(f"{'port' if name.startswith('phys') else 'dev'}:{hop.host}:{device}")
    return tuple(index[key] for key in keys if key in index)


def hop_where(hop: JourneyHop) -> str:
    """``raw PREROUTING (chain) · TTL 64 · nic`` for the gutter beside a hop's arrow."""
    where = f"{hop.table or '?'} {hop.hook or '?'}"
    if hop.chain and hop.chain != hop.hook:
        where += f" ({hop.chain})"
    if hop.evidence == "guess":
        where += " (guess)"
    parts = [where]
    if hop.ttl is not None:
        parts.append(f"TTL {hop.ttl}")
    if hop.role:
        parts.append(hop.role)
    return " · ".join(parts)


def hop_runs(hops: Sequence[JourneyHop]) -> list[list[JourneyHop]]:
    """Consecutive hops folded into runs: a hop joins the run before it when it is logged at
    the same place, shows the same addresses and role, and nothing is marked between them (a
    role switch starts a run, as a NAT change does; NAT applied after a hop ends one)."""
    runs: list[list[JourneyHop]] = []
    for hop in hops:
        last = runs[-1][-1] if runs else None
        # a NAT change marks the run's first hop, NAT applied after a hop its last
        if (
            last is not None
            and not last.nat_after
            and not hop.role_switch
            and _same_view(last, hop)
        ):
            runs[-1].append(hop)
        else:
            runs.append([hop])
    return runs


def _same_view(one: JourneyHop, other: JourneyHop) -> bool:
    keys = ("host", "src", "sport", "dst", "dport", "role", "translated", "evidence")
    return place_key(one) == place_key(other) and all(
        getattr(one, key) == getattr(other, key) for key in keys
    )


def run_where(run: Sequence[JourneyHop]) -> str:
    """``raw, mangle, nat PREROUTING; filter FORWARD (FwdOd0) · TTL 64→63 · nic`` for a run of
    hops (``hop_where`` for one): the tables of each hook in turn, the TTLs seen, the role."""
    if len(run) == 1:
        return hop_where(run[0])
    places: list[tuple[str, dict[str, None], dict[str, None]]] = []  # hook, tables, chains
    for hop in run:
        hook = hop.hook or "?"
        if not places or places[-1][0] != hook:
            places.append((hook, {}, {}))
        places[-1][1][hop.table or "?"] = None
        if _user_chain(hop):
            places[-1][2][str(hop.chain)] = None
    where = "; ".join(
        f"{', '.join(tables)} {hook}" + (f" ({', '.join(chains)})" if chains else "")
        for hook, tables, chains in places
    )
    if run[0].evidence == "guess":
        where += " (guess)"
    parts = [where]
    ttls = list(dict.fromkeys(hop.ttl for hop in run if hop.ttl is not None))
    if ttls:
        parts.append("TTL " + "→".join(str(ttl) for ttl in ttls))
    if run[0].role:
        parts.append(run[0].role)
    return " · ".join(parts)


def _user_chain(hop: JourneyHop) -> bool:
    return bool(hop.chain) and hop.chain != hop.hook


def ending_text(packet: Packet) -> str:
    """What ended a packet, short enough for the diagram: ``dropped by filter FORWARD #4``,
    ``lost after PRE``, ``unknown after FWD: no ruleset``, ``goes on unlogged (filter FORWARD
    policy)``; the rule's text is in the header above."""
    verdict = packet.verdict
    rule = _short_rule(verdict) if verdict else None
    last = packet.stopped_at or (packet.hops[-1].hook if packet.hops else None)
    after = f" after {HOOK_SHORT.get(last, last)}" if last else ""
    if packet.fate in ("dropped", "rejected") and rule:
        return f"{packet.fate} by {rule}"
    if packet.fate == "unlogged":
        return f"goes on unlogged ({rule})" if rule else "goes on unlogged"
    if packet.fate == "unknown":
        action = verdict.get("action") if verdict else None
        why = {None: " (no verdict)", "undecided": " (undecided rule)"}.get(action, "")
        return f"unknown{after}{why}"
    return f"{packet.fate}{after}"


def _short_rule(verdict: Mapping[str, Any]) -> str:
    """``filter DOCKER-ISOLATION-STAGE-2 #2``, ``filter FORWARD policy``: a long chain cut."""
    chain = str(verdict.get("chain"))
    if len(chain) > CHAIN_CHARS:
        chain = chain[: CHAIN_CHARS - 1] + "…"
    rule = verdict.get("rule")
    return f"{verdict.get('table')} {chain} " + ("policy" if rule == "policy" else f"#{rule}")


def nat_text(flow: Flow, mark: str) -> str:
    """``SNAT 172.17.0.2:55148 → 10.10.126.101:55148`` for a hop's NAT mark."""
    wanted = {"snat": ("snat",), "de-snat": ("snat",), "dnat": ("dnat", "redirect"),
              "de-dnat": ("dnat", "redirect")}.get(mark, ())  # fmt: skip
    found = [t for t in flow.nat if t.type in wanted]
    if not found:
        return mark.upper()
    translation = found[0]
    if mark.startswith("de-"):
        return f"{mark.upper()} {translation.to_addr} → {translation.from_addr}"
    where = f"  (applied at {translation.hook})"
    return f"{translation.type.upper()} {translation.from_addr} → {translation.to_addr}{where}"


def _applied(flow: Flow, last: JourneyHop, src: str) -> str:
    """The source a packet leaves with when SNAT (or a reply's de-DNAT) acts after its last
    hop: nat POSTROUTING logs before it translates, so the line still shows the old one."""
    for mark, kinds, pick in (("snat", ("snat",), "to"), ("de-dnat", ("dnat", "redirect"), "from")):
        found = [t for t in flow.nat if t.type in kinds]
        if mark in last.nat and found:
            return found[0].to_addr if pick == "to" else found[0].from_addr
    return src


# Painting: sizes in inches (one data unit is one inch on the figure).
LANE_W, ROW_H, HEAD_H, TITLE_H, GUTTER_W, MARGIN = 1.9, 0.34, 0.75, 0.45, 3.3, 0.5
COLOURS = {"orig": "#1f5fa8", "reply": "#8e2c8e", "nat": "#f2c94c", "bridge": "#dbe9f7",
           "nic": "#e4f3df", "switch": "#2f4f9f", "translated": "#b35900",
           "life": "#9a9a9a"}  # fmt: skip


def figure_size(diagram: Diagram) -> tuple[float, float]:
    """Width and height in inches (the title's lines above, the legend's rows below)."""
    width = 2 * MARGIN + len(diagram.lifelines) * LANE_W + GUTTER_W
    rows = (diagram.rows + 0.5 + (0.5 if _legend_h(diagram) else 0)) * ROW_H
    return width, _title_h(diagram, width) + HEAD_H + rows + _legend_h(diagram) + MARGIN / 2


# Height of a legend row (smaller than a diagram's row: one line of 7 pt text each), and the
# characters of 7 pt text an inch holds.
LEGEND_ROW_H, LEGEND_CHARS_PER_INCH = 0.21, 16


def _legend_h(diagram: Diagram) -> float:
    """The legend's height: a title row, then one per fate, one per word (none without)."""
    rows = len(diagram.legend) + len(diagram.words)
    return (rows + 1) * LEGEND_ROW_H if rows else 0.0


# Characters of the bold 9 pt title an inch holds (DejaVu Sans), and the height of its lines.
TITLE_CHARS_PER_INCH, TITLE_LINE_H = 11.5, 0.2


def title_lines(title: str, width: float) -> list[str]:
    """The title wrapped to the figure's width between its parts (the id, each tuple, each
    translation, the state are never cut)."""
    room = max(20, int((width - 2 * MARGIN) * TITLE_CHARS_PER_INCH))
    lines: list[str] = []
    for part in re.split(r"\s{2,}", title):
        if lines and len(lines[-1]) + 3 + len(part) <= room:
            lines[-1] += "   " + part
        else:
            lines.append(part)
    return lines


def _title_h(diagram: Diagram, width: float) -> float:
    return TITLE_H + TITLE_LINE_H * (len(title_lines(diagram.title, width)) - 1)


def paint(diagram: Diagram) -> Figure:
    """Draw the model on a new matplotlib Figure (Agg canvas, never a window)."""
    width, height = figure_size(diagram)
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_xlim(0, width)
    axes.set_ylim(0, height)
    axes.axis("off")
    top = height - _title_h(diagram, width) - HEAD_H
    _write(axes, MARGIN, height - TITLE_H / 2 + 0.1, *title_lines(diagram.title, width),
           fontsize=9, weight="bold", va="top", linespacing=1.3)  # fmt: skip
    _paint_bands(axes, diagram, top)
    _paint_lifelines(axes, diagram, top)
    for header in diagram.packets:
        _write(axes, MARGIN, _y(top, header.row), header.text, fontsize=8, weight="bold",
               va="center", color=COLOURS[header.direction])  # fmt: skip
    for note in diagram.notes:
        _write(axes, MARGIN, _y(top, note.row), note.text, fontsize=8, style="italic", va="center")
    for arrow in diagram.arrows:
        _paint_arrow(axes, arrow, top, width - GUTTER_W - MARGIN / 2, len(diagram.lifelines))
    for marker in diagram.switches:
        _paint_marker(axes, marker, top, "white", COLOURS["switch"])
    for marker in diagram.nat_marks:
        _paint_marker(axes, marker, top, "black", COLOURS["nat"])
    for ending in diagram.endings:
        _paint_ending(axes, ending, top, _x(len(diagram.lifelines) - 1))
    _paint_legend(axes, diagram, top)
    return figure


def _write(axes: Axes, x: float, y: float, *lines: str, **style: Any) -> None:
    """Lines of text on the diagram as they are: control characters made ``visible`` (a font
    has no glyph for them, SVG is XML, which has no place for most of them, and a newline in a
    name is not a second line), and no mathtext (``$`` in a host name or chain would be read as
    TeX, and ``$\\frac$`` ends the drawing)."""
    text = "\n".join(visible(line) for line in lines)
    axes.text(x, y, text, parse_math=False, **style)


def _x(lane: int) -> float:
    return MARGIN + LANE_W * (lane + 0.5)


def _y(top: float, row: int) -> float:
    return top - (row + 0.5) * ROW_H


def _paint_lifelines(axes: Axes, diagram: Diagram, top: float) -> None:
    bottom = top - diagram.rows * ROW_H
    face = {"stack": "#fff4d6", "bridge": COLOURS["bridge"], "endpoint": "#eeeeee"}
    for lane, line in enumerate(diagram.lifelines):
        x = _x(lane)
        axes.plot([x, x], [top, bottom], color=COLOURS["life"], lw=0.8, ls="--", zorder=1)
        box = {"boxstyle": "round,pad=0.3", "fc": face.get(line.kind, "white"), "ec": "#555555"}
        _write(axes, x, top + HEAD_H / 2, line.title, line.detail, ha="center", va="center",
               fontsize=7.5, bbox=box)  # fmt: skip


def _paint_bands(axes: Axes, diagram: Diagram, top: float) -> None:
    left, right = MARGIN, MARGIN + len(diagram.lifelines) * LANE_W
    for band in diagram.bands:
        y_top = top - band.first_row * ROW_H
        y_bottom = top - (band.last_row + 1) * ROW_H
        axes.fill_between([left, right], y_bottom, y_top, color=COLOURS[band.role], zorder=0)
        name = "switch (L2)" if band.role == "bridge" else "NIC (L3)"
        _write(axes, right - 0.05, y_top - 0.02, name, fontsize=6, ha="right", va="top",
               color="#555")  # fmt: skip


def _paint_arrow(axes: Axes, arrow: Arrow, top: float, gutter: float, lanes: int) -> None:
    y = _y(top, arrow.row)
    start, end = _x(arrow.start), _x(arrow.end)
    colour = COLOURS["translated"] if arrow.translated else "black"
    if arrow.start == arrow.end:  # a hop at the same place: a short loop on the lifeline
        loop = {"arrowstyle": "->", "color": colour, "lw": 1.0, "connectionstyle": "arc3,rad=-1.2"}
        axes.annotate("", xy=(start + 0.02, y - 0.09), xytext=(start + 0.02, y + 0.09),
                      arrowprops=loop, zorder=4)  # fmt: skip
        # label on the side away from the gutter when the loop is on the last lifeline
        label_x, align = (
            (start - 0.12, "right") if arrow.end == lanes - 1 else (start + 0.22, "left")
        )
    else:
        line = {"arrowstyle": "-|>", "color": colour, "lw": 1.1,
                "ls": "dashed" if arrow.kind == "leave" else "solid"}  # fmt: skip
        axes.annotate("", xy=(end, y), xytext=(start, y), arrowprops=line, zorder=4)
        label_x, align = (start + end) / 2, "center"
    box = {"boxstyle": "square,pad=0.05", "fc": "white", "ec": "none", "alpha": 0.8}
    _write(axes, label_x, y + 0.025, arrow.label, fontsize=6.5, ha=align, va="bottom",
           color=colour, zorder=5, bbox=box)  # fmt: skip
    for lane in arrow.via:
        axes.plot([_x(lane)], [y], marker="o", ms=3.5, color=colour, zorder=5)
    if arrow.hook:
        short = HOOK_SHORT.get(arrow.hook, arrow.hook)
        if arrow.last_hook:
            short += "–" + HOOK_SHORT.get(arrow.last_hook, arrow.last_hook)
        _write(axes, end, y - 0.03, short, fontsize=5.5, ha="center", va="top", color="#444")
    where = f"{arrow.where}  ×{arrow.count}" if arrow.count > 1 else arrow.where
    lines = gutter_lines(where)
    _write(axes, gutter, y, *lines, fontsize=6.5 if len(lines) < 3 else 5.5, va="center",
           color="#333333", linespacing=1.0)  # fmt: skip


# Characters of 6.5 pt text the gutter holds on one line.
GUTTER_CHARS = 62


def gutter_lines(where: str) -> list[str]:
    """The gutter's text of an arrow on as many lines as it needs (at most three fit a row):
    broken after a hook's tables (``;``) or before the TTL and role (``·``)."""
    lines: list[str] = []
    for part in re.split(r"(?<=;) | (?=· )", where):
        if lines and len(lines[-1]) + 1 + len(part) <= GUTTER_CHARS:
            lines[-1] += " " + part
        else:
            lines.append(part)
    return lines


def _paint_marker(axes: Axes, marker: Marker, top: float, ink: str, face: str) -> None:
    x, y = _x(marker.lifeline), _y(top, marker.row)
    axes.plot([x], [y], marker="D", ms=6, color=face, mec="black", mew=0.6, zorder=6)
    box = {"boxstyle": "round,pad=0.2", "fc": face, "ec": "none"}
    _write(axes, x + 0.12, y, marker.text, fontsize=7, ha="left", va="center", color=ink,
           weight="bold", zorder=6, bbox=box)  # fmt: skip


def _paint_ending(axes: Axes, ending: Ending, top: float, rightmost: float) -> None:
    """The end mark on the last hop's lifeline and its text; an unlogged packet's dotted
    arrow goes on to the right of it instead (the way it went is not logged)."""
    marker, colour, _ = ENDING_STYLE[ending.fate]
    x, y = _x(ending.lifeline), _y(top, ending.row)
    if ending.fate == "unlogged":
        end = rightmost if x < rightmost else x + LANE_W / 2
        line = {"arrowstyle": "-|>", "color": colour, "lw": 1.0, "ls": "dotted"}
        axes.annotate("", xy=(end, y), xytext=(x, y), arrowprops=line, zorder=4)
    axes.plot([x], [y], marker=marker, ms=9, color=colour, mec="black", mew=0.6, zorder=7)
    box = {"boxstyle": "round,pad=0.2", "fc": "white", "ec": colour, "lw": 0.8}
    _write(axes, x + 0.14, y, ending.text, fontsize=7, ha="left", va="center", color=colour,
           weight="bold", zorder=7, bbox=box)  # fmt: skip


def _paint_legend(axes: Axes, diagram: Diagram, top: float) -> None:
    """Below the diagram: a title row, then a row per end mark drawn and what it means, then
    a row per other mark or word drawn."""
    if not diagram.legend and not diagram.words:
        return
    below = _y(top, diagram.rows) - LEGEND_ROW_H / 2

    def row(n: int) -> float:
        return below - n * LEGEND_ROW_H

    _write(axes, MARGIN, row(0), "legend", fontsize=7, weight="bold", va="center",
           color="#333333")  # fmt: skip
    # a meaning longer than the figure is wide takes two smaller lines of its row
    room = int((axes.get_xlim()[1] - 2 * MARGIN - 0.9) * LEGEND_CHARS_PER_INCH)
    for n, (word, meaning) in enumerate(diagram.words, start=len(diagram.legend) + 1):
        y = row(n)
        _write(axes, MARGIN + 0.05, y, word, fontsize=7, weight="bold", va="center",
               color="#333333")  # fmt: skip
        lines = textwrap.wrap(meaning, int(room * 7 / 6)) if len(meaning) > room else [meaning]
        _write(axes, MARGIN + 0.9, y, *lines, fontsize=7 if len(lines) == 1 else 6, va="center",
               color="#333333", linespacing=1.0)  # fmt: skip
    for n, fate in enumerate(diagram.legend, start=1):
        marker, colour, meaning = ENDING_STYLE[fate]
        y = row(n)
        axes.plot([MARGIN + 0.12], [y], marker=marker, ms=8, color=colour, mec="black",
                  mew=0.6)  # fmt: skip
        _write(axes, MARGIN + 0.3, y, meaning, fontsize=7, va="center", color="#333333")


def packet_numbers(spec: str) -> list[int]:
    """Packet numbers from ``--packets``: numbers and ranges, comma-separated (``1-3,7``).

    Raises:
        UsageError: not numbers and ranges, or a range that runs backwards.
    """
    numbers: list[int] = []
    for part in spec.split(","):
        found = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not found or int(found[1]) < 1:
            raise UsageError(
                f"--packets {spec!r}: write packet numbers and ranges from 1, e.g. 1-3,7"
            )
        first, last = int(found[1]), int(found[2] or found[1])
        if last < first:
            raise UsageError(f"--packets {spec!r}: the range {part.strip()} runs backwards")
        numbers.extend(n for n in range(first, last + 1) if n not in numbers)
    return numbers


def pick_packets(journey: Journey, numbers: Sequence[int]) -> Journey:
    """The journey with only the packets numbered (in time order, numbers kept).

    Raises:
        NotFoundError: a number the connection has no packet for.
    """
    have = {packet.n for packet in journey.packets}
    missing = [n for n in numbers if n not in have]
    if missing:
        flow = journey.flow
        raise NotFoundError(
            f"flow {flow.id} has no packet {', '.join(map(str, missing))} "
            f"(it has {len(journey.packets)}: #1 to #{len(journey.packets)})"
        )
    return Journey(journey.flow, tuple(p for p in journey.packets if p.n in numbers))


def handshake(journey: Journey) -> Journey:
    """A TCP connection's handshake and first data: its packets up to the first that carries
    data (PSH) or ends it (FIN, RST), that one included; all of them if none does.

    Raises:
        UsageError: the connection is not TCP.
    """
    flow = journey.flow
    if flow.proto != "tcp":
        raise UsageError(f"--handshake: flow {flow.id} is {flow.proto}, not tcp (try --packets)")
    kept: list[Packet] = []
    for packet in journey.packets:
        kept.append(packet)
        if {"PSH", "FIN", "RST"} & set(packet.summary.split("-")):
            break
    return Journey(flow, tuple(kept))


def picture_format(path: Path) -> str:
    """ "png" or "svg" from the file name.

    Raises:
        UsageError: the file name ends in neither .png nor .svg.
    """
    suffix = path.suffix.lower()
    if suffix not in (".png", ".svg"):
        raise UsageError(f"{path}: write a .png or a .svg file (the name ends in {suffix!r})")
    return suffix[1:]


def save_diagram(
    journey: Journey,
    path: Path,
    dpi: int = 110,
    fold: bool = True,
    bridges: Collection[tuple[str | None, str]] = (),
) -> Diagram:
    """Lay out and paint a journey into ``path`` (.png or .svg), folded unless ``fold`` is
    False, with ``bridges`` known from other connections; returns the model drawn.

    Raises:
        UsageError: the file name ends in neither .png nor .svg.
    """
    suffix = picture_format(path)
    diagram = layout(journey, fold, bridges)
    figure = paint(diagram)
    metadata = {"Date": None} if suffix == "svg" else {"Software": "logpath"}
    figure.savefig(path, dpi=dpi, format=suffix, metadata=metadata)
    return diagram


def _demo(argv: list[str]) -> int:
    """``python -m logpath.render.diagram STORE FLOW_ID OUT.png``."""
    from logpath.query import load_journey
    from logpath.store import Store

    if len(argv) != 3:
        print("usage: python -m logpath.render.diagram STORE FLOW_ID OUT.png", file=sys.stderr)
        return 2
    save_diagram(load_journey(Store(Path(argv[0])), argv[1]), Path(argv[2]))
    return 0


if __name__ == "__main__":
    raise SystemExit(_demo(sys.argv[1:]))
