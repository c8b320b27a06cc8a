#!/usr/bin/python3
"""asyncrr order per key: do claims stay index-driven with many keys?

Run by test/bench/ordering_keys.sh against a throwaway cluster with
asyncrr and pg_stat_statements preloaded and both extensions created
(connection from the PG* environment variables; pgbench from --pgbench):

  ordering_keys.py [--pending N] [--keys K] [--claims M] [--workers W]
                   [--rounds R] [--latency-samples L] [--layouts "interleaved runs"]
                   [--fill-batch B] [--seed S] [--json OUT] [--plans OUT]
                   --workdir DIR --pgbench PATH

1. Fill.  One queue per layout, each with N pending requests (timeout and
   lease a day: nothing expires), all through the API, --fill-batch
   (default 10) requests a transaction, synchronous_commit off:
     bench_plain   no key: submit_many()
     bench_keyed   ("interleaved") K keys, N/K requests each, as traffic
                   mixes them: N/K rounds, each submitting one request of
                   every key, the keys in a new random order each round;
                   submit() with ordering_key, by two connections (each
                   with half of the keys, as submits of one key are
                   serialized until commit)
     bench_runs    ("runs", only with --layouts ... runs) K keys, N/K
                   requests each, each key's requests one after the other:
                   submit_many() with ordering_key, keys in random order.
                   The worst case for the claim: concurrent workers must
                   walk past the runs of the keys the others hold.
   Small transactions, as requesters submit: the requests of one
   transaction share submitted_at, hence one posting list in
   request_claim_idx, which cannot be marked dead until all of them are
   claimed; every claim walks the claimed ones before it (~100 entries a
   claim with 1,000 a transaction, 8 with 10, 3.5 with 1).
   Then VACUUM ANALYZE and CHECKPOINT.
2. R rounds; in each, every queue once, in alternating order (plain first
   in odd rounds), each measurement preceded by VACUUM ANALYZE and
   CHECKPOINT so that each starts from the same state:
     latency     one connection: L times claim(queue, 1) (timed, client
                 side), then complete(id, '{}') (not timed)
     throughput  pgbench -M prepared, W clients, M claims in all, each
                 client looping SELECT ... FROM asyncrr.claim(queue, 1)
                 \\gset; SELECT asyncrr.complete(id, '{}'); claims/s, the
                 claim's mean latency (client) and mean server time
                 (pg_stat_statements) under load; meanwhile a monitor
                 connection looks every 20 ms for a key with two claimed
                 requests
   index entries read per claim (pg_stat_user_indexes) over both parts.
3. Checks after each measurement of a keyed queue (exit 1 if any fails):
   the monitor never saw two claimed requests of one key; no request is
   left claimed, every ended request completed at its first attempt; per
   key, the ended requests are the first ones in key order (none ended
   after a live one); per key, claim times increase in key order and no
   request was claimed before the previous one of its key ended (by clock;
   claimed_at is read just before the claim's snapshot, so a claim may be
   stamped a little before the end it saw, by as long as the backend is
   kept off the CPU in between: up to 20 ms is reported, not an error).
4. After a last VACUUM, EXPLAIN (ANALYZE, BUFFERS) of the claim's inner
   SELECT (src/request.c, CLAIM / CLAIMABLE) on every queue, custom and
   generic plan: one line each (the plans in full to --plans); warns
   unless it walks request_claim_idx, and for a keyed queue probes
   request_key_idx.
Prints a table (medians over the rounds, ratio keyed/plain) and, last,
"ordering keys: keyed X claims/s vs plain Y claims/s (ratio Z)".
"""
import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time

import psycopg
from psycopg import sql

PLAIN, KEYED, RUNS = "bench_plain", "bench_keyed", "bench_runs"
LAYOUT_QUEUE = {"interleaved": KEYED, "runs": RUNS}
TOLERANCE_US = 20000  # see 3. above
PAYLOAD = '{"n": 1}'
CHUNK = 10  # requests per fill transaction: --fill-batch


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Failed(Exception):
    pass


