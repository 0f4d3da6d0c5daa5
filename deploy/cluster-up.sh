#!/usr/bin/env bash
# A local stand-in for a team's cluster, from Debian's packages: a single-node SLURM cluster
# (slurmctld + slurmd on this host, munge for authentication), a PostgreSQL server with one
# database for MLflow and one for shared Optuna studies, and an `mlflow server` on 127.0.0.1
# backed by that database, serving artifacts from a shared folder. Run as root; running it again
# starts only what is not running. The last line printed is the `export` to paste.
#
#   sudo make cluster-up            (or: sudo deploy/cluster-up.sh; --preflight: checks only)
#
# Settings (environment): LRDECAY_CLUSTER_DIR (state, logs, artifacts; /var/lib/lrdecay-cluster),
# LRDECAY_PARTITION (debug), LRDECAY_CLUSTER_CPUS (CPUs the node offers; 2), LRDECAY_MLFLOW_PORT
# (5055), MLFLOW (the mlflow executable; .venv/bin/mlflow, with psycopg from requirements.lock).
# No password exists anywhere: PostgreSQL admits local users through its Unix socket as the
# database role of their own name (peer authentication).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
state="${LRDECAY_CLUSTER_DIR:-/var/lib/lrdecay-cluster}"
partition="${LRDECAY_PARTITION:-debug}"
cpus="${LRDECAY_CLUSTER_CPUS:-2}"
port="${LRDECAY_MLFLOW_PORT:-5055}"
mlflow="${MLFLOW:-$repo/.venv/bin/mlflow}"
conf=/etc/slurm/slurm.conf
marker="# written by lrdecay's deploy/cluster-up.sh"

die() { echo "cluster-up: $*" >&2; exit 1; }
say() { echo "cluster-up: $*"; }

[ "$(id -u)" = 0 ] || die "must run as root (it starts slurmctld, slurmd, munged and PostgreSQL): sudo make cluster-up"
missing=()
for pair in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge \
            pg_ctlcluster:postgresql psql:postgresql; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin" command -v "${pair%%:*}" \
    >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  pkgs="$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')"
  die "missing Debian package(s): ${pkgs% }; install: apt-get install -y slurm-wlm munge postgresql"
fi
[ "${1:-}" = --preflight ] && exit 0  # root and packages checked: what make does first
[ -x "$mlflow" ] || die "no mlflow at $mlflow; run make setup first (or set MLFLOW=)"
"$(dirname "$mlflow")/python" -c 'import psycopg' 2>/dev/null \
  || die "the PostgreSQL driver is missing from $(dirname "$(dirname "$mlflow")"); install: make setup (requirements.lock carries it)"
export PATH="$PATH:/usr/sbin:/sbin"
mkdir -p "$state"/{slurmctld,slurmd,log,artifacts}
chmod 755 "$state"

# --- munge: SLURM's daemons and commands authenticate with it
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  if [ ! -s /etc/munge/munge.key ]; then
    (command -v mungekey >/dev/null && mungekey --create --keyfile=/etc/munge/munge.key) \
      || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  fi
  mkdir -p /run/munge && chown munge:munge /run/munge
  runuser -u munge -- munged >/dev/null
  touch "$state/started-munge"
  say "munged started"
fi

# --- PostgreSQL: the tracking server's database and the shared Optuna studies' database
read -r pg_version pg_cluster pg_status < <(pg_lsclusters -h | awk 'NR==1 {print $1, $2, $4}') || true
if [ -z "${pg_version:-}" ]; then
  pg_version="$(ls /usr/lib/postgresql | sort -n | tail -1)"
  pg_cluster=main
  pg_createcluster "$pg_version" "$pg_cluster" >/dev/null
  pg_status=down
fi
if [ "$pg_status" != online ]; then
  pg_ctlcluster "$pg_version" "$pg_cluster" start
  touch "$state/started-postgresql"
  say "PostgreSQL $pg_version/$pg_cluster started"
fi
pg() { runuser -u postgres -- psql -qtAX -v ON_ERROR_STOP=1 "$@"; }
for _ in $(seq 30); do pg -c 'select 1' >/dev/null 2>&1 && break; sleep 0.5; done
# root's role owns both: the tracking server, the jobs and the tests run as root here
[ "$(pg -c "select 1 from pg_roles where rolname = 'root'")" = 1 ] \
  || pg -c "create role root login" >/dev/null
