# Shared by deploy/local/{up,down,test}: find or start PostgreSQL and Redis.
#
# DATABASE_URL / REDIS_URL, when set, are used as they are. Otherwise the
# project runs private instances under target/usher-local/ on ports 55432 and
# 56379, installing Debian's packages first when they are missing and we are
# root (or saying exactly what to install when we are not).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="$ROOT/target/usher-local"
PG_PORT="${USHER_PG_PORT:-55432}"
REDIS_PORT="${USHER_REDIS_PORT:-56379}"
SMTP_PORT="${USHER_SMTP_PORT:-2525}"
mkdir -p "$STATE/logs"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Installs Debian packages (as root), or explains how.
need_packages() {
  local missing=("$@")
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    say "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
      || die "apt-get install ${missing[*]} failed"
  else
    die "missing packages; install them with: sudo apt-get install -y ${missing[*]}"
  fi
}

pg_bindir() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

ensure_toolchain() {
  command -v cargo >/dev/null || die "no Rust toolchain: install it from https://rustup.rs (curl https://sh.rustup.rs -sSf | sh)"
  local pkgs=()
  command -v cc >/dev/null || pkgs+=(build-essential)
  command -v pkg-config >/dev/null || pkgs+=(pkg-config)
  command -v curl >/dev/null || pkgs+=(curl)
  # Pingora's zlib-ng build runs cmake.
  command -v cmake >/dev/null || pkgs+=(cmake)
  need_packages "${pkgs[@]}"
}

# What the tests drive besides our own code: a real browser (the waiting
# page), curl and openssl (HTTP/2 and TLS), redis-server and redis-cli
# (a Redis Cluster started by a test), aiosmtpd (the SMTP server the mail
# tests send to).
ensure_test_tools() {
  local pkgs=()
  command -v aiosmtpd >/dev/null || pkgs+=(python3-aiosmtpd)
  command -v chromium >/dev/null || pkgs+=(chromium)
  command -v chromedriver >/dev/null || pkgs+=(chromium-driver)
  command -v openssl >/dev/null || pkgs+=(openssl)
  command -v redis-server >/dev/null || pkgs+=(redis-server)
  need_packages "${pkgs[@]}"
}

# PostgreSQL refuses to run as root: as root, run it as the postgres account.
pg_run_as() {
  [ "$(id -u)" -eq 0 ] && echo "runuser -u postgres --"
  return 0
}

# Where the private cluster lives: target/usher-local/pg, unless we are root
# and the postgres account cannot get there (a checkout under /root, or in a
# mode-0700 mktemp directory); then a folder of its own under
# /var/lib/postgresql named after this checkout, so initdb does not fail
# with "Permission denied".
pg_state() {
  local dir="$STATE/pg"
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$STATE" 2>/dev/null; then
    local tag
    tag="$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)"
    dir="/var/lib/postgresql/usher-local-$tag"
    mkdir -p "$dir"
    chown postgres "$dir"
  fi
  echo "$dir"
}