def connect():
    return psycopg.connect(autocommit=True)


def one(conn, query, args=None):
    return conn.execute(query, args).fetchone()[0]


# --- 1. fill ---------------------------------------------------------------

def open_inbox(conn, name):
    """a durable inbox per filling connection (one session holds an
    inbox); the fill's commits do not wait for WAL flushes"""
    conn.execute("SET synchronous_commit = off")
    conn.execute("SELECT asyncrr.open_inbox(%s)", (name,))


def fill_interleaved(queue, per_key, keys, seed, inbox, done):
    """One connection's share: `keys` (names) each gets per_key requests,
    one per round, in a new random order each round."""
    rnd = random.Random(seed)
    with connect() as conn:
        open_inbox(conn, inbox)
        stmt = ("SELECT count(asyncrr.submit(%s, %s::jsonb, '1 day', ordering_key => u.k))"
                "  FROM unnest(%s::text[]) AS u(k)")
        batch = []
        for _ in range(per_key):
            order = keys[:]
            rnd.shuffle(order)
            batch.extend(order)
            while len(batch) >= CHUNK:
                conn.execute(stmt, (queue, PAYLOAD, batch[:CHUNK]))
                done[0] += CHUNK
                del batch[:CHUNK]
        if batch:
            conn.execute(stmt, (queue, PAYLOAD, batch))
            done[0] += len(batch)


def fill_runs(queue, per_key, keys, seed, done):
    """each key's requests one after the other, the keys in random order"""
    rnd = random.Random(seed)
    order = keys[:]
    rnd.shuffle(order)
    with connect() as conn:
        open_inbox(conn, "okbench_runs")
        for k in order:
            left = per_key
            while left > 0:
                n = min(CHUNK, left)
                conn.execute("SELECT count(*) FROM asyncrr.submit_many(%s, array_fill(%s::jsonb, ARRAY[%s]),"
                             " '1 day', ordering_key => %s)", (queue, PAYLOAD, n, k))
                left -= n
                done[0] += n


def fill_plain(queue, n, done):
    with connect() as conn:
        open_inbox(conn, "okbench_plain")
        left = n
        while left > 0:
            k = min(CHUNK, left)
            conn.execute("SELECT count(*) FROM asyncrr.submit_many(%s, array_fill(%s::jsonb, ARRAY[%s]),"
                         " '1 day')", (queue, PAYLOAD, k))
            left -= k
            done[0] += k


def run_threads(jobs):
    """jobs: (label, fn, args) with a counter [n] as the last of args;
    runs them at once, reports progress every 10 s; returns {label:
    (requests, seconds)}."""
    errors = []
    threads = []
    t0 = time.monotonic()
    ends = {}

    def wrap(label, fn, args):
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(f"{label}: {e}")
        ends[label] = time.monotonic() - t0

    for label, fn, args in jobs:
        th = threading.Thread(target=wrap, args=(label, fn, args), daemon=True)
        th.start()
        threads.append(th)
    last = t0
    while any(th.is_alive() for th in threads):
        time.sleep(0.2)
        if time.monotonic() - last >= 10:
            last = time.monotonic()
            log("  %3.0f s: " % (last - t0) + ", ".join(
                f"{label} {a[-1][0]:,}" for label, _, a in jobs))
    if errors:
        raise Failed("filling: " + "; ".join(errors))
    return {label: (a[-1][0], ends[label]) for label, _, a in jobs}


