#!/usr/bin/env bash
# s3-test-server.sh starts a real S3-compatible server on loopback for the
# S3 blob-storage tests, and prints the variable that enables them on
# stdout (everything else goes to stderr):
#
#	eval "$(scripts/s3-test-server.sh)"
#	go test -race -run S3 ./internal/media
#
# The server is versitygw (Apache 2.0) with its posix backend, built from
# the Go module proxy with `go install` if it is not installed yet (about
# five minutes on two cores the first time; the module cache keeps it).
# It is idempotent: a server already answering on the port is reused.
#
#	scripts/s3-test-server.sh --stop    stops the server this script started
#
# Environment: S3_TEST_PORT (default 7070), S3_TEST_DIR (default
# ${TMPDIR:-/tmp}/parley-s3-test), VERSITYGW_VERSION (default v1.8.0).
set -euo pipefail

log() { printf 's3-test-server: %s\n' "$*" >&2; }

PORT=${S3_TEST_PORT:-7070}
DIR=${S3_TEST_DIR:-${TMPDIR:-/tmp}/parley-s3-test}
VERSION=${VERSITYGW_VERSION:-v1.8.0}
ACCESS=parleytest
SECRET=parleytest-secret
BUCKET=parley-test
PIDFILE="$DIR/versitygw.pid"
URL="http://$ACCESS:$SECRET@127.0.0.1:$PORT/$BUCKET?region=us-east-1"

answering() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

if [ "${1:-}" = "--stop" ]; then
	if [ -f "$PIDFILE" ] && kill "$(cat "$PIDFILE")" 2>/dev/null; then
		log "stopped versitygw (pid $(cat "$PIDFILE"))"
	fi
	rm -f "$PIDFILE"
	exit 0
fi

if answering; then
	log "a server already answers on 127.0.0.1:$PORT: reusing it"
	echo "export PARLEY_TEST_S3='$URL'"
	exit 0
fi

BIN=$(command -v versitygw || true)
if [ -z "$BIN" ]; then
	GOBIN_DIR=$(go env GOBIN)
	[ -n "$GOBIN_DIR" ] || GOBIN_DIR="$(go env GOPATH)/bin"
	BIN="$GOBIN_DIR/versitygw"
fi
if [ ! -x "$BIN" ]; then
	log "building versitygw $VERSION with go install (a few minutes the first time)"
	(cd / && GOFLAGS= go install "github.com/versity/versitygw/cmd/versitygw@$VERSION") >&2
fi

mkdir -p "$DIR/root"
log "starting versitygw on 127.0.0.1:$PORT, objects under $DIR/root"
# --sidecar keeps object metadata in files, so any filesystem works (no
# extended attributes needed).
mkdir -p "$DIR/meta"
nohup "$BIN" --access "$ACCESS" --secret "$SECRET" --port "127.0.0.1:$PORT" --quiet \
	posix --sidecar "$DIR/meta" "$DIR/root" >"$DIR/versitygw.log" 2>&1 </dev/null &
echo $! >"$PIDFILE"
for _ in $(seq 1 100); do
	if answering; then
		log "ready (pid $(cat "$PIDFILE"), log $DIR/versitygw.log); stop it with: $0 --stop"
		echo "export PARLEY_TEST_S3='$URL'"
		exit 0
	fi
	sleep 0.1
done
log "versitygw did not start; its log:"
cat "$DIR/versitygw.log" >&2
exit 1
