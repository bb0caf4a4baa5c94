#!/usr/bin/env bash
# SLURM scale-out test: runs the demo workflow's chain on a real one-node SLURM cluster on this
# machine (munge + slurmctld + slurmd, Debian's slurm-wlm 22.05) through
# snakemake-executor-plugin-slurm and profiles/slurm, then checks that every job went through
# SLURM (job ids in Snakemake's log, `scontrol show job`, the slurmctld log) and that the outputs
# hold the same data as a local run's.
#
# Needs root, apt-get (only when the SLURM binaries are missing) and the Python environment with
# medvqa and the plugin; jobs run as root in that same environment, the local disk is the shared
# filesystem. Daemons, their state and logs live in one temp dir; the EXIT trap cancels the jobs
# and stops the daemons by pid, also on failure (the temp dir is then kept for inspection).
#
# Usage: tests/slurm/run_slurm_test.sh [WORKDIR]    WORKDIR gets local/ and slurm/ run dirs
#        (default: inside the temp dir). KEEP=1 keeps the temp dir after a success too.
set -euo pipefail

# The outputs built both locally and through SLURM (their inputs are built and compared too):
# the data → train → predict chain of the CNN-LSTM, trained for one epoch (slurm.yaml).
TARGETS=(
  results/data/demo/summary.json
  results/predictions/demo/cnn_lstm_demo/0/test.parquet
)
# Rules given `gpu: 1` in the test's profile so that a job exercises the fake GPUs (gres
# scheduling, --gpus, CUDA_VISIBLE_DEVICES). Empty: train and predict declare gpu=1 themselves.
GPU_RULES=()
# Rules whose jobs must have been given a (fake) GPU by SLURM.
GPU_JOBS=(train predict_with_attention "${GPU_RULES[@]}")
SNAKEMAKE_TIMEOUT=${SNAKEMAKE_TIMEOUT:-240}   # s; SIGINT then, so Snakemake scancels its jobs
STATUS_INTERVAL=2                             # s between the plugin's squeue polls
PARTITION=medvqa_test                         # not the default partition: SBATCH_PARTITION must work

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TMP=$(mktemp -d /tmp/medvqa-slurm.XXXXXX)
WORK=${1:-$TMP/work}
SNAKEMAKE=(snakemake -s "$REPO/Snakefile" --configfile "$REPO/config.yaml" "$REPO/tests/slurm/slurm.yaml")
# At Slurm's default path, as on a real cluster: the plugin's job step (slurm-jobstep 0.6.1) runs
# its srun without SLURM_* variables, so a config found through SLURM_CONF breaks inside jobs.
CONF=/etc/slurm/slurm.conf
POLICY=/usr/sbin/policy-rc.d ADDED_POLICY=""
MARK="# medvqa SLURM test cluster (tests/slurm/run_slurm_test.sh); removed when the test ends"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# Only this cluster's settings; no accounts (there is no slurmdbd).
unset SLURM_CONF SBATCH_ACCOUNT MEDVQA_GPU_PARTITION MEDVQA_GPU_MODEL

log() { printf '[slurm-test %(%T)T] %s\n' -1 "$*"; }
fail() { log "FAIL: $*"; exit 1; }

install_slurm() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
      && command -v munged >/dev/null; then
    return
  fi
  log "installing munge slurmctld slurmd slurm-client"
  if [[ ! -e $POLICY ]]; then   # keep the packages' postinst from starting system daemons
    printf '#!/bin/sh\nexit 101\n' >"$POLICY" && chmod +x "$POLICY" && ADDED_POLICY=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    munge slurmctld slurmd slurm-client >"$TMP/apt.log" 2>&1 || { tail -20 "$TMP/apt.log"; exit 1; }
}

