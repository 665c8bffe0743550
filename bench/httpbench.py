#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench/http's runner (bench/http installs and builds, then runs this).

For each N (server CPUs) it starts, in turn, each server on CPUs 0..N-1:
  weft        examples/http_server --loops N --pin (one process, a loop per CPU)
  weft-procs  N processes of examples/http_server --loops 1, each on one CPU,
              sharing the port (SO_REUSEPORT): the shared-nothing limit
  nginx       nginx with N workers (worker_cpu_affinity auto), reuseport
  go          Go net/http (bench/peers/http_server.go) with GOMAXPROCS=N
  weft-tls, nginx-tls          the same over HTTPS (http_server --tls; nginx
              ssl), keep-alive: requests/s once the connections are up
  weft-tls-new, nginx-tls-new  HTTPS with "Connection: close": a full
              handshake per request, so requests/s is handshakes/s
              (both: one ECDSA P-256 certificate made here by openssl req,
              TLS 1.3, the suite wrk's OpenSSL and the server agree on)
and loads it with wrk on the other half of the CPUs (the client never shares a
CPU with the server). The modes take turns, --runs rounds; the tables give
the median requests/s and requests/s per server CPU. Everything wrk printed
is kept in --out, with results.md, results.json and plot-http.svg."""

import argparse
import datetime
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gatherlib as g  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODES = ("weft", "weft-procs", "nginx", "go",
         "weft-tls", "nginx-tls", "weft-tls-new", "nginx-tls-new")
# Which mode each mode is compared with in the "weft over it" column.
BASE = {"nginx-tls": "weft-tls", "nginx-tls-new": "weft-tls-new"}


def parse_args(argv):
    p = argparse.ArgumentParser(prog="bench/http", description=__doc__.split("\n\n")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)

    def csv_ints(s):
        try:
            v = [int(x) for x in s.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{s}' is not a comma-separated list of numbers")
        if not v or min(v) < 1:
            raise argparse.ArgumentTypeError("each N must be 1 or more")
        return v

    def modes(s):
        v = s.split(",")
        bad = [m for m in v if m not in MODES]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown mode {bad[0]}; the modes: "
                                             + ",".join(MODES))
        return v

    p.add_argument("--loops", type=csv_ints, metavar="LIST",
                   help="server CPUs to measure (default 1, 2, 4, ... up to half the CPUs)")
    p.add_argument("--modes", type=modes, default=list(MODES), metavar="LIST",
                   help="comma-separated: " + ",".join(MODES))
    p.add_argument("--duration", type=int, default=5, help="seconds of load per run (default 5)")
    p.add_argument("--runs", type=int, default=3, help="rounds of every mode (default 3)")
    p.add_argument("--connections", type=int, default=100, help="wrk -c (default 100)")
    p.add_argument("--quick", action="store_true", help="--duration 2 --runs 1")
    p.add_argument("--out", help="directory for the results (default bench/results/<date>-<host>-http)")
    p.add_argument("--check-args", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.quick:
        a.duration, a.runs = 2, 1
    if a.duration < 1 or a.runs < 1 or a.connections < 1:
        p.error("--duration, --runs and --connections take a number from 1")
    return a


def parse_wrk(text):
    """Requests/s, and the transfer's errors, from wrk's output (None if absent)."""
    m = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    bad = int(errors.group(1)) if errors else 0
    if sock:
        bad += sum(int(x) for x in sock.groups())
    return (float(m.group(1)) if m else None), bad


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, procs, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        if any(p.poll() is not None for p in procs):
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def cpulist(cpus):
    return ",".join(str(c) for c in cpus)


NGINX_CONF = """worker_processes {n};
worker_cpu_affinity auto;
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 60s;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port} reuseport;
        location = / {{ default_type text/plain; return 200 "hello, world\\n"; }}
    }}
}}
"""


NGINX_TLS_CONF = NGINX_CONF.replace(
    "listen 127.0.0.1:{port} reuseport;",
    "listen 127.0.0.1:{port} ssl reuseport;\n"
    "        ssl_certificate {cert};\n        ssl_certificate_key {key};\n"
    "        ssl_protocols TLSv1.3;")


def make_cert(tmp):
    """An ECDSA P-256 certificate for localhost in @tmp: (cert, key), or None."""
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                        "-keyout", key, "-out", cert], capture_output=True)
    return (cert, key) if r.returncode == 0 else None


class Bench:
    def __init__(self, a):
        self.a = a
        self.build = os.environ.get("WEFT_BUILD", os.path.join(ROOT, "build-release"))
        self.http = os.path.join(self.build, "examples", "http_server")
        self.go = os.path.join(self.build, "bench", "peer_go_http")
        self.wrk = os.environ.get("WRK") or shutil.which("wrk")
        self.nginx = os.environ.get("NGINX") or shutil.which("nginx") or (
            "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
        self.cpus = sorted(os.sched_getaffinity(0))
        half = max(1, len(self.cpus) // 2)
        if len(self.cpus) < 2:
            sys.exit("bench/http: needs 2 CPUs or more (the client must not share the "
                     "server's CPU); this process may use 1")
        self.loops = a.loops or [n for n in (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64) if n <= half]
        if max(self.loops) > half:
            sys.exit(f"bench/http: --loops {max(self.loops)} leaves too few CPUs for the "
                     f"client: at most {half} of these {len(self.cpus)} CPUs serve")
        self.client = self.cpus[len(self.cpus) - half:]
        self.out = g.results_dir(ROOT, a.out, "-http")
        why = g.out_dir_problem(self.out)
        if why:
            sys.exit(f"bench/http: {why}")
        self.md = open(os.path.join(self.out, "results.md"), "w")
        self.skip = {}
        if not self.wrk:
            sys.exit("bench/http: wrk is not installed (apt-get install wrk)")
        if not os.path.exists(self.http):
            sys.exit(f"bench/http: {self.http} is missing: build with bench/http, or set "
                     "WEFT_BUILD to a release build")
        if not self.nginx:
            self.skip["nginx"] = "skipped: nginx is not installed"
        if not os.path.exists(self.go):
            self.skip["go"] = "skipped: Go is not installed (apt-get install golang-go)"
        self.tlsdir = tempfile.mkdtemp(prefix="weft-httpbench-")
        self.cert = make_cert(self.tlsdir) if shutil.which("openssl") else None
        tls_modes = [m for m in MODES if "-tls" in m]
        probe = subprocess.run([self.http, "--tls", "/nonexistent", "/nonexistent"],
                               capture_output=True, text=True)
        for m in tls_modes:
            if not self.cert:
                self.skip[m] = "skipped: the openssl command is missing (apt-get install openssl)"
            elif "no TLS" in probe.stderr and m.startswith("weft"):
                self.skip[m] = "skipped: http_server was built without libweft-tls"
            elif m.startswith("nginx") and not self.nginx:
                self.skip[m] = "skipped: nginx is not installed"

    def say(self, line=""):
        print(line, flush=True)
        self.md.write(line + "\n")
        self.md.flush()

    # ---- servers ----------------------------------------------------------------
    def start(self, mode, n, port, tmp):
        """Start @mode on the first @n CPUs; returns its processes (all to stop)."""
        cpus = self.cpus[:n]
        ts = ["taskset", "-c", cpulist(cpus)]
        log = open(os.path.join(tmp, f"{mode}.log"), "w")
        env = dict(os.environ)
        if mode == "weft":
            cmds = [ts + [self.http, "--loops", str(n), "--pin", str(port), "127.0.0.1"]]
        elif mode.startswith("weft-tls"):
            cmds = [ts + [self.http, "--tls", self.cert[0], self.cert[1], "--loops", str(n),
                          "--pin", str(port), "127.0.0.1"]]
        elif mode.startswith("nginx-tls"):
            conf = os.path.join(tmp, "nginx.conf")
            with open(conf, "w") as f:
                f.write(NGINX_TLS_CONF.format(n=n, tmp=tmp, port=port, cert=self.cert[0],
                                              key=self.cert[1]))
            cmds = [ts + [self.nginx, "-p", tmp + "/", "-c", conf]]
        elif mode == "weft-procs":
            cmds = [["taskset", "-c", str(c), self.http, "--loops", "1", str(port), "127.0.0.1"]
                    for c in cpus]
        elif mode == "nginx":
            conf = os.path.join(tmp, "nginx.conf")
            with open(conf, "w") as f:
                f.write(NGINX_CONF.format(n=n, tmp=tmp, port=port))
            cmds = [ts + [self.nginx, "-p", tmp + "/", "-c", conf]]
        else:
            env["GOMAXPROCS"] = str(n)
            cmds = [ts + [self.go, str(port)]]
        procs = []
        for c in cmds:
            procs.append(subprocess.Popen(c, stdout=log, stderr=log, env=env,
                                          start_new_session=True))
            if mode == "weft-procs" and len(procs) == 1 and not wait_port(port, procs):
                break  # the first holds the port before the others join it
        return procs

    def stop(self, procs):
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()

    def one(self, mode, n, rnd):
        """One load of @mode at @n: (requests/s or None, why it failed)."""
        port = free_port()
        with tempfile.TemporaryDirectory() as tmp:
            procs = self.start(mode, n, port, tmp)
            try:
                if not wait_port(port, procs):
                    with open(os.path.join(tmp, f"{mode}.log")) as f:
                        return None, "did not start: " + " ".join(f.read().split())[:200]
                url = f"{'https' if '-tls' in mode else 'http'}://127.0.0.1:{port}/"
                cmd = ["taskset", "-c", cpulist(self.client), self.wrk,
                       f"-t{len(self.client)}", f"-c{self.a.connections}",
                       f"-d{self.a.duration}s", url]
                if mode.endswith("-new"):
                    cmd[-1:-1] = ["-H", "Connection: close"]
                r = subprocess.run(cmd, capture_output=True, text=True,
                                   timeout=self.a.duration + 60)
            finally:
                self.stop(procs)
        with open(os.path.join(self.out, f"wrk-{mode}-{n}-run{rnd}.txt"), "w") as f:
            f.write("$ " + " ".join(cmd) + "\n" + r.stdout + r.stderr)
        rps, bad = parse_wrk(r.stdout)
        if rps is None:
            return None, "wrk failed: " + " ".join((r.stdout + r.stderr).split())[:200]
        if bad:
            return None, f"{bad} errors or non-2xx answers (see wrk-{mode}-{n}-run{rnd}.txt)"
        return rps, None

    # ---- the run -----------------------------------------------------------------
    def run(self):
        a = self.a
        modes = [m for m in a.modes if m not in self.skip]
        self.say(f"# bench/http: {datetime.datetime.now():%Y-%m-%d %H:%M}")
        self.say()
        self.say(f"- machine: {len(self.cpus)} CPUs ({cpu_model()}), "
                 f"Linux {platform.release()}; server on CPUs 0..N-1 of this process's "
                 f"{cpulist(self.cpus)}, wrk -t{len(self.client)} -c{a.connections} "
                 f"-d{a.duration}s on CPUs {cpulist(self.client)}")
        self.say(f"- command: bench/http {' '.join(sys.argv[1:])}")
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        self.say(f"- weft commit: {commit or '?'}; runs per mode and N: {a.runs}, the modes "
                 "taking turns")
        self.say()
        doc = {"argv": sys.argv[1:], "cpus": len(self.cpus), "client_cpus": self.client,
               "cases": []}
        series = {mode: [] for mode in a.modes}
        for n in self.loops:
            res = {mode: {"rps": [], "failed": self.skip.get(mode)} for mode in a.modes}
            for rnd in range(a.runs):
                order = modes[rnd % len(modes):] + modes[:rnd % len(modes)]
                for mode in order:
                    if res[mode]["failed"]:
                        continue
                    sys.stderr.write(f"N={n} run {rnd + 1}/{a.runs}: {mode}\n")
                    rps, why = self.one(mode, n, rnd + 1)
                    if rps is None:
                        res[mode]["failed"] = "failed: " + why
                    else:
                        res[mode]["rps"].append(rps)
            self.say(f"### N = {n} server CPUs")
            self.say()
            self.say("| mode | requests/s (median, min-max) | per server CPU | weft over it |")
            self.say("|---|---|---|---|")
            med = {mode: statistics.median(r["rps"]) for mode, r in res.items()
                   if r["rps"] and not r["failed"]}
            for mode in a.modes:
                r = res[mode]
                if r["failed"] or not r["rps"]:
                    self.say(f"| {mode} | **{r['failed'] or 'no result'}** | | |")
                    continue
                x = med[mode]
                base = BASE.get(mode, "weft")
                ratio = (f"{med[base] / x:.2f}x" if base in med and mode != base
                         and not mode.startswith("weft-tls") else "-")
                self.say(f"| {mode} | {x:,.0f} ({min(r['rps']):,.0f}-{max(r['rps']):,.0f}) | "
                         f"{x / n:,.0f} | {ratio} |")
                series[mode].append((n, x))
            self.say()
            doc["cases"].append({"n": n, "results": res, "median": med})
        self.goals(doc)
        with open(os.path.join(self.out, "plot-http.svg"), "w") as f:
            f.write(g.svg_plot("HTTP requests/s against server CPUs (wrk on the other CPUs)",
                               "requests/s", series))
        self.say("Plot: plot-http.svg; wrk's own output: wrk-MODE-N-runR.txt.")
        self.say()
        self.say("The answers differ a little in size: weft sends Content-Type, Content-Length "
                 "and Connection headers; nginx adds Server and Date; Go adds Date. Every "
                 "server answers GET / with the 13-byte body 'hello, world\\n' over keep-alive "
                 "connections.")
        if any("-tls" in m for m in modes):
            self.say("HTTPS: the same answers; the *-tls-new modes close after each answer "
                     "(wrk -H 'Connection: close'), so each request is one full TLS 1.3 "
                     "handshake (no resumption) and requests/s is handshakes/s.")
        g.write_json(os.path.join(self.out, "results.json"), doc)
        shutil.rmtree(self.tlsdir, ignore_errors=True)
        self.md.close()
        sys.stderr.write(f"results: {self.out}\n")

    def goals(self, doc):
        """The ratios issue 14 sets goals on, as measured here."""
        lines = []
        by_n = {c["n"]: c["median"] for c in doc["cases"]}
        for n, med in by_n.items():
            w = med.get("weft")
            if not w:
                continue
            parts = [f"weft {w:,.0f}/s"]
            for other in ("weft-procs", "nginx", "go"):
                if med.get(other):
                    parts.append(f"{w / med[other]:.2f}x {other}")
            lines.append(f"- N = {n}: " + ", ".join(parts))
        for n, med in by_n.items():
            for w, other, what in (("weft-tls", "nginx-tls", "HTTPS keep-alive"),
                                   ("weft-tls-new", "nginx-tls-new", "TLS handshakes")):
                if med.get(w) and med.get(other):
                    lines.append(f"- N = {n}, {what}: weft {med[w]:,.0f}/s, "
                                 f"{med[w] / med[other]:.2f}x nginx")
        if 1 in by_n and by_n[1].get("weft"):
            for n in by_n:
                if n > 1 and by_n[n].get("weft"):
                    per = by_n[n]["weft"] / n / by_n[1]["weft"]
                    lines.append(f"- weft requests/s per loop at N = {n}: {per:.0%} of N = 1's")
        if lines:
            self.say("## Ratios measured in this run")
            self.say()
            for line in lines:
                self.say(line)
            self.say()


def main():
    a = parse_args(sys.argv[1:])
    if a.check_args:
        return
    Bench(a).run()


if __name__ == "__main__":
    main()
