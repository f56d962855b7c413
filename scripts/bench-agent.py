#!/usr/bin/env python3
"""Agent memory and change -> enforced latency on a generated cluster. Run as root:

    scripts/bench-agent.py [--pods 10000] [--policies 1000] [--changes 100] [--per-node 110 0]

For each pods-per-node figure (0: every pod on the agent's node) the script generates the
cluster with `palisade generate` (one manifest file per namespace), writes a pod inventory that
spreads the pods round-robin over nodes n0..nK so that n0 holds that many, starts one agent
for n0 in a network namespace of its own (the rules never touch the machine's namespace) and,
once it enforces its first rules, makes CHANGES changes to the manifests, one at a time, in
turn: a policy's port, a pod's labels, a new pod (removed by the next change of that kind), a
new policy (likewise). Each change replaces a namespace's file (written beside it, renamed
over it, as a config tool does). The agent reports the time from the file's modification to
the commit of the rules it derived (`change_to_applied_ms`, or `change_to_enforced_ms` when the
rules in force already said it); the script waits for that line before the next change.

Reported per figure: p50 / p90 / max of those times, the agent's RSS after the changes and per
pod ((RSS - RSS of an agent with a one-pod cluster, measured in the same run) / pods), and the
cold start. Environment: PALISADE (a prebuilt binary; otherwise `cargo build --release`).
Everything is removed on exit, failure and Ctrl-C.
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAG = re.compile(r"change_to_(?:applied|enforced)_ms=([0-9.]+)")


def log(*parts):
    print("bench-agent:", *parts, file=sys.stderr, flush=True)


def binary():
    if os.environ.get("PALISADE"):
        return os.environ["PALISADE"]
    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "palisade"], cwd=ROOT, check=True, timeout=1800
    )
    return os.path.join(ROOT, "target", "release", "palisade")


def documents(path):
    with open(path) as f:
        return f.read().split("\n---\n")


def write_documents(path, docs):
    """Replaces `path` whole: written beside it, then renamed over it."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n---\n".join(docs))
    os.rename(tmp, path)


def field(doc, name):
    match = re.search(r"\n  %s: (\S+)" % name, "\n" + doc)
    return match and match.group(1)


def kind(doc):
    match = re.search(r"(?m)^kind: (\S+)", doc)
    return match and match.group(1)


