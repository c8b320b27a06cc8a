# Waiting without LISTEN across sessions: asyncrr.wait, claim with wait and
# CALL asyncrr.call are woken by the commit that makes their reply or work
# exist (long before their timeouts); a cancelled, timed-out or terminated
# waiter leaves nothing behind; a full registry makes waiters poll.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use AsyncrrTest;

my $node = AsyncrrTest::new_node('wait');
$node->start;
AsyncrrTest::install($node);
$node->safe_psql('postgres',
	"SELECT asyncrr.create_queue('q', default_timeout => '5 minutes', lease => '5 minutes')");

sub waiters
{
	return $node->safe_psql('postgres',
		"SELECT coalesce(string_agg(waits_for, ',' ORDER BY waits_for), '') FROM asyncrr.waiters");
}

sub wait_for_waiters
{
	my ($expected) = @_;
	return $node->poll_query_until('postgres',
		"SELECT coalesce(string_agg(waits_for, ',' ORDER BY waits_for), '') FROM asyncrr.waiters",
		$expected);
}

# Runs $sql in the background session and returns once it has started.
sub start_query
{
	my ($bg, $sql) = @_;
	$bg->query_until(qr/started/, "\\echo started\n$sql\n");
}

# Pumps the background session until its stdout (or stderr) matches.
sub finish_query
{
	my ($bg, $pattern, $stream) = @_;
	$stream //= 'stdout';
	pump_until($bg->{run}, $bg->{timeout}, \$bg->{$stream}, $pattern);
	my $out = $bg->{$stream};
	$bg->{$stream} = '';
	return $out;
}

# 1. asyncrr.wait is woken by the worker's commit.
my $bg = $node->background_psql('postgres');
my $id = $bg->query_safe(
	"SELECT asyncrr.open_inbox('waiter'); SELECT asyncrr.submit('q', '{\"n\": 1}')");
$id = (split /\n/, $id)[-1];
start_query($bg, "SELECT status || ' ' || reply::text FROM asyncrr.wait('$id', '60 seconds');");
ok(wait_for_waiters('reply'), 'the waiter is registered');
my $t0 = time;
$node->safe_psql('postgres',
	"SELECT count(*) FROM asyncrr.claim('q'); SELECT asyncrr.complete('$id', '{\"r\": 1}')");
like(finish_query($bg, qr/completed/), qr/completed \{"r": 1\}/,
	'wait returns the reply once the worker commits');
cmp_ok(time - $t0, '<', 30, 'woken by the commit, not by its 60 s timeout');
is(waiters(), '', 'the slot is given back');

# 2. A sleeping claim is woken by a submit's commit.
start_query($bg, "SELECT payload::text FROM asyncrr.claim('q', wait => '60 seconds');");
ok(wait_for_waiters('work'), 'the sleeping claim is registered');
$t0 = time;
$node->safe_psql('postgres', "SELECT asyncrr.submit('q', '{\"n\": 2}')");
like(finish_query($bg, qr/"n"/), qr/\{"n": 2\}/, 'the claim returns the new request');
cmp_ok(time - $t0, '<', 30, 'woken by the submit, not by its 60 s wait');
$node->safe_psql('postgres',
	"SELECT asyncrr.cancel(correlation_id) FROM asyncrr.pending WHERE queue_name = 'q'");

# 2b. A request that another claim held locked, and released by rolling
#     back, wakes no one with a commit: the sleeping claim still gets it.
$node->safe_psql('postgres', "SELECT asyncrr.submit('q', '{\"n\": 22}')");
my $holder = $node->background_psql('postgres');
$holder->query_safe("BEGIN; SELECT count(*) FROM asyncrr.claim('q')");
start_query($bg, "SELECT payload::text FROM asyncrr.claim('q', wait => '60 seconds');");
ok(wait_for_waiters('work'), 'a claim sleeps while the only request is held');
$t0 = time;
$holder->query_safe('ROLLBACK');
like(finish_query($bg, qr/"n"/), qr/\{"n": 22\}/, 'it claims the request once the holder rolls back');
cmp_ok(time - $t0, '<', 30, 'soon after the rollback, not at the end of its 60 s wait');
$holder->quit;
$node->safe_psql('postgres',
	"SELECT asyncrr.cancel(correlation_id) FROM asyncrr.pending WHERE queue_name = 'q'");

