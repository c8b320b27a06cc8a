'use strict';
// The systems compared by bench.js: for each, how a requester sends one
// request and gets its reply, how a worker answers, and how the state is
// reset between measurements. Every requester and worker moves the same
// ~100-byte JSON payload (payload() and reply() below).
//
//   asyncrr   the Node client library (clients/node): `call` (CALL
//             asyncrr.call, one connection per request in flight), and
//             `inbox` (submit + Inbox: LISTEN + take_replies); workers are
//             the library's Worker (claim, complete_many, wait_for_work).
//   baseline  a plain table written the way people write it, one statement
//             per step: INSERT (+ pg_notify to wake the workers); a worker
//             claims with UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP
//             LOCKED) RETURNING, then per reply UPDATE + pg_notify(inbox) in
//             its own transaction; the requester LISTENs on its inbox
//             channel and takes with DELETE ... RETURNING.
//   rabbit    amqplib. `durable`: durable queue, persistent messages,
//             publisher confirms (the requester waits for its confirm and
//             its reply), one durable reply queue per requester consumed
//             with acks; the worker publishes the reply persistent on a
//             confirm channel and acks the request when the reply is
//             confirmed. `direct`: non-durable queue, transient messages,
//             no confirms, direct reply-to (amq.rabbitmq.reply-to); the
//             worker acks after publishing the reply. Connections with
//             TCP_NODELAY (as pg and nats.js have by default).
//   nats      nats.js core request-reply (a queue group of workers), no
//             persistence.

const path = require('path');

const clientDir = path.resolve(__dirname, '../../../clients/node');
// The library requires pg from its own directory (clients/node/node_modules
// if its tests installed it) or else from NODE_PATH (run.sh points it at
// this directory's node_modules). Use that same pg here, so that errors and
// clients are of one module.
const pg = require(require.resolve('pg', { paths: [path.join(clientDir, 'lib'), __dirname] }));

const QUEUE = 'rr';
const PAYLOAD_BYTES = 100;

// ---- statement counting (per process) -------------------------------------
// Every Client.query of this process: the statements the drivers send (the
// library's own ones included; a pg.Pool's query goes through Client.query).
const counters = { statements: 0 };
function countStatements(mod) {
  const proto = mod.Client.prototype;
  if (proto.__rrCounted) return;
  const orig = proto.query;
  proto.query = function countedQuery(...args) {
    counters.statements++;
    return orig.apply(this, args);
  };
  proto.__rrCounted = true;
}
countStatements(pg);

// ---- payloads ---------------------------------------------------------------
function pad(obj) {
  const s = JSON.stringify({ ...obj, pad: '' });
  return { ...obj, pad: 'x'.repeat(Math.max(0, PAYLOAD_BYTES - s.length)) };
}
/** A request payload: a JSON object of PAYLOAD_BYTES bytes. */
function payload(r, s) {
  return pad({ r, s });
}
/** The worker's reply to a payload, as long. */
function reply(p) {
  return pad({ ok: true, r: p.r, s: p.s });
}
function check(rep, p) {
  if (!rep || rep.s !== p.s || rep.r !== p.r) {
    throw new Error(`wrong reply ${JSON.stringify(rep)} to request r=${p.r} s=${p.s}`);
  }
}

/**
 * Replies that may arrive (through a notification, a take or a consumer)
 * before the send that made the request has registered for it.
 */
class Pending {
  constructor() {
    this.waiting = new Map();
    this.early = new Map();
  }
  wait(id) {
    if (this.early.has(id)) {
      const v = this.early.get(id);
      this.early.delete(id);
      return Promise.resolve(v);
    }
    return new Promise((resolve, reject) => this.waiting.set(id, { resolve, reject }));
  }
  deliver(id, v) {
    const w = this.waiting.get(id);
    if (w) {
      this.waiting.delete(id);
      w.resolve(v);
    } else {
      this.early.set(id, v);
    }
  }
  failAll(err) {
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
  }
  get size() {
    return this.waiting.size;
  }
}

// ---- PostgreSQL: what both PG systems share ---------------------------------
async function pgConnect(cfg, app) {
  const c = new pg.Client({ connectionString: cfg.pg, application_name: app });
  await c.connect();
  return c;
}