# Sets DATABASE_URL to a reachable server with a database we may create in.
ensure_postgres() {
  if [ -n "${DATABASE_URL:-}" ]; then
    say "using PostgreSQL from DATABASE_URL"
    return 0
  fi
  local bindir
  bindir="$(pg_bindir)"
  if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    need_packages postgresql
    bindir="$(pg_bindir)"
  fi
  command -v psql >/dev/null || need_packages postgresql-client
  local pg run_as
  pg="$(pg_state)"
  read -ra run_as <<<"$(pg_run_as)"
  local data="$pg/data" sock="$pg/sock" log="$pg/postgres.log"
  mkdir -p "$sock"
  if [ ${#run_as[@]} -gt 0 ]; then
    chown postgres "$pg" "$sock"
    touch "$log" && chown postgres "$log"
  fi
  if [ ! -s "$data/PG_VERSION" ]; then
    say "creating a private PostgreSQL cluster in $data"
    "${run_as[@]}" "$bindir/initdb" -D "$data" -U postgres -A trust -E UTF8 >"$STATE/logs/initdb.log" 2>&1 \
      || die "initdb failed; see $STATE/logs/initdb.log"
  fi
  # Usher's settings (deploy/postgres/usher.conf), copied beside the data so
  # that the postgres account reads them wherever the checkout is; a change
  # takes effect when the server next starts.
  if [ ${#run_as[@]} -gt 0 ]; then
    install -o postgres -m 0644 "$ROOT/deploy/postgres/usher.conf" "$data/usher.conf"
  else
    install -m 0644 "$ROOT/deploy/postgres/usher.conf" "$data/usher.conf"
  fi
  grep -q "^include_if_exists = 'usher.conf'" "$data/postgresql.conf" \
    || echo "include_if_exists = 'usher.conf'" >>"$data/postgresql.conf"
  # A server left running from this data folder on another port (an earlier
  # run with another USHER_PG_PORT) is not the one DATABASE_URL will name:
  # stop it and start it where asked.
  if "${run_as[@]}" "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1 \
    && [ "$(sed -n 4p "$data/postmaster.pid" 2>/dev/null)" != "$PG_PORT" ]; then
    say "restarting the private PostgreSQL on port $PG_PORT"
    "${run_as[@]}" "$bindir/pg_ctl" -D "$data" -m fast -w stop >/dev/null
  fi
  if ! "${run_as[@]}" "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    say "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    "${run_as[@]}" "$bindir/pg_ctl" -D "$data" -w -t 60 -l "$log" \
      -o "-p $PG_PORT -k $sock -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null \
      || die "PostgreSQL did not start; see $log"
  fi
  export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
}

# Sets REDIS_URL to a reachable Redis.
ensure_redis() {
  if [ -n "${REDIS_URL:-}" ]; then
    say "using Redis from REDIS_URL"
    return 0
  fi
  command -v redis-server >/dev/null || need_packages redis-server
  if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    say "starting Redis on 127.0.0.1:$REDIS_PORT"
    mkdir -p "$STATE/redis"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes --save "" --appendonly no \
      --dir "$STATE/redis" --pidfile "$STATE/redis/redis.pid" --logfile "$STATE/logs/redis.log" >/dev/null \
      || die "Redis did not start; see $STATE/logs/redis.log"
    for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  export REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
}

# A real SMTP server for fan e-mail (aiosmtpd, plain SMTP on 127.0.0.1),
# keeping every message it receives as a file in the Maildir
# $STATE/maildir/new/ (read them with any mail client, or less).
ensure_mail_server() {
  command -v aiosmtpd >/dev/null || need_packages python3-aiosmtpd
  if [ -f "$STATE/smtp.pid" ] && kill -0 "$(cat "$STATE/smtp.pid")" 2>/dev/null; then
    return 0
  fi
  say "starting an SMTP server on 127.0.0.1:$SMTP_PORT (mail kept in $STATE/maildir)"
  mkdir -p "$STATE/maildir/new" "$STATE/maildir/cur" "$STATE/maildir/tmp"
  nohup aiosmtpd -n -l "127.0.0.1:$SMTP_PORT" -c aiosmtpd.handlers.Mailbox "$STATE/maildir" \
    >"$STATE/logs/smtp.log" 2>&1 &
  echo $! >"$STATE/smtp.pid"
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$SMTP_PORT") 2>/dev/null && return 0
    sleep 0.1
  done
  die "the SMTP server did not start; see $STATE/logs/smtp.log"
}

# DATABASE_URL with its database name replaced.
database_url_for() {
  local name="$1" base="${DATABASE_URL%%\?*}" query=""
  [ "$base" != "$DATABASE_URL" ] && query="?${DATABASE_URL#*\?}"
  printf '%s/%s%s' "${base%/*}" "$name" "$query"
}