# 3. CALL asyncrr.call returns the worker's reply.
start_query($bg, "CALL asyncrr.call('q', '{\"n\": 3}', timeout => '60 seconds');");
my $worker = $node->background_psql('postgres');
my $claimed = $worker->query_safe(
	"SELECT correlation_id FROM asyncrr.claim('q', wait => '60 seconds')");
$worker->query_safe("SELECT asyncrr.complete('$claimed', '{\"r\": 3}')");
like(finish_query($bg, qr/completed/), qr/\Q$claimed\E\|completed\|\{"r": 3\}\|/,
	'CALL asyncrr.call returns its own reply');
$worker->quit;
$bg->quit;

# 3b. The procedures commit before each sleep: while they sleep they hold
#     no lock on asyncrr.request or its indexes (ALTER TABLE, REINDEX,
#     VACUUM FULL would otherwise wait for them, and every statement queue
#     behind those), and a commit still wakes them.  A sleeping claim(...,
#     wait), a SELECT, keeps its statement's locks (operations.md).
sub sleeper_locks
{
	return $node->safe_psql('postgres', q{
		SELECT coalesce(string_agg(DISTINCT l.relation::regclass::text, ','), '')
		  FROM pg_locks l JOIN pg_stat_activity a USING (pid)
		 WHERE a.application_name = 'sleeper' AND l.relation IS NOT NULL
		   AND l.relation::regclass::text LIKE 'asyncrr.request%'});
}
sub exclusive_lock_ok
{
	return $node->safe_psql('postgres', q{
		SET lock_timeout = '2s';
		BEGIN;
		LOCK TABLE asyncrr.request IN ACCESS EXCLUSIVE MODE;
		ROLLBACK;
		SELECT 'locked'});
}
my $sleeper = $node->background_psql('postgres');
$sleeper->query_safe("SET application_name = 'sleeper'");

start_query($sleeper, "CALL asyncrr.wait_for_work('q', '60 seconds', NULL);");
ok(wait_for_waiters('work'), 'wait_for_work sleeps');
is(sleeper_locks(), '', 'a sleeping wait_for_work holds no lock on asyncrr.request');
is(exclusive_lock_ok(), 'locked', 'ACCESS EXCLUSIVE on asyncrr.request is granted at once');
$node->safe_psql('postgres', "SELECT asyncrr.submit('q', '{\"n\": 31}')");
like(finish_query($sleeper, qr/\bt\b/), qr/\bt\b/, 'and a submit still wakes it: ready');

start_query($sleeper, "CALL asyncrr.call('q', '{\"n\": 32}', timeout => '60 seconds');");
$node->poll_query_until('postgres',
	"SELECT count(*) FROM asyncrr.request WHERE queue_name = 'q' AND state = 'pending' AND payload->>'n' = '32'", '1')
  or die 'the call did not submit';
ok(wait_for_waiters('reply'), 'the call sleeps');
is(sleeper_locks(), '', 'a sleeping CALL asyncrr.call holds no lock on asyncrr.request');
is(exclusive_lock_ok(), 'locked', 'ACCESS EXCLUSIVE on asyncrr.request is granted at once');
my $c32 = $node->safe_psql('postgres', "SELECT correlation_id FROM asyncrr.claim('q', 10) WHERE payload->>'n' = '32'");
$node->safe_psql('postgres', "SELECT asyncrr.complete('$c32', '{\"r\": 32}')");
like(finish_query($sleeper, qr/completed/), qr/completed\|\{"r": 32\}/, 'and the reply still wakes it');

my $id33 = (split /\n/, $sleeper->query_safe(
	"SELECT asyncrr.open_inbox('sleeper'); SELECT asyncrr.submit('q', '{\"n\": 33}')"))[-1];
