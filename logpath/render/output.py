"""The one way text from a log line or a file name reaches a reader: terminal, HTML, CSV.

A log line is data that someone else wrote. A LOG prefix is whatever a rule's author chose, an
interface name whatever the kernel accepted, a syslog host name whatever the sender claimed, a
file name whatever was on disk. Shown raw, ``\\x1b[2J`` clears the reader's screen, ``\\x1b]0;…``
retitles the terminal, U+202E reverses the text after it, and a spreadsheet runs a CSV cell
that starts with ``=``. So every command's output passes through here:

- ``visible``: text for the terminal. Control characters (C0, tab and newline included: a cell
  never spans two lines; DEL; C1), the invisible format characters (bidi marks, embeddings,
  overrides and isolates, zero-width characters, the BOM, tag characters), line and paragraph
  separators and lone surrogates are written as Python writes them (``\\x1b``, ``\\u202e``,
  ``\\t``). A backslash stays as it is, so ``visible(visible(s)) == visible(s)``: text
  escaped twice on its way is not mangled (the exact text is in ``--json``, which escapes it
  its own way).
  Rich markup is no concern here: every caller prints with ``console.out``, rich ``Text`` or
  ``typer.echo``, none of which reads markup.
- ``html_text``: ``visible``, then ``html.escape``.
- ``csv_cell`` and ``csv_columns``: ``visible`` (CSV has no escape of its own, RFC 4180 allows
  no control character in a field, and CSV is read in terminals and greps line by line), then
  OWASP's rule against formula injection: a text cell starting with ``= + - @``, tab or
  carriage return gets a leading ``'``. Numeric columns are left alone, so numbers stay numbers.

Most text is clean: each function first looks for something to escape and returns the text
itself when there is nothing. ``csv_columns`` does that a column at a time in Arrow.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from logpath.errors import OutputError

# numpy and Arrow load in the functions that use them (the CSV columns): every command shows
# its errors through ``visible``, and Arrow's compute functions cost 0.1-0.3 s to import.
if TYPE_CHECKING:
    import pyarrow as pa

# Code points shown escaped: Unicode's categories Cc (controls), Cf (format: bidi, zero-width,
# BOM, tags, ...), Zl and Zp (line and paragraph separators) and Cs (lone surrogates: a file
# name that is not UTF-8, a journal's JSON escape), as of Unicode 15 (a test checks them against
# the running Python's unicodedata). Spelled out: finding them in unicodedata takes ~1 s.
HIDDEN = (
    (0x0000, 0x001F), (0x007F, 0x009F), (0x00AD, 0x00AD), (0x0600, 0x0605), (0x061C, 0x061C),
    (0x06DD, 0x06DD), (0x070F, 0x070F), (0x0890, 0x0891), (0x08E2, 0x08E2), (0x180E, 0x180E),
    (0x200B, 0x200F), (0x2028, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F), (0xD800, 0xDFFF),
    (0xFEFF, 0xFEFF), (0xFFF9, 0xFFFB), (0x110BD, 0x110BD), (0x110CD, 0x110CD),
    (0x13430, 0x1343F), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
)  # fmt: skip
_HIDDEN = re.compile("[" + "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in HIDDEN) + "]")
# The same set for Arrow's RE2, which works on UTF-8 and so never meets a surrogate.
_HIDDEN_RE2 = (
    "[" + "".join(f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in HIDDEN if a < 0xD800 or a > 0xDFFF) + "]"
)

# OWASP's characters that make a spreadsheet read a cell as a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_START_RE2 = r"^[=+\-@\t\r]"
# logpath's own placeholder (standard input's name, a journal record without a host): a lone
# "-" is no formula, and quoting it would change the one value most CSV files carry.
_PLACEHOLDER = "-"


# As Python writes them; every other character by its code.
_SHORT = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def visible(text: str) -> str:
    """``text`` with every control and invisible character written as an escape.

    Example:
        >>> visible("fw\\x1b[2J\\u202eIN:")
        'fw\\\\x1b[2J\\\\u202eIN:'
    """
    if text.isprintable():  # in C, a superset of HIDDEN: most text leaves here
        return text
    return _HIDDEN.sub(_escaped, text)


def visible_lines(text: str) -> str:
    """``visible`` line by line: for a message whose own lines are meant (an error with a hint
    below it); a newline inside a quoted name or line is not told apart from those."""
    return "\n".join(visible(line) for line in text.split("\n"))


def html_text(text: object) -> str:
    """Text for an HTML page: control characters made visible, then HTML-escaped."""
    return html.escape(visible(str(text)))


def visible_array(array: pa.Array) -> pa.Array:
    """``visible`` on every cell of an Arrow string array: searched in Arrow (RE2), and only
    the cells that hold a character to escape go through Python."""
    import pyarrow as pa
    import pyarrow.compute as pc

    hidden = pc.match_substring_regex(array, _HIDDEN_RE2)
    if not pc.any(hidden).as_py():
        return array
    # rare: a control character in a log
    cells = zip(array.to_pylist(), hidden.to_pylist(), strict=True)
    return pa.array([visible(v) if found else v for v, found in cells], array.type)


def csv_cell(value: object) -> object:
    """One CSV cell: text made visible and kept from being read as a formula; other values
    (numbers, booleans, None) as they are.

    Example:
        >>> csv_cell('=HYPERLINK("http://x")'), csv_cell(-1), csv_cell("-")
        ('\\'=HYPERLINK("http://x")', -1, '-')
    """
    if not isinstance(value, str):
        return value
    text = visible(value)
    if text.startswith(FORMULA_START) and text != _PLACEHOLDER:
        return "'" + text
    return text


def csv_row(values: Iterable[object]) -> list[object]:
    """``csv_cell`` on each value of a row."""
    return [csv_cell(value) for value in values]


def csv_columns(table: pa.Table) -> pa.Table:
    """``csv_cell`` on every text column of an Arrow table, a column at a time.

    A column of printable ASCII with no cell starting as a formula (nearly every column of
    every store) is seen to be one from its bytes and passed on as it is; any other is searched
    in Arrow (RE2), only its cells that hold a control character are escaped one by one, and a
    dictionary column is neutralised in its dictionary.
    """
    import pyarrow as pa

    columns = [_csv_column(column) for column in table.columns]
    return pa.Table.from_arrays(columns, schema=table.schema)  # text stays text


def _csv_column(column: pa.ChunkedArray) -> pa.ChunkedArray:
    import pyarrow as pa

    if not (_is_text(column.type) or _is_text_dictionary(column.type)):
        return column
    return pa.chunked_array([_csv_array(chunk) for chunk in column.chunks], column.type)


def _is_text(type_: pa.DataType) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_string(type_) or pa.types.is_large_string(type_))


def _is_text_dictionary(type_: pa.DataType) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_dictionary(type_) and _is_text(type_.value_type))


def _csv_array(array: pa.Array) -> pa.Array:
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(array, pa.DictionaryArray):
        return pa.DictionaryArray.from_arrays(array.indices, _csv_array(array.dictionary))
    if _plain(array):
        return array
    array = visible_array(array)
    formula = pc.and_(
        pc.match_substring_regex(array, _FORMULA_START_RE2),
        pc.not_equal(array, pa.scalar(_PLACEHOLDER, array.type)),
    )
    if pc.any(formula).as_py():
        quote, nothing = pa.scalar("'", array.type), pa.scalar("", array.type)
        quoted = pc.binary_join_element_wise(quote, array, nothing)
        array = pc.if_else(formula, quoted, array)
    return array


_FORMULA_BYTES = "".join(FORMULA_START).encode()


def _plain(array: pa.Array) -> bool:
    """True when every cell is printable ASCII and none starts as a formula, read from the
    array's bytes with numpy: min, max and the first byte of each cell (0.17 s for every text
    column of a 360,704-hop store, where the two RE2 searches took 1.5 s). It may say False
    wrongly, never True: the bytes of a null cell count too, and send the array the exact way."""
    import numpy as np
    import pyarrow as pa

    offsets_buffer, data_buffer = array.buffers()[1:3]
    if offsets_buffer is None or data_buffer is None or len(array) == 0:
        return True
    width = np.int64 if pa.types.is_large_string(array.type) else np.int32
    offsets = np.frombuffer(offsets_buffer, width)[array.offset : array.offset + len(array) + 1]
    data = np.frombuffer(data_buffer, np.uint8)[offsets[0] : offsets[-1]]
    if data.size and (data.min() < 0x20 or data.max() > 0x7E):
        return False
    lengths = np.diff(offsets)
    first = np.frombuffer(data_buffer, np.uint8)[offsets[:-1][lengths > 0]]
    formula = np.isin(first, np.frombuffer(_FORMULA_BYTES, np.uint8))
    # a lone "-" is the placeholder, left as it is
    formula &= ~((lengths[lengths > 0] == 1) & (first == ord(_PLACEHOLDER)))
    return not formula.any()


def iso_times(times: pa.ChunkedArray) -> pa.ChunkedArray:
    """UTC times as the JSON writes them, at the precision the log had: ``2016-01-14T10:08:12Z``
    for a syslog line's whole seconds, ``2026-12-01T09:00:01.250313Z`` for a journal's
    microseconds (no ``.000000`` invented for a header that had none)."""
    import pyarrow.compute as pc

    text = pc.strftime(times, "%Y-%m-%dT%H:%M:%S")  # Arrow's %S carries the microseconds
    whole = pc.replace_substring_regex(text, r"\.000000$", "")
    return pc.binary_join_element_wise(whole, "Z", "")


def check_output(path: Path, directory: bool = False) -> None:
    """Raise OutputError, naming the path and why, when ``path`` (a file, or with
    ``directory`` a directory created with its parents) cannot be written: checked before the
    work, so that a long run does not end on a traceback."""
    if path.is_dir() != directory and path.exists():
        raise OutputError(
            f"{_shown(path)}: cannot write: it is "
            + ("a file, not a directory" if directory else "a directory")
        )
    parent = path.parent
    if directory:  # the nearest directory that exists is where it will be created
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
    if not parent.exists():
        raise OutputError(
            f"{_shown(path)}: cannot write: the directory {_shown(parent)} does not exist"
        )
    if not parent.is_dir():
        raise OutputError(f"{_shown(path)}: cannot write: {_shown(parent)} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(
            f"{_shown(path)}: cannot write: no permission to write in {_shown(parent)}"
        )


@contextmanager
def writing_to(path: Path) -> Iterator[None]:
    """An OSError on ``path`` or a file under it (a full disk, a name too long) becomes one
    OutputError naming the file and the reason; any other OSError is left as it is."""
    try:
        yield
    except OSError as error:
        if error.filename is None or not _within(Path(os.fsdecode(error.filename)), path):
            raise
        reason = error.strerror or str(error)
        raise OutputError(
            f"{_shown(Path(os.fsdecode(error.filename)))}: cannot write: {reason}"
        ) from None


def _within(name: Path, path: Path) -> bool:
    name, path = Path(os.path.abspath(name)), Path(os.path.abspath(path))
    return name == path or path in name.parents


def _shown(path: Path) -> str:
    return visible(str(path))
