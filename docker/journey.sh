#!/usr/bin/env bash
# The container path, walked once by hand. Opt-in and slow (it builds the image, torch and all):
# not part of the test command. From the repository root:
#   docker/journey.sh
# It builds docker/Dockerfile with podman or docker, starts the service, ingests a folder of photos
# through the API, searches, restarts the container and checks that the images and the search are
# kept, then starts a new container on the same data. Each step is printed with its time; the last
# line is PASS or FAIL (exit status 0 or 1).
#
# Settings (environment), all optional:
#   ENGINE           podman or docker (default: the first whose engine answers)
#   ENGINE_ARGS      global engine arguments, e.g. "--runtime /usr/sbin/runc"
#   RUN_ARGS         arguments for every build and run; default: none, or
#                    "--ulimit nofile=1024:1024 --ulimit nproc=1000:1000" where a container
#                    cannot start without them (a runtime that may not raise the limits)
#   BASE_IMAGE       the image to build on. Default python:3.11-slim where it is here or can be
#                    pulled; else, with debootstrap and root, a Debian bookworm made here
#                    (localhost/imgsearch-base:bookworm; the build installs Debian's Python 3.11)
#   TORCH_INDEX_URL PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_FIND_LINKS PIP_CERT: the build arguments.
#                    Where download.pytorch.org does not answer and TORCH_INDEX_URL is unset, the
#                    local indexes, find-links and CA bundle of this machine's pip configuration
#                    are used (the index that holds torch as TORCH_INDEX_URL), mounted read-only
#   BUILD_MOUNTS     extra "HOSTPATH:PATH" mounts for the build (podman build -v; docker cannot)
#   JOURNEY_MODE     compose: docker/compose.yaml (pgvector/pgvector:pg17 + the app);
#                    embedded: the app image alone (`run`), its embedded PostgreSQL in the /data volume;
#                    auto (default): compose where a compose command and the pgvector image answer
#   PORT             the service's port on 127.0.0.1 (default 18000)
#   IMAGE            the tag to build (default localhost/imgsearch:journey; kept afterwards, as the
#                    build cache for the next run; `$ENGINE rmi` it to get the space back)
#   KEEP=1           leave the container and its volume
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
PORT=${PORT:-18000}
IMAGE=${IMAGE:-localhost/imgsearch:journey}
NAME=imgsearch-journey
VOLUME=imgsearch-journey-data
PROJECT=imgsearch-journey
WORK=$(mktemp -d "${TMPDIR:-/tmp}/imgsearch-journey.XXXXXX")
TOKEN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
JOURNEY_START=$(date +%s)
STEP_START=$JOURNEY_START
MODE=
COMPOSE=()

say() { echo "$@"; }
step() { STEP_START=$(date +%s); say "== $(date +%T) $*"; }
ok() { say "   ok ($(( $(date +%s) - STEP_START )) s): $*"; }
finish() {
    local status=$1
    if [ "$status" != 0 ] && [ -n "$MODE" ]; then
        say "-- the service's last lines:"
        if [ "$MODE" = compose ]; then "${COMPOSE[@]}" logs --tail 40 2>&1 | sed 's/^/   | /'
        else eng logs --tail 40 "$NAME" 2>&1 | sed 's/^/   | /'; fi
    fi
    if [ "$status" != 0 ] && [ -s "$WORK/engine.log" ]; then
        say "-- $ENGINE's messages (less its healthcheck timers, which need systemd):"
        grep -v 'systemd connection' "$WORK/engine.log" | tail -15 | sed 's/^/   | /'
    fi
    if [ "${KEEP:-}" != 1 ]; then
        if [ "$MODE" = compose ]; then "${COMPOSE[@]}" down -v >/dev/null 2>&1
        elif [ -n "$MODE" ]; then
            eng rm -f "$NAME" >/dev/null 2>&1; eng volume rm -f "$VOLUME" >/dev/null 2>&1
        fi
        if [ "$status" = 0 ]; then rm -rf "$WORK"; else say "(logs and photos kept in $WORK)"; fi
    else
        say "(KEEP=1: container/volume and $WORK left in place)"
    fi
    local total=$(( $(date +%s) - JOURNEY_START ))
    if [ "$status" = 0 ]; then say "PASS (${total} s in all)"; else say "FAIL (${total} s in all)"; fi
    exit "$status"
}
fail() { say "   FAIL ($(( $(date +%s) - STEP_START )) s): $*"; finish 1; }

