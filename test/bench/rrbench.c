/*-------------------------------------------------------------------------
 *
 * rrbench.c
 *	  Round-trip benchmark driver for asyncrr and a hand-written baseline
 *	  (issue #7, part 1).  Run by test/bench/run.sh; usable alone.
 *
 *	  rrbench --mode asyncrr|baseline --test roundtrip|batch [options]
 *
 *	  roundtrip: R requester sessions each keep K requests in flight
 *	    (submit, wait on the socket for a notification, take), W worker
 *	    sessions claim (up to --claim-n) and complete each request in its
 *	    own transaction.  Latency is per request, from before its submit
 *	    to after the take that returned its reply.
 *	  batch: one requester submits --total requests in transactions of
 *	    --submit-batch, taking replies as they come; W workers claim up to
 *	    --claim-n at a time and complete them in one transaction.  Reports
 *	    requests/s from the first submit to the last reply taken.
 *
 *	  Connection: the PG* environment variables (one connection per
 *	  session).  Prints one JSON object on stdout.
 *
 *	  asyncrr: asyncrr.open_inbox, asyncrr.submit, asyncrr.take_replies,
 *	  asyncrr.claim(wait => '1 second'), asyncrr.complete; in the batch
 *	  test asyncrr.submit_many and asyncrr.complete_many.
 *	  baseline: table rrbench_rr (test/bench/baseline.sql), INSERT +
 *	  pg_notify(work channel) to submit; UPDATE ... WHERE id IN (SELECT ...
 *	  FOR UPDATE SKIP LOCKED LIMIT n) RETURNING to claim, the worker
 *	  LISTENs on the work channel when there is nothing to claim; complete
 *	  = UPDATE + pg_notify(inbox channel, id) in one transaction; the
 *	  requester LISTENs on its inbox channel and takes with DELETE ...
 *	  RETURNING.
 *
 * test/bench/rrbench.c
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

enum mode { M_ASYNCRR, M_BASELINE };

static volatile int running = 1;	/* requesters submit while set */
static volatile int wrunning = 1;	/* workers and the sampler loop while set */
enum test { T_ROUNDTRIP, T_BATCH };

static enum mode mode = M_ASYNCRR;
static enum test test = T_ROUNDTRIP;
static int nreq = 1, inflight = 1, nwork = 1;
static double duration = 10, warmup = 2;
static int claim_n = 10;
static long total = 100000;
static int submit_batch = 1000;
static const char *queue = "rr";
static const char *label = "";
static int sample_waits = 0;


