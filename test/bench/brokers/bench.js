#!/usr/bin/env node
'use strict';
// One measurement of one system (run by run.sh; usable alone):
//
//   node bench.js --system asyncrr|baseline|rabbit|nats --variant V --shape A|B
//       [--duration S] [--warmup S] [--pg URL] [--amqp URL] [--nats URL]
//       [--server-pids P,Q] [--label L]
//
// Shape A: one requester, one request at a time, one worker. Shape B: 4
// requester connections with 4 requests in flight each (asyncrr `call`: 16
// connections with one each, as a CALL holds its connection), 2 workers.
// Requesters run in this process (one connection each), each worker in a
// child process of its own. Latency is per request, from before it is sent
// to its reply in hand; counted are the round trips that began after the
// warm-up and ended within the measured window. Prints one JSON object.
//
// Also reported, over the whole run (warm-up and drain included), per
// round trip: statements sent by the PostgreSQL drivers (every
// Client.query, requesters and workers), server commits and WAL (for the
// PostgreSQL systems, from pg_stat_database and pg_stat_wal), and the
// fsync/fdatasync calls of the server processes given by --server-pids
// (perf stat on their syscall tracepoints, if perf is there).

const { fork, spawn } = require('child_process');
const fs = require('fs');
const { systems, counters, payload, PAYLOAD_BYTES } = require('./systems');

function parseArgs(argv) {
  const a = { duration: 10, warmup: 2, shape: 'A', label: '' };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[i + 1];
    const take = () => {
      if (v === undefined) throw new Error(`${k} needs a value`);
      i++;
      return v;
    };
    switch (k) {
      case '--system': a.system = take(); break;
      case '--variant': a.variant = take(); break;
      case '--shape': a.shape = take(); break;
      case '--duration': a.duration = Number(take()); break;
      case '--warmup': a.warmup = Number(take()); break;
      case '--pg': a.pg = take(); break;
      case '--amqp': a.amqp = take(); break;
      case '--nats': a.nats = take(); break;
      case '--server-pids': a.serverPids = take(); break;
      case '--label': a.label = take(); break;
      case '--role': a.role = take(); break;
      case '--index': a.index = Number(take()); break;
      default: throw new Error(`unknown argument ${k}`);
    }
  }
  return a;
}

const now = () => Number(process.hrtime.bigint()) / 1e6; // ms
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- worker process -----------------------------------------------------------
async function workerMain(args) {
  const sys = systems[args.system];
  // the parent gone (killed by run.sh's timeout): do not linger
  process.on('disconnect', () => process.exit(1));
  const w = await sys.worker(args, args.variant, args.index);
  process.send({ ready: true });
  process.on('message', async (m) => {
    if (m && m.stop) {
      let out;
      try {
        out = await w.stop();
      } catch (err) {
        out = { errors: [`stop: ${err.message}`] };
      }
      process.send({ stats: { ...out, statements: counters.statements, cpu_ms: cpuMs() } }, () => process.exit(0));
    }
  });
}

