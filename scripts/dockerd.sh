#!/usr/bin/env bash
# Starts the project's own Docker engine (Debian's docker.io, 20.10) when none answers on its socket.
#
# The engine is private to Segmesh: its own socket, data root, exec root and pidfile, and address
# pools inside 198.18.0.0/15 (Docker's default 172.17.0.0/16 is outside the ranges this project may
# use). It never touches another engine (e.g. one on /var/run/docker.sock), never pulls (there is no
# registry here: images are built locally by scripts/images.sh), and leaves the root namespace's
# iptables and ip_forward alone (lab containers talk over their own bridges, with no published ports).
#
# Idempotent: a second run finds the engine answering and returns at once. Prints the DOCKER_HOST
# value to use on stdout (`export DOCKER_HOST=$(bash scripts/dockerd.sh)`); progress goes to stderr.
#   bash scripts/dockerd.sh          start if needed, wait until the API answers
#   bash scripts/dockerd.sh --stop   stop the engine this script started (by its pidfile)
#   bash scripts/dockerd.sh --status exit 0 when it answers, 1 otherwise
set -euo pipefail

ROOT=${SEGMESH_DOCKER_ROOT:-/var/lib/segmesh-docker}
SOCKET=${SEGMESH_DOCKER_SOCKET:-/run/segmesh-docker.sock}
PIDFILE=$ROOT/dockerd.pid
LOG=$ROOT/dockerd.log
HOST="unix://$SOCKET"
TIMEOUT=${SEGMESH_DOCKER_TIMEOUT:-60}

log() { printf 'dockerd: %s\n' "$*" >&2; }

answers() {
  # The 28.x client on PATH negotiates the API version down to the 20.10 engine.
  timeout 10 docker -H "$HOST" version --format '{{.Server.Version}}' >/dev/null 2>&1
}

pid_alive() {
  [[ -f $PIDFILE ]] || return 1
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && [[ -d /proc/$pid ]] && [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == */dockerd* ]]
}

case "${1:-}" in
--status)
  answers && { echo "$HOST"; exit 0; }
  exit 1
  ;;
--stop)
  if pid_alive; then
    pid=$(cat "$PIDFILE")
    log "stopping dockerd (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 1 100); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
    [[ -d /proc/$pid ]] && { log "dockerd $pid did not stop within 10 s"; exit 1; }
  else
    log "no dockerd of ours is running"
  fi
  exit 0
  ;;
"") ;;
*)
  echo "usage: $0 [--status|--stop]" >&2
  exit 2
  ;;
esac

if answers; then
  echo "$HOST"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  log "no engine answers on $SOCKET and starting one needs root; run: sudo bash $0"
  exit 1
fi
for tool in dockerd docker containerd runc; do
  if ! command -v "$tool" >/dev/null && [[ ! -x /usr/sbin/$tool ]]; then
    log "$tool not found; install Debian's engine: apt-get install docker.io (or run scripts/setup.sh)"
    exit 1
  fi
done

if pid_alive; then
  # Started by an earlier run and still coming up (or hung): wait for it rather than start a second.
  log "dockerd $(cat "$PIDFILE") is running but does not answer yet; waiting"
else
  mkdir -p "$ROOT/data" "$ROOT/exec"
  rm -f "$PIDFILE"
  [[ -S $SOCKET ]] && rm -f "$SOCKET"
  log "starting dockerd on $SOCKET (log $LOG)"
  # setsid: the engine outlives this script and the caller's terminal or process group.
  setsid /usr/sbin/dockerd \
    --host "$HOST" \
    --data-root "$ROOT/data" \
    --exec-root "$ROOT/exec" \
    --pidfile "$PIDFILE" \
    --bip 198.18.250.1/24 \
    --default-address-pool base=198.18.128.0/17,size=24 \
    --iptables=false \
    --ip-forward=false \
    --ip-masq=false \
    --userland-proxy=false \
    --storage-driver overlay2 \
    --log-driver json-file --log-opt max-size=10m \
    </dev/null >>"$LOG" 2>&1 &
fi

start=$(($(date +%s%N) / 1000000))
deadline=$((SECONDS + TIMEOUT))
until answers; do
  if ((SECONDS >= deadline)); then
    log "the engine did not answer on $SOCKET within ${TIMEOUT}s; last lines of $LOG:"
    tail -n 20 "$LOG" >&2 || true
    exit 1
  fi
  if [[ -f $PIDFILE ]] && ! pid_alive; then
    log "dockerd exited; last lines of $LOG:"
    tail -n 20 "$LOG" >&2 || true
    exit 1
  fi
  sleep 0.2
done
ms=$(($(date +%s%N) / 1000000 - start))
log "engine answers on $SOCKET after $((ms / 1000)).$((ms % 1000 / 100)) s"
echo "$HOST"
