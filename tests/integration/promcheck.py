#!/usr/bin/env python3
"""Strict checker of the Prometheus text exposition format 0.0.4, as twilld serves it.

Usage: promcheck.py FILE [SERIES...]
Checks FILE and exits 1 with the offending line on the first violation. Then prints the value
of each SERIES asked for (e.g. 'twill_lease_events_total{kind="added"}'), one per line, or
"absent". Rules: every line is "# HELP name text", "# TYPE name type" or a sample
"name[{l="v",...}] value"; names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names
[a-zA-Z_][a-zA-Z0-9_]* (not __*); HELP/TYPE at most once per family, TYPE before its samples,
every sample's family has a TYPE and its samples are contiguous; counters end in _total and
are finite and >= 0; no series twice; label values escape only \\\\, \\" and \\n; the text
ends with a newline and has no empty lines.
"""
import math
import re
import sys

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
NAME_RE = re.compile(r"^" + NAME + r"$")
SAMPLE_RE = re.compile(r"^(" + NAME + r")(\{[^\n]*\})? (\S+)$")
LABEL_PAIR_RE = re.compile(r'(' + LABEL + r')="((?:[^"\\\n]|\\[\\"n])*)"')
TYPES = ("counter", "gauge", "untyped", "histogram", "summary")


def die(lineno, line, why):
    print(f"promcheck: line {lineno}: {why}: {line!r}", file=sys.stderr)
    sys.exit(1)


def parse_value(s):
    if s in ("+Inf", "Inf"):
        return math.inf
    if s == "-Inf":
        return -math.inf
    if s == "NaN":
        return math.nan
    if not re.match(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$", s):
        raise ValueError(s)
    return float(s)


def parse_labels(text, lineno, line):
    """'{a="x",b="y"}' -> canonical tuple of pairs."""
    inner = text[1:-1]
    pairs, pos = [], 0
    while pos < len(inner):
        m = LABEL_PAIR_RE.match(inner, pos)
        if not m:
            die(lineno, line, "malformed label set")
        name = m.group(1)
        if name.startswith("__"):
            die(lineno, line, f"reserved label name {name}")
        if any(n == name for n, _ in pairs):
            die(lineno, line, f"label {name} twice")
        pairs.append((name, m.group(2)))
        pos = m.end()
        if pos < len(inner):
            if inner[pos] != ",":
                die(lineno, line, "labels not separated by ','")
            pos += 1
            if pos == len(inner):
                die(lineno, line, "trailing ',' in label set")
    if not pairs:
        die(lineno, line, "empty label set")
    return tuple(pairs)


def check(text):
    if not text:
        die(0, "", "empty exposition")
    if not text.endswith("\n"):
        die(0, text[-40:], "text does not end with a newline")
    helps, types, done, series = set(), {}, set(), {}
    current = None
    for lineno, line in enumerate(text[:-1].split("\n"), 1):
        if line == "":
            die(lineno, line, "empty line")
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) < 3 or parts[0] != "#" or parts[1] not in ("HELP", "TYPE"):
                die(lineno, line, "comment that is neither HELP nor TYPE")
            name = parts[2]
            if not NAME_RE.match(name):
                die(lineno, line, "bad metric name")
            if name in done and name != current:
                die(lineno, line, "family metadata after its samples ended")
            if parts[1] == "HELP":
                if name in helps:
                    die(lineno, line, "second HELP")
                helps.add(name)
            else:
                if len(parts) != 4 or parts[3] not in TYPES:
                    die(lineno, line, "bad TYPE line")
                if name in types:
                    die(lineno, line, "second TYPE")
                if name in series_families(series):
                    die(lineno, line, "TYPE after samples")
                types[name] = parts[3]
                if parts[3] == "counter" and not name.endswith("_total"):
                    die(lineno, line, "counter name does not end in _total")
            if current != name:
                if current is not None:
                    done.add(current)
                current = name
            continue
        m = SAMPLE_RE.match(line)
        if not m:
            die(lineno, line, "not a sample line")
        name, labels, value = m.group(1), m.group(2), m.group(3)
        if name not in types:
            die(lineno, line, "sample without a TYPE for its family")
        if name != current:
            die(lineno, line, "samples of a family are not contiguous with its TYPE")
        key = (name, parse_labels(labels, lineno, line) if labels else ())
        if key in series:
            die(lineno, line, "series twice")
        try:
            v = parse_value(value)
        except ValueError:
            die(lineno, line, "bad value")
        if types[name] == "counter" and (math.isnan(v) or math.isinf(v) or v < 0):
            die(lineno, line, "counter value not finite and >= 0")
        series[key] = v
    return series


def series_families(series):
    return {n for n, _ in series}


def canonical(query):
    m = SAMPLE_RE.match(query + " 0")
    if not m:
        return None
    return (m.group(1), parse_labels(m.group(2), 0, query) if m.group(2) else ())


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    with open(sys.argv[1], encoding="utf-8") as f:
        text = f.read()
    series = check(text)
    for q in sys.argv[2:]:
        key = canonical(q)
        v = series.get(key) if key else None
        if v is None:
            print("absent")
        elif math.isfinite(v) and v == int(v):
            print(int(v))
        else:
            print(v)


if __name__ == "__main__":
    main()
