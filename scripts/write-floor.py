#!/usr/bin/env python3
"""The floor of one replicated write on this machine, three replicas sharing its disk.

A "primary" thread sends a 64-byte message over loopback TCP to two "follower" threads and
writes and fdatasyncs 128 bytes to its own file; each follower writes and fdatasyncs 128
bytes to a file of its own, then answers with 8 bytes. The write is done when the primary's
own sync and one follower's answer are in (a majority of three). No batching, one write at a
time, no threads between socket and disk: what is left is the network's round trip and two
syncs of one disk. Prints p50/p90/p99 over N writes (docs/benchmarks.md, "A sender writes to
an idle peer itself; the floor with three replicas on one disk").

    scripts/write-floor.py [N]           # N writes, 5000 by default
    NO_SYNC=1 scripts/write-floor.py     # the same without fdatasync: the network alone
    DIR=/data scripts/write-floor.py     # files on another disk (default /tmp)
"""
import os, select, shutil, socket, sys, threading, time, tempfile

N = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
SYNC = os.environ.get("NO_SYNC") is None
d = tempfile.mkdtemp(dir=os.environ.get("DIR", "/tmp"))

def follower(conn, path):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    while True:
        m = conn.recv(64, socket.MSG_WAITALL)
        if not m:
            return
        os.write(fd, m * 2)
        if SYNC:
            os.fdatasync(fd)
        conn.sendall(b"v" * 8)

lsn = socket.socket(); lsn.bind(("127.0.0.1", 0)); lsn.listen(2)
conns = []
for i in range(2):
    c = socket.create_connection(lsn.getsockname()); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s, _ = lsn.accept(); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threading.Thread(target=follower, args=(s, f"{d}/f{i}"), daemon=True).start()
    conns.append(c)

own = os.open(f"{d}/p", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
lat = []
msg = b"a" * 64
for n in range(N):
    t0 = time.perf_counter()
    for c in conns:
        c.sendall(msg)
    os.write(own, msg * 2)
    if SYNC:
        os.fdatasync(own)
    ready, _, _ = select.select(conns, [], [])
    ready[0].recv(8, socket.MSG_WAITALL)
    lat.append(time.perf_counter() - t0)
    for c in conns:
        if c is not ready[0]:
            c.recv(8, socket.MSG_WAITALL)  # the other answer, before the next write
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(len(lat) * p))] * 1e3
print(f"{'fsync' if SYNC else 'no sync'}: {N} writes, p50 {q(0.5):.3f} ms  p90 {q(0.9):.3f} ms  p99 {q(0.99):.3f} ms")
shutil.rmtree(d)
