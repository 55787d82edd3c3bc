#!/usr/bin/env bash
# postgres-test-db.sh starts the local PostgreSQL cluster and makes sure the
# role and database the PostgreSQL store tests use exist, then prints their
# connection URL on stdout (everything else goes to stderr):
#
#	export PARLEY_TEST_POSTGRES="$(sudo scripts/postgres-test-db.sh)"
#	go test -race ./internal/store/...
#
# Run it as root, without stdin. It is idempotent: a running cluster, an
# existing role or an existing database are fine. If PostgreSQL is not
# installed it installs the Debian package `postgresql` with apt-get.
#
# Environment: PG_VERSION (default: 15 if installed, else the newest installed
# version), PG_CLUSTER (default: main).
set -euo pipefail

log() { printf 'postgres-test-db: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
	log "run me as root (I start the cluster and use the postgres superuser)"
	exit 1
fi

ROLE=parley
PASSWORD=parley
DB=parley_test
CLUSTER=${PG_CLUSTER:-main}

# psql runs as the postgres superuser over the local socket (peer auth); cd /
# keeps it from complaining about an unreadable working directory.
psql_su() { (cd / && runuser -u postgres -- psql -X -v ON_ERROR_STOP=1 -qAt -p "$PORT" "$@"); }

pick_version() {
	if [ -n "${PG_VERSION:-}" ]; then
		echo "$PG_VERSION"
	elif [ -x /usr/lib/postgresql/15/bin/postgres ]; then
		echo 15
	else
		find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n 1
	fi
}

VERSION=$(pick_version)
if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$VERSION" ] ||
	[ ! -x "/usr/lib/postgresql/$VERSION/bin/postgres" ]; then
	log "PostgreSQL not installed: installing it with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update >&2
	apt-get install -y --no-install-recommends postgresql >&2
	VERSION=$(pick_version)
fi
if [ -z "$VERSION" ]; then
	log "no PostgreSQL server found under /usr/lib/postgresql"
	exit 1
fi

if ! pg_lsclusters -h "$VERSION" "$CLUSTER" >/dev/null 2>&1 ||
	[ -z "$(pg_lsclusters -h "$VERSION" "$CLUSTER" 2>/dev/null)" ]; then
	log "creating cluster $VERSION/$CLUSTER"
	pg_createcluster "$VERSION" "$CLUSTER" >&2
fi
PORT=$(pg_lsclusters -h "$VERSION" "$CLUSTER" | awk '{print $3}')

if ! pg_ctlcluster "$VERSION" "$CLUSTER" status >/dev/null 2>&1; then
	log "starting cluster $VERSION/$CLUSTER on port $PORT"
	# pg_ctlcluster drops root privileges itself; if this system's version
	# refuses root, run it as the cluster owner instead.
	if ! pg_ctlcluster "$VERSION" "$CLUSTER" start >&2; then
		(cd / && runuser -u postgres -- pg_ctlcluster "$VERSION" "$CLUSTER" start) >&2 ||
			pg_ctlcluster "$VERSION" "$CLUSTER" status >/dev/null 2>&1
	fi
fi

for _ in $(seq 1 60); do
	if pg_isready -q -h 127.0.0.1 -p "$PORT"; then
		break
	fi
	sleep 0.5
done
if ! pg_isready -q -h 127.0.0.1 -p "$PORT"; then
	log "PostgreSQL does not accept connections on 127.0.0.1:$PORT"
	exit 1
fi

# The role: created if missing, its password (re)set either way.
if [ "$(psql_su -c "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" != 1 ]; then
	psql_su -c "CREATE ROLE $ROLE LOGIN PASSWORD '$PASSWORD'" 2>&1 >/dev/null | grep -v 'already exists' >&2 || true
fi
psql_su -c "ALTER ROLE $ROLE WITH LOGIN PASSWORD '$PASSWORD'" >&2

# The database, owned by the role (so that it may create schemas in it).
if [ "$(psql_su -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]; then
	psql_su -c "CREATE DATABASE $DB OWNER $ROLE" 2>&1 >/dev/null | grep -v 'already exists' >&2 || true
fi
psql_su -c "ALTER DATABASE $DB OWNER TO $ROLE" >&2
if [ "$(psql_su -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]; then
	log "database $DB could not be created"
	exit 1
fi

echo "postgres://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DB?sslmode=disable"
