#!/usr/bin/env python3
"""Print the wall-clock time at which a file appears in a directory (bench helper, not a test).

usage: wait_file.py DIR NAME READY_FILE OUT_FILE [TIMEOUT_S]

Watches DIR with inotify for NAME being renamed into place or closed after writing, writes
"ready" to READY_FILE once the watch is set (the caller starts the process under test only
then), and on the event writes time.time() to OUT_FILE. Why not the file's mtime: a new
file's timestamps come from the kernel's coarse clock (one jiffy, 4 ms at HZ=250), which
made a start-up of a few ms look up to 4 ms shorter. The wake-up of this waiter adds a few
tens of microseconds instead, on the slow side.
"""
import ctypes
import os
import select
import struct
import sys
import time

IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_CLOEXEC = 0o2000000


def main():
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__.strip().splitlines()[2])
    d, name, ready, out = sys.argv[1:5]
    timeout = float(sys.argv[5]) if len(sys.argv) == 6 else 30.0
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(IN_CLOEXEC)
    if fd < 0:
        sys.exit("wait_file: inotify_init1: " + os.strerror(ctypes.get_errno()))
    if libc.inotify_add_watch(fd, d.encode(), IN_CLOSE_WRITE | IN_MOVED_TO) < 0:
        sys.exit("wait_file: watch %s: %s" % (d, os.strerror(ctypes.get_errno())))
    with open(ready, "w") as f:
        f.write("ready\n")
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            sys.exit("wait_file: no %s in %s within %.0f s" % (name, d, timeout))
        buf = os.read(fd, 65536)
        t = time.time()
        off = 0
        while off + 16 <= len(buf):
            _, _, _, n = struct.unpack_from("iIII", buf, off)
            ev = buf[off + 16:off + 16 + n].split(b"\0", 1)[0].decode(errors="replace")
            off += 16 + n
            if ev == name:
                with open(out, "w") as f:
                    f.write("%.6f\n" % t)
                return


if __name__ == "__main__":
    main()
