#!/usr/bin/env python3
"""Runs the benchmarks of bench/run.sh and prints the table. Standard library only.

Each figure stands beside its baseline, measured in the same run on the same machine
right before it (so that both see the same conditions on a noisy machine): the bare
axum handler (the HTTP stack's limit) for SQLite, pgbench (PostgreSQL's limit) for
PostgreSQL. The compared pairs are measured in ROUNDS rounds, alternately, and each
ratio is the median of its rounds' ratios: one slow moment of a shared machine then
moves one round, not the result.

With `--against PATH` (another build's `licensed`), it runs instead a paired A/B run of
validate and activate (keys without heartbeat or seats): this build's server and that
one, each on its own fresh database with the same seeding, measured alternately in
AB_ROUNDS rounds (the first of each pair swapping from round to round); each ratio is
the median of the rounds' this/that ratios.

The webhook rows (after the other writes): ingest with no endpoint, then with one
endpoint subscribed (a new one each round, pointing at examples/webhook_receiver.rs,
which answers 200 and counts), in alternating rounds. The receiver's count and the
server's `webhook_oldest_undelivered_seconds` are sampled while the dispatcher delivers
what that ingest wrote, until the lag is back to 0: delivery beside ingest. Then a
backlog: the receiver is stopped (SIGSTOP) while ingest writes for BACKLOG_SECONDS, let
go, and timed until the last message is delivered: delivery throughput is those messages
over that time. The endpoint is then deleted with its messages. With `--webhooks-only`,
only those rows are measured (the ledger seeded as usual, no keys).

The fresh-database row (PostgreSQL, after the others): ingest on a database created for
it and migrated by `licensed serve` just then (nothing seeded, nothing analyzed), its
first SECONDS; then, that database analyzed as autovacuum or an operator would, ingest on
it warm for SECONDS more. A new database each round, ROUNDS rounds; each ratio is a
round's first seconds over its warm ones. With `--fresh-only`, only that row.

With `--ledger-only`, only the ledger is seeded (no keys) and only its rows are measured:
license_quantity and ingest (ROUNDS rounds), then the backdated insert before LATER
entries against an append, with HEAD_INSERTS backdated inserts (more than a pair keeps
shifts, so that the slowest one shows a fold). With `--against`, it makes the A/B run
compare license_quantity and ingest instead of validate and activate.
"""

import http.client
import json
import os
import random
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid

ARGS = sys.argv[1:]
AGAINST = None
if "--against" in ARGS:
    at = ARGS.index("--against")
    AGAINST = os.path.abspath(ARGS[at + 1])
    del ARGS[at:at + 2]
WEBHOOKS_ONLY = "--webhooks-only" in ARGS
if WEBHOOKS_ONLY:
    ARGS.remove("--webhooks-only")
FRESH_ONLY = "--fresh-only" in ARGS
if FRESH_ONLY:
    ARGS.remove("--fresh-only")
LEDGER_ONLY = "--ledger-only" in ARGS
if LEDGER_ONLY:
    ARGS.remove("--ledger-only")
