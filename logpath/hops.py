"""Hops stage: the parser's raw strings become one typed table, one row per netfilter log line.

The columns and their types are declared once, here (``HOP_SCHEMA``); the store, the packet and
flow stages and ``--json`` all use these names. Conversions are vectorised (pyarrow compute, or a
Python map over the *distinct* values of a column, which are few).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:  # parsing is not needed to read a store
    from logpath.parse import ParsedLines


_STR = pa.string()
_DICT = pa.dictionary(pa.int32(), pa.string())

HOP_SCHEMA = pa.schema(
    [
        ("ts", pa.timestamp("us", tz="UTC")),
        ("uptime", pa.float64()),
        ("host", _DICT),
        ("level", pa.int8()),
        ("kind", _DICT),  # ip | arp | ebt
        ("prefix", _DICT),
        ("in_iface", _DICT),
        ("out_iface", _DICT),
        ("physin", _DICT),
        ("physout", _DICT),
        ("mac", _STR),
        ("macdst", _STR),
        ("macsrc", _STR),
        ("macproto", _STR),
        ("family", pa.int8()),
        ("src", _STR),
        ("dst", _STR),
        ("len", pa.int32()),
        ("tos", pa.int16()),
        ("prec", pa.int16()),
        ("ttl", pa.int16()),
        ("id", pa.int32()),
        ("tc", pa.int16()),
        ("flowlbl", pa.int32()),
        ("ce", pa.bool_()),
        ("df", pa.bool_()),
        ("mf", pa.bool_()),
        ("frag", pa.int32()),
        ("ipopt", _STR),
        ("proto", _DICT),
        ("sport", pa.int32()),
        ("dport", pa.int32()),
        ("seq", pa.int64()),
        ("ack", pa.int64()),
        ("window", pa.int32()),
        ("res", pa.int16()),
        ("flags", _DICT),
        ("urgp", pa.int32()),
        ("tcpopt", _STR),
        ("udplen", pa.int32()),
        ("icmp_type", pa.int16()),
        ("icmp_code", pa.int16()),
        ("icmp_id", pa.int32()),
        ("icmp_seq", pa.int32()),
        ("mtu", pa.int32()),
        ("gateway", _STR),
        ("parameter", pa.int64()),
        ("spi", pa.int64()),
        ("incomplete", pa.int32()),
        ("truncated", pa.bool_()),
        ("uid", pa.int64()),
        ("gid", pa.int64()),
        ("mark", pa.int64()),
        ("inner_src", _STR),
        ("inner_dst", _STR),
        ("inner_proto", _DICT),
        ("inner_sport", pa.int32()),
        ("inner_dport", pa.int32()),
        ("inner_id", pa.int32()),
        ("inner_len", pa.int32()),
        ("inner_ttl", pa.int16()),
        ("inner_icmp_type", pa.int16()),
        ("inner_icmp_id", pa.int32()),
        ("inner_icmp_seq", pa.int32()),
        ("trace_table", _DICT),
        ("trace_chain", _DICT),
        ("trace_type", _DICT),
        ("trace_rulenum", pa.int64()),
        ("arp_htype", pa.int16()),
        ("arp_ptype", pa.int32()),
        ("arp_opcode", pa.int16()),
        ("arp_macsrc", _STR),
        ("arp_ipsrc", _STR),
        ("arp_macdst", _STR),
        ("arp_ipdst", _STR),
        ("repeated", pa.int32()),
        ("source", _DICT),
        ("lineno", pa.int64()),
        ("raw", _STR),
    ]
)
HOP_COLUMNS = tuple(HOP_SCHEMA.names)

# Fields printed in hexadecimal on the line (TOS=0x10, MARK=0x2a, POINTER=00000028 ...).
_HEX = {"tos", "prec", "res", "mark", "arp_ptype", "parameter_hex"}
_FLAG_WORDS = {"ce", "df", "mf", "truncated"}
_ICMP_NAMES = {"ICMP": "icmp", "ICMPv6": "icmpv6"}
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _map_distinct(values: pa.Array, func: Callable[[str], Any], type_: pa.DataType) -> pa.Array:
    """Apply ``func`` to each distinct non-null value once (addresses, hex fields repeat a lot)."""
    encoded = pc.dictionary_encode(values)
    mapped = pa.array([func(v) for v in encoded.dictionary.to_pylist()], type_)
    return pc.take(mapped, encoded.indices)


def _compress_ipv6(text: str) -> str:
    # The kernel prints 8 zero-padded groups (%pI6); everything else uses the compressed form.
    return str(ipaddress.ip_address(text)) if ":" in text else text


def _number(values: pa.Array, name: str, type_: pa.DataType) -> pa.Array:
    if name in _HEX:
        return _map_distinct(values, lambda v: int(v, 16), type_)
    return pc.cast(values, type_)


def _year_for(month: str, reference: datetime) -> int:
    """RFC 3164 has no year: the file's modification time gives it; a later month is last year."""
    return reference.year - (1 if _MONTHS.index(month) + 1 > reference.month else 0)


