# SPDX-License-Identifier: MIT
"""The parts of bench/gather that do not run anything, kept apart so that
tests/test_harness.py can check them: argument parsing, result-line and
strace parsing, statistics, and the writers of the JSON, markdown and SVG
results. bench/gather.py runs the benchmark with them; tools/syscount
counts system calls with them."""

import argparse
import html
import json
import math
import re
import statistics

# ---- arguments -----------------------------------------------------------------

WORKLOADS = ("sleep", "read", "read-direct", "write", "socket", "mixed")
MODES = ("weft", "weft-4k", "weft-sqpoll", "weft-epoll", "weft-pool", "threads", "sequential",
         "epoll", "go", "asyncio", "uring-timeouts")


def _csv(allowed, what):
    def parse(s):
        items = [x for x in s.split(",") if x]
        bad = [x for x in items if x not in allowed]
        if bad or not items:
            raise argparse.ArgumentTypeError(
                f"unknown {what} '{','.join(bad) or s}' (choose from {', '.join(allowed)})")
        return items
    return parse


def _positive(s):
    try:
        v = int(s)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got '{s}'")
    return v


def _ns(s):
    try:
        v = [int(x) for x in s.split(",") if x]
    except ValueError:
        v = []
    if not v or any(x < 1 for x in v):
        raise argparse.ArgumentTypeError(f"expected N values like 10,100,1000, got '{s}'")
    return v


def _seconds(s):
    try:
        v = float(s)
    except ValueError:
        v = 0
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got '{s}'")
    return v


def results_dir(root, out, suffix=""):
    """@out, or bench/results/<date>-<time>-<host><suffix> under @root when it is None."""
    import datetime
    import os
    import platform
    if out:
        return out
    host = platform.node().split(".")[0] or "host"
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S")
    return os.path.join(root, "bench", "results", f"{stamp}-{host}{suffix}")


def out_dir_problem(path):
    """None when results can be written under @path (made if missing), else
    one sentence saying why not."""
    import os
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".weft-write-test")
        with open(probe, "w"):
            pass
        os.unlink(probe)
    except OSError as e:
        return f"cannot write results to {path}: {e.strerror}"
    return None


def parse_args(argv):
    """bench/gather's command line. Raises SystemExit(2) with a message on
    bad input, as argparse does."""
    p = argparse.ArgumentParser(
        prog="bench/gather",
        description="N tasks gathered, run by weft fibers, a thread per task, sequentially, "
        "and by peers (C epoll, Go, Python asyncio), side by side.")
    p.add_argument("--quick", action="store_true",
                   help="small N, few runs: ends in a couple of minutes (what CI runs)")
    p.add_argument("--out", metavar="DIR",
                   help="where results go (default bench/results/<date>-<host>)")
    p.add_argument("--workloads", type=_csv(WORKLOADS, "workload"), default=list(WORKLOADS),
                   metavar="LIST", help="comma-separated: " + ",".join(WORKLOADS))
    p.add_argument("--modes", type=_csv(MODES, "mode"), default=list(MODES), metavar="LIST",
                   help="comma-separated: " + ",".join(MODES))
    p.add_argument("--n", type=_ns, metavar="LIST",
                   help="N values for every workload (default: per workload)")
    p.add_argument("--runs", type=_positive, help="measured runs per mode and N (default 3)")
    p.add_argument("--no-strace", action="store_true", help="skip the syscall counts")
    p.add_argument("--no-install", action="store_true",
                   help="never apt-get install missing packages (the default as root: "
                   "installs them, Go and Python included)")
    p.add_argument("--timeout", type=_positive, default=300,
                   help="seconds before one run counts as failed (default 300)")
    p.add_argument("--budget", type=_seconds, default=None, metavar="SECONDS",
                   help="skip a mode at an N where this run's figures at the previous N "
                   "predict a run longer than this (default 30, --quick 10)")
    a = p.parse_args(argv)
    if a.runs is None:
        a.runs = 3
    if a.budget is None:
        a.budget = 10.0 if a.quick else 30.0
    if a.out:
        why = out_dir_problem(a.out)
        if why:
            p.error(why)
    return a


# ---- what the figures of this run predict -------------------------------------------

def predict_wall(prev_n, prev_wall, prev_d_s, n, d_s):
    """The wall time of a run of @n tasks, each waiting @d_s seconds, from
    this run's median @prev_wall at @prev_n tasks that waited @prev_d_s: the
    part above the wait grows with N (each task costs its stack, its set-up,
    its share of the loop), the wait itself does not."""
    return d_s + max(prev_wall - prev_d_s, 0.0) * n / prev_n


# The IORING_SETUP_* flags, by bit (linux/io_uring.h).
RING_FLAGS = ("IOPOLL", "SQPOLL", "SQ_AFF", "CQSIZE", "CLAMP", "ATTACH_WQ", "R_DISABLED",
              "SUBMIT_ALL", "COOP_TASKRUN", "TASKRUN_FLAG", "SQE128", "CQE32",
              "SINGLE_ISSUER", "DEFER_TASKRUN", "NO_MMAP", "REGISTERED_FD_ONLY", "NO_SQARRAY")


