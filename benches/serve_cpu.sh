#!/usr/bin/env bash
# CPU per session of the prediction service (issue 20): runs
# `COMPARISONS=$1 benches/serve_load.sh 64 60` and reads the CPU time of
# the whole machine (/proc/stat) and of the model owner's and the dealer's
# processes (/proc/PID/stat, utime + stime, sampled until they exit), and
# prints each per session served (the two services sampled every 0.2 s
# until they exit, so the last 0.2 s may go uncounted). "rest" is everything else: the 64
# `veil predict` clients, and the load script's own setup (certificates,
# compiling, generating the rows). Usage (from the repository's root, with
# VEIL set as for serve_load.sh):
#   VEIL=$PWD/target/release/veil benches/serve_cpu.sh dcf
#   VEIL=$PWD/target/release/veil benches/serve_cpu.sh carry-tree
set -u
cd "$(dirname "$0")/.."
HZ=$(getconf CLK_TCK)
read -r _ u n s i rest < /proc/stat; T0=$((u+n+s)); 
COMPARISONS="${1:?usage: benches/serve_cpu.sh dcf|carry-tree}" KEEP=0 timeout 600 benches/serve_load.sh 64 60 > "${TMPDIR:-/tmp}/serve_cpu.log" 2>&1 &
# Wait (up to a minute) for both services to start.
for _ in $(seq 1 600); do
  LAB=$(ps -eo pid,comm,args | grep -- "--as lab" | grep -v grep | awk '$2=="veil"{print $1}' | head -1)
  HEL=$(ps -eo pid,comm,args | grep -- "--as helper" | grep -v grep | awk '$2=="veil"{print $1}' | head -1)
  if [ -n "$LAB" ] && [ -n "$HEL" ]; then break; fi
  sleep 0.1
done
last_l=0; last_h=0
while kill -0 $LAB 2>/dev/null; do
  l=$(awk '{print $14+$15}' /proc/$LAB/stat 2>/dev/null) && last_l=$l
  h=$(awk '{print $14+$15}' /proc/$HEL/stat 2>/dev/null) && last_h=$h
  sleep 0.2
done
wait
read -r _ u n s i rest < /proc/stat; T1=$((u+n+s))
served=$(grep -o "served=[0-9]*" "${TMPDIR:-/tmp}/serve_cpu.log" | cut -d= -f2)
echo "$1: $(grep served= "${TMPDIR:-/tmp}/serve_cpu.log")"
echo "ticks total=$((T1-T0)) lab=$last_l helper=$last_h served=$served"
clients=$(grep -o "clients_cpu_s=[0-9.]*" "${TMPDIR:-/tmp}/serve_cpu.log" | cut -d= -f2)
python3 -c "
t=$((T1-T0)); l=$last_l; h=$last_h; s=$served; c=${clients:-0}
hz=$HZ
print(f'per session: all {t/s*1000/hz:.2f} ms, lab {l/s*1000/hz:.2f} ms, dealer {h/s*1000/hz:.2f} ms, '
      f'clients {c/s*1000:.2f} ms, rest (scripts, anything else running) {(t/hz-l/hz-h/hz-c)/s*1000:.2f} ms')"