SECONDS = int(ARGS[0]) if ARGS else 10
ROUNDS, AB_ROUNDS = 3, 4
BACKENDS = ARGS[1:] or ["sqlite", "postgres"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.path.join(ROOT, os.environ.get("CARGO_TARGET_DIR", "target"))
LICENSED = os.path.join(TARGET, "release/licensed")
BARE = os.path.join(TARGET, "release/examples/bare_validate")
RECEIVER = os.path.join(TARGET, "release/examples/webhook_receiver")
SCRIPT = os.path.join(ROOT, "bench/wrk.lua")
ADMIN = "lsk_bench-admin"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
CONNECTIONS = 32
KEYS, PAIRS, ENTRIES_PER_PAIR, DEEP, LATER = 10_000, 10_000, 100, 100_000, 10_000
INSTANCES, HEARTBEAT_INTERVAL, SEATS = 10_000, 3600, 1_000_000_000
LICENSED_PORT, BARE_PORT, AGAINST_PORT, RECEIVER_PORT = 18181, 18182, 18183, 18184
# The webhook rows: how long ingest writes a backlog while the receiver is stopped (at most:
# the attempt it holds times out after 15 s), how long a round waits for the dispatcher to
# deliver what was written, and how often it looks.
BACKLOG_SECONDS, DRAIN_LIMIT, SAMPLE_EVERY = 10, 600, 0.2
DAY_US, BASE_US = 86_400_000_000, 1_704_067_200_000_000  # 2024-01-01


def log(message):
    print(message, file=sys.stderr, flush=True)


def start(command, env=None):
    """Starts a server and waits for its 'listening' line."""
    process = subprocess.Popen(command, env={**os.environ, **(env or {})},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        if "listening on" in line:
            threading.Thread(target=lambda: [None for _ in process.stderr], daemon=True).start()
            return process
    raise SystemExit(f"{command[0]} did not start")


def stop(process):
    process.terminate()
    process.wait(timeout=60)


def peak_rss_mib(process):
    with open(f"/proc/{process.pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def wrk(port, mode, seconds=None, **env):
    """(requests per second, p99 latency in ms) of one wrk run (of SECONDS unless told)."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds or SECONDS}s", "-s", SCRIPT, f"http://127.0.0.1:{port}"],
        env={**os.environ, "BENCH_MODE": mode, **{f"BENCH_{k.upper()}": str(v) for k, v in env.items()}},
        capture_output=True, text=True, check=True).stdout
    rps, p99, errors = re.search(r"RESULT (\S+) (\S+) (\S+)", out).groups()
    if int(errors):
        log(f"  note: {errors} errors in {mode}")
    return float(rps), float(p99)


class Api:
    """A keep-alive HTTP client, one per thread."""

    def __init__(self, port):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def call(self, method, path, body=None, auth=True):
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {ADMIN}"
        self.connection.request(method, path, json.dumps(body) if body is not None else None, headers)
        response = self.connection.getresponse()
        data = response.read()
        if response.status >= 300:
            raise SystemExit(f"{method} {path}: {response.status} {data[:200]}")
        return json.loads(data) if data else None


def in_threads(port, count, work):
    """work(client) called count times over 8 threads, each with its own client; the results."""
    results, lock = [], threading.Lock()

    def run(n):
        client = Api(port)
        for _ in range(n):
            result = work(client)
            with lock:
                results.append(result)

    threads = [threading.Thread(target=run, args=(count // 8 + (i < count % 8),)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def seed_keys(port, seats=True):
    """A customer, a product without limits, KEYS license keys and one more (contended)
    (over HTTP). With seats: also a key with a HEARTBEAT_INTERVAL and INSTANCES instances
    activated on it, and a key bound to a ledger pair of SEATS seats (the pair given its
    one entry with POST /license_updates)."""
    api = Api(port)
    customer = api.call("POST", "/customers", {"email": "bench@example.com", "name": "Bench"})
    product = api.call("POST", "/products", {"name": "Bench"})
    body = {"customer_id": customer["customer_id"], "product_id": product["product_id"]}
    seeded = {"keys": in_threads(port, KEYS, lambda client: client.call("POST", "/license_keys", body)["key"]),
              "contended": api.call("POST", "/license_keys", body)["key"]}
    if seats:
        beating = api.call("POST", "/license_keys", {**body, "heartbeat_interval": HEARTBEAT_INTERVAL})["key"]
        activate = {"license_key": beating, "name": "bench"}
        seeded["beating"] = beating
        seeded["instances"] = in_threads(
            port, INSTANCES, lambda client: client.call("POST", "/licenses/activate", activate, auth=False)["id"])
        api = Api(port)  # the first connection may have been closed while idle
        api.call("POST", "/license_updates", {"accountId": "bench-seats", "licenseId": "seats",
                                              "updateType": "ABSOLUTE", "quantity": SEATS})
        seeded["bound"] = api.call("POST", "/license_keys", {
            **body, "seats": {"account_id": "bench-seats", "license_id": "seats"}})["key"]
    return seeded


def ledger_rows(business):
    """PAIRS pairs of ENTRIES_PER_PAIR ABSOLUTE entries, then one pair with LATER RELATIVE ones."""
    for pair in range(PAIRS):
        for k in range(ENTRIES_PER_PAIR):
            yield (business, f"acct-{pair}", "seats", BASE_US + k * DAY_US, "ABSOLUTE", str(k + 1), str(k + 1),
                   BASE_US + pair * ENTRIES_PER_PAIR + k)
    for i in range(LATER):
        yield (business, "head", "seats", BASE_US + (i + 1) * 1_000_000, "RELATIVE", "1", str(i + 1),
               BASE_US + PAIRS * ENTRIES_PER_PAIR + i)


INSERT = ("INSERT INTO ledger_entries (business_id, account_id, license_id, effective_from, update_type, "
          "given, absolute, created_at) VALUES ({})")


def seed_ledger_sqlite(path):
    db = sqlite3.connect(path, timeout=60)
    business = db.execute("SELECT id FROM businesses WHERE name = 'default'").fetchone()[0]
    with db:
        db.executemany(INSERT.format(", ".join("?" * 8)), ledger_rows(business))
    db.close()


def seed_ledger_postgres(url):
    business = psql(url, "SELECT id FROM businesses WHERE name = 'default'").strip()
    psql(url, f"""
        INSERT INTO ledger_entries (business_id, account_id, license_id, effective_from, update_type, given, absolute, created_at)
        SELECT '{business}', 'acct-' || p, 'seats', {BASE_US} + k * {DAY_US}::BIGINT, 'ABSOLUTE', k + 1, k + 1,
               {BASE_US} + p * {ENTRIES_PER_PAIR} + k
        FROM generate_series(0, {PAIRS - 1}) p, generate_series(0, {ENTRIES_PER_PAIR - 1}) k ORDER BY p, k;
        INSERT INTO ledger_entries (business_id, account_id, license_id, effective_from, update_type, given, absolute, created_at)
        SELECT '{business}', 'head', 'seats', {BASE_US} + (i + 1) * 1000000::BIGINT, 'RELATIVE', 1, i + 1,
               {BASE_US} + {PAIRS * ENTRIES_PER_PAIR} + i
        FROM generate_series(0, {LATER - 1}) i;
        ANALYZE;""")


def psql(url, sql):
    return subprocess.run(["psql", url, "-qtAc", sql], capture_output=True, text=True, check=True).stdout


def deep_page_path(port):
    """The path of the page DEEP entries into the default listing, found by walking to it."""
    api, token = Api(port), None
    for _ in range(DEEP // 50):
        query = "pageSize=50" + (f"&nextToken={token}" if token else "")
        token = api.call("GET", f"/license_updates?{query}")["nextToken"]
    return f"/license_updates?pageSize=50&nextToken={token}"


def times_ms(port, bodies):
    api, times = Api(port), []
    for body in bodies:
        started = time.perf_counter()
        api.call("POST", "/license_updates", body)
        times.append((time.perf_counter() - started) * 1000)
    return times


def head_vs_append(port, inserts=20):
    """A backdated insert before LATER RELATIVE entries (all re-resolved) vs an append: the
    median of `inserts` of each, and the slowest backdated one."""
    head = [{"accountId": "head", "licenseId": "seats", "updateType": "RELATIVE", "quantity": 1,
             "effectiveFrom": "2023-12-31T00:00:00Z"} for _ in range(inserts)]
    tail = [{"accountId": "head", "licenseId": "seats", "updateType": "RELATIVE", "quantity": 1,
             "effectiveFrom": f"2030-01-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z"}
            for i in range(inserts)]
    head_times = times_ms(port, head)
    return statistics.median(head_times), statistics.median(times_ms(port, tail)), max(head_times)


HEAD_INSERTS = 40


def in_rounds(results, measures):
    """Runs the measures in order, ROUNDS times; each result is the list of its rounds'."""
    for name in measures:
        results[name] = []
    for _ in range(ROUNDS):
        for name, measure in measures.items():
            results[name].append(measure())


def get_text(port, path):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        return connection.getresponse().read().decode()
    finally:
        connection.close()


def received():
    """How many deliveries the receiver has answered since it started."""
    return int(get_text(RECEIVER_PORT, "/count"))


def outbox_lag(port):
    """The server's webhook_oldest_undelivered_seconds."""
    metrics = get_text(port, "/metrics")
    return float(re.search(r"^webhook_oldest_undelivered_seconds (\S+)$", metrics, re.M).group(1))


def sampled_ingest(port, samples, count=True, seconds=None):
    """An ingest run, sampling (time, the receiver's count or None, outbox lag) meanwhile."""
    writing = threading.Event()
    writing.set()

    def sample():
        while writing.is_set():
            samples.append((time.monotonic(), received() if count else None, outbox_lag(port)))
            time.sleep(SAMPLE_EVERY)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        return wrk(port, "ingest", seconds=seconds, auth=ADMIN)
    finally:
        writing.clear()
        sampler.join()


def until_delivered(port, samples, since):
    """Samples until the outbox lag is 0, or DRAIN_LIMIT seconds after `since`; whether it is."""
    while True:
        samples.append((time.monotonic(), received(), outbox_lag(port)))
        if samples[-1][2] == 0 or samples[-1][0] - since > DRAIN_LIMIT:
            return samples[-1][2] == 0
        time.sleep(SAMPLE_EVERY)


def last_delivery(samples):
    """The receiver's final count, and the time of the first sample that saw it."""
    total = samples[-1][1]
    return total, next(at for at, count, _ in samples if count == total)


def ingest_subscribed(port, receiver, beside, backlog):
    """Ingest with one endpoint subscribed to the receiver: (requests per second, p99). The
    endpoint is new, and deleted with its messages at the end. Also measures its delivery:
    - beside the ingest run, the receiver answering: appends to `beside` (events per second
      from the start of the writes to the last delivery, the largest lag sampled, events,
      of them delivered during the writes, whether all were delivered);
    - of a backlog: the receiver stopped (SIGSTOP) while ingest writes for BACKLOG_SECONDS,
      then let go: appends to `backlog` (events per second from then to the last delivery,
      the largest lag sampled, events, seconds to deliver them, whether all were)."""
    api = Api(port)
    endpoint = api.call("POST", "/webhooks", {"url": f"http://127.0.0.1:{RECEIVER_PORT}/hook"})["id"]
    samples, before, started = [], received(), time.monotonic()
    figure = sampled_ingest(port, samples)
    ended, during = time.monotonic(), received()
    drained = until_delivered(port, samples, ended)
    total, last = last_delivery(samples)
    rate, lag = (total - before) / (last - started), max(lag for _, _, lag in samples)
    log(f"  delivery beside ingest: {total - before} events, {during - before} of them during the writes, "
        f"{rate:,.0f}/s, largest lag {lag:.1f} s" + ("" if drained else f" (NOT delivered after {DRAIN_LIMIT} s)"))
    beside.append((rate, lag, total - before, during - before, drained))

    samples, before = [], received()
    receiver.send_signal(signal.SIGSTOP)
    try:
        written = sampled_ingest(port, samples, count=False, seconds=min(SECONDS, BACKLOG_SECONDS))
    finally:
        receiver.send_signal(signal.SIGCONT)
    resumed, waiting = time.monotonic(), samples[-1][2]
    drained = until_delivered(port, samples, resumed)
    total, last = last_delivery([s for s in samples if s[1] is not None])
    rate, lag = (total - before) / (last - resumed), max(lag for _, _, lag in samples)
    log(f"  delivery of a backlog: {total - before} events (written at {written[0]:,.0f}/s, the oldest "
        f"{waiting:.1f} s old when the receiver was let go) in {last - resumed:.1f} s, {rate:,.0f}/s, "
        f"largest lag {lag:.1f} s" + ("" if drained else f" (NOT delivered after {DRAIN_LIMIT} s)"))
    backlog.append((rate, lag, total - before, last - resumed, drained))
    api = Api(port)
    api.call("DELETE", f"/webhooks/{endpoint}")
    return figure


def webhook_rounds(results):
    """ROUNDS rounds of ingest without an endpoint, then with one (and its deliveries)."""
    receiver = start([RECEIVER, f"127.0.0.1:{RECEIVER_PORT}"])
    beside, backlog = results.setdefault("delivery beside", []), results.setdefault("delivery backlog", [])
    try:
        in_rounds(results, {
            "ingest (no endpoint)": lambda: wrk(LICENSED_PORT, "ingest", auth=ADMIN),
            "ingest (one endpoint)": lambda: ingest_subscribed(LICENSED_PORT, receiver, beside, backlog),
        })
    finally:
        stop(receiver)


def serve_on(database_url):
    """`licensed serve` on LICENSED_PORT, bootstrapped with the ADMIN key."""
    return start([LICENSED, "serve", "--bind", f"127.0.0.1:{LICENSED_PORT}", "--database-url", database_url,
                  "--public-rate-limit", "0"],
                 {"LICENSED_BOOTSTRAP_API_KEY": ADMIN, "LICENSED_LOG": "warn,licensed::cli=info"})


def bench_licensed(name, database_url, seed_ledger, results, read_baseline, write_baseline):
    serve = lambda: serve_on(database_url)
    no_keys = WEBHOOKS_ONLY or LEDGER_ONLY
    log(f"{name}: seeding {0 if no_keys else KEYS} keys and {PAIRS * ENTRIES_PER_PAIR + LATER} ledger entries")
    server = serve()
    try:
        seeded = None if no_keys else seed_keys(LICENSED_PORT)
    finally:
        stop(server)
    # With the server stopped: a SQLite file belongs to one process at a time.
    seed_ledger()
    server = serve()
    try:
        if LEDGER_ONLY:
            log(f"{name}: measuring the ledger rows only")
            in_rounds(results, {
                "quantity": lambda: wrk(LICENSED_PORT, "quantity", auth=ADMIN, pairs=PAIRS),
                "ingest": lambda: wrk(LICENSED_PORT, "ingest", auth=ADMIN),
            })
            results["head"], results["append"], results["head max"] = head_vs_append(LICENSED_PORT, HEAD_INSERTS)
            results["rss"] = peak_rss_mib(server)
            return
        if WEBHOOKS_ONLY:
            log(f"{name}: measuring the webhook rows only")
            webhook_rounds(results)
            results["rss"] = peak_rss_mib(server)
            return
        with tempfile.NamedTemporaryFile("w", suffix=".keys", delete=False) as keys_file:
            keys_file.write("\n".join(seeded["keys"]))
        with tempfile.NamedTemporaryFile("w", suffix=".instances", delete=False) as instances_file:
            instances_file.write("\n".join(seeded["instances"]))
        log(f"{name}: measuring")
        # Reads first, on the seeded data: measured after the writes, a read would also
        # measure the database writing back what they wrote.
        in_rounds(results, {
            "read baseline": read_baseline,
            "validate": lambda: wrk(LICENSED_PORT, "validate", keys=keys_file.name),
            "quantity": lambda: wrk(LICENSED_PORT, "quantity", auth=ADMIN, pairs=PAIRS),
        })
        in_rounds(results, {
            "unsigned": lambda: wrk(LICENSED_PORT, "validate", keys=keys_file.name),
            "signed": lambda: wrk(LICENSED_PORT, "signed", keys=keys_file.name),
            "file": lambda: wrk(LICENSED_PORT, "file", keys=keys_file.name),
        })
        deep = deep_page_path(LICENSED_PORT)
        in_rounds(results, {
            "first page": lambda: wrk(LICENSED_PORT, "get", auth=ADMIN, path="/license_updates?pageSize=50"),
            "deep page": lambda: wrk(LICENSED_PORT, "get", auth=ADMIN, path=deep),
        })
        in_rounds(results, {
            "activate": lambda: wrk(LICENSED_PORT, "activate", key=seeded["contended"]),
            "activate bound": lambda: wrk(LICENSED_PORT, "activate", key=seeded["bound"]),
        })
        in_rounds(results, {
            "write baseline": write_baseline,
            "ingest": lambda: wrk(LICENSED_PORT, "ingest", auth=ADMIN),
            "onboard": lambda: wrk(LICENSED_PORT, "onboard", auth=ADMIN),
        })
        in_rounds(results, {
            "heartbeat baseline": write_baseline,
            "heartbeat": lambda: wrk(LICENSED_PORT, "heartbeat", key=seeded["beating"],
                                     instances=instances_file.name),
        })
        results["head"], results["append"], _ = head_vs_append(LICENSED_PORT)
        # Last, so that the outbox they fill touches none of the rows above.
        webhook_rounds(results)
        results["rss"] = peak_rss_mib(server)
        os.unlink(keys_file.name)
        os.unlink(instances_file.name)
    finally:
        stop(server)


def pgbench(database, mode):
    log(f"pgbench {mode}: measuring")
    out = subprocess.run(["pgbench", "-h", "127.0.0.1", "-U", "postgres", mode, "-M", "prepared",
                          "-c", str(CONNECTIONS), "-j", "2", "-T", str(SECONDS), database],
                         capture_output=True, text=True, check=True).stdout
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))
    latency = float(re.search(r"latency average = ([\d.]+) ms", out).group(1))
    return tps, latency


def bench_sqlite(results):
    bare = start([BARE, f"127.0.0.1:{BARE_PORT}"])
    with tempfile.NamedTemporaryFile("w", delete=False) as keys_file:
        keys_file.write("\n".join(str(uuid.uuid4()) for _ in range(1000)))
    measure_bare = lambda: wrk(BARE_PORT, "validate", keys=keys_file.name)
    try:
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "bench.db")
            bench_licensed("sqlite", f"sqlite://{path}", lambda: seed_ledger_sqlite(path), results,
                           measure_bare, measure_bare)
    finally:
        stop(bare)
        os.unlink(keys_file.name)


