#!/usr/bin/env node
'use strict';
// node report.js RESULTS.jsonl OUT.json [REV] [DURATION] [REPEATS]
// One row per system/variant and shape: the median over the repeats of each
// figure (round trips/s, p50, p90, p99, and per round trip: statements,
// commits, WAL syncs, fsyncs of the server). Prints the table on stdout and
// writes it with the raw measurements to OUT.json.

const fs = require('fs');
const os = require('os');

const [file, outFile, rev = '?', duration = null, repeats = null] = process.argv.slice(2);
const lines = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));

const ORDER = ['asyncrr/inbox', 'asyncrr/call', 'asyncrr/py-inbox', 'asyncrr/py-call', 'baseline/table',
  'baseline/py-table', 'rabbit/durable', 'rabbit/direct', 'nats/core'];
const DURABLE = {
  asyncrr: 'yes (fsync, sync commit)',
  baseline: 'yes (fsync, sync commit)',
  'rabbit/durable': 'yes (persistent, confirms)',
  'rabbit/direct': 'no',
  nats: 'no',
};
const DRIVER = (sys, v) => (v.startsWith('py-') ? 'psycopg 3' : { asyncrr: 'clients/node (pg)', baseline: 'pg', rabbit: 'amqplib', nats: 'nats' }[sys]);

const median = (xs) => {
  const v = xs.filter((x) => x !== null && x !== undefined && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};

const groups = new Map();
for (const r of lines) {
  const key = `${r.system}/${r.variant}|${r.shape}`;
  if (!groups.has(key)) groups.set(key, []);
  groups.get(key).push(r);
}
const keys = [...groups.keys()].sort((a, b) => {
  const [na, sa] = a.split('|');
  const [nb, sb] = b.split('|');
  const ia = ORDER.indexOf(na);
  const ib = ORDER.indexOf(nb);
  return (ia === -1 ? 99 : ia) - (ib === -1 ? 99 : ib) || na.localeCompare(nb) || sa.localeCompare(sb);
});

const rows = keys.map((key) => {
  const rs = groups.get(key);
  const ok = rs.filter((r) => !r.failed);
  const [name, shape] = key.split('|');
  const [sys, variant] = name.split('/');
  const f = (k) => median(ok.map((r) => r[k]));
  return {
    system: sys,
    variant,
    shape,
    driver: DRIVER(sys, variant),
    durable: DURABLE[name] || DURABLE[sys] || '?',
    connections: ok.length ? `${ok[0].R}x${ok[0].K}, W${ok[0].W}` : null,
    runs: rs.length,
    failed: rs.length - ok.length,
    rps: f('rps'),
    p50_ms: f('p50_ms'),
    p90_ms: f('p90_ms'),
    p99_ms: f('p99_ms'),
    statements_per_rt: f('statements_per_rt'),
    commits_per_rt: f('commits_per_rt'),
    wal_syncs_per_rt: f('wal_syncs_per_rt'),
    wal_bytes_per_rt: f('wal_bytes_per_rt'),
    fsyncs_per_rt: f('fsyncs_per_rt'),
    server_cpu_ms_per_rt: f('server_cpu_ms_per_rt'),
    requester_cpu_ms_per_rt: f('requester_cpu_ms_per_rt'),
    worker_cpu_ms_per_rt: f('worker_cpu_ms_per_rt'),
  };
});

const fmt = (x, d) => (x === null || x === undefined ? '-' : x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }));
const table = [['system/variant', 'shape', 'conns', 'round trips/s', 'p50 ms', 'p90 ms', 'p99 ms',
  'stmts/rt', 'commits/rt', 'fsyncs/rt', 'srv CPU ms/rt', 'client CPU ms/rt', 'durable', 'runs']];
for (const r of rows) {
  table.push([`${r.system}/${r.variant}`, r.shape, r.connections || '-', fmt(r.rps, 0), fmt(r.p50_ms, 2), fmt(r.p90_ms, 2),
    fmt(r.p99_ms, 2), fmt(r.statements_per_rt, 1), fmt(r.commits_per_rt, 1), fmt(r.fsyncs_per_rt, 2),
    fmt(r.server_cpu_ms_per_rt, 2),
    r.requester_cpu_ms_per_rt === null ? '-' : fmt(r.requester_cpu_ms_per_rt + (r.worker_cpu_ms_per_rt || 0), 2), r.durable,
    r.failed ? `${r.runs - r.failed}/${r.runs} FAILED` : String(r.runs)]);
}
const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
const right = new Set([3, 4, 5, 6, 7, 8, 9, 10, 11]);
for (const [n, row] of table.entries()) {
  console.log(row.map((c, i) => (right.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd());
  if (n === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
}
console.log(`shape A: 1 requester, 1 request at a time, 1 worker; B: 4 requester connections x 4 in flight, 2 workers ` +
  `(asyncrr/call: 16 connections x 1). Medians of ${repeats || '?'} interleaved runs of ${duration || '?'} s; ` +
  'per round trip (whole run): stmts = statements sent by the PostgreSQL drivers; commits = the cluster\'s ' +
  '(NOTIFY makes every idle LISTENing session read it in a transaction of its own); fsyncs = fsync+fdatasync ' +
  'calls of the server processes; srv CPU = the server\'s processes; client CPU = requester and worker processes.');

fs.writeFileSync(outFile, `${JSON.stringify({
  rev,
  date: new Date().toISOString(),
  host: { nproc: os.cpus().length, loadavg: os.loadavg(), kernel: os.release(), node: process.version },
  duration_s: duration === null ? null : Number(duration),
  repeats: repeats === null ? null : Number(repeats),
  rows,
  measurements: lines,
}, null, 2)}\n`);
console.error(`written: ${outFile}`);
