#!/usr/bin/env bash
# A real multi-node Slurm cluster on one machine, with fake GPUs, for tests, benchmarks and demos.
#
#   scripts/slurm-cluster.sh start DIR [NODES] [GPUS_PER_NODE]   start munged, slurmctld and one slurmd per node
#   scripts/slurm-cluster.sh stop DIR                            cancel jobs, stop every daemon of this cluster
#   scripts/slurm-cluster.sh status DIR                          sinfo
#   scripts/slurm-cluster.sh env DIR                             print the SLURM_CONF line clients need
#
# Everything lives under DIR (config, munge key and socket, spool, logs, fake GPU devices). The nodes are named
# node1..nodeN; each slurmd listens on its own port. GPUs are symlinks to /dev/null so that Slurm hands out
# separate device indices (CUDA_VISIBLE_DEVICES) to concurrent jobs. Needs Debian's slurmctld, slurmd,
# slurm-client and munge packages. See ../shared/docs/slurm-local.md for the facts this rests on.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"   # slurmctld, slurmd and munged live there; a normal user's PATH lacks it

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { sed -n '2,12p' "$0"; exit 2; }
mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
conf="$dir/slurm.conf"
export SLURM_CONF="$conf"

alive() {  # a pid file's process is running (not a zombie)
    [ -f "$1" ] || return 1
    local pid; pid=$(cat "$1" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
    local state; state=$(sed 's/.*) //' "/proc/$pid/stat" | cut -d' ' -f1)
    [ "$state" != Z ]
}

start() {
    local nodes=${1:-3} gpus=${2:-8} user; user=$(id -un)
    local port=${SLURM_BASE_PORT:-6900}
    mkdir -p "$dir"/{munge,spool,log,dev,state}
    chmod 755 "$dir/munge"
    for i in $(seq 0 $((gpus - 1))); do ln -sf /dev/null "$dir/dev/nvidia$i"; done
    if [ ! -f "$dir/munge/munge.key" ]; then
        dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
        chmod 400 "$dir/munge/munge.key"
    fi
    if ! alive "$dir/munge/munged.pid"; then
        munged --socket="$dir/munge/munge.sock" --key-file="$dir/munge/munge.key" --pid-file="$dir/munge/munged.pid" \
            --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed" --force
    fi
    local last=$((port + nodes))
    cat > "$conf" <<CONF
ClusterName=gigafactory
SlurmctldHost=localhost
SlurmctldPort=$((port - 1))
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.sock,cred_expire=10
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
SchedulerParameters=batch_sched_delay=0,sched_interval=1
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.txt
SlurmdParameters=config_overrides
ReturnToService=1
SlurmdTimeout=10
KillWait=5
MinJobAge=30
MailProg=/bin/true
PropagateResourceLimits=NONE
StateSaveLocation=$dir/state
SlurmctldPidFile=$dir/slurmctld.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdSpoolDir=$dir/spool/%n
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmdLogFile=$dir/log/slurmd-%n.log
NodeName=node[1-$nodes] NodeHostname=localhost NodeAddr=127.0.0.1 Port=[$port-$((last - 1))] CPUs=32 RealMemory=64000 Gres=gpu:$gpus State=UNKNOWN
PartitionName=gpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
    echo "NodeName=node[1-$nodes] Name=gpu File=$dir/dev/nvidia[0-$((gpus - 1))]" > "$dir/gres.conf"
    if ! alive "$dir/slurmctld.pid"; then
        slurmctld -f "$conf" -i
    fi
    for i in $(seq 1 "$nodes"); do
        mkdir -p "$dir/spool/node$i"
        alive "$dir/slurmd-node$i.pid" || slurmd -f "$conf" -N "node$i"
    done
    for _ in $(seq 1 100); do
        if [ "$(sinfo -h -N -o '%T' 2>/dev/null | grep -c -E '^(idle|mixed|allocated)$')" -ge "$nodes" ]; then
            echo "slurm cluster up: $nodes nodes x $gpus GPUs; export SLURM_CONF=$conf"
            return 0
        fi
        sleep 0.2
    done
    echo "slurm cluster did not come up; see $dir/log" >&2
    sinfo -N >&2 || true
    return 1
}

stop() {
    [ -f "$conf" ] || return 0
    scancel --full --quiet $(squeue -h -o %i 2>/dev/null) 2>/dev/null || true
    for pidfile in "$dir"/slurmd-*.pid "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
        if alive "$pidfile"; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
    done
    for _ in $(seq 1 50); do
        local left=0
        for pidfile in "$dir"/slurmd-*.pid "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
            if alive "$pidfile"; then left=1; fi
        done
        [ "$left" = 0 ] && break
        sleep 0.1
    done
    # Job steps outlive a stopped slurmd: end what is left of this cluster's jobs.
    pkill -f "slurmstepd.*$dir" 2>/dev/null || true
    echo "slurm cluster in $dir stopped"
}

case "$cmd" in
    start) start "${3:-3}" "${4:-8}" ;;
    stop) stop ;;
    status) sinfo -N ;;
    env) echo "export SLURM_CONF=$conf" ;;
    *) sed -n '2,12p' "$0"; exit 2 ;;
esac