def inventory(directory, per_node, out):
    pods = []
    for name in sorted(os.listdir(directory)):
        for doc in documents(os.path.join(directory, name)):
            if kind(doc) == "Pod":
                pods.append("%s/%s" % (field(doc, "namespace"), field(doc, "name")))
    nodes = max(1, len(pods) // per_node) if per_node else 1
    with open(out, "w") as f:
        json.dump({"pods": [{"name": p, "node": "n%d" % (i % nodes)} for i, p in enumerate(pods)]}, f)
    return sum(1 for i in range(len(pods)) if i % nodes == 0)


class Changes:
    """The changes, in turn; each returns the file it replaced."""

    def __init__(self, directory):
        self.dir = directory
        self.files = sorted(
            os.path.join(directory, f) for f in os.listdir(directory) if f != "kube-system.yaml"
        )
        self.added = {}
        self.count = 0

    def next(self):
        kinds = [self.port, self.labels, self.pod, self.policy]
        change = kinds[self.count % len(kinds)]
        path = self.files[(self.count // len(kinds)) % len(self.files)]
        self.count += 1
        return change(path)

    def port(self, path):
        docs = documents(path)
        policies = [i for i, d in enumerate(docs) if kind(d) == "NetworkPolicy" and re.search(r"\n\s+port: \d+\n", d)]
        i = policies[self.count % len(policies)]
        docs[i] = re.sub(
            r"(\n\s+port: )(\d+)\n",
            lambda m: "%s%d\n" % (m.group(1), int(m.group(2)) ^ 1),
            docs[i],
            count=1,
        )
        write_documents(path, docs)
        return "port"

    def labels(self, path):
        docs = documents(path)
        pods = [i for i, d in enumerate(docs) if kind(d) == "Pod"]
        i = pods[(self.count * 7919) % len(pods)]
        if "version: v1\n" in docs[i]:
            docs[i] = docs[i].replace("version: v1\n", "version: v2\n", 1)
        else:
            docs[i] = docs[i].replace("version: v2\n", "version: v1\n", 1)
        write_documents(path, docs)
        return "labels"

    def toggle(self, path, of_kind, make):
        """Adds the object `make(docs)` gives (name, text), or removes the one added last."""
        if of_kind in self.added:
            path, name = self.added.pop(of_kind)
            docs = [d for d in documents(path) if not (kind(d) == of_kind and field(d, "name") == name)]
        else:
            docs = documents(path)
            name, text = make(docs)
            docs.append(text)
            self.added[of_kind] = (path, name)
        write_documents(path, docs)

    def pod(self, path):
        def make(docs):
            template = next(d for d in docs if kind(d) == "Pod")
            name = "bench-added-%d" % self.count
            added = re.sub(r"\n  name: \S+", "\n  name: " + name, "\n" + template, count=1)[1:]
            ip = "10.255.%d.%d" % (self.count // 250, 1 + self.count % 250)
            return name, re.sub(r'podIP: "?[0-9.]+"?', 'podIP: "%s"' % ip, added)

        self.toggle(path, "Pod", make)
        return "pod"

    def policy(self, path):
        def make(docs):
            namespace = field(next(d for d in docs if kind(d) == "Namespace"), "name")
            apps = sorted({m for d in docs if kind(d) == "Pod" for m in re.findall(r"\n    app: (\S+)", d)})
            name = "bench-policy-%d" % self.count
            return name, (
                "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: %s\n"
                "  namespace: %s\nspec:\n  podSelector:\n    matchLabels:\n      app: %s\n"
                "  policyTypes:\n  - Ingress\n  ingress:\n  - from:\n    - podSelector:\n"
                "        matchLabels:\n          app: %s\n    ports:\n    - protocol: TCP\n"
                "      port: %d\n" % (name, namespace, apps[self.count % len(apps)], apps[(self.count + 1) % len(apps)], 20000 + self.count)
            )

        self.toggle(path, "NetworkPolicy", make)
        return "policy"


class Agent:
    """One agent for node n0 in a network namespace of its own."""

    def __init__(self, palisade, work, tag, manifests, pods=None):
        self.netns = "palisade-bench-agent-%d-%s" % (os.getpid(), tag)
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True)
        self.log_path = os.path.join(work, "agent-%s.log" % tag)
        args = ["ip", "netns", "exec", self.netns, palisade, "agent", "--node", "n0", "--manifests", manifests, "--flow-log", os.devnull]
        if pods:
            args += ["--pods", pods]
        env = dict(os.environ, PALISADE_LOG="info")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.offset = 0

    def wait_line(self, pattern, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("the agent exited; its log: " + self.log_path)
            with open(self.log_path) as f:
                f.seek(self.offset)
                text = f.read()
            for line in text.splitlines(keepends=True):
                if not line.endswith("\n"):
                    break
                self.offset += len(line)
                if re.search(pattern, line):
                    return line
            time.sleep(0.005)
        raise TimeoutError("no %r in %s within %d s" % (pattern, self.log_path, timeout))

    def rss_kib(self):
        # `ip netns exec` execs the agent: the child is the agent itself.
        with open("/proc/%d/status" % self.proc.pid) as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))

    def stop(self):
        if self.log.closed:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()
        subprocess.run(["ip", "netns", "del", self.netns], check=False)


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--policies", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--per-node", type=int, nargs="+", default=[110, 0])
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (agent logs)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench-agent: needs root (network namespaces, nftables)")
    palisade = binary()
    work = tempfile.mkdtemp(prefix="palisade-bench-agent.")
    agents = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        tiny = os.path.join(work, "tiny")
        os.mkdir(tiny)
        with open(os.path.join(tiny, "a.yaml"), "w") as f:
            f.write(
                "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Pod\n"
                "metadata: {name: p, namespace: a, labels: {app: p}}\nspec: {containers: [{name: c, image: i}]}\n"
                "status: {podIP: 10.1.0.1}\n"
            )
        agent = Agent(palisade, work, "base", tiny)
        agents.append(agent)
        agent.wait_line(r"applied generation=")
        time.sleep(1)
        base = agent.rss_kib()
        agent.stop()
        log("agent RSS with a one-pod cluster: %d KiB" % base)
        rows = []
        for per_node in args.per_node:
            cluster = os.path.join(work, "cluster-%d" % per_node)
            subprocess.run(
                [palisade, "generate", "--pods", str(args.pods), "--policies", str(args.policies), "--out", cluster],
                check=True,
            )
            pods = os.path.join(work, "pods-%d.json" % per_node)
            local = inventory(cluster, per_node, pods) if per_node else args.pods
            started = time.time()
            agent = Agent(palisade, work, str(per_node), cluster, pods if per_node else None)
            agents.append(agent)
            agent.wait_line(r"applied generation=", timeout=600)
            cold = time.time() - started
            changes = Changes(cluster)
            lags = {}
            for _ in range(args.changes):
                time.sleep(0.3)
                what = changes.next()
                line = agent.wait_line(r"applied generation=|rules in force are up to date")
                match = LAG.search(line)
                if match:
                    lags.setdefault(what, []).append(float(match.group(1)))
            time.sleep(2)
            rss = agent.rss_kib()
            agent.stop()
            every = [v for values in lags.values() for v in values]
            row = {
                "local pods": local,
                "changes": len(every),
                "p50 ms": statistics.median(every),
                "p90 ms": percentile(every, 0.9),
                "max ms": max(every),
                "by kind p50 ms": {k: round(statistics.median(v), 1) for k, v in sorted(lags.items())},
                "RSS MiB": round(rss / 1024, 1),
                "KiB per pod": round((rss - base) / args.pods, 2),
                "cold s": round(cold, 2),
            }
            log(row)
            rows.append(row)
        print("| pods on the node | change -> enforced p50 / p90 / max | p50 by kind | RSS after | per pod | cold start |")
        print("| --- | --- | --- | --- | --- | --- |")
        for r in rows:
            print(
                "| %d | %.0f / %.0f / %.0f ms | %s | %.1f MiB | %.2f KiB | %.1f s |"
                % (r["local pods"], r["p50 ms"], r["p90 ms"], r["max ms"], ", ".join("%s %s" % kv for kv in r["by kind p50 ms"].items()), r["RSS MiB"], r["KiB per pod"], r["cold s"])
            )
    finally:
        for agent in agents:
            agent.stop()
        if args.keep:
            log("kept", work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