def _timestamps(fields: dict[str, pa.Array], year: int | None, mtime: datetime) -> pa.Array:
    n = len(fields["host"])
    ts = pd.Series(pd.NaT, index=range(n), dtype="datetime64[us, UTC]")
    month = fields["month"].to_pandas()
    has = month.notna()
    if has.any():
        year_of = {m: str(year or _year_for(m, mtime)) for m in month[has].unique()}
        years = month[has].map(year_of)
        clock = fields["clock"].to_pandas()[has]
        clock = clock.where(clock.str.contains(".", regex=False), clock + ".0")
        day = fields["day"].to_pandas()[has].str.strip()
        text = years + "-" + month[has] + "-" + day + " " + clock
        ts[has] = pd.to_datetime(text, format="%Y-%b-%d %H:%M:%S.%f", utc=True, errors="coerce")
    for name, fmt in (("iso", "ISO8601"), ("ctime", "%a %b %d %H:%M:%S %Y"), ("full", None)):
        col = fields[name].to_pandas()
        has = col.notna() & (col != "-")
        if has.any():
            text = col[has].str.replace(",", ".", regex=False)
            stamps = pd.to_datetime(text, format=fmt or "ISO8601", utc=True, errors="coerce")
            ts[has] = stamps.astype(ts.dtype)
    unix = fields["unix"].to_pandas()
    has = unix.notna()
    if has.any():
        # from the digits, not through a float: 1483228801.000001 must keep its microsecond
        whole, _, fraction = unix[has].str.partition(".").T.to_numpy()
        micros = [
            int(w) * 1_000_000 + int((f + "000000")[:6])
            for w, f in zip(whole, fraction, strict=True)
        ]
        ts[has] = pd.to_datetime(micros, unit="us", utc=True).astype(ts.dtype)
    return pa.array(ts, pa.timestamp("us", tz="UTC"))


def _uptime(fields: dict[str, pa.Array]) -> pa.Array:
    uptime = pc.cast(fields["uptime"], pa.float64())
    usec = pc.divide(pc.cast(fields["usec"], pa.float64()), 1e6)  # /dev/kmsg records
    return pc.coalesce(uptime, usec)


def _level(fields: dict[str, pa.Array]) -> pa.Array:
    pri = pc.cast(fields["pri"], pa.int16())
    return pc.cast(pc.bit_wise_and(pri, 7), pa.int8())


def _family(fields: dict[str, pa.Array]) -> pa.Array:
    src = fields["src"]
    is_v6 = pc.match_substring(src, ":")
    return pc.if_else(pc.is_null(src), None, pc.if_else(is_v6, pa.scalar(6, pa.int8()), 4))


def _kind(fields: dict[str, pa.Array]) -> pa.Array:
    kind = pc.if_else(pc.is_valid(fields["arp_htype"]), "arp", "ip")
    return pc.if_else(pc.is_valid(fields["ebt"]), "ebt", kind)


def _ethernet_macs(mac: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array]:
    """MAC= of an Ethernet frame is dst(6):src(6):type(2), 41 characters (§2.1); other link
    layers (loopback has the same length, tun none, SIT more) give no MAC addresses here."""
    ethernet = pc.equal(pc.utf8_length(mac), 41)
    dst = pc.if_else(ethernet, pc.utf8_slice_codeunits(mac, 0, 17), None)
    src = pc.if_else(ethernet, pc.utf8_slice_codeunits(mac, 18, 35), None)
    kind = pc.replace_substring(pc.utf8_slice_codeunits(mac, 36, 41), ":", "")
    return dst, src, pc.if_else(ethernet, kind, None)


def _extension(exthdrs: pa.Array, pattern: str) -> pa.Array:
    """A value from the IPv6 extension-header section (fragment offset, AH/ESP SPI)."""
    found = pc.extract_regex(pc.fill_null(exthdrs, ""), pattern)
    return pc.struct_field(found, [0])


def _proto(values: pa.Array) -> pa.Array:
    return _map_distinct(values, lambda v: _ICMP_NAMES.get(v, v.lower()), _STR)


def _empty_to_null(values: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(values, ""), None, values)


