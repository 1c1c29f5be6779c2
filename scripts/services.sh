#!/usr/bin/env bash
# Make sure the Redis and PostgreSQL that the tests use answer; start them if not
# (the start commands are this machine kind's own, from the env notes).
set -u

redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }

wait_for() {  # name, check function
  for _ in $(seq 1 50); do "$2" && return 0; sleep 0.2; done
  echo "services: $1 does not answer" >&2
  return 1
}

if ! redis_up; then
  echo "services: starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
if ! pg_up; then
  echo "services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
fi
wait_for Redis redis_up && wait_for PostgreSQL pg_up && echo "services: Redis and PostgreSQL answer"