def ring_flags(value):
    """'SQPOLL|SUBMIT_ALL' for 0x82: the names of the set-up flags a ring got."""
    try:
        v = int(value, 0) if isinstance(value, str) else int(value)
    except ValueError:
        return "?"
    names = [name for bit, name in enumerate(RING_FLAGS) if v & (1 << bit)]
    rest = v & ~((1 << len(RING_FLAGS)) - 1)
    if rest:
        names.append(hex(rest))
    return "|".join(names) or "none"


# ---- what the programs print ---------------------------------------------------------

_FIELD = re.compile(r"(\w+)=(\S*)")


def parse_result_line(text):
    """The last result line (bench=...) in @text as a dict of strings, or None."""
    found = None
    for line in text.splitlines():
        if line.startswith("bench="):
            found = dict(_FIELD.findall(line))
    return found


def num(d, key, default=None):
    """Field @key of a result dict as a float, or @default."""
    try:
        return float(d[key])
    except (KeyError, TypeError, ValueError):
        return default


_STRACE_ROW = re.compile(
    r"^\s*([\d.]+)\s+([\d.]+)\s+(\d+)\s+(\d+)\s+(?:(\d+)\s+)?([\w?]+)\s*$")


def parse_strace_c(text):
    """strace -c (-f) output -> {"calls": {name: n}, "errors": {name: n},
    "seconds": {name: s}, "total": n}. Tolerates the "strace: Process ..."
    lines and a missing errors column."""
    calls, errors, seconds = {}, {}, {}
    total = None
    for line in text.splitlines():
        m = _STRACE_ROW.match(line)
        if not m:
            continue
        name = m.group(6)
        n = int(m.group(4))
        if name == "total":
            total = n
            continue
        calls[name] = calls.get(name, 0) + n
        errors[name] = errors.get(name, 0) + int(m.group(5) or 0)
        seconds[name] = seconds.get(name, 0.0) + float(m.group(2))
    if total is None:
        total = sum(calls.values())
    return {"calls": calls, "errors": errors, "seconds": seconds, "total": total}


def syscall_table(counts, tasks, ops, top=12, baseline=None):
    """Lines of a text table: the most frequent system calls, per task and per
    operation. @baseline (another parse_strace_c result, of the same program
    with no tasks) is subtracted first when given."""
    calls = dict(counts["calls"])
    if baseline:
        for k, v in baseline["calls"].items():
            calls[k] = calls.get(k, 0) - v
    total = sum(calls.values())
    rows = sorted(calls.items(), key=lambda kv: -kv[1])[:top]
    out = [f"{'syscall':<22}{'calls':>10}{'per task':>12}{'per op':>12}"]
    for name, n in rows:
        if n == 0:
            continue
        out.append(f"{name:<22}{n:>10}{n / max(tasks, 1):>12.4g}{n / max(ops, 1):>12.4g}")
    out.append(f"{'all':<22}{total:>10}{total / max(tasks, 1):>12.4g}"
               f"{total / max(ops, 1):>12.4g}")
    return out


# ---- statistics -----------------------------------------------------------------------

def summary(values):
    """median, min, max of the numbers in @values (None when empty)."""
    v = [x for x in values if x is not None]
    if not v:
        return None
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}


def fmt_s(x):
    if x is None:
        return "-"
    if x >= 100:
        return f"{x:.0f} s"
    if x >= 1:
        return f"{x:.2f} s"
    if x >= 0.001:
        return f"{x * 1000:.1f} ms"
    return f"{x * 1e6:.0f} us"


def fmt_mib(kb):
    return "-" if kb is None else f"{kb / 1024:.1f} MiB"


def fmt_g(x, digits=3):
    return "-" if x is None else f"{x:.{digits}g}"


# ---- results ---------------------------------------------------------------------------

COLUMNS = ("mode", "wall (median, min-max)", "in-process", "CPU user+sys", "peak RSS",
           "syscalls/op", "io_uring_enter/op", "wall / weft's", "CPUs")


def mode_cpus(mode, ncpu):
    """How many CPUs @mode runs its tasks on, on a machine with @ncpu: one loop or
    thread, or every CPU (weft-pool's loops, Go's GOMAXPROCS, the threads)."""
    if mode in ("weft-pool", "go", "threads"):
        return str(ncpu)
    return "1 + SQ thread" if mode == "weft-sqpoll" else "1"


