#!/usr/bin/env bash
# A throw-away PostgreSQL for the distributed search tests: `source .ci/postgres.sh` starts
# the Debian server binaries (initdb + pg_ctl) as an unprivileged user in a temporary
# directory on 127.0.0.1 and a free port, exports EDGESHRINK_TEST_PG, and stops and removes
# the server on exit (trap). Where no server binaries exist it warns and exports nothing:
# the tests that need the server are then skipped.
pg_bin=""
if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
  pg_bin="$(dirname "$(command -v initdb)")"
else
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && pg_bin="$d"; done
fi
if [ -z "$pg_bin" ]; then
  echo "warning: no PostgreSQL server binaries (initdb, pg_ctl); distributed search tests skipped" >&2
  return 0 2>/dev/null || exit 0
fi
pg_dir="$(mktemp -d /tmp/edgeshrink-pg.XXXXXX)"
pg_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
pg_as=()
if [ "$(id -u)" = 0 ]; then  # the server refuses to run as root: use the postgres user
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
  chown postgres "$pg_dir"
  pg_as=(runuser -u postgres --)
fi
pg_stop() {
  "${pg_as[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1
  rm -rf "$pg_dir"
}
trap pg_stop EXIT
"${pg_as[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U postgres -A trust >"$pg_dir/initdb.log" 2>&1 \
  && "${pg_as[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w -t 60 \
       -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pg_dir -c max_connections=200 -c fsync=off" \
       start >/dev/null \
  && export EDGESHRINK_TEST_PG="postgresql+psycopg://postgres@127.0.0.1:$pg_port/postgres" \
  || { echo "warning: PostgreSQL did not start (see $pg_dir/*.log); distributed search tests skipped" >&2; cat "$pg_dir"/*.log >&2; }
