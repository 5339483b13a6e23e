#!/usr/bin/env bash
# Throwaway PostgreSQL server for tests: a private cluster in DIR, listening on 127.0.0.1 only,
# trust auth, no system service touched.
#
#   scripts/postgres.sh start DIR PORT   # install if missing, initdb once, start; prints the URL
#   scripts/postgres.sh stop DIR         # stop the cluster in DIR (no-op if it is not running)
#
# Both commands are idempotent. Exit status 3 means no PostgreSQL binaries are available and they
# could not be installed, so callers can skip rather than fail.
set -euo pipefail

readonly NO_BINARIES=3
readonly CLUSTER_USER=postgres

die() {
  local status=$1
  shift
  echo "postgres.sh: $*" >&2
  exit "$status"
}

usage() {
  die 2 "usage: $0 start DIR PORT | $0 stop DIR"
}

find_bindir() {
  local candidate
  for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [[ -x "$candidate/initdb" && -x "$candidate/pg_ctl" ]]; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

install_postgres() {
  [[ $EUID -eq 0 ]] || die "$NO_BINARIES" \
    "no PostgreSQL binaries under /usr/lib/postgresql/*/bin and not root, so cannot apt-get install; install the 'postgresql' package"
  command -v apt-get >/dev/null || die "$NO_BINARIES" \
    "no PostgreSQL binaries under /usr/lib/postgresql/*/bin and no apt-get to install them"
  echo "postgres.sh: installing the postgresql package" >&2
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2 \
      || die "$NO_BINARIES" "apt-get install postgresql failed (see the output above)"
  fi
}

# PostgreSQL refuses to run as root, so as root every server command runs as the cluster user.
as_cluster_user() {
  if [[ $EUID -eq 0 ]]; then
    runuser -u "$CLUSTER_USER" -- "$@"
  else
    "$@"
  fi
}

prepare_dir() {
  local dir=$1
  mkdir -p "$dir"
  if [[ $EUID -eq 0 ]]; then
    id "$CLUSTER_USER" >/dev/null 2>&1 \
      || useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin "$CLUSTER_USER"
    chown "$CLUSTER_USER": "$dir"
  fi
  chmod 700 "$dir"
  as_cluster_user test -w "$dir" || die 1 \
    "user '$CLUSTER_USER' cannot write to $dir: a parent directory is not traversable (e.g. a 0700 pytest temp root); use a directory from 'mktemp -d'"
}

running_port() {
  local pidfile=$1/data/postmaster.pid
  [[ -f $pidfile ]] && sed -n 4p "$pidfile"
}

start() {
  local dir port bindir
  dir=$(realpath -m "$1")
  port=$2
  [[ $port =~ ^[0-9]+$ ]] && ((port > 0 && port < 65536)) || die 2 "PORT must be 1-65535, got '$port'"
  bindir=$(find_bindir) || { install_postgres; bindir=$(find_bindir) \
    || die "$NO_BINARIES" "postgresql installed but no initdb/pg_ctl under /usr/lib/postgresql/*/bin"; }
  prepare_dir "$dir"

  if [[ ! -f $dir/data/PG_VERSION ]]; then
    as_cluster_user "$bindir/initdb" --pgdata="$dir/data" --username=postgres --encoding=UTF8 \
      --locale=C --auth-host=trust --auth-local=trust >"$dir/initdb.log" 2>&1 \
      || die 1 "initdb failed; see $dir/initdb.log"
    # Later settings win: loopback only, no Unix socket, and no fsync because the data is disposable.
    cat >>"$dir/data/postgresql.conf" <<'EOF'
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
  fi

  if as_cluster_user "$bindir/pg_ctl" status --pgdata="$dir/data" >/dev/null 2>&1; then
    local current
    current=$(running_port "$dir")
    [[ $current == "$port" ]] || die 1 "cluster in $dir already runs on port $current, not $port; stop it first"
  else
    as_cluster_user "$bindir/pg_ctl" start --pgdata="$dir/data" --log="$dir/server.log" \
      --wait --timeout=60 --options="-p $port" >/dev/null \
      || die 1 "server did not start on 127.0.0.1:$port; see $dir/server.log"
  fi
  echo "postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
}

stop() {
  local dir bindir
  dir=$(realpath -m "$1")
  [[ -f $dir/data/PG_VERSION ]] || return 0
  bindir=$(find_bindir) || die "$NO_BINARIES" "no pg_ctl under /usr/lib/postgresql/*/bin"
  if as_cluster_user "$bindir/pg_ctl" status --pgdata="$dir/data" >/dev/null 2>&1; then
    as_cluster_user "$bindir/pg_ctl" stop --pgdata="$dir/data" --mode=fast --wait >/dev/null
  fi
}

case "${1:-}" in
  start) [[ $# -eq 3 ]] || usage; start "$2" "$3" ;;
  stop) [[ $# -eq 2 ]] || usage; stop "$2" ;;
  *) usage ;;
esac