/** Server-side counters for a measurement (differences are taken by bench.js). */
async function pgServerStats(cfg) {
  const c = await pgConnect(cfg, 'rrbrokers stats');
  try {
    const r = await c.query(`SELECT (SELECT sum(xact_commit)::float8 FROM pg_stat_database) AS commits,
        wal_records::float8, wal_bytes::float8, wal_write::float8, wal_sync::float8 FROM pg_stat_wal`);
    return r.rows[0];
  } finally {
    await c.end();
  }
}

// ---- asyncrr ----------------------------------------------------------------
const asyncrr = {
  variants: ['call', 'inbox'],
  serverStats: pgServerStats,
  // CALL blocks its connection: one connection per request in flight
  connectionsFor(variant, R, K) {
    return variant === 'call' ? { R: R * K, K: 1 } : { R, K };
  },
  async prepare(cfg) {
    const c = await pgConnect(cfg, 'rrbrokers reset');
    try {
      await c.query('TRUNCATE asyncrr.request, asyncrr.dead_letter, asyncrr.inbox');
      await c.query('CHECKPOINT');
    } finally {
      await c.end();
    }
  },
  async requester(cfg, variant, idx) {
    const lib = require(clientDir);
    const client = await pgConnect(cfg, `rrbrokers requester ${idx}`);
    if (variant === 'call') {
      return {
        async send(p) {
          const r = await lib.call(client, QUEUE, p, { timeout: 60000 });
          if (r.status !== 'completed') throw new Error(`call: ${r.status} ${r.error}`);
          check(r.reply, p);
        },
        async close() {
          await client.end();
        },
      };
    }
    const inbox = await lib.Inbox.open(client, { batch: 100 });
    const pending = new Pending();
    const reader = (async () => {
      for await (const r of inbox) pending.deliver(r.correlationId, r);
    })().catch((err) => pending.failAll(err));
    return {
      async send(p) {
        const id = await inbox.submit(QUEUE, p, { timeout: 60000 });
        const r = await pending.wait(id);
        if (r.status !== 'completed') throw new Error(`inbox: ${r.status} ${r.error}`);
        check(r.reply, p);
      },
      async close() {
        await inbox.close();
        await reader;
        await client.end();
      },
    };
  },
  async worker(cfg, variant, idx) {
    const lib = require(clientDir);
    const errors = [];
    const w = new lib.Worker({ connectionString: cfg.pg, application_name: `rrbrokers worker ${idx}`, max: 4 },
      QUEUE, (p) => reply(p), {
        concurrency: 10,
        batch: 10,
        onError: (err, what) => errors.push(`${what}: ${err && err.message}`),
      });
    const running = w.run();
    running.catch((err) => errors.push(`run: ${err.message}`));
    return {
      async stop() {
        await w.stop({ timeout: 10000 });
        await running.catch(() => {});
        return { errors, worker: w.stats };
      },
    };
  },
};

// ---- the hand-written baseline ----------------------------------------------
const BASELINE_DDL = require('fs').readFileSync(path.join(__dirname, '..', 'baseline.sql'), 'utf8');
const BASELINE = {
  submit: `WITH i AS (INSERT INTO rrbench_rr (queue, inbox, payload) VALUES ($1, $2, $3::jsonb) RETURNING id)
           SELECT id::text AS id, pg_notify('rr_work_' || $1, '') FROM i`,
  take: `DELETE FROM rrbench_rr WHERE id IN (SELECT id FROM rrbench_rr
           WHERE inbox = $1 AND state = 'done' ORDER BY finished_at LIMIT 100 FOR UPDATE SKIP LOCKED)
         RETURNING id::text AS id, reply`,
  claim: `UPDATE rrbench_rr SET state = 'claimed', claimed_at = now()
          WHERE id IN (SELECT id FROM rrbench_rr WHERE queue = $1 AND state = 'pending'
                       ORDER BY prio DESC, id LIMIT 10 FOR UPDATE SKIP LOCKED)
          RETURNING id, payload`,
  complete: `WITH u AS (UPDATE rrbench_rr SET state = 'done', reply = $2::jsonb, finished_at = clock_timestamp()
                        WHERE id = $1 AND state = 'claimed' RETURNING id, inbox)
             SELECT pg_notify(inbox, id::text) FROM u`,
};

