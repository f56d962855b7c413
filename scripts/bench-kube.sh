#!/usr/bin/env bash
# Benchmarks of Palisade on a real Kubernetes API server (scripts/kube-env: etcd + kube-apiserver
# on loopback). Run as root:
#
#   scripts/bench-kube.sh
#
# Measures, in one run:
#   (a) `kubectl apply` of a policy to the rule enforced in a lab (`lab up --kube`): pods x/a
#       (client) and x/c on node 0, x/b on node 1; every policy isolates the servers x/b and x/c,
#       N-1 filler policies admit x/a each on its own port (10000+j), and policy zz-allow admits
#       x/a on 8080 or not. For each change (deny and allow alternately) the script takes t0, runs
#       `kubectl apply --server-side` (one PATCH; BENCH_APPLY=client for client-side apply: a GET
#       and a PATCH), notes t1 when kubectl returned, while a client in x/a's namespace starts
#       a connection to x/b:8080 every millisecond; the first connection started with the new
#       verdict is the flip. Reported: flip - t0 and flip - t1 (p50, p99, max), at 1 policy and
#       at 1k policies in the same lab. The filler policies are created in one `kubectl create`
#       of a List; the measurement starts once both agents enforce every one of them (the last
#       filler's port is admitted on x/b and x/c) and `lab probe --compare` finds no difference.
#   (b) agent memory per watched pod: a separate API server with 100 Nodes, then 0, 10k and 100k
#       pods (100 per namespace, nodeName spread over the 100 nodes, one container with one
#       port; created as `kind: List` files of 1000 pods, four `kubectl create -f` at a time;
#       then every pod's status (phase Running, podIP, podIPs) patched through the status
#       subresource by a small HTTP client, eight connections at once, as kubelets would).
#       For each size one agent for node7 runs in a network namespace of its own, reaching the
#       API server through `palisade lab relay`; once it has applied its first rules
#       (palisade_generation >= 1) the script reads VmRSS and VmHWM from /proc. Reported: RSS,
#       (RSS - RSS at 0 pods) / pods, and the time from the agent's start to its first rules.
#   (c) with the 100k-pod API server of (b) and 1,000 NetworkPolicies added (one per namespace,
#       four kinds: default deny, same app, namespaces by label with matchExpressions, egress
#       to an ipBlock with except plus DNS): `palisade snapshot` to files, then
#       `palisade matrix -o summary DIR` and `palisade matrix -o summary --kubeconfig K`,
#       3 runs each (median wall time, peak RSS from wait4); their outputs must be equal.
#
# Environment: BENCH_CHANGES (policy changes per policy count in (a), default 100),
# BENCH_POLICIES (policy counts of (a), ascending, default "1 1000"), BENCH_PODS (pod counts of
# (b), ascending, default "10000 100000"; (c) uses the last), BENCH_PARTS (default "a b c"),
# BENCH_APPLY (client: client-side apply in (a)), PALISADE (a prebuilt binary; otherwise
# `cargo build --release -p palisade`).
#
# All traffic stays on loopback and in the network namespaces the script creates. Every step
# is bounded by `timeout`; the lab, the API server, the namespace, the processes and the
# scratch directory are removed on exit, failure and Ctrl-C.
set -euo pipefail

cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "bench-kube: needs root (network namespaces)" >&2; exit 1; }
CHANGES=${BENCH_CHANGES:-100}
read -r -a POLICY_COUNTS <<<"${BENCH_POLICIES:-1 1000}"
read -r -a POD_COUNTS <<<"${BENCH_PODS:-10000 100000}"
PARTS=${BENCH_PARTS:-a b c}
LAB="bench-kube-$$"
NETNS="palisade-bench-kube-$$"
WORK=$(mktemp -d /tmp/palisade-bench-kube.XXXXXX)
KUBE_DIR="$WORK/kube"   # the API server of (b) and (c); never kube-env's default directory
export KUBECACHEDIR="$WORK/kubectl-cache"
PIDS=()
LAB_UP=
SCRIPT_START=$EPOCHREALTIME

log() { printf 'bench-kube: %s\n' "$*" >&2; }
# Foreground steps: bounded, and Ctrl-C reaches them (timeout without --foreground would move
# them out of the terminal's process group).
run() {
	local seconds=$1
	shift
	timeout --foreground -k 10 "$seconds" "$@"
}

