#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The shape of src/, as STYLE.md and DESIGN.md state it: no file over 800
lines, no function over 70 lines, and no circle in the graph of modules
that the #include lines of src/ draw (a module is foo.c with foo.h; a file
that includes bar.h depends on module bar). With --graph, print the
modules layer by layer, bottom first (what README and src/base.h draw).

Usage: check_shape.py [--graph] [SRC_DIR]
Exit status: 0 when every rule holds, 1 otherwise (each breach on a line).
"""
import os
import re
import sys

MAX_FILE = 800
MAX_FUNC = 70

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
# A function definition: a line starting at column 0 with a name and '(',
# not ending in ';', followed by a line that is exactly "{".
FUNC = re.compile(r"^([A-Za-z_][^;{}()]*?\b([A-Za-z_][A-Za-z0-9_]*)\s*\([^;]*)$")


def module_of(path):
    base = os.path.basename(path)
    return os.path.splitext(base)[0]


def functions(text):
    """(name, first line, length in lines) of each function definition."""
    lines = text.split("\n")
    out = []
    i = 0
    while i < len(lines):
        if lines[i] == "{" and i > 0:
            # Walk back to the line holding the name.
            j = i - 1
            while j > 0 and not FUNC.match(lines[j]) and lines[j].startswith(("\t", " ")):
                j -= 1
            m = FUNC.match(lines[j])
            if m and not lines[j].startswith(("struct", "union", "enum", "typedef", "static const")):
                depth = 0
                k = i
                while k < len(lines):
                    depth += lines[k].count("{") - lines[k].count("}")
                    if depth == 0:
                        break
                    k += 1
                out.append((m.group(2), j + 1, k - j + 1))
                i = k
        i += 1
    return out


def graph(src):
    files = sorted(f for f in os.listdir(src) if f.endswith((".c", ".h")))
    mods = {module_of(f) for f in files}
    deps = {m: set() for m in mods}
    for f in files:
        with open(os.path.join(src, f)) as fh:
            text = fh.read()
        me = module_of(f)
        for inc in INCLUDE.findall(text):
            dep = module_of(inc)
            if dep in mods and dep != me and "/" not in inc:
                deps[me].add(dep)
    return deps


def layers(deps):
    """Modules by layer (0: depend on nothing of src/), or None with a cycle."""
    level = {}
    left = set(deps)
    while left:
        ready = [m for m in left if all(d in level for d in deps[m])]
        if not ready:
            return None, left
        for m in ready:
            level[m] = 1 + max((level[d] for d in deps[m]), default=-1)
        left -= set(ready)
    by = {}
    for m, lv in level.items():
        by.setdefault(lv, []).append(m)
    return [sorted(by[k]) for k in sorted(by)], set()


def cycle_in(deps, left):
    """One cycle among the modules of @left, as a list."""
    start = sorted(left)[0]
    path, seen = [start], {start}
    while True:
        nxt = sorted(d for d in deps[path[-1]] if d in left)[0]
        if nxt in seen:
            return path[path.index(nxt):] + [nxt]
        path.append(nxt)
        seen.add(nxt)


def main(argv):
    show = "--graph" in argv
    args = [a for a in argv if a != "--graph"]
    src = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    bad = []
    for f in sorted(os.listdir(src)):
        if not f.endswith((".c", ".h")):
            continue
        with open(os.path.join(src, f)) as fh:
            text = fh.read()
        n = text.count("\n")
        if n > MAX_FILE:
            bad.append(f"src/{f}: {n} lines, over {MAX_FILE}")
        for name, line, length in functions(text):
            if length > MAX_FUNC:
                bad.append(f"src/{f}:{line}: {name}() is {length} lines, over {MAX_FUNC}")
    deps = graph(src)
    lv, left = layers(deps)
    if lv is None:
        bad.append("src/: the modules include each other in a circle: " +
                   " -> ".join(cycle_in(deps, left)))
    elif show:
        for i, ms in enumerate(lv):
            print(f"{i}: {' '.join(ms)}")
    for b in bad:
        print(b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