const baseline = {
  variants: ['table'],
  serverStats: pgServerStats,
  connectionsFor(variant, R, K) {
    return { R, K };
  },
  async prepare(cfg) {
    const c = await pgConnect(cfg, 'rrbrokers reset');
    try {
      await c.query(BASELINE_DDL);
      await c.query('TRUNCATE rrbench_rr');
      await c.query('CHECKPOINT');
    } finally {
      await c.end();
    }
  },
  async requester(cfg, variant, idx) {
    const client = await pgConnect(cfg, `rrbrokers requester ${idx}`);
    const inbox = `rr_inbox_${idx}_${client.processID}`;
    const pending = new Pending();
    let taking = null;
    let again = false;
    let failed = null;
    const take = () => {
      if (taking) {
        again = true;
        return;
      }
      again = false;
      taking = client.query({ text: BASELINE.take, values: [inbox], name: 'take' })
        .then((res) => {
          for (const row of res.rows) pending.deliver(row.id, row.reply);
          if (res.rows.length >= 100) again = true;
        })
        .catch((err) => {
          failed = err;
          pending.failAll(err);
        })
        .finally(() => {
          taking = null;
          if (again && !failed) take();
        });
    };
    client.on('notification', (msg) => {
      if (msg.channel === inbox) take();
    });
    await client.query(`LISTEN ${inbox}`);
    // a notification is never lost here, but take once a second while
    // replies are awaited, as a real requester would
    const safety = setInterval(() => {
      if (pending.size > 0 && !failed) take();
    }, 1000);
    return {
      async send(p) {
        if (failed) throw failed;
        const res = await client.query({ text: BASELINE.submit, values: [QUEUE, inbox, JSON.stringify(p)], name: 'submit' });
        const rep = await pending.wait(res.rows[0].id);
        check(rep, p);
      },
      async close() {
        clearInterval(safety);
        if (taking) await taking;
        await client.end();
      },
    };
  },
  async worker(cfg, variant, idx) {
    const client = await pgConnect(cfg, `rrbrokers worker ${idx}`);
    let notified = 0;
    let wake = null;
    let stopping = false;
    client.on('notification', () => {
      notified++;
      if (wake) wake();
    });
    await client.query(`LISTEN rr_work_${QUEUE}`);
    const stats = { claims: 0, emptyClaims: 0, completed: 0 };
    const loop = (async () => {
      while (!stopping) {
        notified = 0;
        const res = await client.query({ text: BASELINE.claim, values: [QUEUE], name: 'claim' });
        stats.claims++;
        if (res.rows.length === 0) {
          stats.emptyClaims++;
          // sleep until a submit notifies (one that came during the claim
          // may be of a submit the claim did not see: claim again at once)
          if (notified === 0 && !stopping) {
            await new Promise((resolve) => {
              const t = setTimeout(resolve, 1000);
              wake = () => {
                clearTimeout(t);
                resolve();
              };
            });
            wake = null;
          }
          continue;
        }
        for (const row of res.rows) {
          await client.query({ text: BASELINE.complete, values: [row.id, JSON.stringify(reply(row.payload))], name: 'complete' });
          stats.completed++;
        }
      }
    })();
    return {
      async stop() {
        stopping = true;
        if (wake) wake();
        await loop;
        await client.end();
        return { worker: stats };
      },
    };
  },
};

// ---- RabbitMQ ---------------------------------------------------------------
const RQ = { durable: 'rr.requests', direct: 'rr.fast' };
// TCP_NODELAY, as pg and nats.js set it by default; amqplib does not, and
// without it a one-at-a-time round trip waits ~40 ms on Nagle's algorithm
// against delayed ACKs (amqplib writes a publish as three frames).
const AMQP_SOCKET = { noDelay: true };

