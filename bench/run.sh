#!/usr/bin/env bash
# Benchmarks licensed on SQLite and PostgreSQL beside the limits of the machine (a bare
# axum handler, pgbench), and the delivery of its webhooks to a local receiver, and prints
# one table.
# Usage: bench/run.sh [seconds per run, 10 by default] [sqlite|postgres]  (both backends by default)
#        bench/run.sh [seconds] [sqlite|postgres] --against OTHER_TARGET/release/licensed
#          runs instead a paired A/B of validate and activate: this build and that one, alternately
#        bench/run.sh [seconds] [sqlite|postgres] --webhooks-only
#          measures only the webhook rows (ingest with and without a subscribed endpoint, and the
#          delivery of what it wrote to examples/webhook_receiver.rs), on the seeded ledger
#        bench/run.sh [seconds] [sqlite|postgres] --ledger-only [--against OTHER_TARGET/release/licensed]
#          seeds only the ledger and measures only license_quantity, ingest and the backdated insert
#          against an append; with --against, an A/B of license_quantity and ingest instead
#        bench/run.sh [seconds] postgres --fresh-only
#          measures only ingest on a brand-new PostgreSQL database (its first seconds, then warm)
# Builds into CARGO_TARGET_DIR if set (bench/run.py reads the binaries from there too).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null; then
    echo "installing wrk (Debian package)" >&2
    apt-get install -y wrk >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y wrk >/dev/null; }
fi
command -v pgbench >/dev/null || { echo "pgbench is needed (package postgresql-client)" >&2; exit 1; }
pg_isready -h 127.0.0.1 -p 5432 -q || pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start

cargo build --release --bin licensed --example bare_validate --example webhook_receiver
exec python3 bench/run.py "${1:-10}" "${@:2}"
