#!/usr/bin/env bash
# Measures kubeboot apply's SSH fan-out on the testbed's network-namespace
# hosts (/work/shared/docs/testbed.md section 3) and prints markdown tables.
#
# For each N (default 100 and 200):
#   1. brings up N hosts (testbed netns/up.sh, sshd MaxStartups 100:30:200);
#   2. the floor: a bare golang.org/x/crypto/ssh client connects to every
#      host with 20 goroutines and runs `true` (wall time);
#   3. cluster.Apply, Parallel 20, with this checkout's kubeboot (bin/kubeboot,
#      put where apply keeps it, /usr/local/lib/kubeboot/kubeboot-<sha256>,
#      in the machine's /usr, which every host sees through its /usr overlay,
#      and removed again at the end) and a valid 10 MiB bundle (applybench
#      mkbundle): the first run (connect + facts probe + the bundle's upload
#      + kubeboot preflight on every host, StopAfter: preflight) and the
#      no-op re-run of the SSH-level steps (connect + probe, StopAfter:
#      upload): wall time, round trips per
#      host (Result.Hosts[].Calls), bytes sent (Result.Hosts[].Sent), and the
#      peak RSS of the process (/usr/bin/time -v; getrusage inside too) and
#      the machine's CPU busy share (the hosts' sshds share its cores);
#   4. tears the hosts down.
# The floor and the re-run are repeated REPS times (default 3), alternating;
# the table shows their medians. Then, unless LATENCY=0, 10 hosts behind
# toxiproxy (in-process, 100 ms each way): floor, first run, no-op re-run.
# Goals (reported, not asserted): no-op re-run <= 1.2x the floor; peak RSS
# <= 150 MiB at 200 hosts; the 10-host re-run through 100 ms <= 10 s.
#
#   test/bench/apply-fanout.sh [N ...]        (as root; N <= 200)
#   REPS=1 LATENCY=0 test/bench/apply-fanout.sh 20
# Env: TESTBED (default /work/shared/testbed/netns), OUT (results directory,
# default a new /tmp/kubeboot-fanout.XXXXXX, kept), LATENCY_MS (100).
# Traffic goes only to the testbed's bridge (10.250.0.0/24) and loopback.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces)" >&2; exit 1; }
export PATH=$PATH:/usr/local/go/bin
TESTBED=${TESTBED:-/work/shared/testbed/netns}
TB=/tmp/testbed # fixed by the testbed scripts
REPS=${REPS:-3}
LATENCY=${LATENCY:-1}
LATENCY_MS=${LATENCY_MS:-100}
ns=("$@")
(( ${#ns[@]} )) || ns=(100 200)
for n in "${ns[@]}"; do
  [[ "$n" =~ ^[0-9]+$ ]] && (( n >= 1 && n <= 200 )) || { echo "N must be 1..200, not $n" >&2; exit 1; }
done
# One testbed per machine (fixed names tbbr0, tbn<i>): refuse to touch one
# that someone else brought up.
if [ -e $TB/state/up ] || ip link show tbbr0 >/dev/null 2>&1; then
  echo "a netns testbed is already up ($TB/state/up or bridge tbbr0): someone else's? Not touching it." >&2
  exit 1
fi

OUT=${OUT:-$(mktemp -d /tmp/kubeboot-fanout.XXXXXX)}
mkdir -p "$OUT"
bin=$OUT/applybench
blob=$OUT/kubeboot-10MiB.bin
bundle=$OUT/bundle-10MiB.tar
kb=$repo/bin/kubeboot
libdir=/usr/local/lib/kubeboot
placed=()
up=0
down() {
  if (( up )); then
    "$TESTBED/down.sh" >>"$OUT/testbed.log" 2>&1 || echo "warning: down.sh failed, see $OUT/testbed.log" >&2
    up=0
  fi
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  down
  rm -f "$blob"
  (( ${#placed[@]} == 0 )) || rm -f "${placed[@]}"
  [ ! -d "$libdir" ] || rmdir "$libdir" 2>/dev/null || true
  (( rc == 0 )) || echo "apply-fanout: failed (exit $rc); logs in $OUT" >&2
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

testbed_up() { # N
  mkdir -p $TB
  install -m 0755 "$TESTBED/hostinit.sh" $TB/hostinit.sh # up.sh runs $TB/hostinit.sh
  up=1
  MAXSTARTUPS=100:30:200 PASSWORD_HOSTS="" "$TESTBED/up.sh" "$1" >>"$OUT/testbed.log" 2>&1 \
    || { tail -20 "$OUT/testbed.log" >&2; return 1; }
  tail -2 "$OUT/testbed.log" | head -1
  grep -q '^MaxStartups 100:30:200$' $TB/hosts/node1/upper/etc/ssh/sshd_config \
    || { echo "sshd MaxStartups is not 100:30:200 on node1" >&2; return 1; }
}

inventory() { # N FILE [BUNDLE]
  {
    printf 'apiVersion: kubeboot.io/v1alpha1\nkind: Cluster\nkubernetesVersion: v1.34.3\n'
    [ -z "${3:-}" ] || printf 'bundle: %s\n' "$3"
    printf 'ssh:\n  user: root\n  keyFile: %s\n  knownHostsFile: %s\n' $TB/ssh/id_ed25519 $TB/ssh/known_hosts
    printf 'hosts:\n'
    for ((i = 1; i <= $1; i++)); do
      role=worker; (( i == 1 )) && role=control-plane
      # node<i>: the name the host's /etc/hosts and hostname give it (preflight resolves it)
      printf '  - {name: node%d, address: 10.250.0.%d, roles: [%s]}\n' $i $((10 + i)) $role
    done
  } >"$2"
}

measure() { # NAME SUBCOMMAND ARGS...: one process, under /usr/bin/time -v
  local name=$1; shift
  /usr/bin/time -v -o "$OUT/$name.time" "$bin" "$@" -json "$OUT/$name.json" >/dev/null 2>"$OUT/$name.err" \
    || { echo "$name failed:" >&2; cat "$OUT/$name.err" >&2; return 1; }
  jq -r --arg n "$name" '"  \($n): \(.wallMs/10|round/100) s, \(.ok) ok, \(.failed) failed" + (if .kind == "apply" then ", round trips/host \(.callsMin)-\(.callsMax), sent \(.sentTotal) B" else "" end) + ", getrusage maxrss \(.maxRssKiB) KiB"' "$OUT/$name.json"
  if [ -s "$OUT/$name.err" ]; then sed 's/^/    stderr: /' "$OUT/$name.err" | head -20; fi
}

echo "results: $OUT"
{ echo "HEAD $(git -C "$repo" rev-parse HEAD 2>/dev/null)"; git -C "$repo" status --short 2>/dev/null; } >"$OUT/tree.txt"
(cd test/bench/applybench && go build -o "$bin" .)
head -c $((10 << 20)) /dev/urandom >"$blob"
"$bin" mkbundle -o "$bundle" -mib 10 >/dev/null
make -s build
# kubeboot where apply looks for it on every host (their /usr is an overlay
# of this machine's): preflight runs it; the 10 MiB upload is the bundle.
sum=$(sha256sum "$kb" | cut -d' ' -f1)
if [ ! -e "$libdir/kubeboot-${sum:0:16}" ]; then
  mkdir -p "$libdir"
  placed+=("$libdir/kubeboot-${sum:0:16}" "$libdir/kubeboot-${sum:0:16}.ok")
  install -m 0755 "$kb" "$libdir/kubeboot-${sum:0:16}"
  echo "$sum" >"$libdir/kubeboot-${sum:0:16}.ok"
fi

for n in "${ns[@]}"; do
  echo "== N=$n"
  testbed_up "$n"
  inventory "$n" "$OUT/cluster-$n.yaml" "$bundle"
  inv=$OUT/cluster-$n.yaml
  measure "floor-$n-1" floor -f "$inv" -parallel 20 -label floor
  measure "first-$n" apply -f "$inv" -binary "$kb" -parallel 20 -label first -stop-after preflight -cache "$OUT/cache" -out "$OUT/first-$n.out" -log "$OUT/first-$n.log"
  for ((r = 1; r <= REPS; r++)); do
    (( r == 1 )) || measure "floor-$n-$r" floor -f "$inv" -parallel 20 -label floor
    measure "rerun-$n-$r" apply -f "$inv" -binary "$kb" -parallel 20 -label rerun -cache "$OUT/cache" -out "$OUT/rerun-$n-$r.out" -log "$OUT/rerun-$n-$r.log"
  done
  down
done

if [ "$LATENCY" = 1 ]; then
  echo "== latency: 10 hosts behind toxiproxy, $LATENCY_MS ms each way"
  testbed_up 10
  inventory 10 "$OUT/cluster-latency.yaml"
  "$bin" latency -f "$OUT/cluster-latency.yaml" -binary "$blob" -parallel 20 -latency-ms "$LATENCY_MS" -dir "$OUT" \
    >"$OUT/latency.stdout" 2>"$OUT/latency.err" || { echo "latency run failed:" >&2; cat "$OUT/latency.err" >&2; exit 1; }
  for f in latency-floor latency-first latency-rerun; do
    jq -r --arg n "$f" '"  \($n): \(.wallMs/10|round/100) s, \(.ok) ok, \(.failed) failed" + (if .kind == "apply" then ", round trips/host \(.callsMin)-\(.callsMax), sent \(.sentTotal) B" else "" end)' "$OUT/$f.json"
  done
  down
fi

echo
"$bin" report "$OUT" | tee "$OUT/report.md"
echo
echo "records, logs and apply's [step] output: $OUT"
