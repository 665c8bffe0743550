#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench/gather's runner (bench/gather installs and builds, then runs this).

For each workload and N it runs every mode side by side: a warm-up run
(which also finds the modes that fail at this N, and why), then --runs
rounds in which the modes take turns in a rotating order, each run timed
by hyperfine; then one more run per mode under strace -f -c. Results go
to --out: results.md, results.json, one hyperfine JSON per mode and case,
the strace outputs, and SVG plots against N."""

import os
import platform
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gatherlib as g  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Bench:
    def __init__(self, a):
        self.a = a
        self.build = os.environ.get("WEFT_BUILD", os.path.join(ROOT, "build-release"))
        b = os.path.join(self.build, "bench")
        self.tasks = os.path.join(b, "bench_tasks")
        self.epoll = os.path.join(b, "peer_epoll")
        self.uring = os.path.join(b, "peer_uring_timeouts")
        self.go = os.path.join(b, "peer_go")
        self.echo = os.path.join(self.build, "examples", "echo_server")
        self.pyscript = os.path.join(ROOT, "bench", "peers", "gather_asyncio.py")
        self.out = g.results_dir(ROOT, a.out)
        why = g.out_dir_problem(self.out)
        if why:
            sys.exit(f"bench/gather: {why}")
        self.md = open(os.path.join(self.out, "results.md"), "w")
        self.tty = sys.stderr.isatty()
        self.doc = {"argv": sys.argv[1:], "quick": a.quick, "cases": []}
        self.tmp = []
        self.server = None
        self.port = 0
        self.file = None
        self.wdir = None
        self.direct_ok = None
        self.zero = {}
        self.skip = {}
        self.refused = None  # why weft cannot make a loop here, if it cannot
        self.seen = {}  # (workload, mode) -> (n, median wall, d_s) of its last case
        self.echo_name = "examples/echo_server"
        # weft-pool makes a loop per CPU this process may use; Go gets as many.
        self.ncpu = len(os.sched_getaffinity(0))
        os.environ["GOMAXPROCS"] = str(self.ncpu)

    # ---- output -----------------------------------------------------------------
    def say(self, line=""):
        if self.tty:
            sys.stderr.write("\r\033[K")
        print(line, flush=True)
        self.md.write(line + "\n")
        self.md.flush()

    def progress(self, text):
        if self.tty:
            sys.stderr.write("\r\033[K" + text[:150])
            sys.stderr.flush()

    # ---- set-up -------------------------------------------------------------------
    def machine(self):
        def read(p, default="?"):
            try:
                with open(p) as f:
                    return f.read().strip()
            except OSError:
                return default

        cpu = "?"
        for line in read("/proc/cpuinfo", "").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = "?"
        for line in read("/proc/meminfo", "").splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1048576:.1f} GiB"
        vdir = "/sys/devices/system/cpu/vulnerabilities"
        mitig = []
        if os.path.isdir(vdir):
            for v in sorted(os.listdir(vdir)):
                s = read(os.path.join(vdir, v))
                if not s.startswith("Not affected"):
                    mitig.append(f"{v}: {s}")
        check = subprocess.run([self.tasks, "check"], capture_output=True, text=True)
        if check.returncode != 0:
            # The modes that need no io_uring still run; weft's rows say why not.
            self.refused = (check.stderr.strip().splitlines() or ["bench_tasks check failed"])[-1]
            self.refused = self.refused.replace("weft cannot run here: ", "")
            self.check = {}
        elif check.stdout.startswith("backend="):
            # io_uring is refused and weft's loops fall back to epoll.
            self.check = {"backend": check.stdout.split()[0].split("=", 1)[1],
                          "why": check.stdout.split('why="', 1)[-1].rstrip().rstrip('"')}
        else:
            self.check = g.parse_result_line("bench=check " + check.stdout.split(":", 1)[1])
        tmpfs = subprocess.run(["stat", "-f", "-c", "%T", tempfile.gettempdir()],
                               capture_output=True, text=True).stdout.strip()

        def version(cmd):
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
                return (r.stdout or r.stderr).splitlines()[0].strip()
            except (OSError, IndexError, subprocess.TimeoutExpired):
                return "not installed"

        m = {
            "cpus": os.cpu_count(), "cpu": cpu, "memory": mem, "kernel": platform.release(),
            "mitigations": mitig,
            "io_uring": check.stdout.strip() if not self.refused else f"refused: {self.refused}",
            "weft_backend": self.check.get("backend", "none"),
            "thp": read("/sys/kernel/mm/transparent_hugepage/enabled"),
            "somaxconn": read("/proc/sys/net/core/somaxconn"),
            "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
            "tmpdir": f"{tempfile.gettempdir()} ({tmpfs})",
            "weft": subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                                   capture_output=True, text=True).stdout.strip() or "?",
            "go": version(["go", "version"]) if os.path.exists(self.go) else "not installed",
            "python": sys.version.split()[0],
            "hyperfine": version(["hyperfine", "--version"]),
            "strace": version(["strace", "-V"]),
        }
        self.doc["machine"] = m
        self.say(f"# bench/gather{' --quick' if self.a.quick else ''}")
        self.say()
        self.say(f"- machine: {m['cpus']} CPUs ({cpu}), {mem}, Linux {m['kernel']}")
        if self.refused:
            self.say(f"- io_uring: not available, so every weft mode is skipped: {self.refused}")
        elif self.check.get("backend") == "epoll":
            self.say("- io_uring: refused here, so every weft mode runs on weft's epoll "
                     f"backend: {self.check['why']}")
        else:
            sq = (f"SQPOLL ring: {g.ring_flags(self.check['sqpoll_ring_flags'])}"
                  if self.check.get("sqpoll") == "ok" else
                  f"SQPOLL ring: refused ({self.check.get('sqpoll', '?')})")
            self.say(f"- io_uring: default ring {g.ring_flags(self.check.get('ring_flags', '?'))}; "
                     f"{sq} (as this machine's kernel gave them)")
        self.say(f"- mitigations: {'; '.join(mitig)[:400] or 'none reported'}")
        self.say(f"- THP {m['thp']}, somaxconn {m['somaxconn']}, open files {m['nofile']}, "
                 f"TMPDIR {m['tmpdir']}")
        self.say(f"- weft {m['weft']} (release build), {m['go']}, Python {m['python']}, "
                 f"{m['hyperfine']}, {m['strace']}")
        self.say()

    def raise_nofile(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    def make_file(self, size):
        fd, path = tempfile.mkstemp(prefix="weft-gather-", suffix=".bin")
        self.file = path
        block = os.urandom(1 << 20)
        with os.fdopen(fd, "wb") as f:
            for _ in range(size >> 20):
                f.write(block)
            f.flush()
            os.fsync(f.fileno())
        with open(path, "rb") as f:  # into the page cache
            while f.read(1 << 22):
                pass
        try:
            import mmap
            dfd = os.open(path, os.O_RDONLY | os.O_DIRECT)
            buf = mmap.mmap(-1, 65536)
            try:
                os.preadv(dfd, [buf], 0)
                self.direct_ok = None
            finally:
                buf.close()
                os.close(dfd)
        except OSError as e:
            self.direct_ok = (f"skipped: the filesystem of {tempfile.gettempdir()} refuses "
                              f"O_DIRECT ({e.strerror}); set TMPDIR to a disk filesystem")
        else:
            self.direct_ok = None

    def start_server(self):
        if self.refused:
            # weft's echo server cannot run either: the other modes talk to
            # an epoll echo server instead, and the results say so.
            self.echo = os.path.join(self.build, "bench", "peer_echo_epoll")
            self.echo_name = "bench/peers/echo_epoll.c (weft's echo_server cannot run here)"
        p = subprocess.Popen([self.echo, "0", "127.0.0.1"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
        line = p.stderr.readline()
        if "listening on port" not in line:
            sys.exit(f"bench/gather: the echo server did not start: {line.strip()}")
        self.port = int(line.split()[-1])
        self.server = p
        log = open(os.path.join(self.out, "echo_server.log"), "w")

        def drain():
            for ln in p.stderr:
                log.write(ln)
            log.close()
        threading.Thread(target=drain, daemon=True).start()

    def cleanup(self):
        if self.server:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.server.kill()
        if self.file and os.path.exists(self.file):
            os.unlink(self.file)
        if self.wdir:
            shutil.rmtree(self.wdir, ignore_errors=True)

    # ---- the plan ----------------------------------------------------------------------
    def cases(self):
        q = self.a.quick
        plan = {
            "sleep": [(10, 20), (100, 20), (1000, 20)] if q else
            [(10, 100), (100, 100), (1000, 100), (10000, 100), (100000, 1000), (1000000, 1000)],
            "read": [(10, 0), (1000, 0)] if q else [(10, 0), (100, 0), (1000, 0), (10000, 0)],
            "read-direct": [(100, 0)] if q else [(10, 0), (100, 0), (1000, 0)],
            "write": [(10, 0), (100, 0)] if q else [(10, 0), (100, 0), (1000, 0)],
            "socket": [(10, 0), (100, 0)] if q else [(10, 0), (100, 0), (1000, 0), (10000, 0)],
            "mixed": [(100, 10)] if q else [(10, 10), (100, 10), (1000, 10), (10000, 10)],
        }
        out = []
        for wl in self.a.workloads:
            for n, d in plan[wl]:
                if self.a.n:
                    continue
                out.append({"workload": wl, "n": n, "d_ms": d, "rounds": 4 if q else 10})
            if self.a.n:
                d = {"sleep": 20 if q else 100, "mixed": 10}.get(wl, 0)
                out += [{"workload": wl, "n": n, "d_ms": d, "rounds": 4 if q else 10}
                        for n in self.a.n]
        return out

    def why_not(self, mode, c):
        """None when @mode runs case @c, else the reason shown in its row."""
        wl, n, d = c["workload"], c["n"], c["d_ms"]
        if mode in self.skip:
            return self.skip[mode]
        if self.refused and (mode.startswith("weft") or mode == "uring-timeouts"):
            return f"failed: {self.refused}"
        if mode == "uring-timeouts" and (wl != "sleep" or n < 1000):
            return ""  # the floor of sleep at N >= 1000 only: no row
        if wl == "read-direct" and self.direct_ok:
            return self.direct_ok
        if mode == "sequential" and n * d / 1000 > self.a.budget:
            return (f"skipped: N x sleep = {n * d / 1000:g} s one after another "
                    f"(over --budget {self.a.budget:g} s)")
        prev = self.seen.get((wl, mode))
        if prev and prev[0] < n:
            est = g.predict_wall(prev[0], prev[1], prev[2], n, d / 1000)
            if est > self.a.budget:
                return (f"skipped: {g.fmt_s(prev[1])} at N = {prev[0]} in this run predicts "
                        f"~{g.fmt_s(est)} at N = {n}, over --budget {self.a.budget:g} s")
        return None

    def command(self, mode, c, n, log):
        wl = "read" if c["workload"] == "read-direct" else c["workload"]
        if mode == "uring-timeouts":
            return [self.uring, str(n), str(c["d_ms"]), "--log", log]
        opts = ["--log", log]
        if wl in ("sleep", "mixed"):
            opts += ["--ms", str(c["d_ms"])]
        if wl in ("read", "mixed"):
            opts += ["--file", self.file]
        if c["workload"] == "read-direct":
            opts.append("--direct")
        if wl == "write":
            opts += ["--dir", self.wdir]
        if wl in ("socket", "mixed"):
            opts += ["--port", str(self.port), "--rounds", str(c["rounds"])]
        head = {
            "weft": [self.tasks, wl, "weft"],
            "weft-4k": [self.tasks, wl, "weft"],
            "weft-sqpoll": [self.tasks, wl, "weft-sqpoll"],
            "weft-epoll": [self.tasks, wl, "weft-epoll"],
            "weft-pool": [self.tasks, wl, "weft-pool"],
            "threads": [self.tasks, wl, "threads"],
            "sequential": [self.tasks, wl, "sequential"],
            "epoll": [self.epoll, wl, "epoll"],
            "go": [self.go, wl, "go"],
            "asyncio": [sys.executable, self.pyscript, wl, "asyncio"],
        }[mode]
        if mode == "weft-4k":
            opts += ["--stack", "4096", "--guards", "0"]
        return head + [str(n)] + opts

    # ---- running -------------------------------------------------------------------------
    def run_direct(self, cmd, timeout):
        """Run @cmd, return (result dict or None, its output)."""
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"status": f"timeout after {timeout} s"}, ""
        out = r.stdout + r.stderr
        return g.parse_result_line(r.stdout), out

    def run_timed(self, mode, cmd, log, tmpjson, timeout):
        """One run under hyperfine; returns (its hyperfine result, our line)."""
        if os.path.exists(log):
            os.unlink(log)
        hf = ["hyperfine", "-N", "-i", "--runs", "1", "--style", "none", "--export-json",
              tmpjson, "--command-name", mode, shlex.join(cmd)]
        try:
            subprocess.run(hf, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=timeout)
            with open(tmpjson) as f:
                hres = __import__("json").load(f)["results"][0]
        except (subprocess.TimeoutExpired, OSError, ValueError, KeyError, IndexError):
            return None, None
        line = None
        if os.path.exists(log):
            with open(log) as f:
                line = g.parse_result_line(f.read())
        return hres, line

    def strace(self, mode, c, n, tag):
        f = os.path.join(self.out, f"strace-{tag}.txt")
        log = os.path.join(self.out, "strace-run.log")
        cmd = ["strace", "-f", "-c", "-o", f] + self.command(mode, c, n, log)
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=self.a.timeout * 3)
        except subprocess.TimeoutExpired:
            return None
        line = g.parse_result_line(r.stdout)
        if r.returncode != 0 or not line or line.get("status") != "ok":
            return None
        with open(f) as fh:
            counts = g.parse_strace_c(fh.read())
        counts["ops"] = g.num(line, "ops", n)
        return counts

    def syscalls(self, mode, c):
        """Marginal system calls per operation: (calls at N - calls at N=0) / ops."""
        key = (mode, c["workload"], c["d_ms"])
        tag = f"{c['workload']}-{mode}"
        if key not in self.zero:
            self.zero[key] = self.strace(mode, c, 0, tag + "-0")
        full = self.strace(mode, c, c["n"], f"{tag}-{c['n']}")
        base = self.zero[key]
        if not full or not base:
            return None, None
        ops = full["ops"] or c["n"]
        return (full["total"] - base["total"]) / ops, full["total"]

    def run_case(self, idx, total, c):
        wl, n = c["workload"], c["n"]
        modes = []
        rows = []
        for m in self.a.modes:
            why = self.why_not(m, c)
            if why == "":
                continue
            if why:
                rows.append({"mode": m, "failed": why})
                continue
            modes.append(m)
        results = {m: {"mode": m, "runs": [], "hyperfine": []} for m in modes}
        logs = {m: os.path.join(self.out, f"run-{m}.log") for m in modes}
        # Warm-up, and the failure report of a mode that cannot run this N.
        live = []
        for m in modes:
            self.progress(f"[{idx}/{total}] {wl} N={n}: {m} warm-up")
            line, out = self.run_direct(self.command(m, c, n, logs[m]), self.a.timeout)
            if not line or line.get("status") != "ok":
                st = (line or {}).get("status") or (out.strip().splitlines() or ["no output"])[-1]
                done = (line or {}).get("done")
                results[m]["failed"] = (f"failed: {st}" +
                                        (f" after {done} of {n} tasks" if done else ""))
                continue
            live.append(m)
        # Measured runs: the modes take turns, in a rotating order.
        tmpjson = os.path.join(self.out, "hyperfine-run.json")
        for r in range(self.a.runs):
            order = live[r % len(live):] + live[:r % len(live)] if live else []
            for m in order:
                self.progress(f"[{idx}/{total}] {wl} N={n}: {m} run {r + 1}/{self.a.runs}")
                hres, line = self.run_timed(m, self.command(m, c, n, logs[m]), logs[m],
                                            tmpjson, self.a.timeout)
                if hres is None or not line or line.get("status") != "ok":
                    results[m]["failed"] = "failed: " + ((line or {}).get("status") or
                                                         "no result (timeout?)")
                    continue
                results[m]["hyperfine"].append(hres)
                results[m]["runs"].append(line)
        for m in live:
            res = results[m]
            if res.get("failed"):
                continue
            g.write_json(os.path.join(self.out, f"hyperfine-{wl}-{m}-{n}.json"),
                         g.hyperfine_merge(shlex.join(self.command(m, c, n, "LOG")),
                                           res["hyperfine"]))
            runs = res["runs"]
            res["wall"] = g.summary([t for h in res["hyperfine"] for t in h.get("times", [])])
            if res["wall"]:
                self.seen[(wl, m)] = (n, res["wall"]["median"], c["d_ms"] / 1000)
            res["inproc"] = (g.summary([g.num(x, "wall_s") for x in runs]) or {}).get("median")
            res["cpu"] = (g.summary([g.num(x, "user_s", 0) + g.num(x, "sys_s", 0)
                                     for x in runs]) or {}).get("median")
            res["sys"] = (g.summary([g.num(x, "sys_s") for x in runs]) or {}).get("median")
            res["rss_kb"] = (g.summary([g.num(x, "maxrss_kb") for x in runs]) or {}).get("median")
            ops = g.num(runs[0], "ops", n) or n
            ent = g.summary([g.num(x, "enters") for x in runs])
            res["enters_per_op"] = ent["median"] / ops if ent else None
            if not self.a.no_strace and self.strace_ok(m, n):
                self.progress(f"[{idx}/{total}] {wl} N={n}: {m} under strace")
                res["syscalls_per_op"], res["syscalls_total"] = self.syscalls(m, c)
        for m in modes:
            results[m]["cpus"] = g.mode_cpus(m, self.ncpu)
            rows.append(results[m])
        order = {m: i for i, m in enumerate(self.a.modes)}
        rows.sort(key=lambda r: order[r["mode"]])
        label = {"sleep": f"each sleeping {c['d_ms']} ms",
                 "read": "each reading its 64 KiB slice of a file in the page cache",
                 "read-direct": "each reading its 64 KiB slice with O_DIRECT",
                 "write": "each writing 4 KiB to its own file, fsync, close, unlink",
                 "socket": f"each making {c['rounds']} round trips of 64 B to the echo server",
                 "mixed": f"each sleeping {c['d_ms']} ms, reading a slice, one round trip"}[wl]
        self.say(f"### {wl}: N = {n} tasks, {label}")
        self.say()
        for line in g.markdown_table(rows):
            self.say(line)
        self.say()
        for r in rows:
            r.pop("hyperfine", None)
        self.doc["cases"].append(dict(c, results=rows))

    def strace_ok(self, mode, n):
        if n <= 100000:
            return True
        return mode in ("weft-4k", "uring-timeouts", "epoll")

    # ---- the end -------------------------------------------------------------------------
    def plots(self):
        metrics = [("wall", "wall time, s", lambda r: (r.get("wall") or {}).get("median")),
                   ("cpu", "CPU time (user+sys), s", lambda r: r.get("cpu")),
                   ("rss", "peak RSS, MiB",
                    lambda r: r["rss_kb"] / 1024 if r.get("rss_kb") else None),
                   ("syscalls", "system calls per operation", lambda r: r.get("syscalls_per_op"))]
        made = []
        for wl in self.a.workloads:
            cases = [c for c in self.doc["cases"] if c["workload"] == wl]
            if not cases:
                continue
            for key, ylabel, get in metrics:
                series = {}
                for c in cases:
                    for r in c["results"]:
                        if r.get("failed"):
                            continue
                        series.setdefault(r["mode"], []).append((c["n"], get(r)))
                name = f"plot-{wl}-{key}.svg"
                with open(os.path.join(self.out, name), "w") as f:
                    f.write(g.svg_plot(f"{wl}: {ylabel} against N", ylabel, series))
                made.append(name)
        return made

    def ratios(self):
        """What this run measured, case by case: every other mode's median wall
        over weft's, and the system calls per operation. No thresholds: the
        figures are this machine's, and they are reported as they are."""
        lines = []
        for c in self.doc["cases"]:
            base = next((r for r in c["results"] if r["mode"] == "weft" and
                         not r.get("failed") and r.get("wall")), None)
            parts = [f"{r['mode']} {r['wall']['median'] / base['wall']['median']:.2f}x"
                     for r in c["results"]
                     if base and r is not base and not r.get("failed") and r.get("wall")]
            sc = [f"{r['mode']} {r['syscalls_per_op']:.3g}" for r in c["results"]
                  if r.get("syscalls_per_op") is not None]
            head = f"- {c['workload']} N={c['n']}: "
            if parts:
                lines.append(head + f"weft {fmt(base)}; the others' wall over weft's: "
                             + ", ".join(parts) + ("; syscalls/op: " + ", ".join(sc) if sc else ""))
            elif sc:
                lines.append(head + "weft did not run; syscalls/op: " + ", ".join(sc))
        return lines

    def run(self):
        self.raise_nofile()
        if not os.path.exists(self.go):
            self.skip["go"] = "skipped: Go is not installed (sudo apt-get install golang-go)"
        if sys.version_info < (3, 9):
            self.skip["asyncio"] = "skipped: needs Python 3.9 or later (asyncio.to_thread)"
        self.machine()
        if self.check.get("backend") == "epoll":
            for m in ("weft-sqpoll", "uring-timeouts"):
                self.skip[m] = "skipped: needs io_uring, which is refused here"
        elif not self.refused and self.check.get("sqpoll") != "ok":
            self.skip["weft-sqpoll"] = ("skipped: this kernel refused an SQPOLL ring "
                                        f"({self.check.get('sqpoll', '?')})")
        self.say("## The asyncio demo: a task of 2 units and a task of 1 unit")
        self.say()
        if self.refused:
            self.say(f"Not run: it needs weft, and weft cannot make a loop here: {self.refused}")
        else:
            demo = subprocess.run([self.tasks, "demo", "20" if self.a.quick else "100"],
                                  capture_output=True, text=True)
            d = g.parse_result_line(demo.stdout) or {}
            self.say(f"1 unit = {d.get('unit_ms', '?')} ms")
            self.say()
            self.say("| way | wall | units |")
            self.say("|---|---|---|")
            self.say(f"| sequential (one after the other) | {d.get('sequential_s')} s | "
                     f"{d.get('sequential_units')} |")
            self.say(f"| weft_gather (concurrently) | {d.get('gather_s')} s | "
                     f"{d.get('gather_units')} |")
        self.say()
        cases = self.cases()
        wls = {c["workload"] for c in cases}
        try:
            if wls & {"read", "read-direct", "mixed"}:
                self.make_file((32 if self.a.quick else 256) << 20)
            if "write" in wls:
                self.wdir = tempfile.mkdtemp(prefix="weft-gather-w-")
            if wls & {"socket", "mixed"}:
                self.start_server()
            self.say("## Workloads")
            self.say()
            t0 = time.monotonic()
            for i, c in enumerate(cases, 1):
                self.run_case(i, len(cases), c)
            self.doc["seconds"] = time.monotonic() - t0
        finally:
            self.cleanup()
        for name in ("hyperfine-run.json", "strace-run.log"):
            p = os.path.join(self.out, name)
            if os.path.exists(p):
                os.unlink(p)
        for m in self.a.modes:
            p = os.path.join(self.out, f"run-{m}.log")
            if os.path.exists(p):
                os.unlink(p)
        self.say("## Ratios measured in this run")
        self.say()
        for line in self.ratios():
            self.say(line)
        self.say()
        plots = self.plots()
        self.say("Plots: " + ", ".join(plots))
        self.say()
        self.say(f"How: {self.a.runs} measured runs per mode after a warm-up run, the modes taking "
                 "turns in a rotating order; wall is the whole process (hyperfine -N, median "
                 "and min-max); in-process is the program's own time for the gather; CPU and "
                 "peak RSS are getrusage medians. syscalls/op: strace -f -c of one more run, "
                 "minus a run of the same program with N = 0 (start-up and exit), divided by "
                 "the operations (sleep, read: 1 per task; write: 5; socket: 2K+2; mixed: 6). "
                 "io_uring_enter/op is weft's own counter (weft_loop_stats). weft: the default "
                 "set-up (64 KiB stacks with guard pages); weft-4k: one-page stacks in huge "
                 "pages with canaries instead of guards; weft-sqpoll: WEFT_CONFIG_SQPOLL; "
                 "weft-epoll: the default set-up on weft's epoll backend; weft-pool: the "
                 "default set-up, one loop per CPU, the tasks spread by weft_pool_gather. "
                 "CPUs: what a mode may run its tasks on (Go runs with GOMAXPROCS set to the "
                 "CPUs weft-pool uses; the threads may use them all too). The "
                 f"echo server is {self.echo_name} for every mode. A mode is skipped at an N "
                 "where its figures at the previous N of this run predict more than --budget "
                 f"({self.a.budget:g} s) per run.")
        self.doc["plots"] = plots
        g.write_json(os.path.join(self.out, "results.json"), self.doc)
        self.md.close()
        sys.stderr.write(f"results: {self.out}\n")


def fmt(r):
    return g.fmt_s(r["wall"]["median"])


def main():
    a = g.parse_args(sys.argv[1:])
    Bench(a).run()


if __name__ == "__main__":
    main()
