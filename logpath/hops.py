"""Hops stage: the parser's raw strings become one typed table, one row per netfilter log line.

The columns and their types are declared once, here (``HOP_SCHEMA``); the store, the packet and
flow stages and ``--json`` all use these names. Conversions are vectorised (pyarrow compute, or a
Python map over the *distinct* values of a column, which are few).
"""

from __future__ import annotations

import functools
import json
import re
from calendar import monthrange
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, cast

import pyarrow as pa
import pyarrow.compute as pc

from logpath.netfilter import (
    DECIMAL_LIMITS,
    IPV4,
    IPV6_FRAG_LIMIT,
    IPV6_LIMITS,
    NAME_LIMITS,
    integers,
    logged_protocol_value,
    normal_address,
)

# pandas is imported by the functions that use it: a journey read from a store turns its hops
# into JSON (``hop_to_json``) without it.
if TYPE_CHECKING:
    import pandas as pd

    from logpath.parse import ParsedLines  # parsing is not needed to read a store


_STR = pa.string()
_DICT = pa.dictionary(pa.int32(), pa.string())

# Texts stored and handed over as dictionaries for their size, and read as text (pandas' str,
# ``store.to_frame``), not as categories: a host's few MACs repeat on every hop. As plain texts
# the four were 105 of the 310 MiB of the 2M-line replay's hops an ingest's own process holds
# from the parse to its end (the hops but ``raw``), 20 MiB as dictionaries.
TEXTS_AS_DICTIONARIES = frozenset({"mac", "macdst", "macsrc", "macproto"})

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
        ("mac", _DICT),  # texts kept as dictionaries: see TEXTS_AS_DICTIONARIES
        ("macdst", _DICT),
        ("macsrc", _DICT),
        ("macproto", _DICT),
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
        ("mtu", pa.int64()),  # ICMPv6 packet-too-big: 32 bits
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
        # a chain visit of nft monitor trace / xtables-monitor --trace (logpath.nftrace): the
        # trace id, the table's family, the visit's verdict (accept, drop, continue, jump X...),
        # the rule that gave it as the tool printed it and its handle, and the chain the packet
        # came from (a jump or a return; null for a base chain entered from its hook)
        ("trace_id", _STR),
        ("trace_family", _DICT),
        ("trace_verdict", _DICT),
        ("trace_rule", _STR),
        ("trace_handle", pa.int64()),
        ("trace_from", _DICT),
        ("arp_htype", pa.int32()),  # unsigned 16-bit on the line: HTYPE=65535 is legitimate
        ("arp_ptype", pa.int32()),
        ("arp_opcode", pa.int32()),
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

# Fields printed in hexadecimal on the line (TOS=0x10, MARK=0x2a ...): the grammar bounds their
# digits (HEX2, HEX4, HEX32), so each fits its column.
_HEX = {"tos", "prec", "res", "mark", "arp_ptype"}

# --- what the kernel can print: the widest values are netfilter's (DECIMAL_LIMITS) -----------
# MAC=: the link-layer header byte by byte as %02x, joined by ":" (none on a tun device).
_LINK_HEADER = r"^(?:[0-9a-f]{2}(?::[0-9a-f]{2})*)?$"
# IP and TCP options: at most 40 bytes, printed byte by byte as %02X, or TRUNCATED.
_OPTIONS = r"^(?:(?:[0-9A-F]{2}){1,40}|TRUNCATED)$"
OPTION_FIELDS = ("ipopt", "tcpopt", "inner_ipopt", "inner_tcpopt")
ADDRESS_FIELDS = ("src", "dst", "inner_src", "inner_dst", "gateway", "arp_ipsrc", "arp_ipdst")
# The header's time: pandas holds nanoseconds from 1677-09-21 to 2262-04-11, and a time outside
# them, stored, would break every later command on the store.
STAMP_FIELDS = ("month", "iso", "full", "ctime", "unix")
EARLIEST = datetime(1677, 9, 22, tzinfo=UTC)
LATEST = datetime(2262, 4, 11, tzinfo=UTC)  # exclusive
STAMP_EXPECTED = "a date from 1677-09-22 to 2262-04-10"
_FLAG_WORDS = {"ce", "df", "mf", "truncated"}
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _map_distinct(values: pa.Array, func: Callable[[str], Any], type_: pa.DataType) -> pa.Array:
    """Apply ``func`` to each distinct non-null value once (addresses, hex fields repeat a lot)."""
    encoded = pc.dictionary_encode(values)
    mapped = pa.array([func(v) for v in encoded.dictionary.to_pylist()], type_)
    return pc.take(mapped, encoded.indices)


