#!/usr/bin/env bash
# Start Debian's packaged PostgreSQL and make sure the test role exists (user gf, password gf, may create
# databases). Usage: scripts/postgres.sh start
set -euo pipefail
[ "${1:-}" = start ] || { echo "usage: $0 start" >&2; exit 2; }
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | awk '{print $4}' | grep -q online; then
    pg_lsclusters -h | grep -q . || $SUDO pg_createcluster "$version" main
    $SUDO pg_ctlcluster "$version" main start
fi
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -c "$1"; else sudo -u postgres sh -c "$1"; fi; }
for _ in $(seq 1 50); do
    as_pg "psql -qAtc 'select 1'" >/dev/null 2>&1 && break
    sleep 0.2
done
if [ "$(as_pg "psql -qAtc \"select 1 from pg_roles where rolname='gf'\"")" != 1 ]; then
    as_pg "psql -qc \"create role gf login superuser password 'gf'\""
fi
echo "postgresql $version up; role gf ready"
