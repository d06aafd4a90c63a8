"""Long output goes through a pager, as git's and lnav's does; short output and pipes never do.

Every command's standard output passes through ``paged``: while the output is shorter than
the terminal it is held; once it has as many lines as the terminal, the pager is started and
given what was held, then everything after it as it comes (``hops --csv`` of a big store is not
held whole). Output that never fills the terminal is written as it would have been. Nothing is
paged when standard output is no terminal (a pipe, a file, a test's runner) or with
``--no-pager``.

The pager is ``$LOGPATH_PAGER``, else ``$PAGER``, else ``less -FRX`` (git's choice: quit if one
screen, keep colours, leave the text on the screen), run by the shell; an empty value or
``cat`` means no pager, as for git. ``LESS=FRX`` is set when the user set no ``LESS``, so a
bare ``PAGER=less`` keeps colours as well.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import IO

DEFAULT_PAGER = "less -FRX"


def pager_command(environ: dict[str, str] | os._Environ[str] = os.environ) -> str | None:
    """The pager to run, or None when the user asked for none (an empty value or ``cat``)."""
    for name in ("LOGPATH_PAGER", "PAGER"):
        if name in environ:
            command = environ[name].strip()
            return None if command in ("", "cat") else command
    return DEFAULT_PAGER


class PagedOutput(io.TextIOBase):
    """Standard output that holds its text until it fills the terminal, then pages it."""

    def __init__(self, terminal: IO[str], command: str, lines: int) -> None:
        self.terminal = terminal
        self.command = command
        self.lines = lines  # the terminal's height: this many lines start the pager
        self.held: list[str] = []
        self.held_lines = 0
        self.pager: subprocess.Popen[str] | None = None
        self.gone = False  # the pager was quit before the output ended (q in less)

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def isatty(self) -> bool:
        """A terminal: what is written here is shown on one, through the pager or not."""
        return True

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):  # click tells a text stream by this: write(b"") fails
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if self.pager is None:
            self.held.append(text)
            self.held_lines += text.count("\n")
            if self.held_lines >= self.lines:
                self._start_pager()
        else:
            self._to_pager(text)
        return len(text)

    def _start_pager(self) -> None:
        environ = {**os.environ}
        environ.setdefault("LESS", "FRX")
        self.terminal.flush()
        self.pager = subprocess.Popen(
            self.command, shell=True, stdin=subprocess.PIPE, text=True, env=environ
        )
        text, self.held = "".join(self.held), []
        self._to_pager(text)

    def _to_pager(self, text: str) -> None:
        assert self.pager is not None and self.pager.stdin is not None
        if self.gone:
            return
        try:
            self.pager.stdin.write(text)
        except BrokenPipeError:  # the reader quit the pager: the rest is not wanted
            self.gone = True

    def flush(self) -> None:
        """Held text stays held (``typer.echo`` flushes every line): only the pager's input is
        flushed, so that it shows what came so far."""
        if self.pager is not None and not self.gone:
            try:
                self.pager.stdin.flush()  # type: ignore[union-attr]
            except BrokenPipeError:
                self.gone = True

    def finish(self) -> None:
        """Write what is held, or close the pager's input and wait for the reader to quit it."""
        if self.pager is None:
            self.terminal.write("".join(self.held))
            self.terminal.flush()
            return
        assert self.pager.stdin is not None
        with suppress(BrokenPipeError):  # the reader quit early: nothing more to say
            self.pager.stdin.close()
        self.pager.wait()


@contextmanager
def paged(enabled: bool = True) -> Iterator[None]:
    """Standard output through the pager for the block, when it is a terminal and paging is
    ``enabled`` and a pager is set; else untouched."""
    command = pager_command()
    if not (enabled and command and sys.stdout.isatty()):
        yield
        return
    terminal = sys.stdout
    # a pseudo-terminal nobody sized says 0 lines: page what a default terminal would not hold
    lines = shutil.get_terminal_size().lines or 24
    output = PagedOutput(terminal, command, lines)
    sys.stdout = output
    try:
        yield
    finally:
        sys.stdout = terminal
        output.finish()
