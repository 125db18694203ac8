#!/usr/bin/env python3
"""The cost of forwarding in a runlog cluster, measured in one run.

Sends creates (each with its own Idempotency-Key, so its partition is fixed
by the key) to one node over one kept-alive connection, one at a time, and
splits their latencies by whether that node writes the task's partition
itself or forwards the create to the partition's owner. Same client, same
connection, same moment: the difference is the forwarding.

  python3 tests/perf/cluster_latency.py --url http://127.0.0.1:8081 --key $K \
      --creates 2000 --partitions 8

Prints one JSON object: p50/p99 (ms) of local and forwarded creates, and
their ratio. Bounded in count; binds nothing.
"""
import argparse
import http.client
import json
import statistics
import time
import urllib.parse


def fnv1a64(text):
    h = 0xCBF29CE484222325
    for b in text.encode():
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else 0.0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--creates", type=int, default=2000)
    parser.add_argument("--partitions", type=int, required=True)
    args = parser.parse_args()
    if not 1 <= args.creates <= 100_000:
        raise SystemExit("--creates must be 1-100000")
    url = urllib.parse.urlparse(args.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    auth = {"Authorization": "Bearer " + args.key}
    conn.request("GET", "/v1/cluster", headers=auth)
    cluster = json.loads(conn.getresponse().read())
    mine = {p["partition"] for p in cluster["partitions"] if p["owned_here"]}
    run = str(int(time.time() * 1000))
    local, forwarded, errors = [], [], 0
    body = json.dumps({"type": "bench_forwarding", "input": {}})
    for i in range(args.creates):
        headers = dict(auth)
        headers["Content-Type"] = "application/json"
        headers["Idempotency-Key"] = "fwd-%s-%d" % (run, i)
        start = time.perf_counter()
        conn.request("POST", "/v1/tasks", body=body, headers=headers)
        answer = conn.getresponse()
        data = answer.read()
        ms = (time.perf_counter() - start) * 1000
        if answer.status != 201:
            errors += 1
            continue
        task = json.loads(data)["id"]
        (local if fnv1a64(task) % args.partitions in mine else forwarded).append(ms)
    # Claims of those tasks through the same node: from its own partitions
    # first, then from the other nodes' (Api::ClusterClaim), split the same way.
    claim_local, claim_remote = [], []
    claim = json.dumps({"types": ["bench_forwarding"], "wait_seconds": 0})
    for _ in range(args.creates):
        headers = dict(auth)
        headers["Content-Type"] = "application/json"
        start = time.perf_counter()
        conn.request("POST", "/v1/tasks/claim", body=claim, headers=headers)
        answer = conn.getresponse()
        data = json.loads(answer.read())
        ms = (time.perf_counter() - start) * 1000
        if answer.status != 200 or not data.get("task"):
            break
        task = data["task"]["id"]
        (claim_local if fnv1a64(task) % args.partitions in mine else claim_remote).append(ms)
    out = {
        "node": cluster["node_id"],
        "creates": args.creates,
        "errors": errors,
        "local": {"n": len(local), "p50_ms": round(percentile(local, 0.5), 3),
                  "p99_ms": round(percentile(local, 0.99), 3)},
        "forwarded": {"n": len(forwarded), "p50_ms": round(percentile(forwarded, 0.5), 3),
                      "p99_ms": round(percentile(forwarded, 0.99), 3)},
    }
    if local and forwarded:
        out["p50_ratio"] = round(statistics.median(forwarded) / statistics.median(local), 2)
    out["claim_local"] = {"n": len(claim_local), "p50_ms": round(percentile(claim_local, 0.5), 3),
                          "p99_ms": round(percentile(claim_local, 0.99), 3)}
    out["claim_remote"] = {"n": len(claim_remote),
                           "p50_ms": round(percentile(claim_remote, 0.5), 3),
                           "p99_ms": round(percentile(claim_remote, 0.99), 3)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
