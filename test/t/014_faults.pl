# Faults inside the extension ("prove the promise", item 6), beyond what
# 009_client_faults.pl covers (callers killed, timed out or cancelled while
# they sleep in call/wait/claim):
#
#   a. a query cancel or statement_timeout in the middle of a statement,
#      while it waits for a lock (the locks that CREATE INDEX, REINDEX or a
#      worker's open transaction hold): claim of a large batch (with and
#      without wait), complete_many of a large batch, take_replies of a large
#      batch, wait() and wait_for_reply, CALL asyncrr.call.  Afterwards no
#      half-done state: nothing claimed, completed or taken by a statement
#      that failed, no waiter slot left, no inbox held by a gone backend,
#      and the request of an interrupted CALL cancelled;
#   b. a disk full during the worker's passes: asyncrr.dead_letter on a
#      tablespace on a small filesystem that is then filled (prepared by
#      root with test/small_fs.sh; skipped without it).  The worker logs
#      53100, retries about once a second, also under load, loses nothing,
#      and times the requests out once there is space again;
#   c. an error in every pass of the worker (lock_timeout while a
#      VACUUM FULL holds asyncrr.dead_letter) and in the dispatcher
#      (lock_timeout on PostgreSQL's notify lock, held by a commit waiting
#      for a synchronous standby that is gone): logged, retried about once a
#      second, no notification lost; and the worker does not spin while a
#      transaction holds the request of a cancelled CALL.
use strict;
use warnings;

use File::Path qw(rmtree);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use AsyncrrTest;

my $node = AsyncrrTest::new_node('faults14');
# %e: the SQLSTATE of each line; a WAL sender slot makes synchronous
# replication (part c) possible
$node->append_conf('postgresql.conf', q{
max_connections = 40
shared_buffers = 32MB
wal_level = replica
max_wal_senders = 2
log_line_prefix = '%m [%p] %e %q%a '
});
$node->start;
AsyncrrTest::install($node);

$node->safe_psql('postgres', q{
	SELECT asyncrr.create_queue(q, default_timeout => '10 minutes', lease => '10 minutes')
	  FROM unnest(ARRAY['fa', 'fa2', 'fb', 'fc', 'fd', 'fe', 'ff', 'fk', 'fg', 'fg2', 'fh',
	                    'fi', 'fj', 'fl', 'fm', 'fload']) q;
});

###########################################################################
# Helpers

# A psql session that goes on after an error, shows SQLSTATEs, and can start
# a statement without waiting for it to end.
sub session
{
	my ($app) = @_;
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	$s->set_query_timer_restart();
	$s->query_safe("SET application_name = '$app'");
	$s->query_safe('\set VERBOSITY verbose');
	$s->{pid} = $s->query_safe('SELECT pg_backend_pid()');
	return $s;
}

# Starts $sql in session $s and returns at once.
sub start
{
	my ($s, $sql) = @_;
	$s->{stderr} = '';
	$s->query_until(qr/GO\r?\n/, "\\echo GO\n$sql;\n");
}

# Waits for what start() began to end: its (stdout, stderr).
sub finish
{
	my ($s) = @_;
	my $out = $s->query('\echo END');
	$out =~ s/\r?\n?END$//;
	my $err = $s->{stderr};
	$s->{stderr} = '';
	return ($out, $err);
}

sub psql { return $node->safe_psql('postgres', $_[0]); }

# Does $sql return $expected within $secs?  (AsyncrrTest::within)
sub within { return AsyncrrTest::within($node, @_); }

sub wait_event_type_is
{
	my ($pid, $type, $secs) = @_;
	return within($secs // 10,
		"SELECT wait_event_type FROM pg_stat_activity WHERE pid = $pid", $type);
}

sub cancel { psql("SELECT pg_cancel_backend($_[0])"); }

# Whatever contradicts "every request is in exactly one consistent state"
# ('' if nothing does); the table's CHECK constraints cover state against
# finished_at and lease_until.
sub inconsistencies
{
	my ($without_inboxes) = @_;
	my $inboxes = $without_inboxes ? 'AND false' : '';
	return psql(qq{
		SELECT coalesce(string_agg(what, '; '), '') FROM (
		  SELECT count(*) || ' taken but not ended' FROM asyncrr.request
		   WHERE taken_at IS NOT NULL AND finished_at IS NULL HAVING count(*) > 0
		  UNION ALL
		  SELECT count(*) || ' claimed without an attempt' FROM asyncrr.request
		   WHERE state = 'claimed' AND attempt < 1 HAVING count(*) > 0
		  UNION ALL
		  SELECT count(*) || ' dead letters of live requests'
		    FROM asyncrr.dead_letter d JOIN asyncrr.request r USING (correlation_id)
		   WHERE r.finished_at IS NULL HAVING count(*) > 0
		  UNION ALL
		  SELECT count(*) || ' timed out or dead-lettered without a dead letter'
		    FROM asyncrr.request r
		   WHERE r.state IN ('timed_out', 'dead_lettered')
		     AND NOT EXISTS (SELECT 1 FROM asyncrr.dead_letter d
		                      WHERE d.correlation_id = r.correlation_id)
		  HAVING count(*) > 0
		  UNION ALL
		  SELECT count(*) || ' inboxes held by a backend that is gone' FROM asyncrr.inbox
		   WHERE holder_pid IS NOT NULL AND holder_pid NOT IN (SELECT pid FROM pg_stat_activity)
		     $inboxes
		  HAVING count(*) > 0) x(what)});
}

