#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The testable parts of bench/gather and tools/syscount: argument parsing,
the result-line and strace parsers (on captured output), the statistics,
and the result writers (markdown, hyperfine JSON, SVG)."""
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET
from contextlib import redirect_stderr

SRC = os.environ.get("WEFT_SRC", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(SRC, "bench"))
import gatherlib as g  # noqa: E402
import httpbench as bench_http  # noqa: E402

DATA = os.path.join(SRC, "tests", "data")


def bad_args(argv):
    err = io.StringIO()
    with redirect_stderr(err), unittest.TestCase().assertRaises(SystemExit) as cm:
        g.parse_args(argv)
    return cm.exception.code, err.getvalue()


class Args(unittest.TestCase):
    def test_defaults(self):
        a = g.parse_args([])
        self.assertFalse(a.quick)
        self.assertEqual(a.runs, 3)
        self.assertEqual(a.workloads, list(g.WORKLOADS))
        self.assertEqual(a.modes, list(g.MODES))
        self.assertIsNone(a.n)

    def test_lists_and_numbers(self):
        a = g.parse_args(["--quick", "--workloads", "sleep,socket", "--modes", "weft,go",
                          "--n", "10,1000", "--runs", "5", "--out", "/tmp/x", "--no-strace"])
        self.assertTrue(a.quick and a.no_strace)
        self.assertEqual(a.workloads, ["sleep", "socket"])
        self.assertEqual(a.modes, ["weft", "go"])
        self.assertEqual(a.n, [10, 1000])
        self.assertEqual((a.runs, a.out), (5, "/tmp/x"))

    def test_bad_input_is_refused_with_a_message(self):
        for argv, words in [(["--modes", "weft,fibers"], "unknown mode 'fibers'"),
                            (["--workloads", "disk"], "unknown workload 'disk'"),
                            (["--n", "10,x"], "expected N values"),
                            (["--n", "0"], "expected N values"),
                            (["--runs", "0"], "whole number >= 1"),
                            (["--runs"], "expected one argument"),
                            (["--frobnicate"], "unrecognized arguments"),
                            (["--budget", "0"], "seconds > 0"),
                            (["--out", "/proc/nope"], "cannot write results to /proc/nope")]:
            code, err = bad_args(argv)
            self.assertEqual(code, 2, argv)
            self.assertIn(words, err, argv)


class Predictions(unittest.TestCase):
    def test_budget_defaults(self):
        self.assertEqual(g.parse_args([]).budget, 30.0)
        self.assertEqual(g.parse_args(["--quick"]).budget, 10.0)
        self.assertEqual(g.parse_args(["--budget", "2.5"]).budget, 2.5)

    def test_predict_wall_scales_the_part_above_the_wait(self):
        # 3 s at 100k tasks of 1 s: 2 s of cost, x10 tasks, plus the 1 s wait.
        self.assertAlmostEqual(g.predict_wall(100000, 3.0, 1.0, 1000000, 1.0), 21.0)
        # From a 100 ms case to a 1 s case: only the cost above the wait scales.
        self.assertAlmostEqual(g.predict_wall(10000, 0.3, 0.1, 100000, 1.0), 1.0 + 0.2 * 10)
        self.assertAlmostEqual(g.predict_wall(10, 0.001, 0, 100, 0), 0.01)

    def test_ring_flags_are_named(self):
        self.assertEqual(g.ring_flags("0x3080"), "SUBMIT_ALL|SINGLE_ISSUER|DEFER_TASKRUN")
        self.assertEqual(g.ring_flags(0x182), "SQPOLL|SUBMIT_ALL|COOP_TASKRUN")
        self.assertEqual(g.ring_flags(0), "none")
        self.assertEqual(g.ring_flags("0x100000"), "0x100000")
        self.assertEqual(g.ring_flags("junk"), "?")

    def test_out_dir(self):
        with tempfile.TemporaryDirectory() as d:
            self.assertIsNone(g.out_dir_problem(os.path.join(d, "a", "b")))
            self.assertTrue(os.path.isdir(os.path.join(d, "a", "b")))
            f = os.path.join(d, "file")
            open(f, "w").close()
            self.assertIn("cannot write results to", g.out_dir_problem(os.path.join(f, "x")))


class Parsers(unittest.TestCase):
    def test_result_line(self):
        out = ("echo_server: noise\nbench=gather workload=read mode=weft n=1000 ops=1000 "
               "status=ok done=1000 wall_s=0.0289 user_s=0.010 sys_s=0.012 maxrss_kb=70548 "
               "enters=1\nother line\n")
        d = g.parse_result_line(out)
        self.assertEqual(d["mode"], "weft")
        self.assertEqual(g.num(d, "maxrss_kb"), 70548)
        self.assertEqual(g.num(d, "missing", -1), -1)
        self.assertIsNone(g.parse_result_line("no result here\n"))
        # The last of several lines wins; a failed run keeps its errno name.
        d = g.parse_result_line("bench=x status=ok\nbench=x status=EAGAIN done=32748\n")
        self.assertEqual((d["status"], d["done"]), ("EAGAIN", "32748"))

    def test_strace_of_a_threaded_run(self):
        with open(os.path.join(DATA, "strace-c-threads.txt")) as f:
            c = g.parse_strace_c(f.read())
        self.assertEqual(c["calls"]["clock_nanosleep"], 20)
        self.assertEqual(c["calls"]["clone3"], 20)
        self.assertEqual(c["errors"]["openat"], 11)
        self.assertEqual(c["errors"]["clone3"], 0)
        self.assertEqual(c["total"], 318)
        self.assertEqual(sum(c["calls"].values()), 318)
        self.assertAlmostEqual(c["seconds"]["clock_nanosleep"], 0.075367)

    def test_strace_noise_and_missing_total(self):
        text = ("strace: Process 123 attached\n"
                "% time     seconds  usecs/call     calls    errors syscall\n"
                "------ ----------- ----------- --------- --------- ----------------\n"
                " 60.00    0.000060          30         2           io_uring_enter\n"
                " 40.00    0.000040          40         1         1 openat\n")
        c = g.parse_strace_c(text)
        self.assertEqual(c["calls"], {"io_uring_enter": 2, "openat": 1})
        self.assertEqual(c["total"], 3)
        self.assertEqual(g.parse_strace_c("")["total"], 0)

    def test_syscall_table_subtracts_the_baseline(self):
        full = {"calls": {"io_uring_enter": 12, "mmap": 30}, "total": 42}
        zero = {"calls": {"io_uring_enter": 2, "mmap": 30}, "total": 32}
        rows = g.syscall_table(full, tasks=100, ops=200, baseline=zero)
        self.assertTrue(rows[0].startswith("syscall"))
        self.assertIn("io_uring_enter", rows[1])
        self.assertEqual(rows[1].split()[1:], ["10", "0.1", "0.05"])
        self.assertFalse(any(r.startswith("mmap") for r in rows))  # nothing left of it
        self.assertEqual(rows[-1].split()[1:], ["10", "0.1", "0.05"])


class Writers(unittest.TestCase):
    def rows(self):
        return [
            {"mode": "weft", "wall": {"median": 0.1, "min": 0.09, "max": 0.2}, "inproc": 0.08,
             "cpu": 0.05, "rss_kb": 2048, "syscalls_per_op": 0.01, "enters_per_op": 0.005},
            {"mode": "threads", "wall": {"median": 0.5, "min": 0.4, "max": 0.6}, "cpu": 0.7,
             "rss_kb": 4096, "syscalls_per_op": 11.4},
            {"mode": "go", "failed": "skipped: Go is not installed (sudo apt-get install "
             "golang-go)"},
        ]

    def test_summary(self):
        self.assertEqual(g.summary([3, 1, 2, None]), {"median": 2, "min": 1, "max": 3, "n": 3})
        self.assertIsNone(g.summary([None]))

    def test_markdown_table(self):
        lines = g.markdown_table(self.rows())
        self.assertEqual(len(lines), 5)
        cells = [c.strip() for c in lines[2].strip("|").split("|")]
        self.assertEqual(len(cells), len(g.COLUMNS))
        self.assertEqual(cells[:2], ["weft", "100.0 ms (90.0 ms-200.0 ms)"])
        self.assertEqual(cells[4], "2.0 MiB")
        threads = [c.strip() for c in lines[3].strip("|").split("|")]
        self.assertEqual(threads[-2], "5.00x")
        self.assertEqual(threads[-1], "-")  # no CPU count given
        self.assertEqual(g.mode_cpus("weft", 16), "1")
        self.assertEqual(g.mode_cpus("weft-pool", 16), "16")
        self.assertEqual(g.mode_cpus("go", 4), "4")
        self.assertEqual(threads[5], "11.4")
        self.assertIn("**skipped: Go is not installed", lines[4])
        self.assertEqual(lines[4].count("|"), len(g.COLUMNS) + 1)

    def test_hyperfine_merge(self):
        runs = [{"times": [0.2], "user": 0.1, "system": 0.05, "exit_codes": [0]},
                {"times": [0.4], "user": 0.3, "system": 0.15, "exit_codes": [0]},
                {"times": [0.3], "user": 0.2, "system": 0.1, "exit_codes": [0]}]
        doc = g.hyperfine_merge("bench_tasks sleep weft 10", runs)
        r = doc["results"][0]
        self.assertEqual(r["times"], [0.2, 0.4, 0.3])
        self.assertAlmostEqual(r["median"], 0.3)
        self.assertAlmostEqual(r["mean"], 0.3)
        self.assertEqual((r["min"], r["max"]), (0.2, 0.4))
        self.assertAlmostEqual(r["user"], 0.2)
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "h.json")
            g.write_json(p, doc)
            with open(p) as f:
                self.assertEqual(json.load(f), doc)

    def test_svg_plot(self):
        svg = g.svg_plot("sleep: wall", "wall, s",
                         {"weft": [(10, 0.1), (1000, 0.12), (100, None)],
                          "threads": [(10, 0.1), (1000, 1.3)], "go": [(10, 0)]})
        root = ET.fromstring(svg)  # well-formed XML
        ns = "{http://www.w3.org/2000/svg}"
        lines = root.findall(f"{ns}polyline")
        self.assertEqual(len(lines), 2)  # go had no usable point
        self.assertEqual(len(root.findall(f"{ns}circle")), 4)
        self.assertIn("threads", svg)
        empty = ET.fromstring(g.svg_plot("t", "y", {}))
        self.assertIn("no data", "".join(empty.itertext()))


class Syscount(unittest.TestCase):
    def test_from_a_saved_strace_output(self):
        tool = os.path.join(SRC, "tools", "syscount")
        r = subprocess.run([sys.executable, tool, "--from",
                            os.path.join(DATA, "strace-c-threads.txt"), "--tasks", "20",
                            "--ops", "40", "--top", "3"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0], "20 tasks, 40 operations")
        self.assertEqual(lines[2].split(), ["rt_sigprocmask", "81", "4.05", "2.025"])
        self.assertEqual(lines[-1].split(), ["all", "318", "15.9", "7.95"])

    def test_needs_a_task_count(self):
        tool = os.path.join(SRC, "tools", "syscount")
        r = subprocess.run([sys.executable, tool, "--from",
                            os.path.join(DATA, "strace-c-threads.txt")],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--tasks N", r.stderr)
        r = subprocess.run([sys.executable, tool, "--from", "/nonexistent"],
                           capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("No such file", r.stderr)

    def test_bad_commands_fail_before_running(self):
        tool = os.path.join(SRC, "tools", "syscount")

        def run(*args):
            return subprocess.run([sys.executable, tool] + list(args), capture_output=True,
                                  text=True, timeout=60)
        r = run("--tasks", "2", "--", "/no/such/cmd")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("/no/such/cmd: no such command", r.stderr)
        # A program that does not count its own tasks: asked before it runs.
        r = run("--", "sh", "-c", "echo ran >&2")
        self.assertEqual(r.returncode, 2)
        self.assertIn("Give --tasks N", r.stderr)
        self.assertNotIn("ran", r.stderr)
        r = run("--tasks", "0", "--", "true")
        self.assertEqual(r.returncode, 2)
        self.assertIn("whole number >= 1, got '0'", r.stderr)
        if shutil.which("strace"):
            r = run("--tasks", "1", "--", "false")
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("exited with status 1", r.stderr)


class HttpBench(unittest.TestCase):
    """bench/http's parts that run nothing: its arguments and wrk's output."""

    WRK = """Running 2s test @ http://127.0.0.1:40000/
  1 threads and 100 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   798.12us  120.33us   2.90ms   80.12%
  249932 requests in 2.00s, 25.26MB read