# ---------------------------------------------------------------------------- the engine
eng() { "$ENGINE" ${ENGINE_ARGS:-} "$@"; }
# shellcheck disable=SC2086
erun() { eng run ${RUN_ARGS:-} "$@"; }

step "engine, base image and package sources"
for tool in curl python3; do command -v "$tool" >/dev/null || fail "needs $tool on this machine"; done
if [ -z "${ENGINE:-}" ]; then
    for candidate in podman docker; do
        if command -v "$candidate" >/dev/null && "$candidate" ${ENGINE_ARGS:-} info >/dev/null 2>&1; then
            ENGINE=$candidate; break
        fi
    done
fi
[ -n "${ENGINE:-}" ] || fail "neither podman nor docker answers (podman info / docker info)"
say "   engine: $ENGINE ${ENGINE_ARGS:-} ($("$ENGINE" --version 2>/dev/null))"

image_here() { eng image inspect "$1" >/dev/null 2>&1; }
pull() { image_here "$1" || timeout 120 "$ENGINE" ${ENGINE_ARGS:-} pull -q "$1" >/dev/null 2>&1; }

if [ -z "${BASE_IMAGE:-}" ]; then
    if pull python:3.11-slim; then
        BASE_IMAGE=python:3.11-slim
    elif command -v debootstrap >/dev/null && [ "$(id -u)" = 0 ]; then
        BASE_IMAGE=localhost/imgsearch-base:bookworm
        if ! image_here "$BASE_IMAGE"; then
            say "   python:3.11-slim cannot be pulled: making $BASE_IMAGE with debootstrap"
            debootstrap --variant=minbase bookworm "$WORK/rootfs" >"$WORK/debootstrap.log" 2>&1 \
                || { tail -5 "$WORK/debootstrap.log"; fail "debootstrap"; }
            tar -C "$WORK/rootfs" -c . | eng import - "$BASE_IMAGE" >>"$WORK/engine.log" 2>&1 || fail "importing the rootfs"
            rm -rf "$WORK/rootfs"
        fi
    else
        fail "python:3.11-slim cannot be pulled and there is no debootstrap (as root): set BASE_IMAGE"
    fi
fi
say "   base image: $BASE_IMAGE"

if [ -z "${RUN_ARGS+set}" ]; then
    RUN_ARGS=
    if ! eng run --rm "$BASE_IMAGE" true >/dev/null 2>&1; then
        RUN_ARGS="--ulimit nofile=1024:1024 --ulimit nproc=1000:1000"
        erun --rm "$BASE_IMAGE" true >/dev/null 2>&1 || fail "a container does not start ($ENGINE run $BASE_IMAGE true)"
    fi
fi
say "   run arguments: ${RUN_ARGS:-(none)}"

