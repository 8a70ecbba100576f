#!/usr/bin/env bash
# pg.sh starts and stops a throwaway PostgreSQL server for tests.
#
#   scripts/pg.sh start DIR             init (once) and start a server in DIR, print its DSN
#   scripts/pg.sh stop DIR [MODE]       stop it (MODE: fast, the default, or immediate)
#   scripts/pg.sh status DIR            exit 0 when the server in DIR is running
#   scripts/pg.sh available             exit 0 when the server binaries are installed
#
# start prints one line for eval:
#
#   export CALLREADY_TEST_POSTGRES=postgres://callready@127.0.0.1:PORT/callready_test?sslmode=disable
#
# so a shell or CI job runs:  eval "$(scripts/pg.sh start /tmp/callready-pg)"
#
# The data directory (DIR/data), the Unix socket (DIR/run) and the log
# (DIR/postgres.log) live in DIR. The server listens on 127.0.0.1 only, on a
# free port chosen at the first start and reused by later starts, so a DSN
# stays valid across stop/start. Authentication is "trust": never point this at
# anything but a disposable directory. Both commands are idempotent.
#
# PostgreSQL refuses to run as root: when run as root the server runs as
# $PG_USER, default "postgres" if that user exists, else a system user
# "callready" created on demand. The binaries are taken from $PG_BINDIR, else
# PostgreSQL 15 under /usr/lib/postgresql, else `pg_config --bindir`; when none
# is found and we are root on Debian, postgresql-15 is installed with apt-get.
set -euo pipefail

die() { echo "pg.sh: $*" >&2; exit 1; }

find_bindir() {
	local d
	for d in "${PG_BINDIR:-}" /usr/lib/postgresql/15/bin; do
		if [[ -n $d && -x $d/initdb && -x $d/pg_ctl ]]; then echo "$d"; return 0; fi
	done
	if command -v pg_config >/dev/null 2>&1; then
		d=$(pg_config --bindir 2>/dev/null || true)
		if [[ -n $d && -x $d/initdb && -x $d/pg_ctl ]]; then echo "$d"; return 0; fi
	fi
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
		if [[ -x $d/initdb && -x $d/pg_ctl ]]; then echo "$d"; return 0; fi
	done
	return 1
}

ensure_bindir() {
	if BINDIR=$(find_bindir); then return 0; fi
	if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
		echo "pg.sh: PostgreSQL not found, installing postgresql-15 with apt-get" >&2
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >&2
		BINDIR=$(find_bindir) && return 0
	fi
	die "PostgreSQL server binaries (initdb, pg_ctl) not found; install postgresql-15 or set PG_BINDIR"
}

# run_as runs a command as the server's user.
run_as() {
	if [[ -n ${RUN_USER:-} ]]; then
		runuser -u "$RUN_USER" -- "$@"
	else
		"$@"
	fi
}

pick_user() {
	RUN_USER=""
	[[ $(id -u) -eq 0 ]] || return 0
	if [[ -n ${PG_USER:-} ]]; then
		RUN_USER=$PG_USER
	elif id postgres >/dev/null 2>&1; then
		RUN_USER=postgres
	else
		RUN_USER=callready
		if ! id "$RUN_USER" >/dev/null 2>&1; then
			useradd --system --no-create-home --shell /usr/sbin/nologin "$RUN_USER" >&2
		fi
	fi
	id "$RUN_USER" >/dev/null 2>&1 || die "user $RUN_USER does not exist"
}

# grant_traverse lets the server's user reach DIR: directories made by
# mktemp or t.TempDir are 0700, so add search (x) permission, never read,
# on DIR's ancestors that lack it.
grant_traverse() {
	[[ -n ${RUN_USER:-} ]] || return 0
	local d=$1
	while [[ $d != / ]]; do
		if ! runuser -u "$RUN_USER" -- test -x "$d"; then
			chmod o+x "$d"
		fi
		d=$(dirname "$d")
	done
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
	local p i
	for i in $(seq 1 50); do
		p=$((20000 + RANDOM % 40000))
		if ! port_in_use "$p"; then echo "$p"; return 0; fi
	done
	die "no free port found"
}

running() { [[ -f $DATA/postmaster.pid ]] && run_as "$BINDIR/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

dsn() { echo "export CALLREADY_TEST_POSTGRES=postgres://callready@127.0.0.1:$(cat "$DIR/port")/callready_test?sslmode=disable"; }

setup() {
	[[ -n ${1:-} ]] || die "missing DIR"
	mkdir -p "$1"
	DIR=$(cd "$1" && pwd -P)
	DATA=$DIR/data
	ensure_bindir
	pick_user
}

cmd_start() {
	setup "${1:-}"
	grant_traverse "$DIR"
	if [[ -n $RUN_USER ]]; then chown "$RUN_USER" "$DIR"; fi
	if [[ ! -f $DATA/PG_VERSION ]]; then
		rm -rf "$DATA"
		run_as "$BINDIR/initdb" -D "$DATA" -U callready --auth=trust -E UTF8 --no-locale --no-sync >"$DIR/initdb.log" 2>&1 ||
			die "initdb failed, see $DIR/initdb.log"
	fi
	run_as mkdir -p "$DIR/run"
	if ! running; then
		local tries port
		for tries in 1 2 3 4 5; do
			if [[ -f $DIR/port ]]; then port=$(cat "$DIR/port"); else port=$(free_port); fi
			if run_as "$BINDIR/pg_ctl" -D "$DATA" -l "$DIR/postgres.log" -w -t 60 \
				-o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$DIR/run -c max_connections=300" \
				start >/dev/null; then
				run_as sh -c "echo $port > '$DIR/port'"
				break
			fi
			# The port may have been taken meanwhile: forget it and try another,
			# unless it was chosen by an earlier start (its DSN is in use).
			[[ $tries -lt 5 ]] || die "pg_ctl start failed, see $DIR/postgres.log"
			if [[ ! -f $DIR/port ]]; then continue; fi
			die "pg_ctl start on port $port failed, see $DIR/postgres.log"
		done
	fi
	local port i
	port=$(cat "$DIR/port")
	for i in $(seq 1 100); do
		if "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$port"; then break; fi
		[[ $i -lt 100 ]] || die "server on port $port not ready, see $DIR/postgres.log"
		sleep 0.1
	done
	if [[ $("$BINDIR/psql" -h 127.0.0.1 -p "$port" -U callready -d postgres -Atqc \
		"SELECT count(*) FROM pg_database WHERE datname = 'callready_test'") != 1 ]]; then
		"$BINDIR/psql" -h 127.0.0.1 -p "$port" -U callready -d postgres -qc "CREATE DATABASE callready_test" >/dev/null
	fi
	dsn
}

cmd_stop() {
	setup "${1:-}"
	local mode=${2:-fast}
	case $mode in fast | immediate | smart) ;; *) die "unknown stop mode $mode" ;; esac
	[[ -d $DATA ]] || return 0
	if running; then
		run_as "$BINDIR/pg_ctl" -D "$DATA" -m "$mode" -w -t 60 stop >/dev/null
	fi
}

cmd_status() {
	setup "${1:-}"
	running
}

case ${1:-} in
start) cmd_start "${2:-}" ;;
stop) cmd_stop "${2:-}" "${3:-}" ;;
status) cmd_status "${2:-}" ;;
available) BINDIR=$(find_bindir) && echo "$BINDIR" ;;
*) die "usage: pg.sh start DIR | stop DIR [fast|immediate] | status DIR | available" ;;
esac
