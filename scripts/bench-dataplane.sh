#!/usr/bin/env bash
# Dataplane benchmarks (issue 4, item 8). Run as root on a lab machine:
#
#   scripts/bench-dataplane.sh [POLICY_COUNTS…]      (default: 1000 10000)
#
# Measures, in one run and with CPUs pinned (clients on CPU 0, lab pods, servers and agents on
# CPU 1):
#   (a) new TCP connections per second and iperf3 throughput from pod x/a to x/b (other node)
#       and to x/c (same node) with no table, with the agent but no policy (the baseline the
#       ratios are against), the same with the NFLOG statements removed from the table (what
#       logging every new connection costs), one admitting policy, and 1k / 10k policies;
#   (b) rule compile + apply at 10k pods / 1k policies (the `scale` example), cold and for two
#       everyday changes, with every pod on the node and with 110;
#   (c) time from a policy change on disk to the client observing the new verdict, with both
#       nodes' agents on CPU 1 and then with each node's agent on a CPU of its own.
#
# The N-policy case: every policy isolates the server pods (one chain), each admits x/a on its
# own port (10000+j), and the policy admitting the measured port comes last (what a rule walk
# would make the slowest; the agent renders the chain as one set lookup, and flow records name
# the deciding rule by a binary search in the agent). In (c) the change is to the file of the
# admitting policy; the agent parses only that file again, but compiles all N policies.
#
# All traffic stays inside the lab's own network namespaces (the lab has no link to the
# machine). Every step is bounded by `timeout`; the lab and the scratch directory are removed
# on exit, failure and Ctrl-C. Environment: BENCH_SECONDS (per measurement, default 3),
# BENCH_FLIPS (policy changes per direction in (c), default 5), PALISADE (a prebuilt binary).
set -euo pipefail

cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "bench-dataplane: needs root (network namespaces)" >&2; exit 1; }
COUNTS=("${@:-1000 10000}")
read -r -a COUNTS <<<"${COUNTS[*]}"
SECONDS_EACH=${BENCH_SECONDS:-3}
FLIPS=${BENCH_FLIPS:-5}
LAB="bench-$$"
WORK=$(mktemp -d /tmp/palisade-bench.XXXXXX)
PIDS=()