write_config() {
  local host node_line real_mem
  host=$(hostname -s)
  # slurmd -C: this machine's sockets/cores/threads and RAM, as slurmd itself will count them.
  node_line=$(slurmd -C | head -1 | sed -E 's/ RealMemory=[0-9]+//')
  real_mem=$(slurmd -C | head -1 | sed -E 's/.*RealMemory=([0-9]+).*/\1/')
  # The profile asks up to 16 GB (32 GB on a retry) per job; memory is a scheduling number here
  # (task/none enforces nothing), so a smaller machine advertises 32 GB (config_overrides).
  ((real_mem < 32000)) && real_mem=32000
  if [[ -e $CONF && $(head -1 "$CONF") != "$MARK" ]]; then
    fail "$CONF exists (a real SLURM install?); not overwriting it"
  fi
  mkdir -p "$TMP/ctld" "$TMP/spool" "$TMP/dev" /etc/slurm
  local i
  for i in 0 1; do   # two dummy GPUs: char devices like /dev/null (symlinks where mknod is barred)
    mknod "$TMP/dev/fakegpu$i" c 1 3 2>/dev/null || ln -s /dev/null "$TMP/dev/fakegpu$i"
  done
  cat >"$CONF" <<EOF
$MARK
ClusterName=medvqa
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$TMP/munge.socket
CredType=cred/munge
StateSaveLocation=$TMP/ctld
SlurmdSpoolDir=$TMP/spool
SlurmctldPidFile=$TMP/slurmctld.pid
SlurmdPidFile=$TMP/slurmd.pid
SlurmctldLogFile=$TMP/slurmctld.log
SlurmdLogFile=$TMP/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/builtin
DefMemPerCPU=1000
# squeue must still list a finished job when the plugin polls: >= 3x its status interval.
MinJobAge=300
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
MailProg=/bin/true
GresTypes=gpu
$node_line RealMemory=$real_mem NodeAddr=127.0.0.1 Gres=gpu:fake:2 State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=$PARTITION Nodes=$host Default=NO MaxTime=INFINITE State=UP
EOF
  cat >/etc/slurm/gres.conf <<EOF
$MARK
AutoDetect=off
NodeName=$host Name=gpu Type=fake File=$TMP/dev/fakegpu[0-1]
EOF
}

start_daemons() {
  dd if=/dev/urandom of="$TMP/munge.key" bs=1024 count=1 status=none
  chmod 400 "$TMP/munge.key"
  munged --force --socket="$TMP/munge.socket" --key-file="$TMP/munge.key" \
    --pid-file="$TMP/munged.pid" --log-file="$TMP/munged.log" --seed-file="$TMP/munged.seed"
  slurmctld
  slurmd
  local i
  for i in $(seq 60); do
    [[ $(sinfo -h -p "$PARTITION" -o %T 2>/dev/null) == idle ]] && return 0
    sleep 0.5
  done
  sinfo -N -l || true
  fail "the node did not become idle"
}

stop_daemons() {
  local rc=$? ids name pid i
  trap - EXIT
  if [[ -f $TMP/slurmctld.pid ]]; then
    ids=$(squeue -h -t PD,R,CG -o %i 2>/dev/null || true)
    if [[ -n $ids ]]; then
      log "cancelling leftover jobs: $(echo $ids)"
      scancel $ids || true
      for i in $(seq 20); do [[ -z $(squeue -h -t PD,R,CG -o %i 2>/dev/null) ]] && break; sleep 0.5; done
    fi
  fi
  local pids=()
  for name in slurmd slurmctld munged; do
    [[ -f $TMP/$name.pid ]] && pids+=("$(<"$TMP/$name.pid")")
  done
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for i in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  done
  [[ -n $ADDED_POLICY ]] && rm -f "$POLICY"
  for name in slurm.conf gres.conf; do
    [[ -f /etc/slurm/$name && $(head -1 "/etc/slurm/$name") == "$MARK" ]] && rm -f "/etc/slurm/$name"
  done
  if ((rc != 0)); then
    for name in slurmctld slurmd; do
      [[ -f $TMP/$name.log ]] && { echo "--- $name.log (tail)"; tail -15 "$TMP/$name.log"; }
    done
    log "FAILED (rc=$rc); kept $TMP for inspection"
  elif [[ ${KEEP:-} == 1 ]]; then
    log "kept $TMP"
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}

run_local() {
  mkdir -p "$WORK/local"
  (cd "$WORK/local" && "${SNAKEMAKE[@]}" --quiet all --cores "$(nproc)" "${TARGETS[@]}") \
    >"$WORK/local.log" 2>&1 || { tail -30 "$WORK/local.log"; fail "local run failed"; }
}

