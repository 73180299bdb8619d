#!/bin/sh
# Wait until the database named by db.env (WA_DB_*) accepts the configured login, then run
# the arguments (the official images' command: wait_on_mysql.sh launch_within_docker.sh).
# WA_DB_WAIT_SECONDS bounds the wait (default 300); a bad environment fails at once.
set -e
export PYTHONPATH="/opt/whatsapp/lib${PYTHONPATH:+:$PYTHONPATH}"
python3 -m wabiz_standin wait-db "${WA_DB_WAIT_SECONDS:-300}"
exec "$@"
