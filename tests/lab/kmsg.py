"""Read the kernel's /dev/kmsg records that carry a tag, from now until stdin closes.

Run as a separate process (``python kmsg.py TAG``) so that reading keeps pace with a burst of
LOG lines: the kernel ring buffer here holds only 128 KiB (a few hundred LOG records) and a
reader sharing the GIL with the traffic generator falls behind. It prints ``ready`` once it has
seeked to the end of the buffer, then one raw record (``pri,seq,usec,flags;text``) per line;
lost records (the kernel overwrote them before we read them) are counted on stderr.
"""

from __future__ import annotations

import errno
import os
import select
import sys


def read_available(fd: int, tag: bytes, out: list[bytes]) -> int:
    """Read every record ready now; keep those containing the tag. Returns records lost."""
    lost = 0
    while True:
        try:
            record = os.read(fd, 16384)
        except BlockingIOError:
            return lost
        except OSError as error:
            if error.errno == errno.EPIPE:  # overwritten before we read it; reading continues
                lost += 1
                continue
            raise
        head, _, rest = record.partition(b";")
        text = rest.split(b"\n", 1)[0]  # continuation lines (" KEY=value") are dictionary data
        if tag in text:
            out.append(head + b";" + text + b"\n")


def main() -> None:
    tag = sys.argv[1].encode()
    fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    os.lseek(fd, 0, os.SEEK_END)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    kept: list[bytes] = []
    lost = 0
    stdin_open = True
    while stdin_open:
        ready, _, _ = select.select([fd, sys.stdin], [], [])
        if sys.stdin in ready and not sys.stdin.readline():
            stdin_open = False
        lost += read_available(fd, tag, kept)
    lost += read_available(fd, tag, kept)
    sys.stdout.buffer.write(b"".join(kept))
    sys.stdout.flush()
    sys.stderr.write(f"lost {lost}\n")


if __name__ == "__main__":
    main()
