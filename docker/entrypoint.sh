#!/bin/sh
# PID 1 of the image. `imgsearch serve` runs under it: when the container is stopped (SIGTERM,
# or SIGINT) the service is stopped first and then the embedded PostgreSQL it started, so that
# `docker stop` / `podman restart` is a clean shutdown, not crash recovery at the next start.
# (With IMGSEARCH_DATABASE_URL set there is no embedded server.) Any other command runs as is.
if [ "${1:-}" != imgsearch ] || [ "${2:-}" != serve ]; then
    exec "$@"
fi
"$@" <&0 &
child=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM INT
wait "$child"        # returns early when a signal arrives
trap - TERM INT
wait "$child"        # the service's own exit, after the forwarded signal
status=$?
if [ -z "${IMGSEARCH_DATABASE_URL:-}" ] && [ -e "${IMGSEARCH_HOME:-/data}/pgdata/postmaster.pid" ]; then
    imgsearch db stop
fi
exit "$status"