def _number(values: pa.Array, name: str, type_: pa.DataType) -> pa.Array:
    if name in _HEX:
        return _map_distinct(values, lambda v: int(v, 16), type_)
    return pc.cast(values, type_)


def _year_for(month: str, reference: datetime) -> int:
    """RFC 3164 has no year: the file's modification time gives it; a later month is last year."""
    return reference.year - (1 if _MONTHS.index(month) + 1 > reference.month else 0)


def _timestamps(
    fields: dict[str, pa.Array], year: int | None, mtime: datetime
) -> tuple[pa.Array, pa.Array]:
    """Each line's header time, and where a header has a time that is no date pandas can hold
    (Feb 30, hour 25, the year 5138): such a line is rejected, not stored without its time.

    A block's lines share few header times (RFC 3164 stamps have whole seconds), so each kind's
    *distinct* texts are converted, by pandas, and the lines take theirs: converting every
    line's text cost half of typing a block.
    """
    n = len(fields["host"])
    ts = pa.nulls(n, _TS)
    stamped = pa.repeat(pa.scalar(False), n)
    month = fields["month"]
    if month.null_count < n:
        # one text per line: month, day and clock together, so their combinations are distinct
        text = pc.binary_join_element_wise(
            month, pc.utf8_trim_whitespace(fields["day"]), fields["clock"], " "
        )
        ts, stamped = _overlay(ts, stamped, text, lambda texts: _month_times(texts, year, mtime))
    for name, fmt in (("iso", "ISO8601"), ("ctime", "%a %b %d %H:%M:%S %Y"), ("full", None)):
        col = fields[name]
        if col.null_count == n:
            continue
        col = pc.if_else(pc.equal(col, "-"), pa.scalar(None, _STR), col)
        ts, stamped = _overlay(ts, stamped, col, functools.partial(_header_times, fmt=fmt))
    unix = fields["unix"]
    if unix.null_count < n:
        ts, stamped = _overlay(ts, stamped, unix, _unix_times)
    earliest, latest = pa.scalar(EARLIEST, _TS), pa.scalar(LATEST, _TS)
    inside = pc.and_(pc.greater_equal(ts, earliest), pc.less(ts, latest))
    bad = pc.and_(stamped, pc.invert(pc.fill_null(inside, False)))
    return ts, bad


_TS = pa.timestamp("us", tz="UTC")


def _overlay(
    ts: pa.Array, stamped: pa.Array, text: pa.Array, convert: Callable[[list[str]], pd.Series]
) -> tuple[pa.Array, pa.Array]:
    """``ts`` with the lines that have ``text`` given its time, converted once per distinct
    text; and ``stamped`` with those lines marked (a text that is no date leaves a null)."""
    encoded = pc.dictionary_encode(text)
    times = pa.array(convert(encoded.dictionary.to_pylist()), _TS)
    has = pc.is_valid(text)
    return pc.if_else(has, pc.take(times, encoded.indices), ts), pc.or_(stamped, has)


def _month_times(texts: list[str], year: int | None, mtime: datetime) -> pd.Series:
    """RFC 3164 times ("Jan 4 10:08:12", with a fraction or not) in the year the file gives.

    Read here each, where plainly a time (``_plain_month_time``); pandas decides the others.
    pandas took ~4 ms for a block's ~200 distinct texts, whatever they were: a fifth of typing
    a block of the 2M-line replay."""
    import numpy as np
    import pandas as pd

    years = {month: year or _year_for(month, mtime) for month in _MONTHS}
    micros = [_plain_month_time(text, years) for text in texts]
    others = [i for i, micro in enumerate(micros) if micro is None]
    plain = np.array([0 if micro is None else micro for micro in micros], dtype="datetime64[us]")
    stamps = pd.Series(plain).dt.tz_localize("UTC")
    if others:
        decided = _month_times_by_pandas([texts[i] for i in others], year, mtime)
        stamps.iloc[others] = decided.set_axis(others)  # its labels are its positions
    return stamps