def fill(args, queues):
    n, k = args.pending, args.keys
    per_key = n // k
    names = [f"key{i:05d}" for i in range(k)]
    jobs = []
    for q in queues:
        if q == PLAIN:
            jobs.append((q, fill_plain, (q, n, [0])))
        elif q == KEYED:
            for part in range(2):
                jobs.append((f"{q}/{part + 1}", fill_interleaved,
                             (q, per_key, names[part::2], args.seed + part, f"okbench_k{part + 1}", [0])))
        elif q == RUNS:
            jobs.append((q, fill_runs, (q, per_key, names, args.seed + 7, [0])))
    log(f"filling {', '.join(queues)}: {n:,} pending requests each"
        f" ({k:,} keys x {per_key:,} in the keyed ones)")
    t0 = time.monotonic()
    took = run_threads(jobs)
    wall = time.monotonic() - t0
    out = {}
    for q in queues:
        parts = {label: v for label, v in took.items() if label.split("/")[0] == q}
        reqs = sum(v[0] for v in parts.values())
        secs = max(v[1] for v in parts.values())
        out[q] = {"requests": reqs, "seconds": round(secs, 1), "per_s": round(reqs / secs)}
        log(f"  {q}: {reqs:,} requests in {secs:.1f} s ({reqs / secs:,.0f}/s,"
            f" {len(parts)} connection{'s' if len(parts) > 1 else ''})")
    log(f"  filled in {wall:.1f} s")
    return out, wall


# --- 2. measure ------------------------------------------------------------

INDEXES = ("request_claim_idx", "request_key_idx", "request_claimed_idx", "request_pkey")


