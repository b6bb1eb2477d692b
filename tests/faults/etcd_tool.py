#!/usr/bin/env python3
"""Fast, dependency-free etcd v3 writer for the fault tests (JSON gateway, base64).

Run inside the etcd namespace (ip netns exec NS python3 etcd_tool.py ...):

  etcd_tool.py [--url URL] put KEY            value = raw bytes of stdin (any bytes, any size)
  etcd_tool.py [--url URL] apply              ops from stdin, one per line, applied in txns of
                                              at most 128 ops (etcd's --max-txn-ops default):
                                                put<TAB>KEY<TAB>VALUE
                                                del<TAB>KEY
  etcd_tool.py [--url URL[,URL...]] churn PREFIX SECONDS [NKEYS [MODEL]]
                                              random puts (new VtepMAC each time) and deletes of
                                              NKEYS (default 20) vxlan leases 198.18.200+k.0/24
                                              for SECONDS; every op retried (rotating over
                                              the URLs) until it succeeds; MODEL: file that
                                              receives the final KEY<TAB>VALUE set;
                                              prints the number of operations
  etcd_tool.py [--url URL] vxlan-leases PREFIX FIRST LEN COUNT [START]
                                              print "put" ops for COUNT vxlan leases of /LEN
                                              subnets from FIRST (skipping START subnets),
                                              PublicIP 198.51.100.x, distinct VtepMACs

Exit status 0 on success; 1 with a message on stderr on any error.
"""
import base64
import ipaddress
import json
import os
import sys
import urllib.error
import urllib.request

URL = "http://127.0.0.1:2379"
BATCH = 128


def b64(b):
    return base64.b64encode(b).decode("ascii")


def post(path, body, retry_s=0.0):
    """POST to the first URL that answers; with retry_s > 0, rotate over the URLs on
    transport errors and 5xx until retry_s seconds have passed (puts and deletes of the
    fault tests are idempotent, so a retried ambiguous failure is harmless)."""
    import time
    urls = URL.split(",")
    deadline = time.monotonic() + retry_s
    i = 0
    while True:
        url = urls[i % len(urls)]
        req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST")
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=3 if retry_s else 30) as r:
                return json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            msg = "%s%s: HTTP %d: %s" % (url, path, e.code, e.read()[:300])
            if e.code < 500:
                sys.exit("etcd_tool: " + msg)
        except (OSError, ValueError) as e:
            msg = "%s%s: %s" % (url, path, e)
        if time.monotonic() >= deadline:
            sys.exit("etcd_tool: " + msg)
        sys.stderr.write("etcd_tool: %s; retrying\n" % msg)
        i += 1
        time.sleep(0.05)


def cmd_put(key):
    value = sys.stdin.buffer.read()
    post("/v3/kv/put", {"key": b64(os.fsencode(key)), "value": b64(value)})


def cmd_apply():
    ops = []
    n = 0
    for line in sys.stdin.buffer:
        line = line.rstrip(b"\n")
        if not line:
            continue
        parts = line.split(b"\t", 2)
        if parts[0] == b"put" and len(parts) == 3:
            ops.append({"request_put": {"key": b64(parts[1]), "value": b64(parts[2])}})
        elif parts[0] == b"del" and len(parts) >= 2:
            ops.append({"request_delete_range": {"key": b64(parts[1])}})
        else:
            sys.exit("etcd_tool: bad op line: %r" % line[:100])
        if len(ops) == BATCH:
            post("/v3/kv/txn", {"success": ops})
            n += len(ops)
            ops = []
    if ops:
        post("/v3/kv/txn", {"success": ops})
        n += len(ops)
    print(n)


def cmd_vxlan_leases(prefix, first, plen, count, start=0):
    plen = int(plen)
    net = int(ipaddress.IPv4Address(first))
    step = 1 << (32 - plen)
    out = sys.stdout
    for k in range(int(start), int(start) + int(count)):
        a = ipaddress.IPv4Address(net + k * step)
        v = {
            "PublicIP": "198.51.100.%d" % (1 + k % 250),
            "PublicIPv6": None,
            "BackendType": "vxlan",
            "BackendData": {"VNI": 1, "VtepMAC": "0a:%02x:%02x:%02x:%02x:%02x" % (
                (k >> 32) & 255, (k >> 24) & 255, (k >> 16) & 255, (k >> 8) & 255, k & 255)},
        }
        out.write("put\t%s/subnets/%s-%d\t%s\n" % (prefix, a, plen,
                                                   json.dumps(v, separators=(",", ":"))))


def cmd_churn(prefix, seconds, nkeys=20, model=None):
    """Random puts (a new VtepMAC each time) and deletes; every op retried until it
    succeeds. With MODEL, write the final expected value of every key there."""
    import random
    import time
    end = time.monotonic() + float(seconds)
    n = 0
    ver = 0
    final = {}
    while time.monotonic() < end:
        k = random.randrange(int(nkeys))
        key = "%s/subnets/198.18.%d.0-24" % (prefix, 200 + k)
        if random.random() < 0.6:
            ver += 1
            v = json.dumps({"PublicIP": "198.51.100.%d" % (1 + k), "PublicIPv6": None,
                            "BackendType": "vxlan",
                            "BackendData": {"VNI": 1, "VtepMAC": "0a:cc:%02x:%02x:%02x:%02x" % (
                                k, (ver >> 16) & 255, (ver >> 8) & 255, ver & 255)}},
                           separators=(",", ":"))
            post("/v3/kv/put", {"key": b64(key.encode()), "value": b64(v.encode())}, 60)
            final[key] = v
        else:
            post("/v3/kv/deleterange", {"key": b64(key.encode())}, 60)
            final[key] = None
        n += 1
    if model:
        with open(model, "w") as f:
            for key in sorted(final):
                if final[key] is not None:
                    f.write("%s\t%s\n" % (key, final[key]))
    print(n)


def main(argv):
    global URL
    if len(argv) >= 2 and argv[0] == "--url":
        URL = argv[1]
        argv = argv[2:]
    if not argv:
        sys.exit(__doc__)
    cmd, args = argv[0], argv[1:]
    if cmd == "put" and len(args) == 1:
        cmd_put(args[0])
    elif cmd == "apply" and not args:
        cmd_apply()
    elif cmd == "churn" and len(args) in (2, 3, 4):
        cmd_churn(*args)
    elif cmd == "vxlan-leases" and len(args) in (4, 5):
        cmd_vxlan_leases(*args)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
