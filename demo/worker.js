'use strict';
// A worker serving queue "demo", with the Worker of clients/node.
//
//     node worker.js NAME
//
// Run by demo/demo.py; the same job as demo/worker.py: upper-case the
// request's text, taking `work` seconds (from the payload), or at least
// 4 s while the file named by $DEMO_SLOW_FLAG exists. Prints one JSON line
// per event on stdout (ready, start, done, stop). Stops gracefully on
// SIGTERM or when stdin ends. Connection: the libpq environment variables
// (PGHOST, PGPORT, PGUSER, PGDATABASE), which `pg` reads too.

const fs = require('fs');
const path = require('path');
const { Worker } = require(path.join(__dirname, '..', 'clients', 'node'));

const QUEUE = 'demo';
const NAME = process.argv[2];
const SLOW_FLAG = process.env.DEMO_SLOW_FLAG || '';

function emit(ev, text, fields = {}) {
  process.stdout.write(`${JSON.stringify({ ev, text, ...fields })}\n`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function handle(payload, headers, ctx) {
  const label = `${payload.from}#${payload.n}`;
  let work = Number(payload.work === undefined ? 0.3 : payload.work);
  const slow = SLOW_FLAG !== '' && fs.existsSync(SLOW_FLAG);
  if (slow) work = Math.max(work, 4);
  const why = slow ? ', the backend is slow' : '';
  emit('start', `working on ${label} (${work} s${why})`, { label, show: work >= 1, attempt: ctx.attempt });
  await sleep(work * 1000);
  const lost = ctx.signal.aborted ? ' (its claim was lost meanwhile: the reply will be late)' : '';
  emit('done', `finished ${label}${lost}`, { label, show: work >= 1 });
  return { for: payload.from, n: payload.n, text: String(payload.text).toUpperCase(), by: NAME };
}

async function main() {
  const worker = new Worker({}, QUEUE, handle, {
    concurrency: 2,
    batch: 2,
    name: NAME, // the label on its claims
    handleSigterm: true,
    onError: (err, what) => emit('log', `${what}: ${err && err.message}`, { level: 'WARNING' }),
  });
  process.stdin.on('end', () => worker.stop());
  process.stdin.resume();
  emit('ready', `serving queue '${QUEUE}' (Node Worker, pid ${process.pid})`, { pid: process.pid });
  try {
    await worker.run();
  } catch (err) {
    emit('error', `${err.name}: ${String(err.message).split('\n')[0]}`);
    process.exit(1);
  }
  const s = worker.stats;
  emit('stop', `stopped: ${s.completed} completed, ${s.late} late since it started`, { stats: s });
  process.exit(0);
}

main();
