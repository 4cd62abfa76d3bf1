#!/usr/bin/env bash
# Make sure the services the test suite needs are present on this machine:
#  - PostgreSQL at 127.0.0.1:5432 (started with the cluster's own tooling if installed but stopped;
#    when no server can be had, the tests start a throwaway cluster from local binaries instead);
#  - Debian's chromium for the browser end-to-end tests.
# Idempotent: does nothing when everything is already there.
set -uo pipefail

log() { echo "[ensure-services] $*"; }

if command -v pg_isready >/dev/null 2>&1 && pg_isready -h 127.0.0.1 -p 5432 -q; then
  log "PostgreSQL is accepting connections on 127.0.0.1:5432"
elif command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  for v in $(ls /etc/postgresql); do
    log "starting PostgreSQL cluster $v/main"
    pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
  done
else
  log "no PostgreSQL server here; the tests will start a throwaway cluster from local binaries"
fi

if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  log "installing Debian chromium for the browser tests"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || log "could not install chromium: the browser tests will fail with a clear message"
fi
exit 0