start_query($sleeper, "CALL asyncrr.wait_for_reply('$id33', '60 seconds', NULL, NULL, NULL);");
ok(wait_for_waiters('reply'), 'wait_for_reply sleeps');
is(sleeper_locks(), '', 'a sleeping wait_for_reply holds no lock on asyncrr.request');
$node->safe_psql('postgres', "SELECT count(*) FROM asyncrr.claim('q', 10)");
$node->safe_psql('postgres', "SELECT asyncrr.complete('$id33', '{\"r\": 33}')");
like(finish_query($sleeper, qr/completed/), qr/completed\|\{"r": 33\}/, 'and the reply still wakes it');

# in a transaction block a procedure cannot commit: it keeps its locks, as
# before, and still works
start_query($sleeper, "BEGIN; CALL asyncrr.wait_for_work('q', '60 seconds', NULL);");
ok(wait_for_waiters('work'), 'wait_for_work sleeps in a transaction block');
like(sleeper_locks(), qr/asyncrr\.request/, 'holding its look\'s locks there');
$node->safe_psql('postgres', "SELECT asyncrr.submit('q', '{\"n\": 34}')");
like(finish_query($sleeper, qr/\bt\b/), qr/\bt\b/, 'and is woken');
$sleeper->query_safe('COMMIT');
$sleeper->quit;
$node->safe_psql('postgres',
	"SELECT asyncrr.cancel(correlation_id) FROM asyncrr.pending WHERE queue_name = 'q'");

# 4. A waiter that is cancelled or terminated
#    leaves nothing behind.  (A fresh session for each: psql is not reused
#    after an error.)
sub waiter_session
{
	my ($inbox) = @_;
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	my @out = split /\n/, $s->query_safe(
		"SELECT asyncrr.open_inbox('$inbox'); SELECT asyncrr.submit('q', '{}'); SELECT pg_backend_pid()");
	return ($s, $out[1], $out[2]);
}

my ($s1, $id1, $pid1) = waiter_session('cancelled');
start_query($s1, "SELECT * FROM asyncrr.wait('$id1', '60 seconds');");
wait_for_waiters('reply');
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid1)");
like(finish_query($s1, qr/canceling/, 'stderr'), qr/canceling statement due to user request/,
	'a waiter responds to query cancel');
is(waiters(), '', 'a cancelled waiter leaves no slot behind');
$s1->{run}->kill_kill;

# (statement_timeout: sql/wait.sql)
my ($s3, $id3, $pid3) = waiter_session('terminated');
start_query($s3, "SELECT * FROM asyncrr.wait('$id3', '60 seconds');");
wait_for_waiters('reply');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid3)");
ok(wait_for_waiters(''), 'a terminated waiter leaves no slot behind');
$s3->{run}->kill_kill;
$node->safe_psql('postgres',
	"SELECT asyncrr.cancel(correlation_id) FROM asyncrr.pending WHERE queue_name = 'q'");

# 5. With every slot taken, waiters poll instead of failing.
$node->append_conf('postgresql.conf', 'asyncrr.max_waiters = 1');
$node->restart;
AsyncrrTest::wait_for_worker($node);
my @bgs;
my @ids;
for my $n (1 .. 2)
{
	my $s = $node->background_psql('postgres');
	my $i = (split /\n/, $s->query_safe(
		"SELECT asyncrr.open_inbox('poller-$n'); SELECT asyncrr.submit('q', '{\"p\": $n}')"))[-1];
	start_query($s, "SELECT status FROM asyncrr.wait('$i', '60 seconds');");
	push @bgs, $s;
	push @ids, $i;
}
ok(wait_for_waiters('reply'), 'one waiter holds the only slot');
$node->safe_psql('postgres', "SELECT count(*) FROM asyncrr.claim('q', 10)");
$node->safe_psql('postgres', "SELECT asyncrr.complete('$_', '{}')") for @ids;
like(finish_query($_, qr/completed/), qr/completed/, 'a waiter gets its reply with the registry full')
  for @bgs;
$_->quit for @bgs;

$node->stop;
done_testing();
