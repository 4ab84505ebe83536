#!/usr/bin/env bash
# Start the services cluster mode and its tests need: Redis on 127.0.0.1:6379
# and PostgreSQL on 127.0.0.1:5432 (database "test", trust auth for local
# TCP), and NATS with JetStream on 127.0.0.1:4222 (the order events'). Each
# is started when down and installed from Debian's packages when missing.
# Idempotent: running it when all are up only checks them.
# Embedded mode (the default) needs neither. It also installs, when
# missing, the tools of the observability tests: Prometheus and promtool
# (deploy/observability), headless Chromium (the dashboard's test), and the
# deploy files' checkers (below), and a C compiler for the race detector.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  echo "services: installing $*" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
wait_for() { # wait_for NAME CMD...: up to 30 s
  local name=$1; shift
  for _ in $(seq 1 60); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "services: $name did not come up" >&2; return 1
}

# The race detector (make test runs go test -race) needs cgo, so a C
# compiler: a fresh machine with Go alone fails every package without one.
command -v "$(go env CC 2>/dev/null || echo gcc)" >/dev/null 2>&1 || apt_install gcc libc6-dev
echo "services: C compiler for the race detector present"

redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
if ! redis_up; then
  command -v redis-server >/dev/null || apt_install redis-server redis-tools
  command -v redis-cli >/dev/null || apt_install redis-tools
  as_root mkdir -p /var/lib/redis /var/log/redis
  # No persistence: Surge keeps the durable truth in PostgreSQL and
  # rebuilds Redis from it (docs/cluster.md).
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for redis redis_up
fi
echo "services: redis up on 127.0.0.1:6379"

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432; }
if ! command -v pg_ctlcluster >/dev/null || ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
  apt_install postgresql postgresql-client
fi
if ! pg_up; then
  ver=$(ls /etc/postgresql | sort -V | tail -1)
  as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  wait_for postgresql pg_up
fi
ver=$(ls /etc/postgresql | sort -V | tail -1)
hba=/etc/postgresql/$ver/main/pg_hba.conf
if ! as_root grep -Eq '^host[[:space:]]+all[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba"; then
  # A stock Debian install asks for passwords on TCP; the tests connect as
  # postgres over 127.0.0.1 without one, as on the go-svc machines.
  as_root sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
  as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main reload
fi
psql_pg() { as_root runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres "$@"; }
if ! psql_pg -d postgres -tAc "select 1 from pg_database where datname='test'" | grep -q 1; then
  psql_pg -d postgres -c 'create database test'
fi
echo "services: postgresql up on 127.0.0.1:5432 (database test)"

# Debian's prometheus package enables and starts its service on install; the
# tests run their own instance on a free port, so a policy-rc.d refusing to
# start services (exit 101) is in place during the install, unless the
# machine already has one (containers do).
without_service_starts() {
  if [ -e /usr/sbin/policy-rc.d ]; then "$@"; return; fi
  printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
  as_root chmod 755 /usr/sbin/policy-rc.d
  local rc=0
  "$@" || rc=$?
  as_root rm -f /usr/sbin/policy-rc.d
  return "$rc"
}

# NATS with JetStream on 127.0.0.1:4222: the order events' stream
# (docs/events.md). nats-server does not daemonize itself: setsid detaches
# it from this shell; its store (-sd) survives restarts like a real one.
nats_up() { timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/4222 && head -c 4 <&3' 2>/dev/null | grep -q INFO; }
if ! nats_up; then
  command -v nats-server >/dev/null || without_service_starts apt_install nats-server
  as_root mkdir -p /var/lib/nats-server
  as_root setsid nats-server -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log \
    </dev/null >/dev/null 2>&1 &
  wait_for nats nats_up
fi
echo "services: nats-server (JetStream) up on 127.0.0.1:4222"

command -v promtool >/dev/null || without_service_starts apt_install prometheus
command -v chromium >/dev/null || apt_install chromium
echo "services: promtool and chromium installed"

# The deploy files' checkers (deploy/deploy_test.go, deploy/nginx): npm's
# dockerfile-utils (Dockerfile lint) and dclint (Compose schema and lint),
# Debian's nginx (the edge test) and systemd-analyze, and helm through the
# Go module proxy.
command -v npm >/dev/null || apt_install nodejs npm
command -v dockerfile-utils >/dev/null || as_root npm install -g --silent dockerfile-utils@0.16.3
command -v dclint >/dev/null || as_root npm install -g --silent dclint@3.1.0
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || without_service_starts apt_install nginx-light
command -v systemd-analyze >/dev/null || apt_install systemd
# PgBouncer, the pooler docs/cluster.md names (postgres's TestOpenThroughPgBouncer
# runs one of its own in front of PostgreSQL; the package's service stays off).
command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || without_service_starts apt_install pgbouncer
if ! command -v helm >/dev/null && [ ! -x "$(go env GOPATH)/bin/helm" ]; then
  echo "services: installing helm (go install, a few minutes)" >&2
  go install helm.sh/helm/v4/cmd/helm@v4.3.2
fi
# A filesystem without hard links for sqlite's TestBackupToFilesystemWithoutHardLinks
# (exFAT through FUSE on a loop device; the test skips where FUSE or loop
# devices are not allowed, as in many containers).
{ command -v mkfs.exfat >/dev/null || [ -x /usr/sbin/mkfs.exfat ]; } || apt_install exfatprogs
{ command -v mount.exfat-fuse >/dev/null || [ -x /usr/sbin/mount.exfat-fuse ]; } || apt_install exfat-fuse
echo "services: dockerfile-utils, dclint, nginx, systemd-analyze, pgbouncer, helm and exFAT tools installed"
