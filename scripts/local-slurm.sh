#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine (Debian's slurm-wlm and munge), with a
# fake GPU resource (two GPUs), for the integration test of `snakemake --profile slurm all`.
# Idempotent: safe to run twice. Needs root. Usage: scripts/local-slurm.sh [start|stop]
set -euo pipefail
action=${1:-start}
host=$(hostname -s)

stop_daemons() {
    pkill -x slurmd || true
    pkill -x slurmctld || true
    for _ in $(seq 1 50); do
        pgrep -x slurmd >/dev/null || pgrep -x slurmctld >/dev/null || return 0
        sleep 0.2
    done
}

if [ "$action" = stop ]; then
    stop_daemons
    exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurm-wlm munge >/dev/null
fi

# munge: one key, owned by munge, mode 400
mkdir -p /etc/munge /var/log/munge /var/lib/munge /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown -R munge:munge /etc/munge /var/log/munge /var/lib/munge /run/munge
chmod 400 /etc/munge/munge.key
if ! pgrep -x munged >/dev/null; then
    su -s /bin/sh munge -c /usr/sbin/munged
fi

# The node declares the size of a GPU node (LOCAL_SLURM_CPUS, LOCAL_SLURM_MEM_MB) so the
# workflow profile's per-rule requests, sized for the paper, are accepted unchanged;
# config_overrides keeps slurmd from draining a node smaller than it says.
cpus=${LOCAL_SLURM_CPUS:-16}
mem_mb=${LOCAL_SLURM_MEM_MB:-128000}
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
conf=$(mktemp)
cat > "$conf" <<CONF
ClusterName=local
SlurmctldHost=${host}
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SlurmUser=root
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
SlurmdParameters=config_overrides
MinJobAge=300
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
GresTypes=gpu
NodeName=${host} CPUs=${cpus} RealMemory=${mem_mb} Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
# two fake GPUs (each needs its own device file), so two shards of a stage run at once: jobs
# asking for one get CUDA_VISIBLE_DEVICES=0 and find no CUDA device
gres="NodeName=${host} Name=gpu File=/dev/null
NodeName=${host} Name=gpu File=/dev/zero"
# a changed configuration (GRES counts above all) needs the daemons restarted, not reconfigured
if ! cmp -s "$conf" /etc/slurm/slurm.conf || [ "$(cat /etc/slurm/gres.conf 2>/dev/null)" != "$gres" ]; then
    chmod 644 "$conf"
    mv "$conf" /etc/slurm/slurm.conf
    echo "$gres" > /etc/slurm/gres.conf
    stop_daemons
else
    rm -f "$conf"
fi

pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 1 30); do
    if sinfo -h -o %T 2>/dev/null | grep -qE "idle|mix|alloc"; then
        sinfo
        exit 0
    fi
    scontrol update nodename="${host}" state=resume >/dev/null 2>&1 || true
    sleep 1
done
echo "local-slurm: the node did not become idle; see /var/log/slurm/" >&2
sinfo >&2 || true
exit 1
