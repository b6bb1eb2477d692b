#!/usr/bin/env python3
"""Report C source files over the size limits and functions over 100 lines.

Usage: contrib/check-size.py [DIR...]   (default: the source directories, tests aside)
Files: over 1000 lines is an error, over 800 a warning (the limit for new files).
Functions: a body over 100 lines (from the line of its name to its closing brace)
is an error. Exit status 1 when there is an error.
A function is a line at column 0 that names one ("type name(" ...) followed by a
"{" alone at column 0, ending at the next "}" at column 0: the kernel-like style
clang-format gives this tree.
"""
import os
import re
import sys

DIRS = ["lib", "ipam", "subnet", "backends", "daemon", "docker-opts", "ctl", "cni", "bench"]
FILE_MAX, FILE_WARN, FUNC_MAX = 1000, 800, 100
NAME = re.compile(r"^[A-Za-z_][^;{}()]*?\b([A-Za-z_]\w*)\s*\(")


def functions(lines):
    start = name = None
    in_body = False
    for i, line in enumerate(lines):
        if in_body:
            if line.startswith("}"):
                yield name, start + 1, i - start + 1
                start = name = None
                in_body = False
            continue
        m = NAME.match(line)
        if m and not line.rstrip().endswith(";"):
            start, name = i, m.group(1)
        elif line.startswith("{") and start is not None:
            in_body = True
        elif line and not line[0].isspace() and start is not None:
            start = name = None  # not a function after all (a declaration, a macro)


def main(argv):
    dirs = argv[1:] or [d for d in DIRS if os.path.isdir(d)]
    bad = 0
    for d in dirs:
        for root, _, files in os.walk(d):
            for f in sorted(files):
                if not f.endswith((".c", ".h")):
                    continue
                path = os.path.join(root, f)
                with open(path, encoding="utf-8", errors="replace") as fh:
                    lines = fh.read().split("\n")
                n = len(lines) - 1
                if n > FILE_MAX:
                    print(f"{path}: {n} lines (limit {FILE_MAX})")
                    bad = 1
                elif n > FILE_WARN:
                    print(f"{path}: {n} lines (warning: new files stay under {FILE_WARN})")
                for name, line, length in functions(lines):
                    if length > FUNC_MAX:
                        print(f"{path}:{line}: {name}() is {length} lines (limit {FUNC_MAX})")
                        bad = 1
    return bad


if __name__ == "__main__":
    sys.exit(main(sys.argv))