for db in lrdecay_mlflow lrdecay_optuna; do
  [ "$(pg -c "select 1 from pg_database where datname = '$db'")" = 1 ] \
    || runuser -u postgres -- createdb -O root "$db"
done

# --- SLURM: one node (this host), one partition
node="$(hostname -s)"
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
if [ -e "$conf" ] && ! grep -qF "$marker" "$conf"; then
  die "$conf exists and was not written by this script; move it aside to use the local cluster"
fi
new_conf="$(cat <<EOF
$marker: a single-node cluster for lrdecay's tests
ClusterName=lrdecay
SlurmctldHost=$node
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# a requeued job may start again 10 s after it stopped (the default waits 120 s)
AuthInfo=cred_expire=10
StateSaveLocation=$state/slurmctld
SlurmdSpoolDir=$state/slurmd
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
# a requeued or preempted job is killed 2 s after its SIGTERM (the default waits 30 s)
KillWait=2
MinJobAge=300
# look at pending jobs every 2 s: a requeued job starts again as soon as it may
SchedulerParameters=sched_interval=2,bf_interval=2
SlurmdTimeout=60
NodeName=$node CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=$partition Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
)"
if [ ! -e "$conf" ] || [ "$(cat "$conf")" != "$new_conf" ]; then
  mkdir -p /etc/slurm
  printf '%s\n' "$new_conf" > "$conf"
  if scontrol ping >/dev/null 2>&1; then scontrol reconfigure; fi
fi
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
if ! alive "$state/slurmctld.pid"; then
  slurmctld
  touch "$state/started-slurm"
  say "slurmctld started"
fi
if ! alive "$state/slurmd.pid"; then
  slurmd
  say "slurmd started on $node"
fi
for _ in $(seq 60); do
  node_state="$(sinfo -h -n "$node" -o %t 2>/dev/null | head -1)"
  case "$node_state" in idle*|mix*|alloc*) break ;; esac
  sleep 0.5
done
case "${node_state:-}" in
  idle*|mix*|alloc*) ;;
  down*|drain*) scontrol update nodename="$node" state=resume ;;
  *) die "the SLURM node $node did not come up (state '${node_state:-none}'); see $state/log/" ;;
esac

# --- the tracking server: PostgreSQL behind it, artifacts from the shared folder
uri="http://127.0.0.1:$port"
healthy() { python3 -c "import urllib.request; urllib.request.urlopen('$uri/health', timeout=2)" 2>/dev/null; }
if ! healthy; then
  # without MLflow's GenAI job runners (eight processes, ~1.9 GB), which this project never uses
  MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false setsid "$mlflow" server \
    --backend-store-uri "postgresql:///lrdecay_mlflow" \
    --artifacts-destination "$state/artifacts" --serve-artifacts \
    --host 127.0.0.1 --port "$port" --workers 2 \
    >>"$state/log/mlflow-server.log" 2>&1 </dev/null &
  echo $! > "$state/mlflow-server.pid"
  for _ in $(seq 120); do healthy && break; kill -0 "$(cat "$state/mlflow-server.pid")" 2>/dev/null || break; sleep 1; done
  healthy || die "mlflow server did not answer on $uri; see $state/log/mlflow-server.log"
  say "mlflow server started on $uri"
fi

# What the tests and the docs read back (nothing secret: there is no password).
cat > "$state/cluster.env" <<EOF
LRDECAY_PARTITION=$partition
LRDECAY_CLUSTER_CPUS=$cpus
LRDECAY_OPTUNA_STORAGE=postgresql:///lrdecay_optuna
MLFLOW_TRACKING_URI=$uri
EOF
say "SLURM partition '$partition' on node $node ($cpus CPUs): hydra/launcher=submitit_slurm cluster=local"
say "Optuna storage: hydra.sweeper.storage='postgresql:///lrdecay_optuna'"
say "artifacts: $state/artifacts; logs: $state/log; stop: make cluster-down"
echo "export MLFLOW_TRACKING_URI=$uri"