cleanup() {
	local rc=$?
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	[[ -n ${BIN:-} ]] && "$BIN" lab down --name "$LAB" >/dev/null 2>&1 || true
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need=()
for tool in iperf3:iperf3 nft:nftables conntrack:conntrack ip:iproute2 taskset:util-linux python3:python3; do
	command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
done
if ((${#need[@]})); then
	apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [[ -z ${PALISADE:-} ]]; then
	timeout 1800 cargo build --release -q -p palisade
	BIN=$PWD/target/release/palisade
else
	BIN=$PALISADE
fi

# Pods: x/a (client) and x/c on node 0, x/b on node 1 (the lab spreads pods round-robin).
pods() {
	for p in a:client:10.77.0.1 b:server:10.77.0.2 c:server:10.77.0.3; do
		IFS=: read -r name role ip <<<"$p"
		cat <<-EOF
			apiVersion: v1
			kind: Pod
			metadata: {name: $name, namespace: x, labels: {pod: $name, role: $role}}
			spec: {containers: [{name: c, image: busybox, ports: [{containerPort: 80}]}]}
			status: {podIP: $ip}
			---
		EOF
	done
}

# The policy admitting the measured ports; $1: the ports.
allow() {
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
ALLOW_PORTS="{port: 8080}, {port: 5201}, {port: 80}"
DENY_PORTS="{port: 5201}, {port: 80}"

# $1 filler policies (each its own port), then the admitting one, into directory $2.
manifests() {
	local n=$1 dir=$2
	rm -rf "$dir" && mkdir -p "$dir"
	pods >"$dir/pods.yaml"
	if ((n > 0)); then
		python3 - "$n" >"$dir/policies.yaml" <<-'EOF'
			import sys
			for j in range(int(sys.argv[1]) - 1):
			    print(f"""apiVersion: networking.k8s.io/v1
			kind: NetworkPolicy
			metadata: {{name: p{j:05}, namespace: x}}
			spec:
			  podSelector: {{matchLabels: {{role: server}}}}
			  policyTypes: [Ingress]
			  ingress: [{{from: [{{podSelector: {{matchLabels: {{pod: a}}}}}}], ports: [{{port: {10000 + j}}}]}}]
			---""")
		EOF
		allow "$ALLOW_PORTS" >"$dir/zz-allow.yaml"
	fi
}

cat >"$WORK/conn.py" <<'EOF'
# conn.py serve PORT | rate IP PORT SECONDS | flip IP PORT FILE ALLOW DENY ROUNDS
import socket, struct, sys, time, os

def serve(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(4096)
    while True:
        c, _ = s.accept()
        c.close()

def connect(ip, port, timeout):
    s = socket.socket()
    # RST on close: no TIME_WAIT, so the ports of a long run are not used up.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.settimeout(timeout)
    try:
        s.connect((ip, port))
        return True
    except OSError:
        return False
    finally:
        s.close()

def rate(ip, port, seconds):
    n = failed = 0
    end = time.monotonic() + seconds
    start = time.monotonic()
    while time.monotonic() < end:
        if connect(ip, port, 1.0):
            n += 1
        else:
            failed += 1
    print(f"{n / (time.monotonic() - start):.0f} {failed}")

def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)

def flip(ip, port, path, allow, deny, rounds):
    allow, deny = open(allow).read(), open(deny).read()
    out = {"deny": [], "allow": []}
    for _ in range(rounds):
        for verdict, text, want in (("deny", deny, False), ("allow", allow, True)):
            t0 = time.time()
            write(path, text)
            while True:
                t = time.time()
                if connect(ip, port, 0.01) == want:
                    break
                if t - t0 > 30:
                    sys.exit(f"no {verdict} after 30 s")
                # A probe a millisecond, not a flood: thousands of connections a second would
                # load the node whose agent is being timed (and its flow log).
                time.sleep(0.001)
            out[verdict].append((t - t0) * 1e3)
            time.sleep(0.3)
    for verdict, ms in out.items():
        ms.sort()
        print(f"{verdict} median {ms[len(ms) // 2]:.0f} ms max {ms[-1]:.0f} ms")

cmd = sys.argv[1]
if cmd == "serve": serve(int(sys.argv[2]))
elif cmd == "rate": rate(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
else: flip(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6], int(sys.argv[7]))
EOF
allow "$ALLOW_PORTS" >"$WORK/allow.yaml"
allow "$DENY_PORTS" >"$WORK/deny.yaml"

ns() { echo "palisade-$LAB-$1"; }
CLIENT=$(ns p0) SERVERS=("$(ns p1)" "$(ns p2)") TARGETS=(10.77.0.2 10.77.0.3) PAIRS=(cross-node same-node)
in_ns() { local n=$1 cpu=$2; shift 2; ip netns exec "$n" taskset -c "$cpu" "$@"; }

# $1: label; $2: manifest count or "none"; $3: "nolog" to strip the NFLOG statements.
RESULTS=()
measure() {
	local label=$1 count=$2 mode=${3:-}
	local dir="$WORK/m" agent=()
	if [[ $count == none ]]; then manifests 0 "$dir"; agent=(--no-agent); else manifests "$count" "$dir"; fi
	timeout 300 taskset -c 1 "$BIN" lab up "$dir" --nodes 2 --name "$LAB" "${agent[@]}" >"$WORK/up.log" 2>&1 ||
		{ cat "$WORK/up.log" >&2; return 1; }
	if [[ $mode == nolog ]]; then
		for node in n0 n1; do
			{
				echo "add table inet palisade"
				echo "delete table inet palisade"
				ip netns exec "$(ns $node)" nft list table inet palisade | sed -E 's/log prefix "[^"]*" group [0-9]+ ?//'
			} >"$WORK/nolog.nft"
			ip netns exec "$(ns $node)" nft -f "$WORK/nolog.nft"
		done
	fi
	for i in 0 1; do
		in_ns "${SERVERS[$i]}" 1 python3 "$WORK/conn.py" serve 8080 &
		PIDS+=($!)
		in_ns "${SERVERS[$i]}" 1 iperf3 -s -p 5201 -1 >/dev/null &
		PIDS+=($!)
	done
	sleep 0.5
	for i in 0 1; do
		local conn tput
		conn=$(timeout $((SECONDS_EACH + 30)) ip netns exec "$CLIENT" taskset -c 0 python3 "$WORK/conn.py" rate "${TARGETS[$i]}" 8080 "$SECONDS_EACH")
		tput=$(timeout $((SECONDS_EACH + 30)) ip netns exec "$CLIENT" taskset -c 0 iperf3 -c "${TARGETS[$i]}" -p 5201 -t "$SECONDS_EACH" -J |
			python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))')
		RESULTS+=("$label ${PAIRS[$i]} ${conn%% *} ${conn##* } $tput")
		echo "  $label ${PAIRS[$i]}: ${conn%% *} conn/s (${conn##* } failed), $tput Gbit/s" >&2
	done
	if [[ $count != none && $count != 0 ]]; then
		local row="| $label |" flipped cpus
		# First as pinned above (both nodes' agents share CPU 1), then with each node's agent
		# on a CPU of its own, as on real nodes (node 0's agent shares CPU 0 with the client,
		# which only connects every few ms; node 1's decides the measured connection).
		for cpus in shared own; do
			if [[ $cpus == own ]]; then
				for i in 0 1; do
					for pid in $(ip netns pids "$(ns n$i)"); do taskset -a -p -c "$i" "$pid" >/dev/null; done
				done
			fi
			flipped=$(timeout 600 ip netns exec "$CLIENT" taskset -c 0 python3 "$WORK/conn.py" flip 10.77.0.2 8080 \
				"$dir/zz-allow.yaml" "$WORK/allow.yaml" "$WORK/deny.yaml" "$FLIPS")
			echo "  $label change to enforced (cross-node, agents' CPU $cpus, $FLIPS changes each way): ${flipped//$'\n'/; }" >&2
			row+=" ${flipped//$'\n'/ | } |"
		done
		FLIPPED+=("$row")
	fi
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	PIDS=()
	"$BIN" lab down --name "$LAB" >/dev/null
}

FLIPPED=()
echo "bench-dataplane: $(nproc) CPUs, $(uname -r), ${SECONDS_EACH}s per measurement" >&2
measure "no table" none
measure "no policy" 0
measure "no policy, no NFLOG" 0 nolog
measure "1 policy" 1
for n in "${COUNTS[@]}"; do measure "$n policies" "$n"; done

echo
echo "| ruleset | pair | new conn/s | vs no policy | Gbit/s | vs no policy |"
echo "| --- | --- | --- | --- | --- | --- |"
for r in "${RESULTS[@]}"; do
	python3 - "$r" "${RESULTS[@]}" <<-'EOF'
		import sys
		def fields(line):
		    head, pair, conn, failed, tput = line.rsplit(" ", 4)
		    return head, pair, float(conn), float(tput)
		label, pair, conn, tput = fields(sys.argv[1])
		base = {p: (c, t) for l, p, c, t in map(fields, sys.argv[2:]) if l == "no policy"}
		bc, bt = base[pair]
		print(f"| {label} | {pair} | {conn:.0f} | {conn / bc:.0%} | {tput:.2f} | {tput / bt:.0%} |")
	EOF
done
echo
echo "| policies | agents share CPU 1: to deny | to allow | each agent on its own CPU: to deny | to allow |"
echo "| --- | --- | --- | --- | --- |"
printf '%s\n' "${FLIPPED[@]}"
echo
echo "compile + apply (10k pods, 1k policies, release build), all pods on the node, then 110 (kubelet's default maximum):"
timeout 900 cargo run --release -q -p palisade-dataplane --example scale -- 10000 1000
timeout 900 cargo run --release -q -p palisade-dataplane --example scale -- 10000 1000 110
