#!/bin/sh
# Start a Docker daemon for the tests when none answers; print "started <pid>" or "running".
# Usage: tests/docker/dockerd.sh start <dir> | stop <pid>
# No systemd: dockerd runs in the background with its own data root under <dir>, overlay2
# storage (vfs where overlay2 is refused) and the default bridge. Only what this script started
# is stopped by "stop".
set -eu
case "$1" in
start)
    dir=$2
    if docker info >/dev/null 2>&1; then echo running; exit 0; fi
    command -v dockerd >/dev/null 2>&1 || { echo "no dockerd (apt-get install docker.io)" >&2; exit 1; }
    mkdir -p "$dir"
    for driver in overlay2 vfs; do
        setsid dockerd --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
            --storage-driver "$driver" >"$dir/dockerd.log" 2>&1 &
        pid=$!
        i=0
        while [ $i -lt 100 ]; do
            if docker info >/dev/null 2>&1; then echo "started $pid"; exit 0; fi
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2; i=$((i + 1))
        done
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    echo "dockerd did not start; see $dir/dockerd.log" >&2
    tail -5 "$dir/dockerd.log" >&2
    exit 1
    ;;
stop)
    kill "$2" 2>/dev/null || exit 0
    i=0
    while kill -0 "$2" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.2; i=$((i + 1)); done
    ;;
esac