# An RFC 3164 time that is plainly one: a day of its month, a time of day, at most nine digits
# of fraction (pandas reads nanoseconds, stored as microseconds), in a year pandas can hold
_PLAIN_MONTH_TIME = re.compile(
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([0-9]{1,2}) ([01][0-9]|2[0-3]):"
    r"([0-5][0-9]):([0-5][0-9])(?:\.([0-9]{1,9}))?"
)
_EPOCH_DAY = date(1970, 1, 1).toordinal()


def _plain_month_time(text: str, years: dict[str, int]) -> int | None:
    """Microseconds since the epoch of a plain RFC 3164 time (``_PLAIN_MONTH_TIME``), read as
    pandas reads it; None for any other text."""
    match = _PLAIN_MONTH_TIME.fullmatch(text)
    if match is None:
        return None
    month, day, hour, minute, second, fraction = match.groups()
    year, number = years[month], _MONTHS.index(month) + 1
    if not 1678 <= year <= 2261 or not 1 <= int(day) <= monthrange(year, number)[1]:
        return None
    days = date(year, number, int(day)).toordinal() - _EPOCH_DAY
    seconds = days * 86_400 + int(hour) * 3_600 + int(minute) * 60 + int(second)
    return seconds * 1_000_000 + (int(fraction.ljust(9, "0")) // 1_000 if fraction else 0)


def _month_times_by_pandas(texts: list[str], year: int | None, mtime: datetime) -> pd.Series:
    import pandas as pd

    parts = pd.Series(texts, dtype=object).str.split(" ", n=2, expand=True)
    month, day, clock = parts[0], parts[1], parts[2]
    years = month.map({m: str(year or _year_for(m, mtime)) for m in month.unique()})
    clock = clock.where(clock.str.contains(".", regex=False), clock + ".0")
    text = years + "-" + month + "-" + day + " " + clock
    stamps = pd.to_datetime(text, format="%Y-%b-%d %H:%M:%S.%f", utc=True, errors="coerce")
    return stamps.astype("datetime64[us, UTC]")  # nanoseconds (16:53:58.434324050) cut to micro


def _header_times(texts: list[str], fmt: str | None) -> pd.Series:
    import pandas as pd

    text = pd.Series(texts, dtype=object).str.replace(",", ".", regex=False)
    stamps = pd.to_datetime(text, format=fmt or "ISO8601", utc=True, errors="coerce")
    return stamps.astype("datetime64[us, UTC]")


def _unix_times(texts: list[str]) -> pd.Series:
    import pandas as pd

    # from the digits, not through a float: 1483228801.000001 must keep its microsecond; more
    # than 11 digits of seconds is past the year 5000 (rejected), and too many for a 64-bit
    # count of microseconds
    micros = []
    for value in texts:
        whole, _, fraction = value.partition(".")
        micros.append(
            int(whole) * 1_000_000 + int((fraction + "000000")[:6]) if len(whole) <= 11 else None
        )
    counts = pd.Series(micros, dtype="Int64")
    return pd.to_datetime(counts, unit="us", utc=True).astype("datetime64[us, UTC]")


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


def _link_headers(f: dict[str, pa.Array]) -> dict[str, pa.Array]:
    """``mac`` (MAC=, empty: none) and the addresses and type cut from it, ``macdst``,
    ``macsrc`` and ``macproto`` (those the line gives itself first: ebtables' MAC source and
    destination), each a dictionary of its values as the hop table keeps them.

    MAC= of an Ethernet frame is dst(6):src(6):type(2), 41 characters (§2.1); other link
    layers (loopback has the same length, tun none, SIT more) give no MAC addresses here.

    Cut once per distinct MAC= (a block's hops show a few hundred), each column's dictionary
    made from those few values and its indices from MAC='s: cutting every hop's was a tenth of
    typing a block, and taking the texts per hop to encode each column again another ~5%."""
    coded = pc.dictionary_encode(f["mac"])
    distinct = coded.dictionary
    ethernet = pc.equal(pc.utf8_length(distinct), 41)
    kind = pc.replace_substring(pc.utf8_slice_codeunits(distinct, 36, 41), ":", "")
    cut = {
        "mac": pc.if_else(pc.equal(distinct, ""), None, distinct),
        "macdst": pc.if_else(ethernet, pc.utf8_slice_codeunits(distinct, 0, 17), None),
        "macsrc": pc.if_else(ethernet, pc.utf8_slice_codeunits(distinct, 18, 35), None),
        "macproto": pc.if_else(ethernet, kind, None),
    }
    columns = {}
    for name, values in cut.items():
        given = f.get(name) if name != "mac" else None
        if given is not None and given.null_count < len(given):
            columns[name] = pc.coalesce(given, pc.take(values, coded.indices))
            continue
        # each distinct value once in the dictionary, in the order the hops first show it (as
        # encoding the hops' texts orders it); a hop whose MAC= gives none is null
        found = pc.dictionary_encode(values)
        indices = pc.take(found.indices, coded.indices)
        columns[name] = pa.DictionaryArray.from_arrays(indices, found.dictionary)
    return columns


def _extension(exthdrs: pa.Array, pattern: str) -> pa.Array:
    """A value from the IPv6 extension-header section (fragment offset, AH/ESP SPI)."""
    if exthdrs.null_count == len(exthdrs):  # no IPv6 extension header in the block
        return pa.nulls(len(exthdrs), pa.string())
    found = pc.extract_regex(pc.fill_null(exthdrs, ""), pattern)
    return pc.struct_field(found, [0])


def _proto(values: pa.Array) -> pa.Array:
    """The protocol in the hop table's one spelling (``netfilter.logged_protocol_value``): LOG
    prints ``PROTO=TCP`` but ``PROTO=132`` for SCTP, ebtables ``IP proto=17`` and nft's trace
    ``sctp``; kept as each wrote it, ``--proto udp`` missed ebtables' hops and ``--proto sctp``
    LOG's."""
    return _map_distinct(values, lambda v: logged_protocol_value(v) or v.lower(), _STR)


def _empty_to_null(values: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(values, ""), None, values)


@dataclass(frozen=True)
class _Problem:
    """The rows whose field ``name`` holds a value the kernel cannot print there."""

    rows: pa.Array  # bool, one per hop
    name: str  # the field the rejected line's column points at
    expected: str
    key: str = ""  # finds the value inside the field (FRAG: in exthdrs)


def _numbers(f: dict[str, pa.Array]) -> dict[str, pa.Array]:
    """The decimal fields as numbers (int64, as the parse read them; the uptime float64):
    checked against their limits, then typed from these."""
    numbers: dict[str, pa.Array] = {}
    for name, values in f.items():
        base = name.removeprefix("inner_")
        if base not in DECIMAL_LIMITS or base == "proto" or values.null_count == len(values):
            continue
        numbers[name] = pc.cast(values, pa.float64()) if base == "uptime" else values
    return numbers


def _above(values: pa.Array, high: int) -> pa.Array:
    return pc.fill_null(pc.greater(values, high), False)


def _decimal_problems(f: dict[str, pa.Array], numbers: dict[str, pa.Array]) -> Iterator[_Problem]:
    for name, values in numbers.items():
        base = name.removeprefix("inner_")
        high, expected = DECIMAL_LIMITS[base]
        if pc.max(values).as_py() <= high:  # one pass, and usually the end of it
            continue
        if base not in IPV6_LIMITS:
            yield _Problem(_above(values, high), name, expected)
            continue
        v6_high, v6_expected = IPV6_LIMITS[base]
        family = f["inner_src" if name.startswith("inner_") else "src"]
        is_v6 = pc.fill_null(pc.match_substring(family, ":"), False)
        yield _Problem(pc.and_(_above(values, high), pc.invert(is_v6)), name, expected)
        yield _Problem(pc.and_(_above(values, v6_high), is_v6), name, v6_expected)
    high, expected = DECIMAL_LIMITS["proto"]  # PROTO=TCP, or the number of an unnamed one
    for name in ("proto", "inner_proto"):
        values = f[name]
        number = pc.if_else(pc.fill_null(pc.utf8_is_digit(values), False), values, None)
        if number.null_count < len(number):
            yield _Problem(_above(integers(number), high), name, expected)
    frag = _extension(f["exthdrs"], r"FRAG:(?P<v>\d+)")
    if frag.null_count < len(frag):
        high, expected = IPV6_FRAG_LIMIT
        yield _Problem(_above(integers(frag), high), "exthdrs", expected, "FRAG:")


def _addresses(f: dict[str, pa.Array]) -> dict[str, pa.Array]:
    """The address fields in their stored form, null where a value is no address (each
    distinct value once: addresses repeat a lot)."""
    return {
        name: _map_distinct(f[name], normal_address, _STR)
        for name in ADDRESS_FIELDS
        if f[name].null_count < len(f[name])
    }


def _address_problems(f: dict[str, pa.Array], addresses: dict[str, pa.Array]) -> Iterator[_Problem]:
    for name, normal in addresses.items():
        values = f[name]
        if normal.null_count == values.null_count:
            continue
        bad = pc.and_(pc.is_valid(values), pc.is_null(normal))
        is_v6 = pc.fill_null(pc.match_substring(values, ":"), False)
        yield _Problem(pc.and_(bad, pc.invert(is_v6)), name, "an IPv4 address")
        yield _Problem(pc.and_(bad, is_v6), name, "an IPv6 address")
    tunnel = f["tunnel"]
    if tunnel.null_count < len(tunnel):
        ok = pc.match_substring_regex(tunnel, f"^{IPV4}->{IPV4}$")
        yield _Problem(
            pc.invert(pc.fill_null(ok, True)), "tunnel", "<IPv4 address>-><IPv4 address>"
        )


PROGRAM_EXPECTED = "a kernel message (this header names another program)"


def _text_problems(f: dict[str, pa.Array]) -> Iterator[_Problem]:
    from logpath.grammars.headers import PROGRAM_HEADER  # the grammar: only when parsing

    prefix = f["prefix"]
    if prefix.null_count < len(prefix):
        program = pc.fill_null(pc.match_substring_regex(prefix, PROGRAM_HEADER), False)
        yield _Problem(program, "prefix", PROGRAM_EXPECTED)
    for name, most in NAME_LIMITS.items():
        length = pc.binary_length(f[name])
        if name.startswith("trace_") and "trace_id" in f:  # nf_tables: grammars/trace.py
            length = pc.if_else(pc.is_valid(f["trace_id"]), 0, length)
        if (pc.max(length).as_py() or 0) > most:
            yield _Problem(_above(length, most), name, f"a name of at most {most} bytes")
    for name in OPTION_FIELDS:
        values = f[name]
        if values.null_count < len(values):
            ok = pc.fill_null(pc.match_substring_regex(values, _OPTIONS), True)
            yield _Problem(pc.invert(ok), name, "at most 40 bytes of options in hex")
    mac = f["mac"]
    if mac.null_count < len(mac):  # a record cut inside it: half an address (its few values)
        encoded = pc.dictionary_encode(mac)
        whole = pc.match_substring_regex(encoded.dictionary, _LINK_HEADER)
        ok = pc.fill_null(pc.take(whole, encoded.indices), True)
        yield _Problem(pc.invert(ok), "mac", "a link-layer header in hex bytes (02:42:ac:...)")


def _problems(
    f: dict[str, pa.Array],
    numbers: dict[str, pa.Array],
    addresses: dict[str, pa.Array],
    stamp_bad: pa.Array,
) -> list[_Problem]:
    """Every field check that some row fails (usually none)."""
    checks = [
        *_decimal_problems(f, numbers),
        *_address_problems(f, addresses),
        *_text_problems(f),
    ]
    if pc.any(stamp_bad).as_py():
        checks += [
            _Problem(pc.and_(stamp_bad, pc.is_valid(f[name])), name, STAMP_EXPECTED)
            for name in STAMP_FIELDS
        ]
    return [check for check in checks if pc.any(check.rows).as_py()]


def _reject_impossible(parsed: ParsedLines, source: str, problems: list[_Problem]) -> pa.Array:
    """Move the lines with an impossible value to ``parsed.rejected``, each with its leftmost
    such value; return which of the hops are kept."""
    from logpath.parse import reject_value  # parsing is not needed to read a store

    found: dict[int, list[_Problem]] = {}
    for problem in problems:
        for row in pc.indices_nonzero(problem.rows).to_pylist():
            found.setdefault(row, []).append(problem)
    rejected = {}
    for row, row_problems in found.items():
        lineno, raw = parsed.lineno[row].as_py(), parsed.raw[row].as_py()
        rejected[row] = min(
            (reject_value(source, lineno, raw, p.name, p.expected, p.key) for p in row_problems),
            key=lambda r: r.column,
        )
    return parsed.move_to_rejected(rejected)


def build_hops(
    parsed: ParsedLines, source: str, *, year: int | None = None, mtime: datetime | None = None
) -> pa.Table:
    """Type the parsed fields into a table with ``HOP_SCHEMA``.

    A line with a value the kernel cannot print there (a port above 65535, SRC=999.17.0.2, a
    date pandas cannot hold, see DECIMAL_LIMITS and below) is moved from ``parsed``'s hops to
    ``parsed.rejected``, with that value's column and range: every line still ends up in exactly
    one place, and no impossible value is stored as a fact.

    Args:
        parsed: what ``logpath.parse.parse_lines`` returned.
        source: the file name every hop is attributed to.
        year: the year of RFC 3164 timestamps; by default from ``mtime``.
        mtime: the file's modification time (now when not given).
    """
    reference = mtime or datetime.now(UTC)
    ts, stamp_bad = _timestamps(parsed.fields, year, reference)
    numbers, addresses = _numbers(parsed.fields), _addresses(parsed.fields)
    problems = _problems(parsed.fields, numbers, addresses, stamp_bad)
    if problems:
        keep = _reject_impossible(parsed, source, problems)
        ts = ts.filter(keep)
        numbers = {name: values.filter(keep) for name, values in numbers.items()}
        addresses = {name: values.filter(keep) for name, values in addresses.items()}
    f = {**parsed.fields, **numbers}
    columns: dict[str, pa.Array] = {
        "ts": ts,
        "uptime": _uptime(f),
        "level": _level(f),
        "kind": _kind(f),
        "family": _family(f),
        **_link_headers(f),
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
        # ICMP's PARAMETER= is decimal, ICMPv6's POINTER= hex
        "parameter": pc.coalesce(
            pc.cast(f["parameter"], pa.int64()),
            _map_distinct(f["pointer"], lambda v: int(v, 16), pa.int64()),
        ),
        # one value repeated by Arrow: a Python list of a block's hops and its conversion took
        # ~3 ms a block of 24,000 hops (0.16 CPU-s of the 2M-line replay), this 0.07
        "source": pa.repeat(pa.scalar(source, _STR), parsed.hops),
        "lineno": parsed.lineno,
        "raw": parsed.raw,
    }
    columns.update(addresses)
    for field in HOP_SCHEMA:
        name = field.name
        if name in columns:
            continue
        values = f.get(name, pa.nulls(parsed.hops, _STR))
        if name in _FLAG_WORDS:
            columns[name] = pc.is_valid(values)
        elif values.null_count == len(values):
            # no hop of the block shows it (most fields, in most blocks): nothing to type
            columns[name] = pa.nulls(parsed.hops, field.type)
        elif pa.types.is_integer(field.type):
            columns[name] = _number(values, name, field.type)
        else:
            columns[name] = _empty_to_null(values)
    arrays = [_as(columns[field.name], field.type) for field in HOP_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=HOP_SCHEMA)


def _as(values: pa.Array, type_: pa.DataType) -> pa.Array:
    """``values`` cast to ``type_``, without a call to Arrow's cast when they already are."""
    return values if values.type == type_ else values.cast(type_)


def empty_hops() -> pa.Table:
    """A hop table with no rows."""
    return HOP_SCHEMA.empty_table()


# --- JSON -----------------------------------------------------------------------------------------

_JSON_NAMES = {"in_iface": "in", "out_iface": "out"}
_TRACE = (
    "trace_table",
    "trace_chain",
    "trace_type",
    "trace_rulenum",
    "trace_id",
    "trace_family",
    "trace_verdict",
    "trace_rule",
    "trace_handle",
    "trace_from",
)
_INNER_PREFIX = "inner_"


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, datetime):  # pandas' Timestamp too
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
