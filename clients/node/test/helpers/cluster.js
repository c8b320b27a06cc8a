'use strict';
// A throwaway PostgreSQL 15 cluster with asyncrr preloaded, for the tests.
//
// initdb and postgres refuse to run as root: as root, the cluster's
// directory is given to the postgres OS user and every server command runs
// through `runuser -u postgres --`, as test/lib.sh does.  As any other user
// they run directly.  The cluster listens on a free loopback port and on a
// socket in its own directory; its data is removed by stop(), and by an
// exit handler should a test file end without calling it.

const { execFileSync, execFile } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { promisify } = require('node:util');
const pg = require('pg');

const PGBIN = process.env.PGBIN || '/usr/lib/postgresql/15/bin';
const execFileP = promisify(execFile);
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

function asServerUser(cmd, args) {
  return isRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
}

function runSync(cmd, args) {
  const [c, a] = asServerUser(cmd, args);
  return execFileSync(c, a, { stdio: ['ignore', 'pipe', 'pipe'], cwd: '/' });
}

async function run(cmd, args) {
  const [c, a] = asServerUser(cmd, args);
  return execFileP(c, a, { cwd: '/' });
}

/** A free TCP port on 127.0.0.1 (asked of the kernel, then released). */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const live = new Set();
process.on('exit', () => {
  for (const c of live) c.stopSync();
});

class TestCluster {
  constructor(dir, port, database) {
    this.dir = dir;
    this.port = port;
    this.database = database;
    this.dataDir = path.join(dir, 'data');
    this.logFile = path.join(dir, 'server.log');
    this.connectionString = `postgresql://postgres@127.0.0.1:${port}/${database}`;
    this.stopped = false;
  }

  /**
   * Starts a cluster, creates `database` with the extension in it and waits
   * for asyncrr's background worker to serve it.
   * @param {{database?: string, conf?: string[]}} [opts]
   */
  static async start(opts = {}) {
    const database = opts.database || 'asyncrr_node_test';
    // run_tests.sh gives a directory of its own, to clean up after a crash
    const parent = process.env.ASYNCRR_NODE_TEST_TMP || os.tmpdir();
    const dir = fs.mkdtempSync(path.join(parent, 'asyncrr-node-'));
    if (isRoot) {
      const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
      const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
      fs.chownSync(dir, uid, gid);
    }
    const port = await freePort();
    const cluster = new TestCluster(dir, port, database);
    live.add(cluster);
    await run(path.join(PGBIN, 'initdb'), ['-D', cluster.dataDir, '-U', 'postgres', '-A', 'trust',
      '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync']);
    const conf = [
      '',
      '# throwaway cluster of the asyncrr Node client tests',
      `port = ${port}`,
      "listen_addresses = '127.0.0.1'",
      `unix_socket_directories = '${dir}'`,
      'fsync = off',
      'max_connections = 50',
      "shared_preload_libraries = 'asyncrr'",
      `asyncrr.database = '${database}'`,
      "asyncrr.precision = '50ms'",
      "asyncrr.orphan_grace = '1s'",
      ...(opts.conf || []),
      '',
    ];
    fs.appendFileSync(path.join(cluster.dataDir, 'postgresql.conf'), conf.join('\n'));
    await run(path.join(PGBIN, 'pg_ctl'), ['-D', cluster.dataDir, '-l', cluster.logFile, '-w', '-t', '60', 'start']);

    const admin = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${database}`);
    } finally {
      await admin.end();
    }
    const c = await cluster.connect();
    try {
      await c.query('CREATE EXTENSION asyncrr');
      // The background worker looks for the extension once a second.
      for (let i = 0; ; i++) {
        const { rows } = await c.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE backend_type IN ('asyncrr worker', 'asyncrr dispatcher') AND datname = current_database()`);
        if (rows[0].n >= 2) break;
        if (i > 200) throw new Error('the asyncrr background worker did not start');
        await sleep(50);
      }
    } finally {
      await c.end();
    }
    return cluster;
  }

  /** A connected pg.Client to the test database (as postgres, unless `extra.user`). */
  async connect(extra = {}) {
    // (pg lets a connectionString override the other options: not used here)
    const c = new pg.Client({ host: '127.0.0.1', port: this.port, user: 'postgres', database: this.database, ...extra });
    await c.connect();
    return c;
  }

  /** The last lines of the server log. */
  logTail(lines = 40) {
    try {
      return fs.readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  async stop() {
    if (this.stopped) return;
    this.stopped = true;
    live.delete(this);
    try {
      await run(path.join(PGBIN, 'pg_ctl'), ['-D', this.dataDir, '-m', 'fast', '-w', 'stop']);
    } catch {
      // already down
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  stopSync() {
    if (this.stopped) return;
    this.stopped = true;
    live.delete(this);
    try {
      runSync(path.join(PGBIN, 'pg_ctl'), ['-D', this.dataDir, '-m', 'immediate', '-w', 'stop']);
    } catch {
      // already down
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

module.exports = { TestCluster, sleep };

/**
 * Polls `fn` until it returns a truthy value (which is returned), or throws
 * after `timeoutMs`.
 */
async function waitFor(fn, { timeoutMs = 10000, intervalMs = 50, what = 'condition' } = {}) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(intervalMs);
  }
}

module.exports.waitFor = waitFor;
