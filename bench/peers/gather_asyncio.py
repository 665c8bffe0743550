#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench/gather's workloads (see ../workload.h) in Python asyncio, as the
articles that asyncio.gather made popular write them: a coroutine per task,
asyncio.gather, asyncio.sleep, streams for sockets, and asyncio.to_thread
for file work (asyncio has no asynchronous files: to_thread is its answer).

    gather_asyncio.py WORKLOAD asyncio N [--ms D] [--file PATH] [--direct]
                      [--dir DIR] [--port P] [--rounds K] [--log FILE]
"""
import asyncio
import errno
import mmap
import os
import resource
import sys
import time

SLICE = 64 * 1024
WSIZE = 4096
MSG = 64
WORKLOADS = ("sleep", "read", "write", "socket", "mixed")


def usage(why):
    sys.stderr.write(f"gather_asyncio: {why}\nusage: gather_asyncio.py WORKLOAD asyncio N "
                     "[--ms D] [--file PATH] [--direct] [--dir DIR] [--port P] "
                     "[--rounds K] [--log FILE]\n")
    sys.exit(2)


def count(s, what):
    try:
        v = int(s)
    except ValueError:
        v = -1
    if v < 0:
        usage(f"{what}: expected a whole number >= 0, got '{s}'")
    return v


def parse(argv):
    o = {"ms": 100, "rounds": 10, "file": None, "dir": None, "port": 0, "log": None,
         "direct": False}
    pos = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--direct":
            o["direct"] = True
        elif not a.startswith("-"):
            pos.append(a)
        else:
            if i + 1 >= len(argv):
                usage(f"{a} needs a value")
            v = argv[i + 1]
            i += 1
            key = a[2:]
            if key in ("ms", "rounds", "port"):
                o[key] = count(v, a)
            elif key in ("file", "dir", "log"):
                o[key] = v
            else:
                usage(f"unknown option '{a}'")
        i += 1
    if len(pos) != 3:
        usage("expected WORKLOAD MODE N")
    o["workload"], mode, o["n"] = pos[0], pos[1], count(pos[2], "N")
    if mode != "asyncio":
        usage(f"unknown mode '{mode}'")
    if o["workload"] not in WORKLOADS:
        usage(f"unknown workload '{o['workload']}'")
    if o["workload"] in ("read", "mixed") and not o["file"]:
        usage(f"workload '{o['workload']}' needs --file")
    if o["workload"] == "write" and not o["dir"]:
        usage("workload 'write' needs --dir")
    if o["workload"] in ("socket", "mixed") and not o["port"]:
        usage(f"workload '{o['workload']}' needs --port")
    if o["rounds"] < 1:
        usage("--rounds: at least 1")
    return o


def ops_per_task(o):
    return {"write": 5, "socket": 2 * o["rounds"] + 2, "mixed": 6}.get(o["workload"], 1)


class Work:
    def __init__(self, o):
        self.o = o
        self.fd = -1
        self.slices = 0
        self.wbuf = b"w" * WSIZE
        if o["workload"] in ("read", "mixed"):
            flags = os.O_RDONLY | (os.O_DIRECT if o["direct"] else 0)
            self.fd = os.open(o["file"], flags)
            self.slices = os.fstat(self.fd).st_size // SLICE
            if self.slices == 0:
                usage(f"{o['file']} is smaller than one 64 KiB slice")

    def read_slice(self, i):
        off = (i % self.slices) * SLICE
        if self.o["direct"]:
            buf = mmap.mmap(-1, SLICE)  # page aligned, as O_DIRECT wants
            try:
                got = os.preadv(self.fd, [buf], off)
            finally:
                buf.close()
        else:
            got = len(os.pread(self.fd, SLICE, off))
        if got != SLICE:
            raise OSError(errno.EIO, "short read")

    def write_own_file(self, i):
        path = f"{self.o['dir']}/t{i}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, self.wbuf)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.unlink(path)

    async def round_trips(self, k):
        reader, writer = await asyncio.open_connection("127.0.0.1", self.o["port"])
        try:
            msg = b"m" * MSG
            for _ in range(k):
                writer.write(msg)
                await reader.readexactly(MSG)
        finally:
            writer.close()
            await writer.wait_closed()

    async def task(self, i):
        w = self.o["workload"]
        if w == "sleep":
            await asyncio.sleep(self.o["ms"] / 1000)
        elif w == "read":
            await asyncio.to_thread(self.read_slice, i)
        elif w == "write":
            await asyncio.to_thread(self.write_own_file, i)
        elif w == "socket":
            await self.round_trips(self.o["rounds"])
        else:
            await asyncio.sleep(self.o["ms"] / 1000)
            await asyncio.to_thread(self.read_slice, i)
            await self.round_trips(1)


def err_name(e):
    if isinstance(e, asyncio.IncompleteReadError):
        return "ECONNRESET"
    if isinstance(e, OSError) and e.errno in errno.errorcode:
        return errno.errorcode[e.errno]
    return "EIO"


def result(o, status, done, wall):
    ru = resource.getrusage(resource.RUSAGE_SELF)
    line = (f"bench=gather workload={o['workload']} mode=asyncio n={o['n']} "
            f"ops={o['n'] * ops_per_task(o)} status={status} done={done} wall_s={wall:.4f}")
    if o["workload"] in ("sleep", "mixed"):
        line += f" d_ms={o['ms']}"
    line += (f" user_s={ru.ru_utime:.3f} sys_s={ru.ru_stime:.3f} maxrss_kb={ru.ru_maxrss}"
             f" nvcsw={ru.ru_nvcsw} nivcsw={ru.ru_nivcsw} minflt={ru.ru_minflt}")
    print(line, flush=True)
    if o["log"]:
        with open(o["log"], "a") as f:
            f.write(line + "\n")


async def gather_all(work, n):
    return await asyncio.gather(*(work.task(i) for i in range(n)), return_exceptions=True)


def main():
    o = parse(sys.argv[1:])
    try:
        work = Work(o)
    except OSError as e:
        sys.stderr.write(f"gather_asyncio: {e}\n")
        result(o, err_name(e), 0, 0.0)
        sys.exit(3)
    t0 = time.monotonic()
    res = asyncio.run(gather_all(work, o["n"]))
    wall = time.monotonic() - t0
    status, done = "ok", 0
    for r in res:
        if r is None:
            done += 1
        elif status == "ok":
            status = err_name(r)
    result(o, status, done, wall)
    sys.exit(0 if status == "ok" else 3)


if __name__ == "__main__":
    main()
