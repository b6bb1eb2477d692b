#!/usr/bin/env python3
"""Preload remote vxlan leases into etcd for bench/convergence_daemon.sh.

Writes the network config and leases FIRST..FIRST+COUNT-1 through etcd's v3 JSON gateway:
one keep-alive HTTP connection, txn batches of --batch puts (etcd's default --max-txn-ops is
128), keys and values base64-encoded, all keys attached to one etcd lease (TTL --ttl, as
flannel's leases are) unless --ttl 0.

Lease i (same generator as bench_convergence and bench_convergence_daemon):
  key    <prefix>/subnets/<198.18.0.0 + (i + 1) * 8>-29
  value  {"PublicIP":"192.0.2.<2 + i % 200>","PublicIPv6":null,"BackendType":"vxlan",
          "BackendData":{"VNI":1,"VtepMAC":"02:00:00:<i as 3 bytes>"}}

usage: preload_leases.py --endpoint http://127.0.0.1:2379 --count N [--first 0]
                         [--prefix /coreos.com/network] [--config JSON] [--ttl 86400]
                         [--dualstack]
"""
import argparse
import base64
import http.client
import json
import sys
import time
import urllib.parse

NET_BASE = (198 << 24) | (18 << 16)


def b64(s):
    return base64.b64encode(s.encode()).decode()


def lease(i, prefix, dualstack=False):
    a = NET_BASE + (i + 1) * 8
    net = "%d.%d.%d.%d" % (a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255)
    key = "%s/subnets/%s-29" % (prefix, net)
    if dualstack:
        # flannel's dual-stack lease: key <v4>-29&2001:db8:100:<i+1>::-64, PublicIPv6 and
        # BackendV6Data (VtepMAC 02:01:00:<i>) after the IPv4 fields
        key += "&2001:db8:100:%x::-64" % (i + 1)
        val = ('{"PublicIP":"192.0.2.%d","PublicIPv6":"2001:db8:0:1::%x","BackendType":"vxlan",'
               '"BackendData":{"VNI":1,"VtepMAC":"02:00:00:%02x:%02x:%02x"},'
               '"BackendV6Data":{"VNI":1,"VtepMAC":"02:01:00:%02x:%02x:%02x"}}'
               % (2 + i % 200, 2 + i % 200, (i >> 16) & 255, (i >> 8) & 255, i & 255,
                  (i >> 16) & 255, (i >> 8) & 255, i & 255))
        return key, val
    val = ('{"PublicIP":"192.0.2.%d","PublicIPv6":null,"BackendType":"vxlan",'
           '"BackendData":{"VNI":1,"VtepMAC":"02:00:00:%02x:%02x:%02x"}}'
           % (2 + i % 200, (i >> 16) & 255, (i >> 8) & 255, i & 255))
    return key, val


class Etcd:
    def __init__(self, url):
        u = urllib.parse.urlsplit(url)
        if u.scheme != "http":
            raise SystemExit("preload: only http:// endpoints")
        self.conn = http.client.HTTPConnection(u.hostname, u.port or 2379, timeout=10)

    def post(self, path, body):
        self.conn.request("POST", path, json.dumps(body),
                          {"Content-Type": "application/json"})
        r = self.conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise SystemExit("preload: %s: HTTP %d: %s" % (path, r.status, data[:300]))
        reply = json.loads(data)
        if "error" in reply:
            raise SystemExit("preload: %s: %s" % (path, reply))
        return reply


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--endpoint", default="http://127.0.0.1:2379")
    ap.add_argument("--prefix", default="/coreos.com/network")
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--config", help="network config JSON to put at <prefix>/config")
    ap.add_argument("--ttl", type=int, default=86400)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--dualstack", action="store_true",
                    help="dual-stack leases (IPv6 key part, PublicIPv6, BackendV6Data)")
    a = ap.parse_args()
    if a.count < 0 or a.first < 0 or a.first + a.count > 16383 or a.batch < 1:
        raise SystemExit("preload: leases must lie in 0..16382")
    prefix = a.prefix.rstrip("/") or ""
    e = Etcd(a.endpoint)
    t0 = time.monotonic()
    if a.config:
        json.loads(a.config)
        e.post("/v3/kv/put", {"key": b64(prefix + "/config"), "value": b64(a.config)})
    lease_id = None
    if a.ttl > 0 and a.count:
        lease_id = e.post("/v3/lease/grant", {"TTL": str(a.ttl)})["ID"]
    done = 0
    while done < a.count:
        ops = []
        for i in range(a.first + done, a.first + min(a.count, done + a.batch)):
            k, v = lease(i, prefix, a.dualstack)
            put = {"key": b64(k), "value": b64(v)}
            if lease_id:
                put["lease"] = lease_id
            ops.append({"request_put": put})
        reply = e.post("/v3/kv/txn", {"success": ops})
        if not reply.get("succeeded"):
            raise SystemExit("preload: txn not applied: %s" % reply)
        done += len(ops)
    print("preloaded %d leases in %.0f ms" % (a.count, (time.monotonic() - t0) * 1e3))


if __name__ == "__main__":
    sys.exit(main())
