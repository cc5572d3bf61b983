# A throwaway PostgreSQL server for the backend tests (tests/backends): Debian's packages, a cluster
# initialised in a temporary folder as the postgres user, listening on 127.0.0.1 only, with a test
# database. Exports METRICTREE_TEST_POSTGRES_URL, which the tests read (they skip without it).
ci_apt_install postgresql
ci_pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -n "$ci_pg_bin" ] && id postgres >/dev/null 2>&1; then
    ci_pg_dir=$(mktemp -d /tmp/metrictree-pg.XXXXXX)
    chown postgres "$ci_pg_dir"
    ci_pg_port=${METRICTREE_TEST_POSTGRES_PORT:-54329}
    su postgres -c "$ci_pg_bin/initdb -D '$ci_pg_dir/data' -A trust -U postgres >/dev/null"
    su postgres -c "$ci_pg_bin/pg_ctl -D '$ci_pg_dir/data' -l '$ci_pg_dir/log' -w -t 60 \
        -o \"-c listen_addresses=127.0.0.1 -c port=$ci_pg_port -c unix_socket_directories='$ci_pg_dir'\" start >/dev/null"
    su postgres -c "$ci_pg_bin/createdb -h 127.0.0.1 -p $ci_pg_port -U postgres metrictree_test"
    export METRICTREE_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$ci_pg_port/metrictree_test"
    ci_pg_stop() { su postgres -c "$ci_pg_bin/pg_ctl -D '$ci_pg_dir/data' -m fast stop >/dev/null" || true; }
    trap ci_pg_stop EXIT
    echo "PostgreSQL test server: $METRICTREE_TEST_POSTGRES_URL"
else
    echo "note: PostgreSQL is not installed here, so the PostgreSQL backend tests skip themselves" >&2
fi