MOUNTS=()
for m in ${BUILD_MOUNTS:-}; do MOUNTS+=(-v "$m:ro"); done
mount_dir() { case " ${MOUNTS[*]} " in *" $1:$1:ro "*) ;; *) MOUNTS+=(-v "$1:$1:ro") ;; esac; }
if [ -z "${TORCH_INDEX_URL:-}" ] && ! curl -sf --max-time 20 -o /dev/null https://download.pytorch.org/whl/cpu/torch/; then
    say "   download.pytorch.org does not answer: this machine's pip configuration's local sources"
    pipconf() { python3 -m pip config list 2>/dev/null | sed -n "s/^[^.]*\.$1='\(.*\)'\$/\1/p" | head -1; }
    extras=
    for url in $(pipconf extra-index-url) ${PIP_EXTRA_INDEX_URL:-}; do
        case $url in
        file://*)
            dir=${url#file://}; dir=${dir%/}
            [ -d "$dir" ] || continue
            # an index's pages link to ../../files: mount the folder above simple/
            if [ "$(basename "$dir")" = simple ]; then mount_dir "$(dirname "$dir")"; else mount_dir "$dir"; fi
            if [ -z "${TORCH_INDEX_URL:-}" ] && [ -e "$dir/torch" ]; then TORCH_INDEX_URL=$url
            else extras="$extras $url"; fi ;;
        *) extras="$extras $url" ;;
        esac
    done
    PIP_EXTRA_INDEX_URL=${extras# }
    links=
    for dir in $(pipconf find-links) ${PIP_FIND_LINKS:-}; do
        [ -d "$dir" ] && [[ " $links " != *" $dir "* ]] && { mount_dir "$dir"; links="$links $dir"; }
    done
    PIP_FIND_LINKS=${links# }
    cert=${PIP_CERT:-$(pipconf cert)}
    if [ -n "$cert" ] && [ -f "$cert" ]; then MOUNTS+=(-v "$cert:/run/build-ca.crt:ro"); PIP_CERT=/run/build-ca.crt; fi
    [ -n "${TORCH_INDEX_URL:-}" ] || fail "no local index holds torch: set TORCH_INDEX_URL"
fi
BUILD_ARGS=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
for arg in TORCH_INDEX_URL PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_FIND_LINKS PIP_CERT; do
    if [ -n "${!arg:-}" ]; then BUILD_ARGS+=(--build-arg "$arg=${!arg}"); say "   $arg=${!arg}"; fi
done
[ ${#MOUNTS[@]} -eq 0 ] || say "   build mounts: ${MOUNTS[*]}"

if [ -z "${JOURNEY_MODE:-}" ] || [ "$JOURNEY_MODE" = auto ]; then
    JOURNEY_MODE=embedded
    if "$ENGINE" compose version >/dev/null 2>&1; then COMPOSE=("$ENGINE" compose)
    elif command -v "$ENGINE-compose" >/dev/null; then COMPOSE=("$ENGINE-compose"); fi
    if [ ${#COMPOSE[@]} -gt 0 ] && pull pgvector/pgvector:pg17; then JOURNEY_MODE=compose
    elif [ ${#COMPOSE[@]} -eq 0 ]; then say "   no compose command answers"
    else say "   pgvector/pgvector:pg17 cannot be pulled"; fi
elif [ "$JOURNEY_MODE" = compose ]; then
    if "$ENGINE" compose version >/dev/null 2>&1; then COMPOSE=("$ENGINE" compose)
    elif command -v "$ENGINE-compose" >/dev/null; then COMPOSE=("$ENGINE-compose")
    else fail "JOURNEY_MODE=compose: neither '$ENGINE compose' nor $ENGINE-compose answers"; fi
fi
if [ "$JOURNEY_MODE" = compose ]; then
    say "   mode: compose (docker/compose.yaml: pgvector/pgvector:pg17 and the app)"
else
    say "   mode: embedded (the app image alone; no pgvector image: its embedded PostgreSQL 18 + pgvector, data in volume $VOLUME)"
fi
ok "ready"

# ---------------------------------------------------------------------------- build
step "build $IMAGE (docker/Dockerfile; log: $WORK/build.log)"
build=(build -f docker/Dockerfile -t "$IMAGE" "${BUILD_ARGS[@]}" "${MOUNTS[@]}")
if [ "$ENGINE" = podman ]; then build+=(--format docker --network host); fi  # HEALTHCHECK kept; apt reaches its mirror
# shellcheck disable=SC2086
if ! eng "${build[@]}" ${RUN_ARGS:-} . >"$WORK/build.log" 2>&1; then
    grep -v 'is ignored: it is neither' "$WORK/build.log" | tail -30 | sed 's/^/   | /'
    fail "the image does not build"
fi
size=$(eng image inspect --format '{{.Size}}' "$IMAGE" 2>/dev/null)
ok "built ($(( ${size:-0} / 1000000 )) MB)"

step "the image holds the lock's versions (requirements/lock.txt)"
versions=$(erun --rm -i "$IMAGE" python - <<'EOF' 2>>"$WORK/engine.log"
import re
from importlib.metadata import distributions
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
lock = {}
for line in open("/opt/imgsearch/lock.txt"):
    m = re.match(r"([A-Za-z0-9_.-]+)==([^\s;]+)", line)
    if m:
        lock[norm(m[1])] = m[2]
installed = {norm(d.metadata["Name"]): d.version for d in distributions()}
off = [f"{n} {v} (lock {lock[n]})" for n, v in sorted(installed.items())
       if n in lock and v.split("+")[0] != lock[n]]
pinned = sum(n in lock for n in installed)
print(f"{pinned} of {len(installed)} installed distributions are in the lock; torch {installed['torch']},"
      f" torchvision {installed['torchvision']}, onnxruntime {installed['onnxruntime']}")
print("not the lock's version: " + (", ".join(off) if off else "none"))
raise SystemExit(1 if off else 0)
EOF
) || { say "$versions" | sed 's/^/   /'; fail "versions differ from the lock"; }
say "$versions" | sed 's/^/   /'
ok "versions match"

step "a folder of photos ($WORK/images)"
mkdir -p "$WORK/images"
erun --rm -i --user root -v "$WORK/images:/out" "$IMAGE" python - <<'EOF' 2>>"$WORK/engine.log" || fail "making the photos"
# two photographs that ship inside scikit-learn, each with two altered copies
from PIL import Image
from sklearn.datasets import load_sample_images
for path in load_sample_images().filenames:
    name = path.rsplit("/", 1)[-1].removesuffix(".jpg")
    img = Image.open(path).convert("RGB")
    img.save(f"/out/{name}.jpg", quality=92)
    img.resize((img.width // 2, img.height // 2)).save(f"/out/{name}_half.jpg", quality=90)
    w, h = img.size
    img.crop((w // 10, h // 10, w - w // 10, h - h // 10)).save(f"/out/{name}_crop.jpg", quality=60)
EOF
chmod -R a+rX "$WORK/images"
PHOTOS=$(find "$WORK/images" -name '*.jpg' | wc -l)
ok "$PHOTOS photos: $(cd "$WORK/images" && ls | tr '\n' ' ')"

# ---------------------------------------------------------------------------- the service
api() {  # METHOD PATH [JSON]: the answer's body in $WORK/body, its status in $STATUS
    local args=(-s --max-time 120 -o "$WORK/body" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $TOKEN")
    [ $# -lt 3 ] || args+=(-H 'content-type: application/json' -d "$3")
    STATUS=$(curl "${args[@]}" "http://127.0.0.1:$PORT$2") || STATUS=000
}
field() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($1)" "$WORK/body"; }

start_service() {
    if [ "$MODE" = compose ]; then
        "${COMPOSE[@]}" up -d --no-build >"$WORK/compose.log" 2>&1 || { tail -20 "$WORK/compose.log"; return 1; }
    else
        # shellcheck disable=SC2086
        erun -d --name "$NAME" -p "127.0.0.1:$PORT:8000" -e "IMGSEARCH_API_TOKEN=$TOKEN" \
            -v "$VOLUME:/data" -v "$WORK/images:/images:ro" "$IMAGE" >/dev/null 2>>"$WORK/engine.log"
    fi
}
wait_healthy() {  # up to $1 seconds for GET /health to answer 200
    local deadline=$(( $(date +%s) + $1 ))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        api GET /health
        [ "$STATUS" = 200 ] && return 0
        sleep 2
    done
    return 1
}
snapshot() {  # the images the service lists, one "id path" a line
    api GET '/api/images?folder=/images&limit=100'
    [ "$STATUS" = 200 ] || return 1
    field '"\n".join("%s %s" % (i["id"], i["path"]) for i in sorted(d["images"], key=lambda i: i["id"]))'
}
search() {  # the ranked ids for image 1
    api POST /api/search '{"image_id": 1, "k": 5}'
    [ "$STATUS" = 200 ] || return 1
    field '" ".join(str(r["image_id"]) for r in d["results"])'
}
ingest() {  # POST /api/ingest {"path": "/images"}, then poll its job: "new updated unchanged failed"
    api POST /api/ingest '{"path": "/images"}'
    [ "$STATUS" = 202 ] || { say "   POST /api/ingest answered $STATUS: $(cat "$WORK/body")" >&2; return 1; }
    local job state deadline=$(( $(date +%s) + 600 ))
    job=$(field 'd["id"]')
    while [ "$(date +%s)" -lt "$deadline" ]; do
        api GET "/api/ingest/$job"
        state=$(field 'd["state"]')
        [ "$state" = running ] || break
        sleep 2
    done
    [ "$state" = done ] || { say "   ingest job: $(cat "$WORK/body")" >&2; return 1; }
    field '"%s %s %s %s" % (d["new"], d["updated"], d["unchanged"], d["failed"])'
}

MODE=$JOURNEY_MODE
if [ "$MODE" = compose ]; then
    export COMPOSE_PROJECT_NAME=$PROJECT IMGSEARCH_IMAGE=$IMAGE IMGSEARCH_PORT=$PORT IMGSEARCH_API_TOKEN=$TOKEN \
        IMAGES=$WORK/images POSTGRES_PASSWORD=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
    COMPOSE+=(-f docker/compose.yaml)
    "${COMPOSE[@]}" down -v >/dev/null 2>&1
else
    eng rm -f "$NAME" >/dev/null 2>&1; eng volume rm -f "$VOLUME" >/dev/null 2>&1
fi

step "start the service ($MODE) on 127.0.0.1:$PORT"
start_service || fail "the container does not start"
wait_healthy 300 || fail "GET /health did not answer 200 within 300 s (last: $STATUS $(cat "$WORK/body" 2>/dev/null))"
ok "$(field '"PostgreSQL " + d["postgresql"] + ", pgvector " + d["pgvector"] + ", model " + d["model"] + ", imgsearch " + d["version"]')"

step "ingest /images through the API (POST /api/ingest with the token)"
counts=$(ingest) || fail "the ingest did not finish"
read -r new updated unchanged failed <<<"$counts"
[ "$new" = "$PHOTOS" ] && [ "$failed" = 0 ] || fail "new $new, updated $updated, unchanged $unchanged, failed $failed (expected $PHOTOS new)"
api GET /api/stats
images=$(field 'd["images"]')
[ "$images" = "$PHOTOS" ] || fail "GET /api/stats says $images images"
ok "new $new, failed $failed; /api/stats: $images images"

step "search (POST /api/search {\"image_id\": 1})"
before_images=$(snapshot) || fail "GET /api/images answered $STATUS"
before_search=$(search) || fail "POST /api/search answered $STATUS: $(cat "$WORK/body")"
field '"\n".join("%s. %s  similarity %.3f" % (r["rank"], r["path"], r["similarity"]) for r in d["results"])' | sed 's/^/   /'
# the nearest other image is a copy of the same photograph (china_half.jpg for china.jpg)
photo() { local b=${1##*/}; b=${b%.jpg}; echo "${b%%_*}"; }
query_path=$(sed -n 's/^1 //p' <<<"$before_images")
nearest=$(field '[r["path"] for r in d["results"] if r["image_id"] != 1][0]') || fail "no other image in the results"
[ "$(photo "$query_path")" = "$(photo "$nearest")" ] || fail "the nearest image to $query_path is $nearest, not a copy of it"
ok "ranked ids: $before_search"

restart_service() {
    if [ "$MODE" = compose ]; then "${COMPOSE[@]}" restart >/dev/null 2>&1
    else eng restart "$NAME" >/dev/null 2>>"$WORK/engine.log"; fi
}
check_kept() {
    local after_images after_search counts
    after_images=$(snapshot) || fail "GET /api/images answered $STATUS"
    [ "$after_images" = "$before_images" ] || fail "the images differ: before [$before_images] after [$after_images]"
    after_search=$(search) || fail "POST /api/search answered $STATUS: $(cat "$WORK/body")"
    [ "$after_search" = "$before_search" ] || fail "the search differs: before $before_search, after $after_search"
    counts=$(ingest) || fail "the second ingest did not finish"
    read -r new updated unchanged failed <<<"$counts"
    [ "$new $updated $unchanged $failed" = "0 0 $PHOTOS 0" ] || fail "ingest again: new $new, updated $updated, unchanged $unchanged, failed $failed"
    if [ "$MODE" = embedded ]; then  # the entrypoint stops the embedded PostgreSQL with the container
        crashes=$(eng exec "$NAME" sh -c 'cat /data/pgdata/log/* | grep -c "not properly shut down"' 2>>"$WORK/engine.log")
        [ "${crashes:-x}" = 0 ] || fail "the embedded PostgreSQL was not shut down cleanly (crash recovery at the start: ${crashes:-?})"
    fi
    ok "the same $PHOTOS images (ids and paths), the same ranking ($after_search), ingest again: $unchanged unchanged${crashes:+, PostgreSQL shut down cleanly}"
}

step "restart the container ($ENGINE restart) and wait for /health"
restart_service || fail "restart"
wait_healthy 300 || fail "GET /health did not answer 200 within 300 s after the restart (last: $STATUS)"
ok "healthy again"
step "the data is kept"
check_kept

step "a new container on the same volume (rm, then run again)"
if [ "$MODE" = compose ]; then "${COMPOSE[@]}" down >/dev/null 2>&1; else eng rm -f "$NAME" >/dev/null 2>>"$WORK/engine.log"; fi
start_service || fail "the container does not start"
wait_healthy 300 || fail "GET /health did not answer 200 within 300 s (last: $STATUS)"
ok "healthy"
step "the data is kept"
check_kept

finish 0