stop_pids() {
	local pid
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	PIDS=()
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_pids
	ip netns del "$NETNS" 2>/dev/null || true
	if [[ -n $LAB_UP ]]; then timeout 120 "$BIN" lab down --name "$LAB" >/dev/null 2>&1 || true; fi
	PALISADE_KUBE_DIR="$KUBE_DIR" timeout 120 scripts/kube-env down >/dev/null 2>&1 || true
	rm -rf "$WORK"
	((rc == 0)) || log "failed (exit $rc); everything it started is removed"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

need=()
for tool in nft:nftables conntrack:conntrack ip:iproute2 python3:python3 curl:curl openssl:openssl; do
	command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
done
if ((${#need[@]})); then
	run 600 apt-get update -qq && run 600 apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [[ -z ${PALISADE:-} ]]; then
	run 3600 cargo build --release -q -p palisade
	BIN=$PWD/target/release/palisade
else
	BIN=$PALISADE
fi
KUBECTL="$(run 3600 scripts/kube-env build | tail -n 1)/kubectl"
[[ -x $KUBECTL ]] || { log "no kubectl from scripts/kube-env build"; exit 1; }

cat >"$WORK/bench.py" <<'EOF'
# bench.py: the helpers of scripts/bench-kube.sh.
#   serve PORT                                     accept and close (run in a pod's namespace)
#   flip KUBECTL KUBECONFIG NETNS IP PORT ALLOW DENY CHANGES OUT
#   admitted NETNS IP PORT...                      exit 0 when every port is admitted
#   pods START END DIR                             List files of 1000 pods (and namespaces)
#   status KUBECONFIG START END THREADS            patch pod status (phase, podIP, podIPs)
#   policies NAMESPACES COUNT FILE                 a List of NetworkPolicies in the bench namespaces
#   rawlist KUBECONFIG                             seconds and bytes of the four paginated lists
#   stats FILE COLUMN                              p50 p99 max of a column (ms)
#   time OUT -- COMMAND...                         wall seconds and peak RSS (KiB) of COMMAND
import ctypes, errno, http.client, json, math, os, re, selectors, socket, ssl, struct, subprocess
import sys, threading, time, urllib.parse

CLONE_NEWNET = 0x40000000

def enter_netns(name):
    """Moves the calling thread (only) into network namespace `name`."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        sys.exit(f"setns {name}: {os.strerror(ctypes.get_errno())}")
    os.close(fd)

def serve(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(4096)
    while True:
        c, _ = s.accept()
        c.close()

LINGER0 = struct.pack("ii", 1, 0)

def probes(targets, timeout, interval=None, stop=None):
    """Starts non-blocking connections to `targets` ((ip, port) pairs, all at once), or with
    `interval`, one connection to targets[0] every `interval` seconds until stop(results) is
    true. A connection is admitted when it connects or is refused (something answered), denied
    when `timeout` passes without an answer (the rules drop). Yields nothing; returns
    {start time: admitted} (or {(ip, port): admitted} without interval)."""
    sel = selectors.DefaultSelector()
    pending, results = {}, {}
    queue = list(targets)
    next_start = time.time()

    def start(key, target):
        s = socket.socket()
        # RST on close: no TIME_WAIT, so the ports of a long run are not used up.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
        s.setblocking(False)
        err = s.connect_ex(target)
        if err not in (0, errno.EINPROGRESS):
            results[key] = err == errno.ECONNREFUSED
            s.close()
            return
        pending[s] = (key, time.time())
        sel.register(s, selectors.EVENT_WRITE)

    while True:
        now = time.time()
        if interval is None:
            while queue:
                t = queue.pop()
                start(t, t)
        elif now >= next_start and not (stop and stop(results)):
            start(now, targets[0])
            next_start = now + interval
        if not pending and (interval is None or (stop and stop(results))):
            return results
        wait = 0.001 if interval is None else max(0.0, next_start - time.time())
        # Answers first: a connection that completed counts even if this thread was late.
        for key, _ in sel.select(timeout=wait):
            s = key.fileobj
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            k, _ = pending.pop(s)
            results[k] = err in (0, errno.ECONNREFUSED)
            sel.unregister(s)
            s.close()
        now = time.time()
        for s, (k, started) in list(pending.items()):
            if now - started > timeout:
                results[k] = False
                del pending[s]
                sel.unregister(s)
                s.close()

def admitted(netns, ip, ports):
    enter_netns(netns)
    results = probes([(ip, int(p)) for p in ports], 0.3)
    denied = sorted(t[1] for t, ok in results.items() if not ok)
    if denied:
        print(f"{len(denied)} of {len(results)} ports on {ip} not admitted (first {denied[0]})")
        sys.exit(1)

# `kubectl apply --server-side` (one PATCH, as GitOps controllers apply), unless
# BENCH_APPLY=client (client-side apply: a GET, then a PATCH).
APPLY = ([] if os.environ.get("BENCH_APPLY") == "client"
         else ["--server-side", "--force-conflicts", "--field-manager=bench"])

def flip(kubectl, kubeconfig, netns, ip, port, allow, deny, changes, out):
    """Applies deny and allow alternately with kubectl; a prober thread in pod x/a's namespace
    starts a connection every millisecond; the flip is the start time of the first connection
    with the new verdict (after every earlier one has its answer)."""
    target = (ip, port)
    # 100 ms before a connection counts as dropped: a late answer on a busy machine must not
    # count as a denial. The flip time is when the connection started, whatever the timeout.
    timeout = 0.1
    jobs, done = [], threading.Semaphore(0)
    job_ready = threading.Semaphore(0)
    flips = []

    def prober():
        enter_netns(netns)
        while True:
            job_ready.acquire()
            want, t0 = jobs.pop(0)
            if want is None:
                return
            def stop(results):
                return any(ok == want for ok in results.values()) or time.time() - t0 > 60
            results = probes([target], timeout, interval=0.001, stop=stop)
            hits = sorted(t for t, ok in results.items() if ok == want)
            flips.append(hits[0] if hits else None)
            done.release()

    thread = threading.Thread(target=prober, daemon=True)
    thread.start()

    def wait_for(want, t0):
        jobs.append((want, t0))
        job_ready.release()

    # The starting state: allowed (zz-allow was created admitting 8080).
    t0 = time.time()
    wait_for(True, t0)
    done.acquire()
    if flips.pop() is None:
        sys.exit("x/a cannot reach x/b:8080 before the first change")
    rows = []
    for i in range(changes):
        want = i % 2 == 1
        path = allow if want else deny
        time.sleep(0.3)
        t0 = time.time()
        wait_for(want, t0)
        p = subprocess.run([kubectl, "--kubeconfig", kubeconfig, "apply", *APPLY, "-f", path],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        t1 = time.time()
        if p.returncode != 0:
            sys.exit(f"kubectl apply failed: {p.stderr}")
        done.acquire()
        t = flips.pop()
        if t is None:
            sys.exit(f"change {i}: no {'allow' if want else 'deny'} within 60 s")
        rows.append(("allow" if want else "deny", (t - t0) * 1e3, (t - t1) * 1e3, (t1 - t0) * 1e3))
    wait_for(None, 0)
    with open(out, "w") as f:
        for r in rows:
            f.write("%s %.3f %.3f %.3f\n" % r)

def pod_ip(i):
    n = (10 << 24) + (128 << 16) + i + 1
    return socket.inet_ntoa(struct.pack("!I", n))

def namespace_of(i):
    return "bench-%04d" % (i // 100)

def pods(start, end, out):
    os.makedirs(out, exist_ok=True)
    namespaces = [{"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": namespace_of(i),
                                "labels": {"team": "t%d" % (i // 100 % 10),
                                           "tier": "front" if i // 100 % 3 == 0 else "back"}}}
                  for i in range(start, end, 100) if i % 100 == 0]
    with open(os.path.join(out, "namespaces.json"), "w") as f:
        json.dump({"apiVersion": "v1", "kind": "List", "items": namespaces}, f)
    for chunk in range(start, end, 1000):
        items = []
        for i in range(chunk, min(chunk + 1000, end)):
            items.append({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p%06d" % i, "namespace": namespace_of(i),
                             "labels": {"app": "app%d" % (i % 10), "tier": "t%d" % (i % 3)}},
                "spec": {"nodeName": "node%d" % (i % 100),
                         "containers": [{"name": "c", "image": "bench",
                                         "ports": [{"containerPort": 8080}]}]}})
        with open(os.path.join(out, "pods-%06d.json" % chunk), "w") as f:
            json.dump({"apiVersion": "v1", "kind": "List", "items": items}, f)

def kubeconfig_fields(path):
    text = open(path).read()
    field = lambda name: re.search(r"^\s*%s:\s*(\S+)" % name, text, re.M).group(1)
    server = field("server")
    host, port = re.match(r"https://([^:/]+):(\d+)", server).groups()
    return host, int(port), field("certificate-authority"), field("client-certificate"), field("client-key")

def status(kubeconfig, start, end, threads):
    host, port, ca, cert, key = kubeconfig_fields(kubeconfig)
    context = ssl.create_default_context(cafile=ca)
    context.load_cert_chain(cert, key)
    lock = threading.Lock()
    todo = iter(range(start, end))
    errors = []

    def worker():
        conn = None
        while not errors:
            with lock:
                i = next(todo, None)
            if i is None:
                return
            ip = pod_ip(i)
            body = json.dumps({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}})
            path = "/api/v1/namespaces/%s/pods/p%06d/status" % (namespace_of(i), i)
            for attempt in range(5):
                try:
                    if conn is None:
                        conn = http.client.HTTPSConnection(host, port, context=context, timeout=60)
                    conn.request("PATCH", path, body, {"Content-Type": "application/merge-patch+json"})
                    r = conn.getresponse()
                    r.read()
                    if r.status == 429 or r.status >= 500:
                        time.sleep(0.1 * (attempt + 1))
                        continue
                    if r.status >= 300:
                        errors.append(f"PATCH {path}: HTTP {r.status}")
                    break
                except (OSError, http.client.HTTPException):
                    conn = None
                    time.sleep(0.1 * (attempt + 1))
            else:
                errors.append(f"PATCH {path}: failed 5 times")

    # Daemon threads: Ctrl-C ends the process at once.
    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        sys.exit(errors[0])

def protobuf_field(buf, number):
    """The bytes of length-delimited field `number` of a protobuf message (None if absent)."""
    def varint(i):
        value = shift = 0
        while True:
            byte = buf[i]
            i, value, shift = i + 1, value | (byte & 0x7F) << shift, shift + 7
            if byte < 0x80:
                return value, i
    i = 0
    while i < len(buf):
        key, i = varint(i)
        wire = key & 7
        if wire == 0:
            _, i = varint(i)
        elif wire == 2:
            size, i = varint(i)
            if key >> 3 == number:
                return buf[i:i + size]
            i += size
        else:
            sys.exit(f"protobuf wire type {wire} not expected in a list's head")
    return None

def rawlist(kubeconfig):
    """The four lists as palisade reads them (pods as protobuf in pages of 5000, the rest as JSON
    in pages of 500), bytes only, nothing decoded but the continue token: what serving them
    costs the API server and the connection."""
    host, port, ca, cert, key = kubeconfig_fields(kubeconfig)
    context = ssl.create_default_context(cafile=ca)
    context.load_cert_chain(cert, key)
    conn = http.client.HTTPSConnection(host, port, context=context, timeout=300)
    start, total = time.monotonic(), 0
    for path in ("/api/v1/namespaces", "/api/v1/nodes", "/api/v1/pods",
                 "/apis/networking.k8s.io/v1/networkpolicies"):
        protobuf = path == "/api/v1/pods"
        limit = 5000 if protobuf else 500
        accept = "application/vnd.kubernetes.protobuf" if protobuf else "application/json"
        token = ""
        while True:
            query = f"?limit={limit}" + ("&continue=" + urllib.parse.quote(token) if token else "")
            conn.request("GET", path + query, headers={"Accept": accept})
            r = conn.getresponse()
            body = r.read()
            if r.status != 200:
                sys.exit(f"GET {path}: HTTP {r.status}")
            total += len(body)
            if protobuf:
                # magic "k8s\0", runtime.Unknown{raw: 2} holding PodList{metadata: 1{continue: 3}}
                head = protobuf_field(protobuf_field(body[4:], 2) or b"", 1) or b""
                token = (protobuf_field(head, 3) or b"").decode()
            else:
                m = re.search(rb'"continue":"([^"]*)"', body[:4096])
                token = m.group(1).decode() if m else ""
            if not token:
                break
    print("%.3f %d" % (time.monotonic() - start, total))

def policies(namespaces, count, out):
    items = []
    for k in range(count):
        ns = "bench-%04d" % (k % namespaces)
        kind = k % 4
        meta = {"name": "np-%04d" % k, "namespace": ns}
        if kind == 0:
            spec = {"podSelector": {}, "policyTypes": ["Ingress"]}
        elif kind == 1:
            app = {"matchLabels": {"app": "app%d" % (k % 10)}}
            spec = {"podSelector": app, "policyTypes": ["Ingress"],
                    "ingress": [{"from": [{"podSelector": app}], "ports": [{"port": 8080}]}]}
        elif kind == 2:
            spec = {"podSelector": {"matchLabels": {"app": "app%d" % (k % 10)}},
                    "policyTypes": ["Ingress"],
                    "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [
                                    {"key": "team", "operator": "In",
                                     "values": ["t%d" % (k % 10), "t%d" % ((k + 1) % 10)]}]},
                                  "podSelector": {"matchLabels": {"tier": "t%d" % (k % 3)}}}],
                                 "ports": [{"port": 8080, "protocol": "TCP"}]}]}
        else:
            spec = {"podSelector": {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["t0"]}]},
                    "policyTypes": ["Egress"],
                    "egress": [{"to": [{"ipBlock": {"cidr": "10.128.0.0/14", "except": ["10.129.0.0/16"]}}],
                                "ports": [{"port": 8080}, {"port": 9000, "endPort": 9100}]},
                               {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}]}
        items.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                      "metadata": meta, "spec": spec})
    with open(out, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "List", "items": items}, f)

def stats(path, column):
    values = sorted(float(line.split()[column]) for line in open(path) if line.strip())
    n = len(values)
    rank = lambda q: values[max(0, math.ceil(round(q * n, 6)) - 1)]  # nearest rank
    print("%.0f %.0f %.0f %d" % (rank(0.5), rank(0.99), values[-1], n))

def timed(out, command):
    start = time.monotonic()
    p = subprocess.Popen(command, stdout=open(out, "w"))
    _, status, usage = os.wait4(p.pid, 0)
    elapsed = time.monotonic() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"{' '.join(command)}: exit {code}")
    print("%.3f %d" % (elapsed, usage.ru_maxrss))

cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "serve": serve(int(args[0]))
elif cmd == "flip": flip(args[0], args[1], args[2], args[3], int(args[4]), args[5], args[6], int(args[7]), args[8])
elif cmd == "admitted": admitted(args[0], args[1], args[2:])
elif cmd == "pods": pods(int(args[0]), int(args[1]), args[2])
elif cmd == "status": status(args[0], int(args[1]), int(args[2]), int(args[3]))
elif cmd == "policies": policies(int(args[0]), int(args[1]), args[2])
elif cmd == "rawlist": rawlist(args[0])
elif cmd == "stats": stats(args[0], int(args[1]))
elif cmd == "time": timed(args[0], args[2:])
else: sys.exit(f"bench.py: unknown mode {cmd}")
EOF
PY=(python3 "$WORK/bench.py")

# Seconds since $1 (an $EPOCHREALTIME).
since() { python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$EPOCHREALTIME"; }
median() { printf '%s\n' "$@" | sort -g | sed -n "$(((${#@} + 1) / 2))p"; }
k() { run 1800 "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

########################################################################################
# (a) kubectl apply -> enforced
########################################################################################
FLIP_ROWS=()
part_a() {
	local dir="$WORK/lab"
	mkdir -p "$dir"
	for p in a:client b:server c:server; do
		cat <<-EOF
			apiVersion: v1
			kind: Pod
			metadata: {name: ${p%%:*}, namespace: x, labels: {pod: ${p%%:*}, role: ${p#*:}}}
			spec: {containers: [{name: c, image: busybox, ports: [{containerPort: 80}]}]}
			---
		EOF
	done >"$dir/pods.yaml"
	zz_allow() {
		cat <<-EOF
			apiVersion: networking.k8s.io/v1
			kind: NetworkPolicy
			metadata: {name: zz-allow, namespace: x}
			spec:
			  podSelector: {matchLabels: {role: server}}
			  policyTypes: [Ingress]
			  ingress: [{from: [{podSelector: {matchLabels: {pod: a}}}], ports: [$1]}]
		EOF
	}
	zz_allow "{port: 8080}, {port: 80}" >"$dir/zz-allow.yaml"
	zz_allow "{port: 8080}, {port: 80}" >"$WORK/allow.yaml"
	zz_allow "{port: 80}" >"$WORK/deny.yaml"

	log "(a) lab $LAB on its own API server"
	LAB_UP=1
	run 600 "$BIN" lab up "$dir" --kube --name "$LAB" >"$WORK/lab-up.log" 2>&1 || { cat "$WORK/lab-up.log" >&2; return 1; }
	local state="/run/palisade/$LAB/state.json"
	KUBECONFIG_FILE=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["kube"]["admin_kubeconfig"])' "$state")
	local a_ns b_ns b_ip c_ip
	read -r a_ns b_ns b_ip c_ip < <(python3 - "$state" <<-'EOF'
		import json, sys
		s = json.load(open(sys.argv[1]))
		at = {x["name"]: (ns, x["ip"]) for x, ns in zip(s["subjects"], s["subject_netns"])}
		print(at["x/a"][0], at["x/b"][0], at["x/b"][1], at["x/c"][1])
	EOF
	)
	timeout 14400 ip netns exec "$b_ns" python3 "$WORK/bench.py" serve 8080 &
	PIDS+=($!)
	sleep 0.5

	local fillers=0 n
	for n in "${POLICY_COUNTS[@]}"; do
		if ((n - 1 > fillers)); then
			python3 - "$fillers" "$((n - 1))" >"$WORK/fillers.json" <<-'EOF'
				import json, sys
				items = [{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
				          "metadata": {"name": "p%05d" % j, "namespace": "x"},
				          "spec": {"podSelector": {"matchLabels": {"role": "server"}},
				                   "policyTypes": ["Ingress"],
				                   "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "a"}}}],
				                                "ports": [{"port": 10000 + j}]}]}}
				         for j in range(int(sys.argv[1]), int(sys.argv[2]))]
				print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
			EOF
			local started=$EPOCHREALTIME
			k create -f "$WORK/fillers.json" >/dev/null
			log "(a) created $((n - 1 - fillers)) filler policies in $(since "$started") s"
			fillers=$((n - 1))
			# In sync: both agents admit the last filler's port (watch events arrive in order, so
			# they have seen every policy), then every filler port and the whole lab are checked.
			local last=$((10000 + fillers - 1)) deadline=$((SECONDS + 600))
			until run 30 "${PY[@]}" admitted "$a_ns" "$b_ip" "$last" >/dev/null &&
				run 30 "${PY[@]}" admitted "$a_ns" "$c_ip" "$last" >/dev/null; do
				((SECONDS < deadline)) || { log "(a) agents did not enforce $n policies in 600 s"; return 1; }
				sleep 0.2
			done
			local ports
			ports=$(seq 10000 "$last" | tr '\n' ' ')
			# shellcheck disable=SC2086
			run 60 "${PY[@]}" admitted "$a_ns" "$b_ip" $ports
			# shellcheck disable=SC2086
			run 60 "${PY[@]}" admitted "$a_ns" "$c_ip" $ports
			log "(a) agents enforce all $n policies $(since "$started") s after kubectl create began"
		fi
		local compare deadline=$((SECONDS + 120))
		until compare=$(run 120 "$BIN" lab probe --compare --name "$LAB" 2>/dev/null | tail -n 1) && [[ $compare == "0 of "* ]]; do
			((SECONDS < deadline)) || { log "(a) lab probe --compare: $compare"; return 1; }
			sleep 1
		done
		log "(a) $n policies: lab probe --compare: $compare; $CHANGES changes"
		run 3600 python3 "$WORK/bench.py" flip "$KUBECTL" "$KUBECONFIG_FILE" "$a_ns" "$b_ip" 8080 \
			"$WORK/allow.yaml" "$WORK/deny.yaml" "$CHANGES" "$WORK/flips-$n.txt"
		local s0 s1 sk
		read -r -a s0 < <("${PY[@]}" stats "$WORK/flips-$n.txt" 1)
		read -r -a s1 < <("${PY[@]}" stats "$WORK/flips-$n.txt" 2)
		read -r -a sk < <("${PY[@]}" stats "$WORK/flips-$n.txt" 3)
		grep '^deny' "$WORK/flips-$n.txt" >"$WORK/flips-$n-deny.txt" || true
		grep '^allow' "$WORK/flips-$n.txt" >"$WORK/flips-$n-allow.txt" || true
		local dd da
		dd=$("${PY[@]}" stats "$WORK/flips-$n-deny.txt" 1 | cut -d' ' -f1)
		da=$("${PY[@]}" stats "$WORK/flips-$n-allow.txt" 1 | cut -d' ' -f1)
		log "(a) $n policies: apply->enforced p50 ${s0[0]} p99 ${s0[1]} max ${s0[2]} ms; kubectl returned->enforced p50 ${s1[0]} p99 ${s1[1]} max ${s1[2]} ms"
		FLIP_ROWS+=("| $n | ${s0[3]} | **${s0[0]}** / ${s0[1]} / ${s0[2]} ms | ${s1[0]} / ${s1[1]} / ${s1[2]} ms | ${sk[0]} / ${sk[1]} ms | $dd / $da ms |")
	done
	stop_pids
	run 120 "$BIN" lab down --name "$LAB" >/dev/null
	LAB_UP=
}

########################################################################################
# (b) agent RSS per watched pod, (c) the API vs files
########################################################################################
RSS_ROWS=()
CREATE_NOTES=()
BASE_RSS=

# One agent for node7 in a namespace of its own; $1: pods in the API server.
agent_rss() {
	local pods=$1 port
	port=$(sed -n 's|.*server: https://127.0.0.1:\([0-9]*\).*|\1|p' "$KUBECONFIG_FILE")
	ip netns add "$NETNS"
	ip -n "$NETNS" link set lo up
	timeout 7200 "$BIN" lab relay --name "$LAB" --netns "$NETNS" --to "127.0.0.1:$port" >"$WORK/relay.log" 2>&1 &
	PIDS+=($!)
	local deadline=$((SECONDS + 30))
	until grep -q ready "$WORK/relay.log"; do
		((SECONDS < deadline)) || { cat "$WORK/relay.log" >&2; return 1; }
		sleep 0.1
	done
	local started=$EPOCHREALTIME tpid apid metrics="" generation=0
	PALISADE_LOG=info timeout 7200 ip netns exec "$NETNS" "$BIN" agent --node node7 --kubeconfig "$KUBECONFIG_FILE" \
		--metrics-addr 127.0.0.1:9464 --flow-log /dev/null >"$WORK/agent-$pods.log" 2>&1 &
	tpid=$!
	PIDS+=("$tpid")
	deadline=$((SECONDS + 900))
	while :; do
		metrics=$(ip netns exec "$NETNS" curl -s --max-time 2 127.0.0.1:9464/metrics || true)
		generation=$(sed -n 's/^palisade_generation \([0-9.]*\)$/\1/p' <<<"$metrics")
		[[ ${generation:-0} != 0 ]] && break
		if ! kill -0 "$tpid" 2>/dev/null || ((SECONDS >= deadline)); then
			log "(b) the agent at $pods pods did not apply rules; its log:"
			tail -n 40 "$WORK/agent-$pods.log" >&2
			return 1
		fi
		sleep 0.05
	done
	local applied
	applied=$(sed -n 's/^palisade_last_successful_sync_timestamp_seconds \([0-9.e+]*\)$/\1/p' <<<"$metrics")
	local first
	first=$(python3 -c "import sys; print('%.2f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$started" "$applied")
	apid=$(pgrep -P "$tpid" | head -n 1)
	sleep 2
	local rss hwm rules elements
	rss=$(awk '/^VmRSS/ {print $2}' "/proc/$apid/status")
	hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$apid/status")
	metrics=$(ip netns exec "$NETNS" curl -s --max-time 2 127.0.0.1:9464/metrics || true)
	rules=$(sed -n 's/^palisade_rules \([0-9]*\)$/\1/p' <<<"$metrics")
	elements=$(sed -n 's/^palisade_set_elements \([0-9]*\)$/\1/p' <<<"$metrics")
	local per="-"
	if [[ -z $BASE_RSS ]]; then
		BASE_RSS=$rss
	else
		per=$(python3 -c "import sys; print('%.2f' % ((int(sys.argv[1]) - int(sys.argv[2])) / int(sys.argv[3])))" "$rss" "$BASE_RSS" "$pods")
	fi
	local api_rss
	api_rss=$(awk '/^VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$(cat "$KUBE_DIR/apiserver.pid")/status")
	log "(b) $pods pods: agent VmRSS $rss KiB, VmHWM $hwm KiB, first rules after $first s ($rules rules, $elements set elements); kube-apiserver $api_rss MiB"
	RSS_ROWS+=("| $pods | $((pods / 100)) | $((rss / 1024)) MiB ($rss KiB) | $((hwm / 1024)) MiB | $per | $first s | $rules / $elements | $api_rss MiB |")
	stop_pids
	ip netns del "$NETNS"
}

# Creates pods [$1, $2) (and their namespaces), then patches their status.
create_pods() {
	local from=$1 to=$2 dir="$WORK/pods-$1"
	"${PY[@]}" pods "$from" "$to" "$dir"
	local started=$EPOCHREALTIME
	k create -f "$dir/namespaces.json" >/dev/null
	find "$dir" -name 'pods-*.json' | sort |
		run 3600 xargs -P 4 -n 1 timeout --foreground 1800 "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" create -o name -f >/dev/null
	local created=$EPOCHREALTIME
	run 3600 "${PY[@]}" status "$KUBECONFIG_FILE" "$from" "$to" 8
	local patched=$EPOCHREALTIME
	local note
	note=$(python3 -c "
import sys
f, t, s, c, p = int(sys.argv[1]), int(sys.argv[2]), *map(float, sys.argv[3:])
n = t - f
print('pods %d-%d: created in %.0f s (%.0f/s, kubectl create -f of 1000-pod Lists, 4 at once), status patched in %.0f s (%.0f/s, 8 HTTP connections)' % (f, t, c - s, n / (c - s), p - c, n / (p - c)))
" "$from" "$to" "$started" "$created" "$patched")
	log "(b) $note"
	CREATE_NOTES+=("$note")
	rm -rf "$dir"
}

SNAP_ROWS=()
part_bc() {
	log "(b) a separate API server in $KUBE_DIR"
	KUBECONFIG_FILE=$(PALISADE_KUBE_DIR="$KUBE_DIR" run 600 scripts/kube-env up | tail -n 1)
	python3 -c '
import json
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
    {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node%d" % i}} for i in range(100)]}))
' >"$WORK/nodes.json"
	k create -f "$WORK/nodes.json" >/dev/null
	agent_rss 0
	local have=0 n
	for n in "${POD_COUNTS[@]}"; do
		if ((n > have)); then create_pods "$have" "$n"; fi
		have=$n
		agent_rss "$n"
	done
	[[ $PARTS == *c* ]] || return 0

	local namespaces=$(((have + 99) / 100)) started
	"${PY[@]}" policies "$namespaces" 1000 "$WORK/policies.json"
	started=$EPOCHREALTIME
	k create -f "$WORK/policies.json" >/dev/null
	log "(c) 1000 policies created in $(since "$started") s; snapshot and matrix, 3 runs each"
	local mode runs=3 i walls rsses res
	for mode in snapshot files api; do
		walls=() rsses=()
		for i in $(seq "$runs"); do
			case $mode in
			snapshot)
				rm -rf "$WORK/snap"
				res=$(run 1800 "${PY[@]}" time "$WORK/snapshot.out" -- "$BIN" snapshot --kubeconfig "$KUBECONFIG_FILE" -o "$WORK/snap")
				;;
			files) res=$(run 1800 "${PY[@]}" time "$WORK/matrix-files.out" -- "$BIN" matrix -o summary "$WORK/snap") ;;
			api) res=$(run 1800 "${PY[@]}" time "$WORK/matrix-api.out" -- "$BIN" matrix -o summary --kubeconfig "$KUBECONFIG_FILE") ;;
			esac
			walls+=("${res% *}") rsses+=("${res#* }")
			log "(c) $mode run $i: ${res% *} s, peak RSS $((${res#* } / 1024)) MiB"
		done
		SNAP_ROWS+=("$mode $(median "${walls[@]}") $(median "${rsses[@]}") ${walls[*]}")
	done
	walls=()
	for i in $(seq "$runs"); do
		res=$(run 1800 "${PY[@]}" rawlist "$KUBECONFIG_FILE")
		walls+=("${res% *}")
		log "(c) raw list run $i: ${res% *} s, $((${res#* } / 1048576)) MiB"
	done
	local listed="${walls[*]}"
	RAW_ROW="| the four lists alone, as palisade asks for them (pods as protobuf in pages of 5000), bytes read, nothing decoded; Python | $(median "${walls[@]}") s | - | ${listed// / s, } s ($((${res#* } / 1048576)) MiB) |"
	SNAP_SIZE=$(du -sh "$WORK/snap" | cut -f1)
	if cmp -s "$WORK/matrix-files.out" "$WORK/matrix-api.out"; then
		SNAP_SAME="identical"
	else
		SNAP_SAME="DIFFERENT (diff below)"
		diff "$WORK/matrix-files.out" "$WORK/matrix-api.out" | head -n 20 >"$WORK/matrix.diff" || true
	fi
	SUMMARY_HEAD=$(head -n 1 "$WORK/matrix-api.out")
}

log "$(nproc) CPUs, $(uname -r), $("$KUBECTL" version --client 2>/dev/null | head -n 1), parts: $PARTS"
if [[ $PARTS == *a* ]]; then part_a; fi
if [[ $PARTS == *b* ]]; then part_bc; fi

echo
echo "## bench-kube: $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ), kube-apiserver v1.35.4 (scripts/kube-env)"
if ((${#FLIP_ROWS[@]})); then
	echo
	HOW="kubectl apply --server-side"
	[[ ${BENCH_APPLY:-} != client ]] || HOW="kubectl apply (client-side)"
	echo "(a) \`$HOW\` of a policy → enforced in the lab (cross-node: x/a on node0 → x/b:8080 on node1), $CHANGES changes per row, deny and allow alternately:"
	echo
	echo "| policies in the API | changes | apply started → enforced: p50 / p99 / max | kubectl returned → enforced: p50 / p99 / max | kubectl apply itself: p50 / p99 | p50 to deny / to allow (from apply start) |"
	echo "| --- | --- | --- | --- | --- | --- |"
	printf '%s\n' "${FLIP_ROWS[@]}"
fi
if ((${#RSS_ROWS[@]})); then
	echo
	echo "(b) one agent (node7 of 100 nodes) watching the API server: memory after its first rules are applied (+2 s):"
	echo
	echo "| pods in the API | pods on the agent's node | agent VmRSS | agent VmHWM | (RSS − RSS at 0 pods) / pod, KiB | agent start → first rules applied | rules / set elements | kube-apiserver RSS |"
	echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
	printf '%s\n' "${RSS_ROWS[@]}"
	echo
	printf -- '- %s\n' "${CREATE_NOTES[@]}"
	echo "- every pod has its status patched (phase Running, podIP, podIPs), as a kubelet would"
fi
if ((${#SNAP_ROWS[@]})); then
	echo
	echo "(c) $SUMMARY_HEAD; snapshot $SNAP_SIZE; outputs of the two matrix runs: $SNAP_SAME"
	echo
	echo "| what | median wall | peak RSS (median) | runs |"
	echo "| --- | --- | --- | --- |"
	declare -A WALL
	for r in "${SNAP_ROWS[@]}"; do
		read -r mode wall rss rest <<<"$r"
		WALL[$mode]=$wall
		case $mode in
		snapshot) label="\`palisade snapshot --kubeconfig K -o DIR\`" ;;
		files) label="\`palisade matrix -o summary DIR\` (files)" ;;
		api) label="\`palisade matrix -o summary --kubeconfig K\` (API)" ;;
		esac
		echo "| $label | ${wall} s | $((rss / 1024)) MiB | ${rest// / s, } s |"
	done
	echo "$RAW_ROW"
	echo "| **API / files** | **$(python3 -c "import sys; print('%.2fx' % (float(sys.argv[1]) / float(sys.argv[2])))" "${WALL[api]}" "${WALL[files]}")** (goal ≤ 2x) | | |"
	[[ -f $WORK/matrix.diff ]] && { echo; echo '```'; cat "$WORK/matrix.diff"; echo '```'; }
fi
echo
echo "whole script: $(since "$SCRIPT_START") s"