run_slurm() {
  export SBATCH_PARTITION=$PARTITION   # read by the profile, as a user would set it
  python "$REPO/tests/slurm/slurm_helpers.py" profile "$REPO/profiles/slurm/config.yaml" \
    "$TMP/profile/config.yaml" slurm-status-command=squeue \
    "slurm-init-seconds-before-status-checks=$STATUS_INTERVAL" \
    "seconds-between-status-checks=$STATUS_INTERVAL" "max-threads=$(nproc)" latency-wait=5 \
    "${GPU_RULES[@]/#/--gpu-rule=}"
  mkdir -p "$WORK/slurm"
  local rc=0
  (cd "$WORK/slurm" && timeout -s INT -k 30 "$SNAKEMAKE_TIMEOUT" \
    "${SNAKEMAKE[@]}" --profile "$TMP/profile" "${TARGETS[@]}") >"$WORK/slurm.log" 2>&1 || rc=$?
  if ((rc != 0)); then
    tail -40 "$WORK/slurm.log"
    ((rc == 124)) && fail "snakemake --executor slurm still running after ${SNAKEMAKE_TIMEOUT}s"
    fail "snakemake --executor slurm failed (rc=$rc)"
  fi
}

check_gpu_env() {
  local visible
  visible=$(srun -p "$PARTITION" --gpus=1 -n1 -t 1 printenv CUDA_VISIBLE_DEVICES) || fail "srun --gpus=1"
  [[ $visible == 0 || $visible == 1 ]] || fail "CUDA_VISIBLE_DEVICES='$visible' in a --gpus=1 job"
  log "a --gpus=1 job sees CUDA_VISIBLE_DEVICES=$visible"
}

check_jobs_went_through_slurm() {
  local ids n_steps id info n_gpu=0
  ids=$(grep -oP 'submitted with SLURM jobid \K[0-9]+' "$WORK/slurm.log" | sort -n | uniq)
  n_steps=$(grep -oP '\d+ of \K\d+(?= steps \(100%\) done)' "$WORK/slurm.log" | tail -1)
  [[ -n $ids ]] || fail "no 'submitted with SLURM jobid' line in the Snakemake log"
  (($(wc -w <<<"$ids") == n_steps)) || fail "$(wc -w <<<"$ids") SLURM jobs for $n_steps Snakemake jobs"
  for id in $ids; do
    info=$(scontrol show job -d "$id") || fail "scontrol knows no job $id"
    grep -q "JobState=COMPLETED" <<<"$info" || fail "job $id: $(grep -o 'JobState=[A-Z_]*' <<<"$info")"
    grep -q "Partition=$PARTITION " <<<"$info" || fail "job $id did not run in partition $PARTITION"
    grep -qE "sched: Allocate JobId=$id " "$TMP/slurmctld.log" || fail "slurmctld never allocated job $id"
    if grep -qE "Comment=rule_($(IFS='|'; echo "${GPU_JOBS[*]}"))_" <<<"$info"; then
      grep -q "JOB_GRES=gpu:fake:1" <<<"$info" || fail "GPU job $id got no GPU: $info"
      n_gpu=$((n_gpu + 1))
    fi
  done
  ((n_gpu == ${#GPU_JOBS[@]})) || fail "$n_gpu jobs of ${GPU_JOBS[*]} were given a GPU, expected ${#GPU_JOBS[@]}"
  log "all $n_steps Snakemake jobs ran as SLURM jobs $(echo $ids) ($n_gpu with a GPU)"
}

main() {
  local t0=$SECONDS
  trap stop_daemons EXIT
  install_slurm
  log "slurm ready after $((SECONDS - t0))s; temp dir $TMP"
  write_config
  start_daemons
  log "daemons up after $((SECONDS - t0))s"
  check_gpu_env
  run_local
  log "local run done after $((SECONDS - t0))s"
  run_slurm
  log "SLURM run done after $((SECONDS - t0))s"
  check_jobs_went_through_slurm
  python "$REPO/tests/slurm/slurm_helpers.py" compare "$WORK/local" "$WORK/slurm" \
    || fail "SLURM outputs differ from the local run's"
  log "PASS in $((SECONDS - t0))s"
}

main
