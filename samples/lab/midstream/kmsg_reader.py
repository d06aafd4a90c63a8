#!/usr/bin/env python3
"""Read /dev/kmsg from now on, keep records whose text contains TAG, write them in dmesg
format ([sec.usec] text) to OUT when stdin closes. (Approach of /work/main/tests/lab/kmsg.py.)"""
import errno, os, select, sys
tag, out = sys.argv[1].encode(), sys.argv[2]
fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
os.lseek(fd, 0, os.SEEK_END)
print("ready", flush=True)
kept, lost = [], 0
def drain():
    global lost
    while True:
        try:
            rec = os.read(fd, 16384)
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno == errno.EPIPE:
                lost += 1; continue
            raise
        head, _, rest = rec.partition(b";")
        text = rest.split(b"\n", 1)[0]
        if tag in text:
            usec = int(head.split(b",")[2])
            kept.append(b"[%5d.%06d] " % (usec // 1000000, usec % 1000000) + text + b"\n")
open_ = True
while open_:
    r, _, _ = select.select([fd, sys.stdin], [], [])
    if sys.stdin in r and not sys.stdin.readline():
        open_ = False
    drain()
drain()
with open(out, "wb") as f:
    f.write(b"".join(kept))
sys.stderr.write(f"kmsg: kept {len(kept)} lost {lost}\n")
