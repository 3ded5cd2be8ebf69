# Shared by deploy/cluster/{up,down}: paths, messages, the compose command,
# and the cluster's settings (defaults, then the environment, then checked).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/deploy/cluster"
STATE="${USHER_CLUSTER_STATE_DIR:-$ROOT/target/usher-cluster}"
PROJECT=usher-cluster

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# `docker compose` (the plugin) where it works, else docker-compose.
COMPOSE=()
find_compose() {
  command -v docker >/dev/null || die "docker is not installed (the cluster runs on Docker Engine with Compose)"
  docker info >/dev/null 2>&1 || die "the Docker Engine does not answer (is dockerd running, and may you use it?)"
  if docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
  elif command -v docker-compose >/dev/null; then
    COMPOSE=(docker-compose)
  else
    die "neither 'docker compose' nor 'docker-compose' is installed"
  fi
}
compose() { "${COMPOSE[@]}" -p "$PROJECT" -f "$HERE/compose.yml" "$@"; }

# The settings, each overridable from the environment. Ports are the host's
# (bound on USHER_CLUSTER_BIND); they keep clear of deploy/local's (8000-8003,
# 8080, 8090, 55432, 56379).
SETTINGS=(
  USHER_CLUSTER_BIND=127.0.0.1
  USHER_CLUSTER_PUBLIC_HOST=127.0.0.1
  USHER_CLUSTER_HTTP_PORT=18000
  USHER_CLUSTER_ADMIN_PORT=18001
  USHER_CLUSTER_STREAM_PORT=18002
  USHER_CLUSTER_CORE_PORT=18080
  USHER_CLUSTER_SANDBOX_PORT=18090
  USHER_CLUSTER_LB_STATS_PORT=18404
  USHER_CLUSTER_DB_STATS_PORT=18405
  USHER_CLUSTER_PG_PORT=15432
  USHER_CLUSTER_PG_READ_PORT=15433
  USHER_CLUSTER_PROMETHEUS_PORT=19090
)
PORT_SETTINGS=(HTTP ADMIN STREAM CORE SANDBOX LB_STATS DB_STATS PG PG_READ PROMETHEUS)
SECRETS=(USHER_CLUSTER_PG_SUPERUSER_PASSWORD USHER_CLUSTER_PG_REPLICATION_PASSWORD
  USHER_CLUSTER_DB_PASSWORD USHER_CLUSTER_EDGE_ADMIN_TOKEN)

# Sets every setting (the environment's value or the default) and exports it.
load_settings() {
  local kv name
  for kv in "${SETTINGS[@]}"; do
    name="${kv%%=*}"
    if [ -z "${!name+x}" ]; then
      export "$name=${kv#*=}"
    else
      export "$name"
    fi
  done
  export USHER_CLUSTER_STATE="$STATE"
}

# Every setting checked; every problem named at once.
check_settings() {
  local problems=() name value seen=" " p
  for name in USHER_CLUSTER_BIND; do
    value="${!name}"
    [[ "$value" =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}$ ]] \
      || problems+=("$name=${value@Q}: must be an IPv4 address (the host address the ports are published on)")
  done
  value="$USHER_CLUSTER_PUBLIC_HOST"
  [[ "$value" =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]] \
    || problems+=("USHER_CLUSTER_PUBLIC_HOST=${value@Q}: must be a host name or an IPv4 address (where fans reach the balancer)")
  for p in "${PORT_SETTINGS[@]}"; do
    name="USHER_CLUSTER_${p}_PORT"
    value="${!name}"
    if ! [[ "$value" =~ ^[0-9]{1,5}$ ]] || [ "$value" -lt 1024 ] || [ "$value" -gt 65535 ]; then
      problems+=("$name=${value@Q}: must be a port number, 1024-65535")
    elif [[ "$seen" == *" $value "* ]]; then
      problems+=("$name=$value: the same port as another USHER_CLUSTER_*_PORT")
    else
      seen+="$value "
    fi
  done
  for name in "${SECRETS[@]}"; do
    value="${!name:-}"
    [[ "$value" =~ ^[A-Za-z0-9_-]{16,128}$ ]] \
      || problems+=("$name: must be 16-128 characters of A-Z a-z 0-9 _ - (it goes into URLs and configuration unescaped)")
  done
  if [ ${#problems[@]} -gt 0 ]; then
    printf 'error: the cluster'"'"'s settings are wrong:\n' >&2
    printf '  - %s\n' "${problems[@]}" >&2
    exit 1
  fi
}

# The secrets: the environment's, else the ones made for this state folder
# the first time (kept in $STATE/secrets.env: the database volumes were made
# with them).
load_secrets() {
  mkdir -p "$STATE"
  local file="$STATE/secrets.env" name
  if [ ! -f "$file" ]; then
    (
      umask 077
      for name in "${SECRETS[@]}"; do
        printf '%s=%s\n' "$name" "$(tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32)"
      done >"$file"
    )
  fi
  while IFS='=' read -r name value; do
    [ -n "$name" ] || continue
    [ -n "${!name+x}" ] || export "$name=$value"
  done <"$file"
  for name in "${SECRETS[@]}"; do export "$name"; done
}

# Writes what a tool (a chaos run, psql) needs to find the cluster.
write_env_file() {
  local kv name
  {
    echo "# Written by deploy/cluster/up: the running cluster's settings."
    for kv in "${SETTINGS[@]}"; do name="${kv%%=*}"; echo "$name=${!name}"; done
    for name in "${SECRETS[@]}"; do echo "$name=${!name}"; done
    echo "USHER_CLUSTER_STATE=$STATE"
    echo "DATABASE_URL=postgres://usher:$USHER_CLUSTER_DB_PASSWORD@$USHER_CLUSTER_BIND:$USHER_CLUSTER_PG_PORT/usher"
    echo "DATABASE_READ_URL=postgres://usher:$USHER_CLUSTER_DB_PASSWORD@$USHER_CLUSTER_BIND:$USHER_CLUSTER_PG_READ_PORT/usher"
  } >"$STATE/cluster.env"
  chmod 600 "$STATE/cluster.env"
}

# The containers' names and the backup repository's volume (compose.yml's;
# the overrides are for a drill against another copy of the cluster).
NODE_PREFIX="${USHER_CLUSTER_CONTAINER_PREFIX:-usher-}"
BACKUP_VOLUME="${USHER_CLUSTER_BACKUP_VOLUME:-${PROJECT}_pgbackrest}"
PG_IMAGE="${USHER_CLUSTER_PG_IMAGE:-usher/patroni:dev}"

# The PostgreSQL leader's member name (pg-1..3), as Patroni sees it, asked of
# the first node that answers; fails when there is none.
pg_leader() {
  local n out leader
  for n in 1 2 3; do
    out=$(docker exec "${NODE_PREFIX}pg-$n" patronictl list -f json 2>/dev/null) || continue
    leader=$(python3 -c 'import json, sys
print(next((m["Member"] for m in json.load(sys.stdin) if m["Role"] == "Leader" and m["State"] == "running"), ""))' <<<"$out") || continue
    [ -n "$leader" ] && { echo "$leader"; return 0; }
  done
  return 1
}