def fresh_and_warm():
    """Ingest on a brand-new database: its first SECONDS, then SECONDS more once it is warm
    (analyzed, as autovacuum would after its naptime); both (requests per second, p99)."""
    database = f"licensed_fresh_{uuid.uuid4().hex[:8]}"
    url = f"postgres://postgres@127.0.0.1:5432/{database}"
    psql(PG_ADMIN, f"CREATE DATABASE {database}")
    try:
        server = serve_on(url)
        try:
            first = wrk(LICENSED_PORT, "ingest", auth=ADMIN)
            psql(url, "ANALYZE")
            return first, wrk(LICENSED_PORT, "ingest", auth=ADMIN)
        finally:
            stop(server)
    finally:
        psql(PG_ADMIN, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def bench_fresh_postgres(results):
    """ROUNDS rounds of fresh_and_warm(), each on a new database."""
    log(f"postgres: ingest on a fresh database, then warm, {ROUNDS} rounds")
    results["fresh ingest"], results["warm ingest"] = [], []
    for _ in range(ROUNDS):
        first, warm = fresh_and_warm()
        results["fresh ingest"].append(first)
        results["warm ingest"].append(warm)


def bench_postgres(results):
    if FRESH_ONLY:
        return bench_fresh_postgres(results)
    suffix = uuid.uuid4().hex[:8]
    pg_db, pgbench_db = f"licensed_bench_{suffix}", f"pgbench_{suffix}"
    try:
        psql(PG_ADMIN, f"CREATE DATABASE {pg_db}")
        psql(PG_ADMIN, f"CREATE DATABASE {pgbench_db}")
        subprocess.run(["pgbench", "-h", "127.0.0.1", "-U", "postgres", "-i", "-s", "10", "-q", pgbench_db],
                       capture_output=True, check=True)
        pg_url = f"postgres://postgres@127.0.0.1:5432/{pg_db}"
        bench_licensed("postgres", pg_url, lambda: seed_ledger_postgres(pg_url), results,
                       lambda: pgbench(pgbench_db, "-S"), lambda: pgbench(pgbench_db, "-N"))
        if not (WEBHOOKS_ONLY or LEDGER_ONLY):
            # After the other rows, as the webhook rows are: its writes come after their figures.
            bench_fresh_postgres(results)
    finally:
        psql(PG_ADMIN, f"DROP DATABASE IF EXISTS {pg_db} WITH (FORCE)")
        psql(PG_ADMIN, f"DROP DATABASE IF EXISTS {pgbench_db} WITH (FORCE)")


def main():
    unknown = set(BACKENDS) - {"sqlite", "postgres"}
    if unknown:
        raise SystemExit(f"unknown backend {', '.join(sorted(unknown))}: choose sqlite, postgres or both")
    if AGAINST:
        return ab()
    sqlite_results, pg_results = {}, {}
    if "sqlite" in BACKENDS and not FRESH_ONLY:
        bench_sqlite(sqlite_results)
    if "postgres" in BACKENDS:
        bench_postgres(pg_results)
    if LEDGER_ONLY:
        return print_ledger_table(sqlite_results, pg_results)
    print_table(sqlite_results, pg_results)


def print_ledger_table(lite, pg):
    """The rows of `--ledger-only`."""
    rows = []
    for name, r in (("sqlite", lite), ("postgres", pg)):
        if not r:
            continue
        for request in ("quantity", "ingest"):
            rps, p99 = median_round(r[request])
            rows.append((f"{name} {request}", f"{rps:,.0f}/s", f"p99 {p99:.2f} ms",
                         "rounds " + ", ".join(f"{m[0]:,.0f}" for m in r[request])))
        backdated = r["head"] / r["append"]
        rows.append((f"{name} backdated insert ({LATER // 1000}k later)", f"median {r['head']:.1f} ms",
                     f"append {r['append']:.1f} ms",
                     f"{backdated:.1f}x latency, <= 20x " + ("met" if backdated <= 20 else "NOT met")))
        rows.append((f"{name} slowest of {HEAD_INSERTS} backdated inserts", f"{r['head max']:.1f} ms",
                     f"{r['head max'] / r['append']:.1f}x an append", f"peak RSS {r['rss']:.0f} MiB"))
    widths = [max(len(str(row[i])) for row in rows) for i in range(4)]
    print(f"\nwrk -t2 -c{CONNECTIONS} -d{SECONDS}s; {os.cpu_count()} cores; {ROUNDS} rounds; ledger only\n")
    for row in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")


def print_table(lite, pg):
    rows = []

    def throughput(label, figures, bases, base_label, target):
        """The median round's figure and baseline, and the median of the rounds' ratios
        (each round's figure over the baseline measured right before it)."""
        if len(bases) != len(figures):
            bases = [median_round(bases)] * len(figures)
        ratio, spread = median_ratio(figure[0] / base[0] for figure, base in zip(figures, bases))
        figure, base = median_round(figures), median_round(bases)
        verdict = "" if target is None else ("met" if ratio >= target else "NOT met")
        rows.append((label, f"{figure[0]:,.0f} req/s", f"p99 {figure[1]:.2f} ms", f"{base_label} {base[0]:,.0f}/s",
                     f"{ratio:.2f}x{spread}", f">= {target:.2f}x {verdict}" if target else ""))

    def webhook_rows(name, r):
        throughput(f"{name} ingest (one subscribed endpoint)", r["ingest (one endpoint)"],
                   r["ingest (no endpoint)"], "no endpoint", 0.80)
        written = median_round(r["ingest (one endpoint)"])
        rates = lambda rounds: "(" + ", ".join(f"{m[0]:,.0f}" for m in sorted(rounds)) + ")"
        undelivered = lambda drained: "" if drained else " (not all delivered)"
        rate, lag, events, during, drained = sorted(r["delivery beside"])[len(r["delivery beside"]) // 2]
        rows.append((f"{name} webhook delivery beside that ingest", f"{rate:,.0f} events/s",
                     f"largest lag {lag:.1f} s{undelivered(drained)}",
                     f"written at {written[0]:,.0f}/s, {during / events:.0%} delivered meanwhile",
                     rates(r["delivery beside"]), ""))
        rate, lag, events, seconds, drained = sorted(r["delivery backlog"])[len(r["delivery backlog"]) // 2]
        rows.append((f"{name} webhook delivery of a backlog", f"{rate:,.0f} events/s",
                     f"largest lag {lag:.1f} s{undelivered(drained)}",
                     f"{events:,} events delivered in {seconds:.1f} s", rates(r["delivery backlog"]),
                     ">= 1,000/s " + ("met" if rate >= 1000 else "NOT met")))

    def all_rows(name, r, read_label, read_target, write_label, write_target, heartbeat_target):
        throughput(f"{name} validate", r["validate"], r["read baseline"], read_label, read_target)
        throughput(f"{name} activate (one key)", r["activate"], r["validate"], "validate", None)
        throughput(f"{name} activate (one ledger-bound key)", r["activate bound"], r["activate"],
                   "activate (one key)", None)
        throughput(f"{name} ingest", r["ingest"], r["write baseline"], write_label, write_target)
        throughput(f"{name} ingest (a new pair every write)", r["onboard"], r["write baseline"], write_label,
                   write_target)
        throughput(f"{name} heartbeat ({INSTANCES // 1000}k instances)", r["heartbeat"], r["heartbeat baseline"],
                   write_label, heartbeat_target)
        throughput(f"{name} license_quantity (1M)", r["quantity"], r["validate"], "validate", 0.80)
        throughput(f"{name} signed validate (a nonce each)", r["signed"], r["unsigned"], "unsigned validate", 0.60)
        throughput(f"{name} license file (public route)", r["file"], r["unsigned"], "unsigned validate", None)
        ratio, spread = median_ratio(deep[1] / first[1] for first, deep in zip(r["first page"], r["deep page"]))
        first, deep = median_round(r["first page"], by=P99), median_round(r["deep page"], by=P99)
        rows.append((f"{name} page 100k deep", f"{deep[0]:,.0f} req/s", f"p99 {deep[1]:.2f} ms",
                     f"first page p99 {first[1]:.2f} ms", f"{ratio:.2f}x latency{spread}",
                     "<= 1.50x " + ("met" if ratio <= 1.5 else "NOT met")))
        backdated = r["head"] / r["append"]
        rows.append((f"{name} backdated insert (10k later)", f"median {r['head']:.1f} ms", "",
                     f"append {r['append']:.1f} ms", f"{backdated:.1f}x latency",
                     "<= 20x " + ("met" if backdated <= 20 else "NOT met")))

    for name, r, read_label, read_target, write_label, write_target, heartbeat_target in (
            ("SQLite", lite, "bare handler", 0.85, "bare handler", 0.20, 0.20),
            ("PostgreSQL", pg, "pgbench -S", 0.75, "pgbench -N", 0.85, 0.80)):
        if "validate" in r:
            all_rows(name, r, read_label, read_target, write_label, write_target, heartbeat_target)
        if "fresh ingest" in r:
            throughput(f"{name} ingest (fresh database, first {SECONDS} s)", r["fresh ingest"], r["warm ingest"],
                       "same database warm, just after", None)
        if "ingest (one endpoint)" in r:
            webhook_rows(name, r)
        if "rss" in r:
            rows.append((f"{name} peak RSS", f"{r['rss']:.1f} MiB", "", "", "",
                         "<= 100 MiB " + ("met" if r["rss"] <= 100 else "NOT met")))

    header = ("benchmark", "figure", "latency", "baseline (measured just before)", "ratio", "target")
    widths = [max(len(str(row[i])) for row in rows + [header]) for i in range(len(header))]
    line = lambda row: "| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |"
    print(f"\nwrk -t2 -c{CONNECTIONS} -d{SECONDS}s; pgbench -M prepared -c{CONNECTIONS} -j2 -T{SECONDS}; "
          f"{os.cpu_count()} cores; {ROUNDS} rounds of each compared pair, alternately: figures from the median "
          f"round, ratios the median of the rounds' ratios (all of them in brackets)\n")
    if "delivery backlog" in lite or "delivery backlog" in pg:
        print(f"webhooks: one endpoint, examples/webhook_receiver answering 200; a backlog written by "
              f"{min(SECONDS, BACKLOG_SECONDS)} s of ingest while the receiver is stopped, delivered after; "
              f"lag: webhook_oldest_undelivered_seconds sampled every {SAMPLE_EVERY} s\n")
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line(row))


def ab():
    """This build's server and AGAINST's, side by side on databases seeded alike: validate and
    activate of keys without heartbeat or seats (with `--ledger-only`: license_quantity and
    ingest on the seeded ledger), alternately, AB_ROUNDS rounds."""
    builds = (("this", LICENSED, LICENSED_PORT), ("that", AGAINST, AGAINST_PORT))
    rows = []
    for backend in BACKENDS:
        servers, seeded, cleanup = {}, {}, []
        try:
            for name, binary, port in builds:
                if backend == "sqlite":
                    directory = tempfile.TemporaryDirectory()
                    cleanup.append(directory.cleanup)
                    url = f"sqlite://{os.path.join(directory.name, 'bench.db')}"
                else:
                    database = f"licensed_ab_{uuid.uuid4().hex[:8]}"
                    psql(PG_ADMIN, f"CREATE DATABASE {database}")
                    cleanup.append(lambda d=database: psql(PG_ADMIN, f"DROP DATABASE IF EXISTS {d} WITH (FORCE)"))
                    url = f"postgres://postgres@127.0.0.1:5432/{database}"
                serve = lambda binary=binary, port=port, url=url: start(
                    [binary, "serve", "--bind", f"127.0.0.1:{port}", "--database-url", url, "--public-rate-limit", "0"],
                    {"LICENSED_BOOTSTRAP_API_KEY": ADMIN, "LICENSED_LOG": "warn,licensed::cli=info"})
                servers[name] = serve()
                if LEDGER_ONLY:
                    log(f"{backend}, {name} build ({binary}): seeding {PAIRS * ENTRIES_PER_PAIR + LATER} ledger entries")
                    # Migrated and bootstrapped by the server, seeded with it stopped.
                    stop(servers.pop(name))
                    if backend == "sqlite":
                        seed_ledger_sqlite(url[len("sqlite://"):])
                    else:
                        seed_ledger_postgres(url)
                    servers[name] = serve()
                    continue
                log(f"{backend}, {name} build ({binary}): seeding {KEYS} keys")
                seeded[name] = seed_keys(port, seats=False)
                with tempfile.NamedTemporaryFile("w", suffix=".keys", delete=False) as keys_file:
                    keys_file.write("\n".join(seeded[name]["keys"]))
                seeded[name]["file"] = keys_file.name
                cleanup.append(lambda f=keys_file.name: os.unlink(f))
            measures = (
                ("validate", lambda name, port: wrk(port, "validate", keys=seeded[name]["file"])),
                ("activate (one key)", lambda name, port: wrk(port, "activate", key=seeded[name]["contended"])))
            if LEDGER_ONLY:
                measures = (
                    ("quantity", lambda name, port: wrk(port, "quantity", auth=ADMIN, pairs=PAIRS)),
                    ("ingest", lambda name, port: wrk(port, "ingest", auth=ADMIN)))
            for request, measure in measures:
                measured = {"this": [], "that": []}
                for i in range(AB_ROUNDS):
                    for name, _, port in (builds if i % 2 == 0 else builds[::-1]):
                        log(f"{backend} {request}, round {i + 1}: {name} build")
                        measured[name].append(measure(name, port))
                ratio, spread = median_ratio(new[0] / old[0] for new, old in zip(measured["this"], measured["that"]))
                this, that = median_round(measured["this"]), median_round(measured["that"])
                rows.append((f"{backend} {request}",
                             f"{statistics.median(m[0] for m in measured['this']):,.0f}/s",
                             f"{statistics.median(m[0] for m in measured['that']):,.0f}/s",
                             f"{ratio:.2f}{spread}", f"{this[1]:.2f} / {that[1]:.2f} ms"))
        finally:
            for server in servers.values():
                stop(server)
            for step in reversed(cleanup):
                step()
    header = ("request", "this build (median)", "that build (median)", "this/that per round (median)",
              "p99 of the median rounds")
    widths = [max(len(str(row[i])) for row in rows + [header]) for i in range(len(header))]
    line = lambda row: "| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |"
    print(f"\nthis: {LICENSED}\nthat: {AGAINST}\nwrk -t2 -c{CONNECTIONS} -d{SECONDS}s; {os.cpu_count()} cores; "
          f"{AB_ROUNDS} rounds, alternately (the first of each pair swapping), "
          + (f"{PAIRS * ENTRIES_PER_PAIR + LATER} ledger entries\n" if LEDGER_ONLY else f"{KEYS} keys\n"))
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line(row))


RPS, P99 = 0, 1


def median_round(measured, by=RPS):
    """The (requests per second, p99) of the round with the median of one of the two."""
    return sorted(measured, key=lambda m: m[by])[len(measured) // 2]


def median_ratio(ratios):
    """The median of the rounds' ratios, and all of them in brackets."""
    ratios = sorted(ratios)
    spread = f" ({', '.join(f'{r:.2f}' for r in ratios)})" if len(ratios) > 1 else ""
    return statistics.median(ratios), spread


if __name__ == "__main__":
    main()