def index_stats(conn):
    conn.execute("SELECT pg_stat_clear_snapshot()")
    rows = conn.execute("SELECT indexrelname, idx_scan, idx_tup_read FROM pg_stat_user_indexes"
                        " WHERE schemaname = 'asyncrr' AND relname = 'request'").fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def wait_backends_gone(conn, app):
    """pgbench's backends flush their statistics as they exit."""
    for _ in range(100):
        if one(conn, "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app,)) == 0:
            return
        time.sleep(0.05)


def settle(conn):
    t0 = time.monotonic()
    conn.execute("VACUUM (ANALYZE) asyncrr.request")
    conn.execute("CHECKPOINT")
    return time.monotonic() - t0


def percentile(xs, p):
    s = sorted(xs)
    k = max(1, -(-len(s) * p // 100))
    return s[int(k) - 1]


def latency(queue, samples):
    """claim(queue, 1) alone, one connection, µs (client side)."""
    us = []
    with psycopg.connect(autocommit=True, prepare_threshold=0) as conn:
        for _ in range(samples):
            t0 = time.perf_counter_ns()
            row = conn.execute("SELECT correlation_id FROM asyncrr.claim(%s, 1)", (queue,)).fetchone()
            t1 = time.perf_counter_ns()
            if row is None:
                raise Failed(f"claim({queue}, 1) returned nothing: the queue ran dry")
            out = one(conn, "SELECT asyncrr.complete(%s, '{}')", (row[0],))
            if out != "completed":
                raise Failed(f"complete() of a claim of {queue} returned {out!r}")
            us.append((t1 - t0) / 1000)
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("SELECT 1")
    return us


class Monitor(threading.Thread):
    """Looks every 20 ms for a key of the queue with two claimed requests."""
    SQL = ("SELECT ordering_key, count(*) FROM asyncrr.request"
           " WHERE state = 'claimed' AND queue_name = %s AND ordering_key IS NOT NULL"
           " GROUP BY ordering_key HAVING count(*) > 1")

    def __init__(self, queue):
        super().__init__(daemon=True)
        self.queue = queue
        self.stop = threading.Event()
        self.samples = 0
        self.seen = []
        self.error = None

    def run(self):
        try:
            with connect() as conn:
                while not self.stop.is_set():
                    rows = conn.execute(self.SQL, (self.queue,)).fetchall()
                    self.samples += 1
                    if rows:
                        self.seen.extend(rows)
                    self.stop.wait(0.02)
        except Exception as e:  # noqa: BLE001
            self.error = str(e)


PGBENCH_SCRIPT = """\
SELECT correlation_id AS id FROM asyncrr.claim(:q, 1) \\gset
SELECT asyncrr.complete(:id, '{}');
"""


def throughput(args, queue):
    script = os.path.join(args.workdir, "claim.pgb")
    with open(script, "w") as f:
        f.write(PGBENCH_SCRIPT)
    per_client = max(1, args.claims // args.workers)
    mon = Monitor(queue)
    mon.start()
    env = dict(os.environ, PGAPPNAME="okbench")
    p = subprocess.run([args.pgbench, "-n", "-M", "prepared", "-r", "-c", str(args.workers),
                        "-j", str(args.workers), "-t", str(per_client), "-D", f"q={queue}",
                        "-f", script], env=env, capture_output=True, text=True)
    mon.stop.set()
    mon.join()
    if p.returncode != 0:
        raise Failed(f"pgbench on {queue} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    if mon.error:
        raise Failed(f"the monitor of {queue} failed: {mon.error}")
    tps = float(re.search(r"^tps = ([\d.]+) \(without", p.stdout, re.M).group(1))
    done = int(re.search(r"^number of transactions actually processed: (\d+)", p.stdout, re.M).group(1))
    failed = re.search(r"^number of failed transactions: (\d+)", p.stdout, re.M)
    if done != per_client * args.workers or (failed and int(failed.group(1)) != 0):
        raise Failed(f"pgbench on {queue}: {done} of {per_client * args.workers} claims done\n{p.stdout}")
    lat = {}
    for m in re.finditer(r"^\s+([\d.]+)\s+\d+\s+(SELECT .*)$", p.stdout, re.M):
        lat["claim" if "asyncrr.claim" in m.group(2) else "complete"] = float(m.group(1)) * 1000
    return {"claims": done, "claims_per_s": tps, "claim_us_load": lat.get("claim"),
            "complete_us_load": lat.get("complete"), "monitor_samples": mon.samples,
            "monitor_seen": [list(r) for r in mon.seen]}


def server_claim_us(conn):
    """mean server time of the claims since pg_stat_statements_reset()"""
    calls, total = conn.execute("SELECT sum(calls), sum(total_exec_time) FROM pg_stat_statements"
                                " WHERE query LIKE '%asyncrr.claim(%'").fetchone()
    return float(total) * 1000 / int(calls) if calls else None


def check(conn, queue, res):
    """3. above; returns what was found (raises Failed on a violation)."""
    problems = []
    if res["monitor_seen"]:
        problems.append(f"the monitor saw keys with two claimed requests: {res['monitor_seen'][:5]}")
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE state = 'claimed'),"
        "       count(*) FILTER (WHERE finished_at IS NOT NULL AND (state <> 'completed' OR attempt <> 1)),"
        "       count(*) FILTER (WHERE finished_at IS NOT NULL)"
        "  FROM asyncrr.request WHERE queue_name = %s", (queue,)).fetchone()
    claimed, odd, ended = row
    if claimed:
        problems.append(f"{claimed} requests left claimed")
    if odd:
        problems.append(f"{odd} ended requests not completed at their first attempt")
    if queue != PLAIN:
        holes = one(conn,
                    "SELECT count(*) FROM (SELECT ordering_key FROM asyncrr.request WHERE queue_name = %s"
                    "  GROUP BY ordering_key"
                    " HAVING max(key_seq) FILTER (WHERE finished_at IS NOT NULL)"
                    "      > min(key_seq) FILTER (WHERE finished_at IS NULL)) v", (queue,))
        if holes:
            problems.append(f"{holes} keys with a request ended after a live earlier one (out of key order)")
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE claimed_at <= prev_claimed),"
            "       coalesce(max(extract(epoch FROM prev_claimed - claimed_at) * 1e6)"
            "                FILTER (WHERE claimed_at <= prev_claimed), 0),"
            "       count(*) FILTER (WHERE claimed_at < prev_finished),"
            "       coalesce(max(extract(epoch FROM prev_finished - claimed_at) * 1e6)"
            "                FILTER (WHERE claimed_at < prev_finished), 0),"
            "       count(*) FILTER (WHERE prev_claimed IS NOT NULL)"
            "  FROM (SELECT claimed_at,"
            "               lag(claimed_at) OVER w AS prev_claimed, lag(finished_at) OVER w AS prev_finished"
            "          FROM asyncrr.request WHERE queue_name = %s AND finished_at IS NOT NULL"
            "        WINDOW w AS (PARTITION BY ordering_key ORDER BY key_seq)) v", (queue,)).fetchone()
        inv, inv_us, over, over_us, pairs = row
        res["order"] = {"ended": ended, "pairs": pairs, "inversions": inv, "inversion_max_us": float(inv_us),
                        "early": over, "early_max_us": float(over_us)}
        if inv and inv_us > TOLERANCE_US:
            problems.append(f"{inv} claims before the previous request of their key was claimed"
                            f" (by up to {inv_us:.0f} µs)")
        if over and over_us > TOLERANCE_US:
            problems.append(f"{over} claims before the previous request of their key ended"
                            f" (by up to {over_us:.0f} µs)")
        if inv or over:
            log(f"  note: of the {ended:,} requests of {queue} ended so far, {over} were claimed (by the"
                f" clock) before the previous one of their key ended (by up to {over_us:.0f} µs), {inv}"
                f" before it was claimed (by up to {inv_us:.0f} µs): under {TOLERANCE_US} µs, taken for"
                f" the time between the claim's clock reading and its snapshot")
    if problems:
        raise Failed(f"{queue}: " + "; ".join(problems))


def measure(args, conn, queue):
    t_settle = settle(conn)
    s0 = index_stats(conn)
    conn.execute("SELECT pg_stat_statements_reset()")
    lat = latency(queue, args.latency_samples)
    srv_alone = server_claim_us(conn)
    conn.execute("SELECT pg_stat_statements_reset()")
    res = throughput(args, queue)
    srv_load = server_claim_us(conn)
    wait_backends_gone(conn, "okbench")
    time.sleep(0.1)
    s1 = index_stats(conn)
    n = res["claims"] + len(lat)
    res.update({
        "queue": queue, "settle_s": round(t_settle, 1),
        "claim_p50_us": percentile(lat, 50), "claim_p90_us": percentile(lat, 90),
        "claim_p99_us": percentile(lat, 99),
        "server_claim_us_alone": srv_alone, "server_claim_us_load": srv_load,
        "index_per_claim": {i: {"scans": (s1[i][0] - s0[i][0]) / n, "entries": (s1[i][1] - s0[i][1]) / n}
                            for i in INDEXES if i in s1 and i in s0},
    })
    check(conn, queue, res)
    ipc = res["index_per_claim"]
    log(f"  {queue}: {res['claims_per_s']:,.0f} claims/s (claim {res['claim_us_load']:.0f} µs,"
        f" server {res['server_claim_us_load']:.0f} µs under load), alone p50 {res['claim_p50_us']:.0f} µs"
        f" (server mean {res['server_claim_us_alone']:.0f} µs);"
        f" per claim: request_claim_idx {ipc['request_claim_idx']['entries']:.1f} entries,"
        f" request_key_idx {ipc['request_key_idx']['scans']:.2f} scans"
        f" / {ipc['request_key_idx']['entries']:.1f} entries; vacuum+checkpoint before {t_settle:.1f} s;"
        f" monitor {res['monitor_samples']} looks")
    return res


# --- 4. plans --------------------------------------------------------------

# the inner SELECT of CLAIM(CLAIMABLE("c")) in src/request.c ($3 = 1, $7 = {})
INNER = """\
SELECT c.correlation_id FROM asyncrr.request c
 WHERE c.state = 'pending' AND c.queue_name = $1 AND c.deadline > $2
   AND c.not_before IS NULL
   AND (c.ordering_key IS NULL OR NOT EXISTS (
        SELECT 1 FROM asyncrr.request e
         WHERE e.state IN ('pending', 'claimed') AND e.queue_name = $1
           AND e.ordering_key = c.ordering_key AND e.key_seq < c.key_seq))
 ORDER BY c.priority DESC, c.submitted_at
 LIMIT $3 FOR UPDATE SKIP LOCKED"""


def plans(conn, queues):
    out = {}
    warnings = []
    for q in queues:
        for mode in ("custom", "generic"):
            with conn.transaction(force_rollback=True):
                conn.execute("PREPARE okclaim(text, timestamptz, integer) AS " + INNER)
                conn.execute(f"SET LOCAL plan_cache_mode = force_{mode}_plan")
                rows = conn.execute(sql.SQL("EXPLAIN (ANALYZE, BUFFERS) EXECUTE okclaim({}, now(), 1)")
                                    .format(sql.Literal(q))).fetchall()
                conn.execute("DEALLOCATE okclaim")
            text = "\n".join(r[0] for r in rows)
            out[f"{q} {mode}"] = text
            if "request_claim_idx" not in text:
                warnings.append(f"{q} ({mode} plan): the claim does not walk request_claim_idx")
            if q != PLAIN and "request_key_idx" not in text:
                warnings.append(f"{q} ({mode} plan): the key check does not use request_key_idx")
    return out, warnings


# --- report ----------------------------------------------------------------

def med(rs, key):
    xs = [r[key] for r in rs if r.get(key) is not None]
    return statistics.median(xs) if xs else None


def main():
    global CHUNK
    ap = argparse.ArgumentParser()
    ap.add_argument("--pending", type=int, default=1000000)
    ap.add_argument("--keys", type=int, default=10000)
    ap.add_argument("--claims", type=int, default=20000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--latency-samples", type=int, default=2000)
    ap.add_argument("--layouts", default="interleaved")
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--fill-batch", type=int, default=10)
    ap.add_argument("--json")
    ap.add_argument("--plans", help="file for the plans in full")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--pgbench", required=True)
    args = ap.parse_args()
    CHUNK = args.fill_batch
    layouts = args.layouts.split()
    if not layouts or any(x not in LAYOUT_QUEUE for x in layouts):
        ap.error("--layouts: interleaved and/or runs")
    if args.pending % args.keys:
        ap.error("--pending must be a multiple of --keys")
    used = args.rounds * (args.claims + args.latency_samples)
    if used > args.pending:
        ap.error(f"{args.rounds} rounds take {used:,} requests of each queue: more than --pending")
    keyed = [LAYOUT_QUEUE[x] for x in layouts]
    queues = [PLAIN] + keyed
    t_start = time.monotonic()

    try:
        with connect() as conn:
            for q in queues:
                conn.execute("SELECT asyncrr.create_queue(%s, default_timeout => '1 day', lease => '1 day')", (q,))
            filled, fill_s = fill(args, queues)
            log("VACUUM ANALYZE, CHECKPOINT")
            sizes = ("SELECT pg_size_pretty(pg_table_size('asyncrr.request'))",
                     "SELECT pg_size_pretty(pg_indexes_size('asyncrr.request'))")
            t0 = time.monotonic()
            settle(conn)
            log(f"  {time.monotonic() - t0:.1f} s; asyncrr.request"
                f" {one(conn, sizes[0])}, indexes {one(conn, sizes[1])}")

            results = {q: [] for q in queues}
            for r in range(1, args.rounds + 1):
                order = queues if r % 2 else queues[::-1]
                log(f"round {r} of {args.rounds}: {', '.join(order)}")
                for q in order:
                    results[q].append(measure(args, conn, q))

            log("plans of the claim's inner SELECT (EXPLAIN ANALYZE, BUFFERS)")
            settle(conn)
            plan_text, warnings = plans(conn, queues)
    except (Failed, psycopg.Error) as e:
        print(f"ordering_keys.py: FAILED: {e}", file=sys.stderr)
        sys.exit(1)

    print("the claim's inner SELECT, EXPLAIN (ANALYZE, BUFFERS) after VACUUM"
          + (f" (plans in {args.plans})" if args.plans else "") + ":")
    for name, text in plan_text.items():
        scans = sorted(set(re.findall(r"((?:Index Only Scan|Index Scan|Seq Scan|Bitmap Heap Scan)"
                                      r"(?: using \w+)? on \w+)", text)))
        buffers = re.search(r"Buffers: shared hit=(\d+)", text)
        exe = re.search(r"Execution Time: ([\d.]+) ms", text)
        print(f"  {name}: {'; '.join(scans)}; {buffers.group(1) if buffers else '?'} buffers,"
              f" {exe.group(1) if exe else '?'} ms{' (JIT)' if 'JIT:' in text else ''}")
    if args.plans:
        with open(args.plans, "w") as f:
            for name, text in plan_text.items():
                f.write(f"--- {name}\n{text}\n")
    for w in warnings:
        print(f"WARNING: {w}")

    summary = {}
    for q in queues:
        rs = results[q]
        summary[q] = {
            "claims_per_s": med(rs, "claims_per_s"),
            "claim_p50_us": med(rs, "claim_p50_us"),
            "claim_us_load": med(rs, "claim_us_load"),
            "server_claim_us_load": med(rs, "server_claim_us_load"),
            "claim_idx_entries": statistics.median(x["index_per_claim"]["request_claim_idx"]["entries"] for x in rs),
            "key_idx_scans": statistics.median(x["index_per_claim"]["request_key_idx"]["scans"] for x in rs),
            "key_idx_entries": statistics.median(x["index_per_claim"]["request_key_idx"]["entries"] for x in rs),
        }
    base = summary[PLAIN]

    def ratio(q, k):
        return summary[q][k] / base[k] if base[k] else float("nan")

    print()
    print(f"{args.pending:,} pending requests per queue, keyed: {args.keys:,} keys; {args.claims:,} claims"
          f" by {args.workers} workers and {args.latency_samples:,} alone per measurement;"
          f" medians of {args.rounds} round{'s' if args.rounds > 1 else ''}")
    hdr = ("queue", "claims/s", "ratio", "claim p50 alone µs", "ratio", "claim under load µs (server)",
           "ratio", "claim_idx entries/claim", "key_idx scans (entries)/claim")
    rows = []
    for q in queues:
        s = summary[q]
        rows.append((q, f"{s['claims_per_s']:,.0f}", f"{ratio(q, 'claims_per_s'):.2f}",
                     f"{s['claim_p50_us']:,.0f}", f"{ratio(q, 'claim_p50_us'):.2f}",
                     f"{s['claim_us_load']:,.0f} ({s['server_claim_us_load']:,.0f})",
                     f"{ratio(q, 'server_claim_us_load'):.2f}",
                     f"{s['claim_idx_entries']:.1f}", f"{s['key_idx_scans']:.2f} ({s['key_idx_entries']:.1f})"))
    widths = [max(len(str(x[i])) for x in rows + [hdr]) for i in range(len(hdr))]
    print(" | ".join(h.ljust(w) for h, w in zip(hdr, widths)))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]))
    print("(ratio: keyed / plain; time ratios under 1.2 and a claims/s ratio over 0.8 meet the goal)")

    total = time.monotonic() - t_start
    k = keyed[0]
    ok = (ratio(k, "claims_per_s") >= 0.8 and ratio(k, "claim_p50_us") <= 1.2
          and ratio(k, "server_claim_us_load") <= 1.2)
    rates = ", ".join(f"{q} {v['per_s']:,}/s" for q, v in filled.items())
    print(f"fill: {rates} ({fill_s:.0f} s);"
          f" whole run {total:.0f} s; within 20 %: {'yes' if ok else 'NO'}")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "fill": filled, "fill_s": fill_s, "summary": summary,
                       "rounds": results, "plans": plan_text, "warnings": warnings,
                       "within_20pct": ok, "seconds": total}, f, indent=1, default=str)
    print(f"ordering keys: keyed {summary[k]['claims_per_s']:,.0f} claims/s vs plain"
          f" {base['claims_per_s']:,.0f} claims/s (ratio {ratio(k, 'claims_per_s'):.2f});"
          f" claim p50 {summary[k]['claim_p50_us']:,.0f} vs {base['claim_p50_us']:,.0f} µs"
          f" (ratio {ratio(k, 'claim_p50_us'):.2f})")


if __name__ == "__main__":
    main()
