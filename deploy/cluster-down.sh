#!/usr/bin/env bash
# Stop what deploy/cluster-up.sh started: the mlflow server, SLURM's daemons, and munged and
# PostgreSQL when it was the one to start them (a PostgreSQL that was already running stays up).
# The data stay for the next `make cluster-up`; --purge also drops the two databases and removes
# the state folder (runs, artifacts, logs) and /etc/slurm/slurm.conf. Stopping twice is fine.
#
#   sudo make cluster-down          (or: sudo deploy/cluster-down.sh [--purge])
set -euo pipefail

state="${LRDECAY_CLUSTER_DIR:-/var/lib/lrdecay-cluster}"
conf=/etc/slurm/slurm.conf
marker="# written by lrdecay's deploy/cluster-up.sh"
purge=false
[ "${1:-}" = --purge ] && purge=true

die() { echo "cluster-down: $*" >&2; exit 1; }
say() { echo "cluster-down: $*"; }

[ "$(id -u)" = 0 ] || die "must run as root (it stops slurmctld, slurmd, munged and PostgreSQL): sudo make cluster-down"
export PATH="$PATH:/usr/sbin:/sbin"

# stop_pid NAME PIDFILE: TERM, then KILL after 20 s; quiet when it is not running
stop_pid() {
  local name="$1" file="$2" pid
  [ -s "$file" ] || return 0
  pid="$(cat "$file")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null || true
    say "$name stopped"
  fi
  rm -f "$file"
}

stop_pid "mlflow server" "$state/mlflow-server.pid"
if [ -e "$conf" ] && grep -qF "$marker" "$conf"; then
  command -v scancel >/dev/null && scancel --quiet --full "--user=root" 2>/dev/null || true
  stop_pid slurmd "$state/slurmd.pid"
  stop_pid slurmctld "$state/slurmctld.pid"
fi
rm -f "$state/started-slurm"
if [ -e "$state/started-munge" ]; then
  pid="$(pgrep -x -u munge munged || true)"
  if [ -n "$pid" ]; then
    echo "$pid" > "$state/munged.pid"
    stop_pid munged "$state/munged.pid"
  fi
  rm -f "$state/started-munge"
fi
if [ -e "$state/started-postgresql" ] || $purge; then
  if $purge && command -v psql >/dev/null; then
    for db in lrdecay_mlflow lrdecay_optuna; do
      runuser -u postgres -- dropdb --if-exists "$db" 2>/dev/null || true
    done
  fi
  if [ -e "$state/started-postgresql" ]; then
    pg_lsclusters -h | awk '$4 == "online" {print $1, $2}' | while read -r version name; do
      pg_ctlcluster "$version" "$name" stop && say "PostgreSQL $version/$name stopped"
    done
    rm -f "$state/started-postgresql"
  fi
fi
if $purge; then
  rm -rf "$state"
  if [ -e "$conf" ] && grep -qF "$marker" "$conf"; then rm -f "$conf"; fi
  say "purged $state, the databases and $conf"
fi
rm -f "$state/cluster.env"
say "stopped"
