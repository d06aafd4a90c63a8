"""Write scanner.re from the grammar and turn it into scanner.c with re2c.

Run ``python -m logpath._scanner.generate`` after changing a grammar; tests/test_scanner.py
regenerates both and fails when the checked-in files differ.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyparsing as pp

from logpath.grammars import headers, netfilter
from logpath.grammars.fastpath import FastPattern, compile_grammar
from logpath.grammars.scanner_gen import emit

HERE = Path(__file__).parent
END = r" *\Z"  # trailing spaces allowed
RE2C = ["re2c", "--no-version", "--no-generation-date", "-W", "-Wno-nondeterministic-tags"]


def _shape(body: pp.ParserElement, after_header: bool) -> FastPattern:
    """A body as the grammar reads it after a header (``repeated`` may come first) or bare."""
    line = pp.And([pp.Opt(headers.repeated), body] if after_header else [body])
    line.leave_whitespace(recursive=True)
    return compile_grammar(line, end=END)


def source() -> str:
    """The re2c source for today's grammar.

    The shapes are the common IPv4 one, then the whole netfilter body (IPv6, ARP, ICMP quotes...),
    as ``parse`` tries them. ebtables' body is left out: its prefix is lazy (``.*?``), which a DFA
    does not do, and a line the kernel's nf_log body takes never reaches it (it is the grammar's
    second choice). Every shape allows trailing spaces (``END``), as ``parse.syslog_pattern``
    does: the C wrapper leaves to Python the lines whose end ``message_end`` would cut otherwise.
    """
    from logpath.parse import all_fields

    kinds = [compile_grammar(kind) for kind in headers.KINDS]
    shapes = (netfilter.common_body, netfilter.nf_log_body)
    bodies = [_shape(body, after_header=True) for body in shapes]
    bare = [_shape(body, after_header=False) for body in shapes]
    text: str = emit(kinds, bodies, bare, all_fields())
    return text


def generate(directory: Path = HERE) -> None:
    """Write scanner.re and scanner.c into ``directory``."""
    (directory / "scanner.re").write_text(source())
    # names relative to the directory: scanner.c's #line directives then name "scanner.re", not
    # the checkout it was generated in (a clean clone elsewhere regenerates the same file)
    command = [*RE2C, "scanner.re", "-o", "scanner.c"]
    subprocess.run(command, check=True, cwd=directory)


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