static volatile int measuring = 0;	/* latencies recorded while set */
static double t_measure_start, t_measure_end;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
die(const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	fprintf(stderr, "rrbench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static PGconn *
connect_db(const char *app)
{
	const char *keys[] = {"application_name", "dbname", NULL};
	const char *vals[] = {app, "", NULL};
	PGconn	   *c;

	/* dbname "" : from PGDATABASE; expand_dbname off */
	vals[1] = getenv("PGDATABASE") ? getenv("PGDATABASE") : "postgres";
	c = PQconnectdbParams(keys, vals, 0);
	if (PQstatus(c) != CONNECTION_OK)
		die("connection failed: %s", PQerrorMessage(c));
	return c;
}

static PGresult *
run(PGconn *c, const char *sql)
{
	PGresult   *r = PQexec(c, sql);

	if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
		die("%s: %s", sql, PQerrorMessage(c));
	return r;
}

static void
prepare(PGconn *c, const char *name, const char *sql)
{
	PGresult   *r = PQprepare(c, name, sql, 0, NULL);

	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		die("prepare %s: %s", name, PQerrorMessage(c));
	PQclear(r);
}

static PGresult *
execp(PGconn *c, const char *name, int n, const char *const *vals)
{
	PGresult   *r = PQexecPrepared(c, name, n, vals, NULL, NULL, 0);

	if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
		die("execute %s: %s", name, PQerrorMessage(c));
	return r;
}

/* a worker's statement; false if it failed because the run is ending */
static int
exec_worker(PGconn *c, const char *name, const char *arg)
{
	PGresult   *r = PQexecPrepared(c, name, 1, &arg, NULL, NULL, 0);
	int			ok = PQresultStatus(r) == PGRES_TUPLES_OK;

	if (!ok && wrunning)
		die("execute %s: %s", name, PQerrorMessage(c));
	PQclear(r);
	return ok;
}

/* wait until the connection's socket is readable or timeout_ms passes */
static void
wait_socket(PGconn *c, int timeout_ms)
{
	struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};

	if (poll(&p, 1, timeout_ms) < 0 && errno != EINTR)
		die("poll: %s", strerror(errno));
	if (!PQconsumeInput(c))
		die("connection lost: %s", PQerrorMessage(c));
}

/* number of notifications waiting, freed */
static int
drain_notifies(PGconn *c)
{
	PGnotify   *n;
	int			k = 0;

	while ((n = PQnotifies(c)) != NULL)
	{
		PQfreemem(n);
		k++;
	}
	return k;
}

/* ---------------------------------------------------------------- */
/* latencies */

typedef struct
{
	uint32_t   *v;
	size_t		n,
				cap;
} lat_t;

static void
lat_add(lat_t *l, double us)
{
	if (l->n == l->cap)
	{
		l->cap = l->cap ? l->cap * 2 : 4096;
		l->v = realloc(l->v, l->cap * sizeof(uint32_t));
		if (!l->v)
			die("out of memory");
	}
	l->v[l->n++] = us > 4e9 ? 4000000000u : (uint32_t) us;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t	x = *(const uint32_t *) a,
				y = *(const uint32_t *) b;

	return x < y ? -1 : x > y;
}

/* ---------------------------------------------------------------- */
/* sessions */

typedef struct
{
	int			idx;
	pthread_t	th;
	lat_t		lat;
	long		done;			/* replies taken (batch) or measured round trips */
	long		submitted;
	double		t_first,
				t_last;
	char		pid[16];
	PGconn	   *volatile conn;	/* workers: for the cancel at the end */
} sess_t;


static void
setup_requester(PGconn *c, sess_t *s, char *inbox, size_t inbox_len)
{
	PGresult   *r;
	char		sql[512];

	if (mode == M_ASYNCRR)
	{
		r = run(c, "SELECT asyncrr.open_inbox()");
		PQclear(r);
		prepare(c, "submit", "SELECT asyncrr.submit($1, $2::jsonb)");
		prepare(c, "submit_many",
				"SELECT count(*) FROM asyncrr.submit_many($1, ARRAY("
				"SELECT pg_catalog.jsonb_build_object('i', g) "
				"FROM pg_catalog.generate_series(1, $2::int) g))");
		prepare(c, "take", "SELECT correlation_id FROM asyncrr.take_replies($1::int)");
	}
	else
	{
		snprintf(inbox, inbox_len, "rrbench_inbox_%d", (int) PQbackendPID(c));
		snprintf(sql, sizeof sql, "LISTEN %s", inbox);
		PQclear(run(c, sql));
		snprintf(sql, sizeof sql,
				 "WITH i AS (INSERT INTO rrbench_rr (queue, inbox, payload) VALUES ($1, '%s', $2::jsonb) "
				 "RETURNING id) SELECT id, pg_notify('rrbench_work_' || $1, '') FROM i", inbox);
		prepare(c, "submit", sql);
		snprintf(sql, sizeof sql,
				 "WITH i AS (INSERT INTO rrbench_rr (queue, inbox, payload) "
				 "SELECT $1, '%s', jsonb_build_object('i', g) FROM generate_series(1, $2::int) g "
				 "RETURNING id) SELECT count(*), pg_notify('rrbench_work_' || $1, '') FROM i", inbox);
		prepare(c, "submit_many", sql);
		snprintf(sql, sizeof sql,
				 "DELETE FROM rrbench_rr WHERE id IN (SELECT id FROM rrbench_rr "
				 "WHERE inbox = '%s' AND state = 'done' ORDER BY finished_at LIMIT $1::int "
				 "FOR UPDATE SKIP LOCKED) RETURNING id", inbox);
		prepare(c, "take", sql);
	}
	(void) s;
}

/* round trip requester */
typedef struct
{
	char		id[40];
	double		t0;
	int			used;
} slot_t;

static void *
requester_rt(void *arg)
{
	sess_t	   *s = arg;
	char		app[64],
				inbox[64];
	PGconn	   *c;
	slot_t	   *slots = calloc(inflight, sizeof(slot_t));
	int			live = 0;
	long		seq = 0;
	int			idle_rounds = 0;
	const char *take_n = "100";

	snprintf(app, sizeof app, "rrbench requester %d", s->idx);
	c = connect_db(app);
	snprintf(s->pid, sizeof s->pid, "%d", PQbackendPID(c));
	setup_requester(c, s, inbox, sizeof inbox);

	while (running || live > 0)
	{
		int			notified;

		/* keep K in flight */
		while (running && live < inflight)
		{
			char		payload[64];
			const char *vals[2] = {queue, payload};
			PGresult   *r;
			int			i;
			double		t0 = now_s();

			snprintf(payload, sizeof payload, "{\"r\": %d, \"s\": %ld}", s->idx, seq++);
			r = execp(c, "submit", 2, vals);
			for (i = 0; i < inflight; i++)
				if (!slots[i].used)
					break;
			snprintf(slots[i].id, sizeof slots[i].id, "%s", PQgetvalue(r, 0, 0));
			slots[i].t0 = t0;
			slots[i].used = 1;
			live++;
			PQclear(r);
		}
		if (live == 0)
			break;

		/* wait for a notification (1 s fallback: then take anyway) */
		notified = drain_notifies(c);
		if (!notified)
		{
			wait_socket(c, running ? 1000 : 200);
			notified = drain_notifies(c);
		}
		if (!notified && running)
			continue;			/* nothing yet; loop back to wait again */

		{
			PGresult   *r = execp(c, "take", 1, &take_n);
			double		t1 = now_s();
			int			k,
						i;

			for (k = 0; k < PQntuples(r); k++)
			{
				const char *id = PQgetvalue(r, k, 0);

				for (i = 0; i < inflight; i++)
					if (slots[i].used && strcmp(slots[i].id, id) == 0)
						break;
				if (i == inflight)
					die("took a reply to an unknown request %s", id);
				if (measuring && slots[i].t0 >= t_measure_start)
				{
					lat_add(&s->lat, (t1 - slots[i].t0) * 1e6);
					s->done++;
				}
				slots[i].used = 0;
				live--;
			}
			k = PQntuples(r);
			PQclear(r);
			/* after the end, give the last replies up to ~10 s */
			if (!running && k == 0 && ++idle_rounds > 50)
				die("requester %d: %d replies missing at the end", s->idx, live);
		}
	}
	free(slots);
	PQfinish(c);
	return NULL;
}

/* worker: round trip (complete each request in its own transaction) and batch */
static void *
worker(void *arg)
{
	sess_t	   *s = arg;
	char		app[64],
				nbuf[16],
				sql[256];
	PGconn	   *c;
	const char *vals[2];

	snprintf(app, sizeof app, "rrbench worker %d", s->idx);
	c = connect_db(app);
	s->conn = c;
	snprintf(s->pid, sizeof s->pid, "%d", PQbackendPID(c));
	snprintf(nbuf, sizeof nbuf, "%d", claim_n);
	if (mode == M_ASYNCRR)
	{
		prepare(c, "claim",
				"SELECT correlation_id FROM asyncrr.claim($1, $2::int, wait => interval '1 second')");
		prepare(c, "complete", "SELECT asyncrr.complete($1::uuid, '{\"ok\": true}'::jsonb)");
		prepare(c, "complete_many",
				"SELECT count(*) FROM asyncrr.complete_many($1::uuid[], "
				"pg_catalog.array_fill('{\"ok\": true}'::jsonb, "
				"ARRAY[pg_catalog.cardinality($1::uuid[])]))");
	}
	else
	{
		snprintf(sql, sizeof sql, "LISTEN rrbench_work_%s", queue);
		PQclear(run(c, sql));
		prepare(c, "claim",
				"UPDATE rrbench_rr SET state = 'claimed', claimed_at = now() "
				"WHERE id IN (SELECT id FROM rrbench_rr WHERE queue = $1 AND state = 'pending' "
				"ORDER BY prio DESC, id LIMIT $2::int FOR UPDATE SKIP LOCKED) RETURNING id");
		prepare(c, "complete",
				"WITH u AS (UPDATE rrbench_rr SET state = 'done', reply = '{\"ok\": true}', "
				"finished_at = clock_timestamp() WHERE id = $1::bigint AND state = 'claimed' "
				"RETURNING id, inbox) SELECT pg_notify(inbox, id::text) FROM u");
		prepare(c, "complete_many",
				"WITH u AS (UPDATE rrbench_rr SET state = 'done', reply = '{\"ok\": true}', "
				"finished_at = clock_timestamp() WHERE id = ANY ($1::bigint[]) AND state = 'claimed' "
				"RETURNING id, inbox) SELECT count(pg_notify(inbox, id::text)) FROM u");
	}

	vals[0] = queue;
	vals[1] = nbuf;
	while (wrunning)
	{
		PGresult   *r = PQexecPrepared(c, "claim", 2, vals, NULL, NULL, 0);
		int			k,
					n;

		if (PQresultStatus(r) != PGRES_TUPLES_OK)
		{
			if (!wrunning)
				break;			/* cancelled at the end: a claim waiting for work */
			die("execute claim: %s", PQerrorMessage(c));
		}
		n = PQntuples(r);

		if (n == 0)
		{
			PQclear(r);
			if (mode == M_BASELINE && drain_notifies(c) == 0)
			{
				/*
				 * Sleep until a submit notifies the work channel.  A
				 * notification that came in during the claim may be of a
				 * submit the claim did not see: then claim again at once.
				 */
				wait_socket(c, 1000);
				drain_notifies(c);
			}
			continue;
		}
		if (test == T_ROUNDTRIP)
		{
			for (k = 0; k < n; k++)
			{
				const char *id = PQgetvalue(r, k, 0);

				if (!exec_worker(c, "complete", id))
					break;
			}
		}
		else
		{
			/* one transaction for the whole claimed batch */
			size_t		len = 3;
			char	   *arr,
					   *p;
			const char *a;

			for (k = 0; k < n; k++)
				len += strlen(PQgetvalue(r, k, 0)) + 1;
			arr = p = malloc(len);
			*p++ = '{';
			for (k = 0; k < n; k++)
				p += sprintf(p, "%s%s", k ? "," : "", PQgetvalue(r, k, 0));
			*p++ = '}';
			*p = 0;
			a = arr;
			(void) exec_worker(c, "complete_many", a);
			free(arr);
		}
		s->done += n;
		PQclear(r);
	}
	PQfinish(c);
	return NULL;
}

/* batch requester: submit total in batches, take as replies come */
static void *
requester_batch(void *arg)
{
	sess_t	   *s = arg;
	char		inbox[64],
				bbuf[16];
	PGconn	   *c = connect_db("rrbench requester 0");
	const char *take_n = "1000";

	snprintf(s->pid, sizeof s->pid, "%d", PQbackendPID(c));
	setup_requester(c, s, inbox, sizeof inbox);
	snprintf(bbuf, sizeof bbuf, "%d", submit_batch);

	s->t_first = now_s();
	while (s->done < total)
	{
		int			got;

		if (s->submitted < total)
		{
			const char *vals[2] = {queue, bbuf};
			long		left = total - s->submitted;

			if (left < submit_batch)
				snprintf(bbuf, sizeof bbuf, "%ld", left);
			PQclear(execp(c, "submit_many", 2, vals));
			s->submitted += atoi(bbuf);
		}
		got = drain_notifies(c);
		if (!got && s->submitted >= total)
		{
			wait_socket(c, 1000);
			got = drain_notifies(c);
		}
		if (got || s->submitted >= total)
		{
			int			n;

			do
			{
				PGresult   *r = execp(c, "take", 1, &take_n);

				n = PQntuples(r);
				s->done += n;
				PQclear(r);
			} while (n == 1000);
		}
		if (now_s() - s->t_first > duration)
			die("batch: only %ld of %ld replies after %.0f s", s->done, total, duration);
	}
	s->t_last = now_s();
	PQfinish(c);
	return NULL;
}

/* ---------------------------------------------------------------- */
/* wait-event sampler: pg_stat_activity of the bench sessions every 10 ms */

typedef struct
{
	char		key[128];
	long		n;
} wcount_t;

static wcount_t wcounts[256];
static int	nwcounts;
static long nsamples;

static void *
sampler(void *arg)
{
	PGconn	   *c = connect_db("rrbench sampler");

	(void) arg;
	prepare(c, "s",
			"SELECT split_part(application_name, ' ', 2), "
			"coalesce(wait_event_type || ':' || wait_event, 'CPU'), count(*) "
			"FROM pg_stat_activity WHERE application_name LIKE 'rrbench %' "
			"AND application_name <> 'rrbench sampler' AND state = 'active' GROUP BY 1, 2");
	while (wrunning)
	{
		if (measuring)
		{
			PGresult   *r = execp(c, "s", 0, NULL);
			int			k,
						i;

			for (k = 0; k < PQntuples(r); k++)
			{
				char		key[128];

				snprintf(key, sizeof key, "%s %s", PQgetvalue(r, k, 0), PQgetvalue(r, k, 1));
				for (i = 0; i < nwcounts; i++)
					if (strcmp(wcounts[i].key, key) == 0)
						break;
				if (i == nwcounts && nwcounts < 256)
					snprintf(wcounts[nwcounts++].key, 128, "%s", key);
				if (i < 256)
					wcounts[i].n += atol(PQgetvalue(r, k, 2));
			}
			nsamples++;
			PQclear(r);
		}
		usleep(10000);
	}
	PQfinish(c);
	return NULL;
}

/* ---------------------------------------------------------------- */

/*
 * End the workers: all requests are answered by now, so an asyncrr worker is
 * (or soon will be) in a claim waiting for work; cancel it rather than wait
 * out its 1 s.
 */
static void
stop_workers(sess_t *wrk)
{
	int			i;
	char		err[256];

	wrunning = 0;
	if (mode != M_ASYNCRR)
		return;
	for (i = 0; i < nwork; i++)
	{
		PGcancel   *cn;

		while (wrk[i].conn == NULL)
			usleep(1000);
		cn = PQgetCancel(wrk[i].conn);
		if (cn)
		{
			PQcancel(cn, err, sizeof err);
			PQfreeCancel(cn);
		}
	}
}

static void
usage(void)
{
	fprintf(stderr,
			"usage: rrbench --mode asyncrr|baseline --test roundtrip|batch\n"
			"  [-R requesters] [-K in-flight per requester] [-W workers]\n"
			"  [--duration S] [--warmup S] [--claim-n N] [--queue Q]\n"
			"  [--total N] [--submit-batch N] [--label L] [--sample-waits]\n"
			"Connection from PG* environment variables.  Prints one JSON object.\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	sess_t	   *req,
			   *wrk;
	pthread_t	samp;
	int			i;

	for (i = 1; i < argc; i++)
	{
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--sample-waits") == 0)
		{
			sample_waits = 1;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (strcmp(a, "--mode") == 0)
			mode = strcmp(v, "baseline") == 0 ? M_BASELINE :
				strcmp(v, "asyncrr") == 0 ? M_ASYNCRR : (usage(), 0);
		else if (strcmp(a, "--test") == 0)
			test = strcmp(v, "batch") == 0 ? T_BATCH :
				strcmp(v, "roundtrip") == 0 ? T_ROUNDTRIP : (usage(), 0);
		else if (strcmp(a, "-R") == 0)
			nreq = atoi(v);
		else if (strcmp(a, "-K") == 0)
			inflight = atoi(v);
		else if (strcmp(a, "-W") == 0)
			nwork = atoi(v);
		else if (strcmp(a, "--duration") == 0)
			duration = atof(v);
		else if (strcmp(a, "--warmup") == 0)
			warmup = atof(v);
		else if (strcmp(a, "--claim-n") == 0)
			claim_n = atoi(v);
		else if (strcmp(a, "--queue") == 0)
			queue = v;
		else if (strcmp(a, "--total") == 0)
			total = atol(v);
		else if (strcmp(a, "--submit-batch") == 0)
			submit_batch = atoi(v);
		else if (strcmp(a, "--label") == 0)
			label = v;
		else
			usage();
	}
	if (nreq < 1 || inflight < 1 || nwork < 1 || claim_n < 1 || duration <= 0 || warmup < 0)
		usage();
	if (test == T_BATCH)
		nreq = 1;

	req = calloc(nreq, sizeof(sess_t));
	wrk = calloc(nwork, sizeof(sess_t));
	if (sample_waits)
		pthread_create(&samp, NULL, sampler, NULL);
	for (i = 0; i < nwork; i++)
	{
		wrk[i].idx = i;
		pthread_create(&wrk[i].th, NULL, worker, &wrk[i]);
	}

	if (test == T_ROUNDTRIP)
	{
		double		t0 = now_s();
		lat_t		all = {0};
		long		count = 0;
		double		window;
		int			j;

		for (i = 0; i < nreq; i++)
		{
			req[i].idx = i;
			pthread_create(&req[i].th, NULL, requester_rt, &req[i]);
		}
		usleep((useconds_t) (warmup * 1e6));
		t_measure_start = now_s();
		measuring = 1;
		usleep((useconds_t) (duration * 1e6));
		/* count round trips whose submit was in the window and that ended by its end */
		t_measure_end = now_s();
		measuring = 0;
		running = 0;
		for (i = 0; i < nreq; i++)
			pthread_join(req[i].th, NULL);
		stop_workers(wrk);
		for (i = 0; i < nwork; i++)
			pthread_join(wrk[i].th, NULL);
		if (sample_waits)
			pthread_join(samp, NULL);
		window = t_measure_end - t_measure_start;
		for (i = 0; i < nreq; i++)
		{
			for (j = 0; j < (int) req[i].lat.n; j++)
				lat_add(&all, req[i].lat.v[j]);
			count += req[i].done;
		}
		qsort(all.v, all.n, sizeof(uint32_t), cmp_u32);
#define PCT(p) (all.n ? all.v[(size_t) ((all.n - 1) * (p))] : 0)
		printf("{\"test\": \"roundtrip\", \"mode\": \"%s\", \"label\": \"%s\", \"R\": %d, \"K\": %d, "
			   "\"W\": %d, \"claim_n\": %d, \"queue\": \"%s\", \"duration_s\": %.3f, "
			   "\"count\": %ld, \"rps\": %.1f, \"p50_us\": %u, \"p90_us\": %u, \"p99_us\": %u, "
			   "\"max_us\": %u, \"mean_us\": %.0f",
			   mode == M_ASYNCRR ? "asyncrr" : "baseline", label, nreq, inflight, nwork, claim_n,
			   queue, window, count, count / window, PCT(0.50), PCT(0.90), PCT(0.99),
			   all.n ? all.v[all.n - 1] : 0,
			   ({ double m = 0; for (size_t q = 0; q < all.n; q++) m += all.v[q]; all.n ? m / all.n : 0; }));
		(void) t0;
	}
	else
	{
		double		el;

		measuring = 1;
		req[0].idx = 0;
		pthread_create(&req[0].th, NULL, requester_batch, &req[0]);
		pthread_join(req[0].th, NULL);
		measuring = 0;
		running = 0;
		stop_workers(wrk);
		for (i = 0; i < nwork; i++)
			pthread_join(wrk[i].th, NULL);
		if (sample_waits)
			pthread_join(samp, NULL);
		el = req[0].t_last - req[0].t_first;
		printf("{\"test\": \"batch\", \"mode\": \"%s\", \"label\": \"%s\", \"W\": %d, \"claim_n\": %d, "
			   "\"submit_batch\": %d, \"queue\": \"%s\", \"count\": %ld, \"elapsed_s\": %.3f, "
			   "\"rps\": %.1f",
			   mode == M_ASYNCRR ? "asyncrr" : "baseline", label, nwork, claim_n, submit_batch,
			   queue, req[0].done, el, req[0].done / el);
	}
	if (sample_waits)
	{
		printf(", \"wait_samples\": %ld, \"waits\": {", nsamples);
		for (i = 0; i < nwcounts; i++)
			printf("%s\"%s\": %ld", i ? ", " : "", wcounts[i].key, wcounts[i].n);
		printf("}");
	}
	printf("}\n");
	return 0;
}