def build_hops(
    parsed: ParsedLines, source: str, *, year: int | None = None, mtime: datetime | None = None
) -> pa.Table:
    """Type the parsed fields into a table with ``HOP_SCHEMA``.

    Args:
        parsed: what ``logpath.parse.parse_lines`` returned.
        source: the file name every hop is attributed to.
        year: the year of RFC 3164 timestamps; by default from ``mtime``.
        mtime: the file's modification time (now when not given).
    """
    f = parsed.fields
    reference = mtime or datetime.now(UTC)
    mac = _empty_to_null(f["mac"])
    eth_dst, eth_src, eth_type = _ethernet_macs(mac)
    columns: dict[str, pa.Array] = {
        "ts": _timestamps(f, year, reference),
        "uptime": _uptime(f),
        "level": _level(f),
        "kind": _kind(f),
        "family": _family(f),
        "mac": mac,
        "macdst": pc.coalesce(f["macdst"], eth_dst),
        "macsrc": pc.coalesce(f["macsrc"], eth_src),
        "macproto": pc.coalesce(f["macproto"], eth_type),
        "proto": _proto(f["proto"]),
        "inner_proto": _proto(f["inner_proto"]),
        # IPv4 counts FRAG: in 8-byte units, IPv6 in bytes (§3); we store bytes.
        "frag": pc.coalesce(
            pc.multiply(pc.cast(f["frag"], pa.int32()), 8),
            pc.cast(_extension(f["exthdrs"], r"FRAG:(?P<v>\d+)"), pa.int32()),
        ),
        "spi": _map_distinct(
            pc.coalesce(f["spi"], _extension(f["exthdrs"], r"SPI=0x(?P<v>[0-9a-fA-F]+)")),
            lambda v: int(v, 16),
            pa.int64(),
        ),
        # ebt_log prints the IPv6 priority in hex, nf_log the traffic class in decimal
        "tc": pc.coalesce(
            pc.cast(f["tc"], pa.int16()), _map_distinct(f["tcx"], lambda v: int(v, 16), pa.int16())
        ),
        # an IPv6 fragment header's INCOMPLETE is its "more fragments" bit
        "mf": pc.or_(
            pc.is_valid(f["mf"]),
            pc.fill_null(pc.match_substring(f["exthdrs"], " INCOMPLETE "), False),
        ),
        "parameter": pc.coalesce(
            pc.cast(
                pc.if_else(
                    pc.match_substring_regex(f["parameter"], "^[0-9]{1,7}$"), f["parameter"], None
                ),
                pa.int64(),
            ),
            _map_distinct(f["parameter"], lambda v: int(v, 16), pa.int64()),
        ),
        "source": pa.array([source] * parsed.hops, _STR),
        "lineno": pa.array(parsed.lineno, pa.int64()),
        "raw": pa.array(parsed.raw, _STR),
    }
    for name in ("src", "dst", "inner_src", "inner_dst"):
        columns[name] = _map_distinct(f[name], _compress_ipv6, _STR)
    for field in HOP_SCHEMA:
        name = field.name
        if name in columns:
            continue
        values = f.get(name, pa.nulls(parsed.hops, _STR))
        if name in _FLAG_WORDS:
            columns[name] = pc.is_valid(values)
        elif pa.types.is_integer(field.type):
            columns[name] = _number(values, name, field.type)
        else:
            columns[name] = _empty_to_null(values)
    arrays = [columns[field.name].cast(field.type) for field in HOP_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=HOP_SCHEMA)


def empty_hops() -> pa.Table:
    """A hop table with no rows."""
    return HOP_SCHEMA.empty_table()


# --- JSON -----------------------------------------------------------------------------------------

_JSON_NAMES = {"in_iface": "in", "out_iface": "out"}
_TRACE = ("trace_table", "trace_chain", "trace_type", "trace_rulenum")
_INNER_PREFIX = "inner_"


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat().replace("+00:00", "Z")
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def hop_to_json(hop: dict[str, Any]) -> dict[str, Any]:
    """One hop (a row as a dict) in the JSON vocabulary of ``logpath hops --json``."""
    out: dict[str, Any] = {}
    inner: dict[str, Any] = {}
    for name, value in hop.items():
        value = _plain(value)
        if name in _TRACE or name == "raw":
            continue
        if name.startswith(_INNER_PREFIX):
            inner[name.removeprefix(_INNER_PREFIX)] = value
            continue
        out[_JSON_NAMES.get(name, name)] = value
    out["flags"] = out["flags"].split() if out.get("flags") else []
    out["trace"] = (
        {n.removeprefix("trace_"): _plain(hop.get(n)) for n in _TRACE}
        if _plain(hop.get("trace_table"))
        else None
    )
    out["inner"] = inner if inner.get("src") else None
    return out


def hops_to_json(hops: pd.DataFrame) -> str:
    """A JSON array of hops."""
    return json_array(hop_records(hops))


def hop_records(hops: pd.DataFrame) -> Iterator[dict[str, Any]]:
    """The hops as ``logpath hops --json`` writes each of them."""
    records = cast(
        "list[dict[str, Any]]", hops.astype(object).where(hops.notna(), None).to_dict("records")
    )
    return (hop_to_json(r) for r in records)


def json_array(items: Iterable[Any]) -> str:
    """A JSON array written one item per line (``json_array_parts`` joined)."""
    return "".join(json_array_parts(items))


def json_array_parts(items: Iterable[Any]) -> Iterator[str]:
    """A JSON array one item per line, in pieces to write as they come: valid JSON that still
    greps and diffs by line, ``[]`` when empty.

    Each line comes from json's C encoder; ``indent=`` makes json fall back to its pure-Python
    encoder, which took 0.1 s for the 1,393 flows of the flows benchmark.
    """
    separator = "[\n"
    for item in items:
        yield separator + json.dumps(item)
        separator = ",\n"
    yield "[]" if separator == "[\n" else "\n]"