def row_cells(r, weft_wall):
    """Markdown cells of one mode's result @r (a dict from bench/gather.py)."""
    if r.get("failed"):
        return [r["mode"], f"**{r['failed']}**"] + [""] * (len(COLUMNS) - 3) + [
            r.get("cpus", "-")]
    w = r["wall"]
    ratio = "-"
    if weft_wall and w and r["mode"] not in ("weft",):
        ratio = f"{w['median'] / weft_wall:.2f}x"
    return [
        r["mode"],
        f"{fmt_s(w['median'])} ({fmt_s(w['min'])}-{fmt_s(w['max'])})" if w else "-",
        fmt_s(r.get("inproc")),
        fmt_s(r.get("cpu")),
        fmt_mib(r.get("rss_kb")),
        fmt_g(r.get("syscalls_per_op")),
        fmt_g(r.get("enters_per_op")),
        ratio,
        r.get("cpus", "-"),
    ]


def markdown_table(results):
    """One case's table: @results is a list of per-mode dicts."""
    weft = next((r for r in results if r["mode"] == "weft" and not r.get("failed")), None)
    weft_wall = weft["wall"]["median"] if weft and weft.get("wall") else None
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in results:
        lines.append("| " + " | ".join(row_cells(r, weft_wall)) + " |")
    return lines


def write_json(path, doc):
    with open(path, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")


def hyperfine_merge(command, runs):
    """A hyperfine-format JSON document for one command from single-run
    hyperfine results (@runs: list of their "results"[0] dicts), so that the
    interleaved runs read like one hyperfine run of that command."""
    times = [t for r in runs for t in r.get("times", [])]
    codes = [c for r in runs for c in r.get("exit_codes", [])]
    user = [r["user"] for r in runs if "user" in r]
    system = [r["system"] for r in runs if "system" in r]
    res = {"command": command, "times": times, "exit_codes": codes}
    if times:
        res.update(mean=statistics.mean(times), median=statistics.median(times),
                   min=min(times), max=max(times),
                   stddev=statistics.stdev(times) if len(times) > 1 else 0.0,
                   user=statistics.mean(user) if user else None,
                   system=statistics.mean(system) if system else None)
    return {"results": [res]}


# ---- plots -----------------------------------------------------------------------------

PALETTE = {"weft": "#d62728", "weft-4k": "#ff7f0e", "weft-sqpoll": "#e377c2",
           "weft-epoll": "#bcbd22", "weft-pool": "#8b0000",
           "threads": "#1f77b4", "sequential": "#7f7f7f", "epoll": "#2ca02c",
           "go": "#17becf", "asyncio": "#9467bd", "uring-timeouts": "#8c564b"}


def _ticks(lo, hi):
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    if a == b:
        b += 1
    return a, b


def _label(v):
    if v >= 1e6:
        return f"{v / 1e6:g}M"
    if v >= 1e3:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def svg_plot(title, ylabel, series, width=640, height=400):
    """A log-log line chart as SVG text. @series: {mode: [(n, value), ...]};
    points with a value <= 0 or None are left out (a failed mode has no
    point there; the table names its error)."""
    pts = {m: [(x, y) for x, y in s if y is not None and y > 0 and x > 0]
           for m, s in series.items()}
    pts = {m: s for m, s in pts.items() if s}
    left, right, top, bottom = 70, 130, 30, 45
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="13">'
           f'{html.escape(title)}</text>']
    if not pts:
        out.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no data</text>')
        out.append("</svg>")
        return "\n".join(out) + "\n"
    xs = [x for s in pts.values() for x, _ in s]
    ys = [y for s in pts.values() for _, y in s]
    xa, xb = _ticks(min(xs), max(xs))
    ya, yb = _ticks(min(ys), max(ys))
    pw, ph = width - left - right, height - top - bottom

    def px(x):
        return left + (math.log10(x) - xa) / (xb - xa) * pw

    def py(y):
        return top + ph - (math.log10(y) - ya) / (yb - ya) * ph

    for e in range(xa, xb + 1):
        x = px(10 ** e)
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + ph}" stroke="#ddd"/>')
        out.append(f'<text x="{x:.1f}" y="{top + ph + 15}" text-anchor="middle">'
                   f'{_label(10 ** e)}</text>')
    for e in range(ya, yb + 1):
        y = py(10 ** e)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 5}" y="{y + 4:.1f}" text-anchor="end">{10.0 ** e:g}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" '
               f'stroke="#333"/>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 8}" text-anchor="middle">'
               f'N tasks (log)</text>')
    out.append(f'<text x="14" y="{top + ph / 2}" text-anchor="middle" '
               f'transform="rotate(-90 14 {top + ph / 2})">{html.escape(ylabel)} (log)</text>')
    for k, (m, s) in enumerate(sorted(pts.items())):
        color = PALETTE.get(m, "#000")
        s = sorted(s)
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in s)
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y in s:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}">'
                       f'<title>{html.escape(m)} N={x}: {y:.4g}</title></circle>')
        ly = top + 10 + 16 * k
        out.append(f'<line x1="{left + pw + 10}" y1="{ly}" x2="{left + pw + 30}" y2="{ly}" '
                   f'stroke="{color}" stroke-width="2"/>')
        out.append(f'<text x="{left + pw + 35}" y="{ly + 4}">{html.escape(m)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
