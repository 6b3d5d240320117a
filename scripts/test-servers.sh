# Sourced by scripts/test.sh: starts throwaway Redis and PostgreSQL servers on free loopback
# ports, each in a temporary directory, exports TEST_REDIS_URL and TEST_POSTGRES_URL for the
# tests, and stops them (and deletes their data) when the script exits.
#
# To run `cargo test` by hand with them:
#   bash -c 'source scripts/test-servers.sh && start_test_servers && cargo test --features ssr'

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

test_servers_dir=
stop_test_servers() {
  [ -n "$test_servers_dir" ] || return 0
  if [ -f "$test_servers_dir/redis.pid" ]; then kill "$(cat "$test_servers_dir/redis.pid")" 2>/dev/null || true; fi
  if [ -d "$test_servers_dir/pg" ]; then
    as_postgres "$pg_bin/pg_ctl" -D "$test_servers_dir/pg" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$test_servers_dir"
  test_servers_dir=
}

# PostgreSQL refuses to run as root: as root, run it as Debian's `postgres` user.
as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_test_servers() {
  test_servers_dir=$(mktemp -d /tmp/leptos-oidc-servers.XXXXXX)
  chmod 755 "$test_servers_dir"
  trap stop_test_servers EXIT

  local redis_port pg_port
  redis_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize yes --pidfile "$test_servers_dir/redis.pid" \
    --logfile "$test_servers_dir/redis.log" --dir "$test_servers_dir"
  export TEST_REDIS_URL="redis://127.0.0.1:$redis_port"

  pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  pg_port=$(free_port)
  mkdir "$test_servers_dir/pg"
  [ "$(id -u)" = 0 ] && chown postgres: "$test_servers_dir/pg"
  as_postgres "$pg_bin/initdb" -D "$test_servers_dir/pg" -U postgres --auth=trust \
    --no-sync -E UTF8 >"$test_servers_dir/initdb.log" 2>&1 ||
    { cat "$test_servers_dir/initdb.log" >&2; return 1; }
  as_postgres "$pg_bin/pg_ctl" -D "$test_servers_dir/pg" -w -l "$test_servers_dir/pg/server.log" \
    -o "-p $pg_port -c listen_addresses=127.0.0.1 -k $test_servers_dir/pg -c fsync=off -c max_connections=300" \
    start >/dev/null ||
    { cat "$test_servers_dir/pg/server.log" >&2; return 1; }
  export TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"

  for _ in $(seq 50); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  redis-cli -p "$redis_port" ping >/dev/null || { echo "redis-server did not start" >&2; return 1; }
  echo "test servers: Redis on $redis_port, PostgreSQL on $pg_port" >&2
}