const rabbit = {
  variants: ['durable', 'direct'],
  connectionsFor(variant, R, K) {
    return { R, K };
  },
  async prepare(cfg, variant, maxRequesters) {
    const amqp = require('amqplib');
    const conn = await amqp.connect(cfg.amqp, AMQP_SOCKET);
    try {
      const ch = await conn.createChannel();
      for (const q of Object.values(RQ)) await ch.deleteQueue(q);
      for (let i = 0; i < maxRequesters; i++) await ch.deleteQueue(`rr.reply.${i}`);
      await ch.assertQueue(RQ[variant], { durable: variant === 'durable' });
      await ch.close();
    } finally {
      await conn.close();
    }
  },
  async requester(cfg, variant, idx) {
    const amqp = require('amqplib');
    const conn = await amqp.connect(cfg.amqp, AMQP_SOCKET);
    const pending = new Pending();
    conn.on('error', (err) => pending.failAll(err));
    let seq = 0;
    if (variant === 'durable') {
      const ch = await conn.createConfirmChannel();
      ch.on('error', (err) => pending.failAll(err));
      const replyQ = `rr.reply.${idx}`;
      await ch.assertQueue(replyQ, { durable: true });
      await ch.consume(replyQ, (msg) => {
        ch.ack(msg);
        pending.deliver(msg.properties.correlationId, msg.content);
      }, { noAck: false });
      return {
        async send(p) {
          const id = String(seq++);
          const confirmed = new Promise((resolve, reject) => {
            ch.sendToQueue(RQ.durable, Buffer.from(JSON.stringify(p)),
              { persistent: true, replyTo: replyQ, correlationId: id, contentType: 'application/json' },
              (err) => (err ? reject(err) : resolve()));
          });
          const [, body] = await Promise.all([confirmed, pending.wait(id)]);
          check(JSON.parse(body), p);
        },
        async close() {
          await ch.close();
          await conn.close();
        },
      };
    }
    const ch = await conn.createChannel();
    ch.on('error', (err) => pending.failAll(err));
    await ch.consume('amq.rabbitmq.reply-to', (msg) => pending.deliver(msg.properties.correlationId, msg.content),
      { noAck: true });
    return {
      async send(p) {
        const id = String(seq++);
        ch.sendToQueue(RQ.direct, Buffer.from(JSON.stringify(p)),
          { replyTo: 'amq.rabbitmq.reply-to', correlationId: id, contentType: 'application/json' });
        check(JSON.parse(await pending.wait(id)), p);
      },
      async close() {
        await ch.close();
        await conn.close();
      },
    };
  },
  async worker(cfg, variant, idx) {
    const amqp = require('amqplib');
    const conn = await amqp.connect(cfg.amqp, AMQP_SOCKET);
    const errors = [];
    conn.on('error', (err) => errors.push(err.message));
    const durable = variant === 'durable';
    const ch = durable ? await conn.createConfirmChannel() : await conn.createChannel();
    ch.on('error', (err) => errors.push(err.message));
    await ch.prefetch(10);
    await ch.assertQueue(RQ[variant], { durable });
    const stats = { handled: 0 };
    await ch.consume(RQ[variant], (msg) => {
      if (!msg) return;
      const body = Buffer.from(JSON.stringify(reply(JSON.parse(msg.content))));
      const props = { correlationId: msg.properties.correlationId, contentType: 'application/json' };
      stats.handled++;
      if (durable) {
        // ack the request once the reply is safely stored
        ch.sendToQueue(msg.properties.replyTo, body, { ...props, persistent: true }, (err) => {
          if (err) errors.push(`reply not confirmed: ${err.message}`);
          else ch.ack(msg);
        });
      } else {
        ch.sendToQueue(msg.properties.replyTo, body, props);
        ch.ack(msg);
      }
    }, { noAck: false });
    return {
      async stop() {
        if (durable) await ch.waitForConfirms().catch((err) => errors.push(err.message));
        await ch.close().catch((err) => errors.push(err.message));
        await conn.close().catch(() => {});
        return { errors, worker: stats };
      },
    };
  },
};

// ---- NATS -------------------------------------------------------------------
const nats = {
  variants: ['core'],
  connectionsFor(variant, R, K) {
    return { R, K };
  },
  async prepare() {},
  async requester(cfg, variant, idx) {
    const { connect } = require('nats');
    const nc = await connect({ servers: cfg.nats, name: `rrbrokers requester ${idx}` });
    return {
      async send(p) {
        const m = await nc.request(QUEUE, Buffer.from(JSON.stringify(p)), { timeout: 60000 });
        check(JSON.parse(Buffer.from(m.data)), p);
      },
      async close() {
        await nc.close();
      },
    };
  },
  async worker(cfg, variant, idx) {
    const { connect } = require('nats');
    const nc = await connect({ servers: cfg.nats, name: `rrbrokers worker ${idx}` });
    const stats = { handled: 0 };
    nc.subscribe(QUEUE, {
      queue: 'rr-workers',
      callback: (err, m) => {
        if (err) return;
        stats.handled++;
        m.respond(Buffer.from(JSON.stringify(reply(JSON.parse(Buffer.from(m.data))))));
      },
    });
    await nc.flush(); // the subscription is in place
    return {
      async stop() {
        await nc.drain();
        return { worker: stats };
      },
    };
  },
};

module.exports = { systems: { asyncrr, baseline, rabbit, nats }, counters, payload, PAYLOAD_BYTES };