Requests/sec: 124964.12
Transfer/sec:     12.63MB
"""

    def test_wrk_output(self):
        self.assertEqual(bench_http.parse_wrk(self.WRK), (124964.12, 0))
        bad = self.WRK.replace("Requests/sec", "  Non-2xx or 3xx responses: 7\nRequests/sec")
        self.assertEqual(bench_http.parse_wrk(bad)[1], 7)
        sock = self.WRK + "  Socket errors: connect 1, read 2, write 0, timeout 3\n"
        self.assertEqual(bench_http.parse_wrk(sock)[1], 6)
        self.assertEqual(bench_http.parse_wrk("unable to connect"), (None, 0))

    def test_arguments(self):
        a = bench_http.parse_args(["--loops", "1,2,4", "--modes", "weft,go", "--quick"])
        self.assertEqual((a.loops, a.modes, a.duration, a.runs), ([1, 2, 4], ["weft", "go"], 2, 1))
        for argv in (["--loops", "0"], ["--loops", "two"], ["--modes", "apache"],
                     ["--runs", "0"]):
            err = io.StringIO()
            with redirect_stderr(err), self.assertRaises(SystemExit) as cm:
                bench_http.parse_args(argv)
            self.assertEqual(cm.exception.code, 2, argv)
            self.assertIn("bench/http", err.getvalue())


class Docs(unittest.TestCase):
    """README and the other documents: every link resolves to a committed
    file, and every place that states the version agrees."""

    DOCS = ("README.md", "CHANGELOG.md", os.path.join("bench", "README.md"),
            os.path.join("bench", "results", "README.md"))

    def test_links_resolve_to_committed_files(self):
        import re
        tracked = None
        r = subprocess.run(["git", "-C", SRC, "ls-files"], capture_output=True, text=True)
        if r.returncode == 0 and r.stdout:
            tracked = set(r.stdout.split())
        for doc in self.DOCS:
            path = os.path.join(SRC, doc)
            with open(path) as f:
                text = f.read()
            for target in re.findall(r"\]\(([^)\s]+)\)", text):
                if re.match(r"[a-z]+:", target) or target.startswith("#"):
                    continue
                rel = os.path.normpath(os.path.join(os.path.dirname(doc), target.split("#")[0]))
                self.assertTrue(os.path.exists(os.path.join(SRC, rel)),
                                f"{doc} links to {target}, which does not exist")
                if tracked is not None and not os.path.isdir(os.path.join(SRC, rel)):
                    self.assertTrue(rel in tracked, f"{doc} links to {target}, which is not committed")

    def test_version_agrees_everywhere(self):
        import re
        with open(os.path.join(SRC, "meson.build")) as f:
            meson = re.search(r"version\s*:\s*'([0-9.]+)'", f.read()).group(1)
        with open(os.path.join(SRC, "include", "weft.h")) as f:
            h = f.read()
        header = ".".join(re.search(rf"#define WEFT_VERSION_{k}\s+(\d+)", h).group(1)
                          for k in ("MAJOR", "MINOR", "PATCH"))
        with open(os.path.join(SRC, "CHANGELOG.md")) as f:
            released = re.findall(r"^## ([0-9]+\.[0-9]+\.[0-9]+)\b", f.read(), re.M)
        with open(os.path.join(SRC, "README.md")) as f:
            readme = re.search(r"Status: \*\*([0-9.]+)\*\*", f.read()).group(1)
        self.assertEqual(header, meson)
        self.assertEqual(released[0], meson, "CHANGELOG's newest release")
        self.assertEqual(readme, meson)


if __name__ == "__main__":
    unittest.main(verbosity=1)
