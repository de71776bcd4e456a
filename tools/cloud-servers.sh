#!/usr/bin/env bash
# cloud-servers.sh - install and run the cloud test servers on loopback.
#
#   cloud-servers.sh install PREFIX            npm install azurite s3rver into PREFIX (once)
#   cloud-servers.sh start PREFIX STATE [WHAT...]
#        WHAT: azurite s3rver sigv4 graph (default: all). Data, logs and pid
#        files go to STATE. Waits until each port answers. Ports from the
#        environment: AZURITE_PORT (10000) S3RVER_PORT (4568) SIGV4_PORT (4569)
#        GRAPH_PORT (4570). Extra options for the Graph double: GRAPH_ARGS.
#   cloud-servers.sh stop STATE                stop what `start` started (by pid)
#
# PREFIX is normally BUILD/npm (`npm install --prefix BUILD/npm azurite s3rver`).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
AZURITE_PORT=${AZURITE_PORT:-10000}
S3RVER_PORT=${S3RVER_PORT:-4568}
SIGV4_PORT=${SIGV4_PORT:-4569}
GRAPH_PORT=${GRAPH_PORT:-4570}

die() { echo "cloud-servers: $*" >&2; exit 1; }

install() {
	local prefix=$1
	if [ -x "$prefix/node_modules/.bin/azurite-blob" ] && [ -x "$prefix/node_modules/.bin/s3rver" ]; then
		return 0
	fi
	command -v npm >/dev/null || die "npm is not installed"
	mkdir -p "$prefix"
	( exec 9>"$prefix/.install.lock"; flock 9
	  [ -x "$prefix/node_modules/.bin/s3rver" ] && [ -x "$prefix/node_modules/.bin/azurite-blob" ] ||
		npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error azurite@3 s3rver@3 >&2 )
}

wait_port() {
	local port=$1 name=$2 pidfile=$3
	for _ in $(seq 1 150); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
		kill -0 "$(cat "$pidfile")" 2>/dev/null || die "$name exited; see ${pidfile%.pid}.log"
		sleep 0.1
	done
	die "$name did not listen on 127.0.0.1:$port"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_one() {
	local prefix=$1 state=$2 what=$3 port
	case $what in
	azurite) port=$AZURITE_PORT ;;
	s3rver) port=$S3RVER_PORT ;;
	sigv4) port=$SIGV4_PORT ;;
	graph) port=$GRAPH_PORT ;;
	*) die "unknown server $what" ;;
	esac
	port_busy "$port" && die "port $port (for $what) is already in use"
	mkdir -p "$state/$what.data"
	case $what in
	azurite)
		"$prefix/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$port" \
			--location "$state/$what.data" --silent --disableTelemetry --skipApiVersionCheck \
			>"$state/$what.log" 2>&1 &
		;;
	s3rver)
		"$prefix/node_modules/.bin/s3rver" -d "$state/$what.data" -a 127.0.0.1 -p "$port" \
			--no-vhost-buckets --silent >"$state/$what.log" 2>&1 &
		;;
	sigv4)
		SIGV4_PORT=$port node "$here/tests/doubles/sigv4_verify_server.js" >"$state/$what.log" 2>&1 &
		;;
	graph)
		# shellcheck disable=SC2086
		python3 "$here/tests/doubles/graph_double.py" --port "$port" ${GRAPH_ARGS:-} \
			>"$state/$what.log" 2>&1 &
		;;
	esac
	echo $! >"$state/$what.pid"
	wait_port "$port" "$what" "$state/$what.pid"
}

cmd=${1:-}
case $cmd in
install)
	[ $# -eq 2 ] || die "usage: $0 install PREFIX"
	install "$2"
	;;
start)
	[ $# -ge 3 ] || die "usage: $0 start PREFIX STATE [azurite|s3rver|sigv4|graph ...]"
	prefix=$2 state=$3
	shift 3
	list=("$@")
	[ ${#list[@]} -gt 0 ] || list=(azurite s3rver sigv4 graph)
	mkdir -p "$state"
	for w in "${list[@]}"; do
		case $w in azurite | s3rver) install "$prefix" ;; esac
	done
	for w in "${list[@]}"; do start_one "$prefix" "$state" "$w"; done
	;;
stop)
	[ $# -eq 2 ] || die "usage: $0 stop STATE"
	for f in "$2"/*.pid; do
		[ -e "$f" ] || continue
		pid=$(cat "$f")
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
		rm -f "$f"
	done
	;;
*)
	die "usage: $0 install PREFIX | start PREFIX STATE [WHAT...] | stop STATE"
	;;
esac