function startWorker(args, index) {
  const argv = ['--role', 'worker', '--index', String(index), '--system', args.system, '--variant', args.variant];
  for (const k of ['pg', 'amqp', 'nats']) if (args[k]) argv.push(`--${k}`, args[k]);
  const child = fork(__filename, argv, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let onStats;
  const stats = new Promise((resolve) => {
    onStats = resolve;
  });
  const exited = new Promise((resolve) => child.on('exit', (code, sig) => resolve({ code, sig })));
  const ready = new Promise((resolve, reject) => {
    child.on('message', (m) => {
      if (m.ready) resolve();
      if (m.stats) onStats(m.stats);
    });
    exited.then(({ code, sig }) => reject(new Error(`worker ${index} exited (${code ?? sig}) before it was ready`)));
  });
  return {
    child,
    ready,
    async stop() {
      child.send({ stop: true });
      const r = await Promise.race([stats, exited.then(() => null), sleep(30000).then(() => 'timeout')]);
      if (r === 'timeout' || r === null) {
        child.kill('SIGKILL');
        throw new Error(`worker ${index} did not stop cleanly`);
      }
      await exited;
      return r;
    },
  };
}

// ---- fsync counting ----------------------------------------------------------------
function startPerf(pids) {
  if (!pids) return null;
  const out = `/tmp/rrbrokers-perf-${process.pid}.txt`;
  let p;
  try {
    p = spawn('perf', ['stat', '-x', ',', '-o', out, '-e', 'syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync',
      '-p', pids], { stdio: 'ignore' });
  } catch {
    return null;
  }
  const exited = new Promise((resolve) => {
    p.on('exit', resolve);
    p.on('error', () => resolve(null));
  });
  return {
    async stop() {
      await sleep(100);
      p.kill('SIGINT');
      await Promise.race([exited, sleep(5000)]);
      try {
        const txt = fs.readFileSync(out, 'utf8');
        fs.unlinkSync(out);
        let n = 0;
        let seen = false;
        for (const line of txt.split('\n')) {
          const f = line.split(',');
          if (f.length > 2 && /sys_enter_f(data)?sync/.test(f[2]) && /^\d+$/.test(f[0])) {
            n += Number(f[0]);
            seen = true;
          }
        }
        return seen ? n : null;
      } catch {
        return null;
      }
    },
  };
}

// ---- CPU time of the server: the process given first in --server-pids, its
// reaped children (cutime, cstime) and its children alive now ------------------
function serverCpuMs(pids) {
  if (!pids) return null;
  const root = Number(pids.split(',')[0]);
  const hz = 100; // USER_HZ on Linux
  const stat = (pid) => {
    const txt = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = txt.slice(txt.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
    return { ppid: Number(f[1]), self: Number(f[11]) + Number(f[12]), children: Number(f[13]) + Number(f[14]) };
  };
  try {
    const r = stat(root);
    let ticks = r.self + r.children;
    for (const d of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(d) || Number(d) === root) continue;
      try {
        const c = stat(d);
        if (c.ppid === root) ticks += c.self;
      } catch {
        // gone meanwhile
      }
    }
    return (ticks * 1000) / hz;
  } catch {
    return null;
  }
}
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

// ---- the measurement --------------------------------------------------------
async function main(args) {
  const sys = systems[args.system];
  if (!sys) throw new Error(`unknown system ${args.system}`);
  if (!sys.variants.includes(args.variant)) throw new Error(`${args.system} has no variant ${args.variant}`);
  const base = args.shape === 'A' ? { R: 1, K: 1, W: 1 } : args.shape === 'B' ? { R: 4, K: 4, W: 2 } : null;
  if (!base) throw new Error('--shape A or B');
  const { R, K } = sys.connectionsFor(args.variant, base.R, base.K);
  const W = base.W;

  await sys.prepare(args, args.variant, 16);
  const s0 = sys.serverStats ? await sys.serverStats(args) : null;
  const perf = startPerf(args.serverPids);
  const srvCpu0 = serverCpuMs(args.serverPids);
  const cpu0 = cpuMs();

  const workers = [];
  for (let i = 0; i < W; i++) workers.push(startWorker(args, i));
  await Promise.all(workers.map((w) => w.ready));

  const clients = [];
  for (let i = 0; i < R; i++) clients.push(await sys.requester(args, args.variant, i));

  const lat = [];
  let total = 0;
  const t0 = now();
  const mStart = t0 + args.warmup * 1000;
  const mEnd = mStart + args.duration * 1000;
  let failure = null;
  const loop = async (c, r, k) => {
    let seq = 0;
    while (!failure && now() < mEnd) {
      const p = payload(r * 100 + k, seq++);
      const s = now();
      await c.send(p);
      const e = now();
      total++;
      if (s >= mStart && e <= mEnd) lat.push(e - s);
    }
  };
  const loops = [];
  clients.forEach((c, r) => {
    for (let k = 0; k < K; k++) {
      loops.push(loop(c, r, k).catch((err) => {
        failure = failure || err;
      }));
    }
  });
  // the last requests sent get 30 s to come back
  const drained = await Promise.race([Promise.all(loops).then(() => true),
    sleep(args.warmup * 1000 + args.duration * 1000 + 30000).then(() => false)]);
  if (!drained && !failure) failure = new Error('replies missing 30 s after the end of the run');
  const window = (Math.min(now(), mEnd) - mStart) / 1000;

  let reqStatements = counters.statements;
  for (const c of clients) await c.close().catch((err) => { failure = failure || err; });
  reqStatements = counters.statements; // (close statements included)
  const reqCpu = cpuMs() - cpu0;
  const wstats = [];
  for (const w of workers) {
    try {
      wstats.push(await w.stop());
    } catch (err) {
      failure = failure || err;
    }
  }
  const fsyncs = perf ? await perf.stop() : null;
  await sleep(200); // ended sessions have sent their statistics, and are reaped
  const srvCpu1 = serverCpuMs(args.serverPids);
  const s1 = sys.serverStats ? await sys.serverStats(args) : null;
  const werrors = wstats.flatMap((w) => w.errors || []);
  if (failure && werrors.length) failure.message += ` (worker errors: ${werrors.slice(0, 5).join('; ')})`;
  if (failure) throw failure;
  if (werrors.length) throw new Error(`worker errors: ${werrors.slice(0, 5).join('; ')}`);

  lat.sort((a, b) => a - b);
  const pct = (q) => (lat.length ? lat[Math.floor((lat.length - 1) * q)] : null);
  const per = (x) => (x === null || x === undefined || total === 0 ? null : x / total);
  const statements = reqStatements + wstats.reduce((n, w) => n + (w.statements || 0), 0);
  const out = {
    system: args.system,
    variant: args.variant,
    shape: args.shape,
    label: args.label,
    R, K, W,
    payload_bytes: PAYLOAD_BYTES,
    duration_s: Number(window.toFixed(3)),
    count: lat.length,
    rps: Number((lat.length / window).toFixed(1)),
    p50_ms: pct(0.5), p90_ms: pct(0.9), p99_ms: pct(0.99), max_ms: lat.length ? lat[lat.length - 1] : null,
    mean_ms: lat.length ? lat.reduce((a, b) => a + b, 0) / lat.length : null,
    total_round_trips: total,
    statements_per_rt: sys.serverStats ? per(statements) : null,
    commits_per_rt: s0 && s1 ? per(s1.commits - s0.commits) : null,
    wal_bytes_per_rt: s0 && s1 ? per(s1.wal_bytes - s0.wal_bytes) : null,
    wal_syncs_per_rt: s0 && s1 ? per(s1.wal_sync - s0.wal_sync) : null,
    fsyncs_per_rt: per(fsyncs),
    // CPU milliseconds per round trip: the server's processes, the
    // requester process, the worker processes (their whole life)
    server_cpu_ms_per_rt: srvCpu0 !== null && srvCpu1 !== null ? per(srvCpu1 - srvCpu0) : null,
    requester_cpu_ms_per_rt: per(reqCpu),
    worker_cpu_ms_per_rt: per(wstats.reduce((n, w) => n + (w.cpu_ms || 0), 0)),
    workers: wstats.map((w) => w.worker),
  };
  for (const k of ['p50_ms', 'p90_ms', 'p99_ms', 'max_ms', 'mean_ms']) {
    if (out[k] !== null) out[k] = Number(out[k].toFixed(3));
  }
  for (const k of ['statements_per_rt', 'commits_per_rt', 'wal_bytes_per_rt', 'wal_syncs_per_rt', 'fsyncs_per_rt',
    'server_cpu_ms_per_rt', 'requester_cpu_ms_per_rt', 'worker_cpu_ms_per_rt']) {
    if (out[k] !== null) out[k] = Number(out[k].toFixed(k === 'wal_bytes_per_rt' ? 0 : 3));
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

const args = parseArgs(process.argv.slice(2));
if (args.role === 'worker') {
  workerMain(args).catch((err) => {
    process.stderr.write(`rrbrokers worker ${args.index}: ${err.stack || err}\n`);
    process.exit(1);
  });
} else {
  main(args).then(() => process.exit(0), (err) => {
    process.stderr.write(`rrbrokers ${args.system}/${args.variant} ${args.shape}: ${err.stack || err}\n`);
    process.exit(1);
  });
}
