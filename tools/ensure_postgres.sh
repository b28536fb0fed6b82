#!/usr/bin/env bash
# Install PostgreSQL 15 (server + client) and libfaketime from Debian's packages when missing:
# the capture's tests start a throwaway cluster (capture/pgcluster.py). Idempotent and quiet;
# uses sudo only when not root and sudo is available.
set -euo pipefail

PG_BIN=/usr/lib/postgresql/15/bin
packages=()
[ -x "$PG_BIN/initdb" ] || packages+=(postgresql-15 postgresql-client-15)
ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 || packages+=(libfaketime)
[ ${#packages[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo -n)
else
    echo "ensure_postgres: need ${packages[*]} but cannot install (not root, no sudo)" >&2
    exit 1
fi
echo "ensure_postgres: installing ${packages[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
# Debian's package creates and starts a default cluster; the tests use their own.
[ -x "$PG_BIN/initdb" ] || { echo "ensure_postgres: $PG_BIN/initdb still missing" >&2; exit 1; }