# No waiter left, and no inconsistency (an inbox of a session that has just
# ended is released by the worker's next housekeeping pass: up to 5 s for it;
# $without_inboxes: not at all).
sub consistent
{
	my ($what, $without_inboxes) = @_;
	is(psql('SELECT count(*) FROM asyncrr.waiters'), '0', "$what: no waiter slot left");
	my $end = time + 5;
	my $found;
	while (($found = inconsistencies($without_inboxes)) ne '' && time < $end)
	{
		usleep(100_000);
	}
	is($found, '', "$what: every request in one consistent state");
}

# States of a queue's requests: "state|attempt|count" lines.
sub states
{
	my ($queue) = @_;
	return psql("SELECT state || '|' || attempt || '|' || count(*) FROM asyncrr.request
	              WHERE queue_name = '$queue' GROUP BY state, attempt ORDER BY 1");
}

# The correlation ids of the notifications on $channel that session $s has
# received by now.
sub notified
{
	my ($s, $channel) = @_;
	my $out = $s->query('SELECT 1');
	my @ids = $out =~ /Asynchronous notification "\Q$channel\E" with payload "\{"correlation_id": "([-0-9a-f]+)"/g;
	return @ids;
}

# A session holding asyncrr.request in SHARE mode (what CREATE INDEX and
# REINDEX take: it blocks writes, not reads or SELECT FOR UPDATE).
my $ddl = session('fault_ddl');
$ddl->query_safe('SET lock_timeout = 0');
sub hold_share { $ddl->query_safe('BEGIN; LOCK TABLE asyncrr.request IN SHARE MODE'); }
sub release    { $ddl->query_safe('COMMIT'); }

my $cancelled = qr/ERROR:  57014: canceling statement due to user request/;
my $timed_out = qr/ERROR:  57014: canceling statement due to statement timeout/;
my ($out, $err);

my $w = session('fault_worker');
my $h = session('fault_holder');    # a worker's transaction left open

###########################################################################
# a1. claim() of a large batch, blocked in its UPDATE

psql(q{SELECT count(*) FROM asyncrr.submit_many('fa',
		ARRAY(SELECT jsonb_build_object('n', g) FROM generate_series(1, 3000) g))});
hold_share();
start($w, q{SELECT count(*) FROM asyncrr.claim('fa', 5000)});
ok(wait_event_type_is($w->{pid}, 'Lock'), 'a1: a claim of 3000 requests waits for a lock mid-call');
cancel($w->{pid});
($out, $err) = finish($w);
like($err, $cancelled, 'a1: the cancelled claim fails with 57014');
$w->query_safe("SET statement_timeout = '300ms'");
start($w, q{SELECT count(*) FROM asyncrr.claim('fa', 5000)});
($out, $err) = finish($w);
like($err, $timed_out, 'a1: so does one that reaches statement_timeout');
$w->query_safe('RESET statement_timeout');
release();
is(states('fa'), 'pending|0|3000', 'a1: nothing was claimed (3000 pending, attempt 0)');
is($w->query_safe(q{SELECT count(*) FROM asyncrr.claim('fa', 5000)}), '3000',
	'a1: a claim afterwards takes all 3000');
consistent('a1');

###########################################################################
# a2. claim() with wait, blocked in its first look

psql(q{SELECT count(*) FROM asyncrr.submit_many('fa2',
		ARRAY(SELECT jsonb_build_object('n', g) FROM generate_series(1, 5) g))});
hold_share();
start($w, q{SELECT count(*) FROM asyncrr.claim('fa2', 10, wait => '30 seconds')});
ok(wait_event_type_is($w->{pid}, 'Lock'), 'a2: a claim with wait waits for a lock in its first look');
is(psql("SELECT waits_for FROM asyncrr.waiters WHERE pid = $w->{pid}"), 'work',
	'a2: registered as a waiter meanwhile');
cancel($w->{pid});
($out, $err) = finish($w);
like($err, $cancelled, 'a2: the cancelled claim fails with 57014');
is(psql('SELECT count(*) FROM asyncrr.waiters'), '0', 'a2: its waiter slot is given back');
$w->query_safe("SET statement_timeout = '300ms'");
start($w, q{SELECT count(*) FROM asyncrr.claim('fa2', 10, wait => '30 seconds')});
($out, $err) = finish($w);
like($err, $timed_out, 'a2: a claim with wait reaching statement_timeout there fails with 57014');
$w->query_safe('RESET statement_timeout');
release();
is(states('fa2'), 'pending|0|5', 'a2: nothing was claimed');
consistent('a2');

###########################################################################
# a3. complete_many() of 2000 requests, blocked on the last row while a
# worker's transaction holds it (its lease extension, not yet committed)

my $r = session('fault_requester');
$r->query_safe(q{SELECT asyncrr.open_inbox('fb-inbox')});
$r->query_safe(q{SELECT count(*) FROM asyncrr.submit_many('fb',
		ARRAY(SELECT jsonb_build_object('n', g) FROM generate_series(1, 2000) g))});
is($w->query_safe(q{SELECT count(*) FROM asyncrr.claim('fb', 2000)}), '2000', 'a3: 2000 claimed');
my $complete_fb = q{SELECT outcome || '|' || count(*) FROM asyncrr.complete_many(
		ARRAY(SELECT correlation_id FROM asyncrr.request WHERE queue_name = 'fb' ORDER BY payload->>'n'),
		ARRAY(SELECT jsonb_build_object('echo', payload) FROM asyncrr.request
		       WHERE queue_name = 'fb' ORDER BY payload->>'n')) GROUP BY outcome};
my $last_fb = psql(q{SELECT correlation_id FROM asyncrr.request WHERE queue_name = 'fb'
                      ORDER BY correlation_id DESC LIMIT 1});
foreach my $how ('cancel', 'statement_timeout')
{
	$h->query_safe("BEGIN; SELECT asyncrr.extend_lease('$last_fb', '10 minutes')");
	$w->query_safe("SET statement_timeout = '500ms'") if $how eq 'statement_timeout';
	start($w, $complete_fb);
	if ($how eq 'cancel')
	{
		ok(wait_event_type_is($w->{pid}, 'Lock'),
			'a3: complete_many of 2000 waits for the row of the last one, having locked the others');
		cancel($w->{pid});
	}
	($out, $err) = finish($w);
	like($err, $how eq 'cancel' ? $cancelled : $timed_out, "a3 ($how): complete_many fails with 57014");
	$w->query_safe('RESET statement_timeout');
	$h->query_safe('COMMIT');
	is(states('fb'), 'claimed|1|2000', "a3 ($how): none was completed");
}
usleep(300_000);
is(scalar(notified($r, 'asyncrr.fb-inbox')), 0, 'a3: and no notification was sent');
is($w->query_safe($complete_fb), 'completed|2000', 'a3: complete_many afterwards completes all 2000');
my %seen;
my $end = time + 10;
while (keys %seen < 2000 && time < $end)
{
	$seen{$_}++ foreach notified($r, 'asyncrr.fb-inbox');
	usleep(100_000);
}
is(scalar(keys %seen), 2000, 'a3: the requester is notified of each of the 2000 replies');
is(scalar(grep { $_ > 1 } values %seen), 0, 'a3: once each');
consistent('a3');

###########################################################################
# a4. take_replies() of 2000 replies

sub untaken
{
	return psql(q{SELECT count(*) FROM asyncrr.request WHERE inbox_name = 'fb-inbox' AND taken_at IS NULL});
}
foreach my $how ('cancel', 'statement_timeout')
{
	hold_share();
	$r->query_safe("SET statement_timeout = '300ms'") if $how eq 'statement_timeout';
	start($r, q{SELECT count(*) FROM asyncrr.take_replies(5000)});
	if ($how eq 'cancel')
	{
		ok(wait_event_type_is($r->{pid}, 'Lock'), 'a4: take_replies of 2000 waits for a lock mid-call');
		cancel($r->{pid});
	}
	($out, $err) = finish($r);
	like($err, $how eq 'cancel' ? $cancelled : $timed_out, "a4 ($how): take_replies fails with 57014");
	$r->query_safe('RESET statement_timeout');
	release();
	is(untaken(), '2000', "a4 ($how): no reply was taken");
}
is(psql(q{SELECT holder_pid FROM asyncrr.inbox WHERE inbox_name = 'fb-inbox'}), $r->{pid},
	'a4: the inbox is still held by the (live) requester');
# statement_timeout while a batch is being taken: whether it strikes or not,
# what the caller got and what is marked taken are the same
my ($got, $struck) = (0, 0);
foreach my $ms (2, 5, 10, 20, 40)
{
	my $before = untaken();
	$r->{stderr} = '';
	my $n = $r->query("SET statement_timeout = '${ms}ms'; SELECT count(*) FROM asyncrr.take_replies(300)");
	my $e = $r->{stderr};
	$r->{stderr} = '';
	$r->query_safe('RESET statement_timeout');
	if ($e =~ /57014/)
	{
		$struck++;
		is(untaken(), $before, "a4: take_replies cut by statement_timeout ${ms}ms took nothing");
	}
	else
	{
		($n) = $n =~ /^(\d+)$/m;
		is(untaken(), $before - $n, "a4: take_replies within statement_timeout ${ms}ms took what it returned ($n)");
		$got += $n;
	}
}
note "statement_timeout struck $struck of 5 takes of 300";
my ($rest) = $r->query_safe('SELECT count(*) FROM asyncrr.take_replies(5000)') =~ /^(\d+)$/m;
is($got + $rest, 2000, 'a4: every reply was handed out once in all');
is(untaken(), '0', 'a4: and every one is marked taken');
consistent('a4');

###########################################################################
# a5. wait() and wait_for_reply, blocked while a late duplicate complete()
# holds the row of a reply that is there

my $rw = session('fault_waiter');
$rw->query_safe('SELECT asyncrr.open_inbox()');
my $id1 = $rw->query_safe(q{SELECT asyncrr.submit('fc', '{"n": 1}')});
my $id2 = $rw->query_safe(q{SELECT asyncrr.submit('fc', '{"n": 2}')});
is($w->query_safe(q{SELECT string_agg(asyncrr.complete(correlation_id, payload), ',')
                      FROM asyncrr.claim('fc', 2)}), 'completed,completed', 'a5: both completed');
$h->query_safe("BEGIN; SELECT asyncrr.complete('$id1', '{}')");
start($rw, "SELECT status FROM asyncrr.wait('$id1', '30 seconds')");
ok(wait_event_type_is($rw->{pid}, 'Lock'), 'a5: wait() waits for the row lock of the duplicate complete');
is(psql("SELECT waits_for FROM asyncrr.waiters WHERE pid = $rw->{pid}"), 'reply',
	'a5: registered as a waiter meanwhile');
cancel($rw->{pid});
($out, $err) = finish($rw);
like($err, $cancelled, 'a5: the cancelled wait() fails with 57014');
$h->query_safe('COMMIT');
is(psql("SELECT taken_at IS NULL FROM asyncrr.request WHERE correlation_id = '$id1'"), 't',
	'a5: the reply was not taken');
$h->query_safe("BEGIN; SELECT asyncrr.complete('$id2', '{}')");
$rw->query_safe("SET statement_timeout = '500ms'");
start($rw, "CALL asyncrr.wait_for_reply('$id2', '30 seconds')");
($out, $err) = finish($rw);
like($err, $timed_out, 'a5: wait_for_reply reaching statement_timeout there fails with 57014');
$rw->query_safe('RESET statement_timeout');
$h->query_safe('COMMIT');
is(psql("SELECT taken_at IS NULL FROM asyncrr.request WHERE correlation_id = '$id2'"), 't',
	'a5: that reply was not taken either');
consistent('a5');
is($rw->query_safe("SELECT status || ' ' || (reply->>'n') FROM asyncrr.wait('$id1', '0')"), 'completed 1',
	'a5: a later wait() takes the first reply');
is($rw->query_safe("CALL asyncrr.wait_for_reply('$id2', '0')"), 'completed|{"n": 2}|',
	'a5: a later wait_for_reply the second');
is(psql(q{SELECT count(*) FROM asyncrr.request WHERE queue_name = 'fc' AND taken_at IS NULL}), '0',
	'a5: both taken, once');

###########################################################################
# a6. CALL asyncrr.call

my $c = session('fault_caller');

# (i) blocked in its submit, by an administrator's drop_queue not yet committed
my $adm = session('fault_admin');
$adm->query_safe(q{BEGIN; SELECT asyncrr.drop_queue('fd')});
start($c, q{CALL asyncrr.call('fd', '{"tag": "submit"}')});
ok(wait_event_type_is($c->{pid}, 'Lock'), 'a6 (i): CALL asyncrr.call waits for the queue in its submit');
cancel($c->{pid});
($out, $err) = finish($c);
like($err, $cancelled, 'a6 (i): the cancelled call fails with 57014');
$adm->query_safe('ROLLBACK');
is(psql(q{SELECT count(*) FROM asyncrr.request WHERE payload->>'tag' = 'submit'}), '0',
	'a6 (i): nothing was written');
consistent('a6 (i)');

# (ii) blocked in its first look, after its submit committed: a CREATE INDEX
# or REINDEX (SHARE lock) queued while the submit ran gets the table between
# the submit's commit and the look.  Made deterministic here: another
# session's submit of the same id holds the call's INSERT until the lock is
# queued, then rolls back.
foreach my $how ('cancel', 'statement_timeout')
{
	my $x = psql('SELECT gen_random_uuid()');
	$h->query_safe("BEGIN; SELECT asyncrr.submit('fe', '{\"tag\": \"look\"}', correlation_id => '$x')");
	$c->query_safe("SET statement_timeout = '5s'") if $how eq 'statement_timeout';
	start($c, "CALL asyncrr.call('fe', '{\"tag\": \"look\"}', correlation_id => '$x')");
	ok(wait_event_type_is($c->{pid}, 'Lock'), "a6 (ii, $how): the call's submit waits for the other one");
	start($ddl, 'BEGIN; LOCK TABLE asyncrr.request IN SHARE MODE');
	ok(wait_event_type_is($ddl->{pid}, 'Lock'), "a6 (ii, $how): the SHARE lock is queued behind it");
	$h->query_safe('ROLLBACK');
	finish($ddl);    # the lock is granted once the call's submit commits
	ok(within(5, "SELECT wait_event_type || ' ' || wait_event FROM pg_stat_activity WHERE pid = $c->{pid}",
			'Lock relation'),
		"a6 (ii, $how): the call, its submit committed, waits for the table in its look");
	is(psql("SELECT state FROM asyncrr.request WHERE correlation_id = '$x'"), 'pending',
		"a6 (ii, $how): its request is there");
	cancel($c->{pid}) if $how eq 'cancel';
	($out, $err) = finish($c);
	like($err, $how eq 'cancel' ? $cancelled : $timed_out, "a6 (ii, $how): the call fails with 57014");
	$c->query_safe('RESET statement_timeout');
	release();
	# reference.md: "when ... the call is cancelled, hits statement_timeout
	# ..., it first ends the request as cancelled" (and when a transaction
	# holds the request, the background worker does, as in 009 c5)
	ok(within(5, "SELECT state FROM asyncrr.request WHERE correlation_id = '$x'", 'cancelled'),
		"a6 (ii, $how): the request of the interrupted call is cancelled");
	psql("SELECT asyncrr.cancel('$x')");    # what today's code leaves for a worker
	is(psql('SELECT count(*) FROM asyncrr.waiters'), '0', "a6 (ii, $how): no waiter slot left");
}

# (iii) blocked at its deadline, timing out its request, on the row a
# worker's transaction holds
start($c, q{CALL asyncrr.call('ff', '{"tag": "deadline"}', timeout => '2 seconds')});
ok(wait_event_type_is($c->{pid}, 'Extension'), 'a6 (iii): the call sleeps');
my ($idf, $attf) = split /\|/, $w->query_safe(q{SELECT correlation_id || '|' || attempt FROM asyncrr.claim('ff', 1)});
$h->query_safe("BEGIN; SELECT asyncrr.extend_lease('$idf', '10 minutes', $attf)");
ok(wait_event_type_is($c->{pid}, 'Lock'), 'a6 (iii): at its deadline the call waits for the held row');
cancel($c->{pid});
($out, $err) = finish($c);
like($err, $cancelled, 'a6 (iii): the cancelled call fails with 57014');
$h->query_safe('COMMIT');
ok(within(5, "SELECT state IN ('cancelled', 'timed_out') FROM asyncrr.request WHERE correlation_id = '$idf'", 't'),
	'a6 (iii): its request ends (cancelled, or timed out: its deadline had passed)');
is($w->query_safe("SELECT asyncrr.complete('$idf', '{}', $attf)"), 'late', 'a6 (iii): the worker is late');
consistent('a6 (iii)');

# (iv) cancelled while a worker's transaction holds its request (as 009 c5):
# the background worker cancels it once that transaction ends, and does not
# spin meanwhile
start($c, q{CALL asyncrr.call('fk', '{"tag": "held"}')});
ok(wait_event_type_is($c->{pid}, 'Extension'), 'a6 (iv): the call sleeps');
my ($idk, $attk) = split /\|/, $w->query_safe(q{SELECT correlation_id || '|' || attempt FROM asyncrr.claim('fk', 1)});
$h->query_safe("BEGIN; SELECT asyncrr.extend_lease('$idk', '10 minutes', $attk)");
cancel($c->{pid});
($out, $err) = finish($c);
like($err, $cancelled, 'a6 (iv): the cancelled call fails with 57014 at once');
my $worker_pid = AsyncrrTest::worker_pid($node);
my $commits = q{SELECT pg_stat_get_db_xact_commit(oid) FROM pg_database WHERE datname = 'postgres'};
sub cpu_ticks
{
	my ($pid) = @_;
	open(my $fh, '<', "/proc/$pid/stat") or return undef;
	my @f = split ' ', <$fh>;
	return $f[13] + $f[14];
}
usleep(500_000);
my ($c0, $t0) = (psql($commits), cpu_ticks($worker_pid));
sleep 3;
my ($c1, $t1) = (psql($commits), cpu_ticks($worker_pid));
# (001_worker.pl holds the same bound for a locked overdue request; an idle
# worker makes a few transactions a second)
cmp_ok($c1 - $c0, '<', 500,
	'a6 (iv): the worker does not spin while the request is held (' . ($c1 - $c0) . ' commits in 3 s)');
note sprintf('worker CPU meanwhile: %.0f %% of a core', ($t1 - $t0) / 3) if defined $t0 && defined $t1;
is(psql("SELECT state FROM asyncrr.request WHERE correlation_id = '$idk'"), 'claimed',
	'a6 (iv): the held request is not cancelled while held');
$h->query_safe('COMMIT');
ok(within(5, "SELECT state FROM asyncrr.request WHERE correlation_id = '$idk'", 'cancelled'),
	'a6 (iv): the background worker cancels it once the transaction ends');
is($w->query_safe("SELECT asyncrr.complete('$idk', '{}', $attk)"), 'late', 'a6 (iv): the worker is late');
consistent('a6');

###########################################################################
# b, c: errors in the background processes

# The log since $offset.
sub log_since { return slurp_file($node->logfile, $_[0]); }

sub count_of
{
	my ($text, $re) = @_;
	my $n = () = $text =~ /$re/g;
	return $n;
}

# How many ERRORs backend $pid logged in the next $secs seconds; with
# $step, how many failures of the worker step that runs that function.
sub errors_during
{
	my ($pid, $secs, $step) = @_;
	my $offset = -s $node->logfile;
	usleep($secs * 1_000_000);
	return count_of(log_since($offset), qr/\[$pid\] \w+ ERROR:/) unless $step;
	return count_of(log_since($offset), qr/SQL statement "SELECT asyncrr\.$step\(/);
}

# A client submitting (and committing) as fast as it can for $secs seconds.
sub start_load
{
	my ($secs) = @_;
	my $s = session('fault_load');
	start($s, qq{DO \$\$
		DECLARE t timestamptz := clock_timestamp();
		BEGIN
		  WHILE clock_timestamp() < t + interval '$secs seconds' LOOP
		    PERFORM asyncrr.submit('fload', '{}', timeout => '1 hour');
		    COMMIT;
		  END LOOP;
		END \$\$});
	return $s;
}

sub end_load
{
	my ($s) = @_;
	my ($o, $e) = finish($s);
	is($e, '', 'the submits of the load all succeeded');
	$s->quit;
}

###########################################################################
# b. Disk full: asyncrr.dead_letter on a filesystem that is full.

my $small = $ENV{ASYNCRR_SMALL_FS} // '/tmp/asyncrr-small-fs';
my $small_ok = 0;
my $small_why = "no small filesystem at $small: as root, run test/small_fs.sh mount first";
if (-d $small && -w $small)
{
	my $df = `df -Pk '$small' 2>/dev/null`;
	my ($kb) = $df =~ /\n\S+\s+(\d+)/;
	if ((stat $small)[0] == (stat "$small/..")[0])
	{
		$small_why = "$small is not a mount point: test/small_fs.sh mount makes it one";
	}
	elsif (!defined $kb || $kb > 65536)
	{
		$small_why = "$small is larger than 64 MB (" . ($kb // '?') . ' kB): too large to fill';
	}
	else
	{
		$small_ok = 1;
	}
}
my $fsdir = "$small/014_faults_$$";
END { rmtree($fsdir) if defined $fsdir && -d $fsdir; }

SKIP:
{
	skip $small_why, 19 unless $small_ok;

	# leftovers of earlier runs that died
	rmtree($_) foreach glob("$small/014_faults_*");
	mkdir $fsdir or die "mkdir $fsdir: $!";
	mkdir "$fsdir/ts" or die "mkdir $fsdir/ts: $!";
	psql("CREATE TABLESPACE fault_small LOCATION '$fsdir/ts'");
	psql('ALTER TABLE asyncrr.dead_letter SET TABLESPACE fault_small');

	# fill it up
	open(my $fill, '>', "$fsdir/filler") or die "open filler: $!";
	foreach my $chunk (65536, 4096, 512)
	{
		1 while defined syswrite($fill, "\0" x $chunk);
	}
	close $fill;
	note `df -Pk '$small'`;

	# requests past their deadline: each a dead letter of about 6 kB
	psql(q{SELECT count(*) FROM asyncrr.submit_many('fg',
			ARRAY(SELECT jsonb_build_object('n', g, 'pad',
			        (SELECT string_agg(md5(g::text || i::text), '') FROM generate_series(1, 200) i))
			        FROM generate_series(1, 300) g),
			timeout => '1 second')});
	# and a CALL asyncrr.call, which times its request out itself
	my $pad = psql(q{SELECT string_agg(md5(i::text), '') FROM generate_series(1, 200) i});
	start($c, qq{CALL asyncrr.call('fg2', '{"tag": "full", "pad": "$pad"}', timeout => '1 second')});
	# a claim whose lease runs out, and a session inbox whose session ends
	psql(q{SELECT asyncrr.submit('fl', '{"tag": "lease"}')});
	is($w->query_safe(q{SELECT count(*) FROM asyncrr.claim('fl', 1, lease => '1 second')}), '1',
		'b: a request claimed with a lease of 1 s');
	$worker_pid = AsyncrrTest::worker_pid($node);
	my $offset = -s $node->logfile;
	sleep 2;
	ok($node->wait_for_log(qr/\[$worker_pid\] 53100 ERROR:  could not extend file "pg_tblspc\/[^"]*": No space left on device/,
			$offset),
		'b: the worker logs the disk full (53100)');
	($out, $err) = finish($c);
	like($err, qr/ERROR:  53100: could not extend file/, 'b: the CALL past its deadline fails with 53100');

	my $n = errors_during($worker_pid, 3, '_expire_deadlines');
	ok($n >= 2 && $n <= 5, "b: the worker keeps retrying, about once a second ($n errors in 3 s)");
	# operations.md: "the worker runs the next pass one second later"; a
	# commit that notes a deadline wakes the worker for new work, and must
	# not make it retry a failing pass at once
	my $load = start_load(5);
	usleep(500_000);
	$n = errors_during($worker_pid, 3, '_expire_deadlines');
	ok($n <= 5, "b: also while clients submit: no tight loop ($n errors in 3 s)");
	end_load($load);
	is(states('fg'), 'pending|0|300', 'b: the requests stay live past their deadline: none is lost');
	is(psql(q{SELECT state FROM asyncrr.request WHERE payload->>'tag' = 'full'}), 'pending',
		"b: so does the CALL's");
	consistent('b (disk full)', 1);
	# A failing step ends only itself: the other steps, which need no dead
	# letter, go on while the disk is full.
	is(psql(q{SELECT state FROM asyncrr.request WHERE payload->>'tag' = 'lease'}), 'pending',
		'b: a lease that ran out while the disk is full goes back to the queue');
	ok(within(5, q{SELECT count(*) FROM asyncrr.inbox WHERE holder_pid IS NOT NULL
	                  AND holder_pid NOT IN (SELECT pid FROM pg_stat_activity)}, '0'),
		'b: inboxes of ended sessions are released while the disk is full');
	is(AsyncrrTest::worker_pid($node), $worker_pid, 'b: the worker did not exit');

	unlink "$fsdir/filler" or die "unlink filler: $!";
	ok(within(10, q{SELECT count(*) FILTER (WHERE state = 'timed_out') FROM asyncrr.request
	                 WHERE queue_name IN ('fg', 'fg2')}, '301'),
		'b: once there is space, all are timed out');
	is(psql(q{SELECT reason || ' ' || count(*) FROM asyncrr.dead_letters
	           WHERE queue_name IN ('fg', 'fg2') GROUP BY reason}), 'timeout 301',
		'b: each with its dead letter');
	is(errors_during($worker_pid, 1.5), 0, 'b: and the errors stop');
	is(psql(q{SELECT state FROM asyncrr.request WHERE payload->>'tag' = 'lease'}), 'pending',
		'b: the lease that ran out has been expired');
	consistent('b (space again)');

	psql('ALTER TABLE asyncrr.dead_letter SET TABLESPACE pg_default');
	psql('DROP TABLESPACE fault_small');
	rmtree($fsdir);
}

###########################################################################
# c1. An error in every pass of the worker: lock_timeout set for the whole
# server, while a VACUUM FULL of asyncrr.dead_letter holds it.

# Requests claimed under a 1-second lease (queue fm): returning them to
# their queue does not touch asyncrr.dead_letter, so the failing step (the
# deadline one) must not keep the lease step from running.
psql(q{ALTER SYSTEM SET lock_timeout = '200ms'; SELECT pg_reload_conf()});
psql(q{SELECT count(*) FROM asyncrr.submit_many('fm',
		ARRAY(SELECT jsonb_build_object('n', g) FROM generate_series(1, 5) g), timeout => '1 hour')});
$ddl->query_safe('BEGIN; LOCK TABLE asyncrr.dead_letter IN ACCESS EXCLUSIVE MODE');
psql(q{SELECT count(*) FROM asyncrr.submit_many('fh',
		ARRAY(SELECT jsonb_build_object('n', g) FROM generate_series(1, 50) g), timeout => '1 second')});
psql(q{SELECT count(*) FROM asyncrr.claim('fm', 5, lease => '1 second')});
$worker_pid = AsyncrrTest::worker_pid($node);
my $offset = -s $node->logfile;
sleep 2;
ok($node->wait_for_log(qr/\[$worker_pid\] 55P03 ERROR:  canceling statement due to lock timeout/, $offset),
	'c1: the failing pass is logged');
# passes, counted by the deadline step's failures: every step that reads
# asyncrr.dead_letter fails (four, each after its 200 ms lock_timeout),
# then the worker backs off 1 s, so a pass starts every 1.8 s or so
my $n = errors_during($worker_pid, 3, '_expire_deadlines');
ok($n >= 1 && $n <= 3, "c1: retried after a 1-second backoff ($n failing passes in 3 s)");
my $load = start_load(5);
usleep(500_000);
$n = errors_during($worker_pid, 3, '_expire_deadlines');
ok($n <= 3, "c1: also while clients submit ($n failing passes in 3 s)");
end_load($load);
is(states('fh'), 'pending|0|50', 'c1: the requests stay live past their deadline');
is(states('fm'), 'pending|1|5', 'c1: but the other steps run: leases ran out meanwhile');
# a pass with a failing step is not counted as completed, so monitoring
# sees the worker fall behind (operations.md, worker_last_pass_age_seconds;
# read from background_stats(): asyncrr.metrics would wait for the lock)
ok(psql(q{SELECT clock_timestamp() - worker_pass_ended > interval '5 seconds'
            FROM asyncrr.background_stats()}) eq 't',
	'c1: the last completed pass grows old while a step fails');
$ddl->query_safe('COMMIT');
ok(within(5, q{SELECT count(*) FROM asyncrr.request WHERE queue_name = 'fh' AND state = 'timed_out'}, '50'),
	'c1: once the lock is released, the worker times them out');
is(AsyncrrTest::worker_pid($node), $worker_pid, 'c1: the worker did not exit');
psql(q{ALTER SYSTEM RESET lock_timeout; SELECT pg_reload_conf()});
consistent('c1');

###########################################################################
# c2. An error in the dispatcher: lock_timeout on PostgreSQL's notify lock,
# held by a commit that waits for a synchronous standby that is gone (a
# session that sends its own notifications, asyncrr.notify_dispatch = off).

my $ri = session('fault_listener');
$ri->query_safe(q{SELECT asyncrr.open_inbox('fi-inbox')});
$ri->query_safe(q{SELECT count(*) FROM asyncrr.submit_many('fi',
		ARRAY(SELECT jsonb_build_object('n', g) FROM generate_series(1, 50) g))});
my $stuck = session('fault_stuck');
my $idj = $stuck->query_safe(q{SELECT asyncrr.submit('fj', '{}')});
$stuck->query_safe(q{SELECT count(*) FROM asyncrr.claim('fj', 1)});
$stuck->query_safe(q{SET synchronous_commit = on; SET asyncrr.notify_dispatch = off; SET lock_timeout = 0});

psql(q{ALTER SYSTEM SET synchronous_standby_names = 'asyncrr_gone';
       ALTER SYSTEM SET synchronous_commit = 'local';
       ALTER SYSTEM SET lock_timeout = '200ms';
       SELECT pg_reload_conf()});
$node->poll_query_until('postgres', 'SHOW synchronous_standby_names', 'asyncrr_gone');
usleep(500_000);
start($stuck, "SELECT asyncrr.complete('$idj', '{}')");
ok(wait_event_type_is($stuck->{pid}, 'IPC'), 'c2: a commit that notified waits for the standby');
my $dispatcher = psql(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'asyncrr dispatcher'});
$offset = -s $node->logfile;
is($w->query_safe(q{SELECT outcome || '|' || count(*) FROM asyncrr.complete_many(
		ARRAY(SELECT correlation_id FROM asyncrr.claim('fi', 100)),
		ARRAY(SELECT '{}'::jsonb FROM generate_series(1, 50))) GROUP BY outcome}), 'completed|50',
	'c2: 50 replies completed, their notifications handed to the dispatcher');
ok($node->wait_for_log(qr/\[$dispatcher\] 55P03 ERROR:  canceling statement due to lock timeout/, $offset),
	'c2: the dispatcher logs the error');
my $exits = qr/background worker "asyncrr dispatcher" \(PID \d+\) exited with exit code 1/;
$offset = -s $node->logfile;
sleep 4;
$n = count_of(log_since($offset), $exits);
ok($n >= 2 && $n <= 6, "c2: it is restarted and retries about once a second ($n exits in 4 s)");
is(scalar(notified($ri, 'asyncrr.fi-inbox')), 0, 'c2: no notification is sent meanwhile');
cancel($stuck->{pid});    # the commit stands locally; the lock is released
($out, $err) = finish($stuck);
like($err, qr/canceling wait for synchronous replication/, 'c2: the stuck commit is let go');
psql(q{ALTER SYSTEM RESET synchronous_standby_names; ALTER SYSTEM RESET synchronous_commit;
       ALTER SYSTEM RESET lock_timeout; SELECT pg_reload_conf()});
%seen = ();
$end = time + 10;
while (keys %seen < 50 && time < $end)
{
	$seen{$_}++ foreach notified($ri, 'asyncrr.fi-inbox');
	usleep(100_000);
}
is(scalar(keys %seen), 50, 'c2: then every one of the 50 notifications arrives');
is(join(',', sort keys %seen),
	psql(q{SELECT string_agg(correlation_id::text, ',' ORDER BY correlation_id::text)
	         FROM asyncrr.request WHERE queue_name = 'fi'}),
	'c2: one for each reply');
ok(within(5, q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'asyncrr dispatcher'}, '1'),
	'c2: the dispatcher runs');
is(psql("SELECT state FROM asyncrr.request WHERE correlation_id = '$idj'"), 'completed',
	"c2: the stuck session's complete committed");
consistent('c2');

###########################################################################

$_->quit foreach ($ddl, $w, $h, $r, $rw, $c, $adm, $ri, $stuck);
ok(within(5, q{SELECT count(*) FROM asyncrr.inbox
                WHERE holder_pid IS NOT NULL AND holder_pid NOT IN (SELECT pid FROM pg_stat_activity)}, '0'),
	'no inbox is left held by a session that ended');
is(inconsistencies(), '', 'in the end, every request in one consistent state');
unlike(slurp_file($node->logfile), qr/PANIC|terminated by signal|server process .* exited with exit code [^01]/,
	'no crash');

$node->stop;
done_testing();
