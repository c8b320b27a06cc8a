# The asyncrr background worker as a process: visible in pg_stat_activity,
# back after SIGKILL (a crash restart) and after SIGTERM, survives a server
# restart with live requests, and logs a failing pass instead of dying.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes;
use AsyncrrTest;

my $node = AsyncrrTest::new_node('worker');
$node->start;
AsyncrrTest::install($node);

# Visible, with asyncrr in its backend type and application name; so is
# the dispatcher of notifications (007_notify.pl).
$node->poll_query_until('postgres',
	"SELECT count(*) = 2 FROM pg_stat_activity WHERE backend_type LIKE 'asyncrr%'");
is( $node->safe_psql('postgres',
		"SELECT backend_type || '|' || application_name || '|' || datname
		   FROM pg_stat_activity WHERE backend_type LIKE 'asyncrr%' ORDER BY 1"),
	"asyncrr dispatcher|asyncrr dispatcher|postgres\nasyncrr worker|asyncrr worker|postgres",
	'worker and dispatcher visible in pg_stat_activity');

$node->safe_psql('postgres',
	"SELECT asyncrr.create_queue('q', default_timeout => '1 second', lease => '1 second')");

# SIGKILL: the postmaster restarts the cluster, the worker comes back and
# still ends requests at their deadline.
my $pid = AsyncrrTest::worker_pid($node);
kill 'KILL', $pid;
my $new_pid = AsyncrrTest::wait_for_worker($node, $pid);
isnt($new_pid, $pid, 'worker back after SIGKILL');
my $id = $node->safe_psql('postgres', "SELECT asyncrr.submit('q', '{}')");
ok(AsyncrrTest::wait_for_state($node, $id, 'timed_out'),
	'worker restarted after SIGKILL still times requests out');

# SIGTERM (pg_terminate_backend): the worker ends cleanly and is started
# again within seconds; no crash restart.
my $bgwriter_before = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'background writer'");
$pid = AsyncrrTest::worker_pid($node);
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
$new_pid = AsyncrrTest::wait_for_worker($node, $pid);
isnt($new_pid, $pid, 'worker back after SIGTERM');
is( $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'background writer'"),
	$bgwriter_before,
	'SIGTERM of the worker is no crash: the cluster was not restarted');

# A query cancel (SIGINT) ends the worker's pass at most, never the worker.
$pid = AsyncrrTest::worker_pid($node);
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
sleep 2;
is(AsyncrrTest::worker_pid($node), $pid, 'a cancelled worker keeps running');

# A server restart with live requests: pending ones still time out after it,
# and a claim whose lease ran out during the downtime goes back to pending.
my $pending = $node->safe_psql('postgres',
	"SELECT asyncrr.submit('q', '{\"n\": 1}', timeout => '3 seconds')");
my $claimed = $node->safe_psql('postgres',
	"SELECT asyncrr.submit('q', '{\"n\": 2}', timeout => '1 hour')");
$node->safe_psql('postgres', "SELECT count(*) FROM asyncrr.claim('q', 10, lease => '1 second')");
$node->restart;
AsyncrrTest::wait_for_worker($node);
ok(AsyncrrTest::wait_for_state($node, $pending, 'timed_out'),
	'a request live across a restart times out after it');
ok(AsyncrrTest::wait_for_state($node, $claimed, 'pending'),
	'a claim whose lease ran out across a restart goes back to pending');
is( $node->safe_psql('postgres',
		"SELECT reason || ' ' || attempt FROM asyncrr.dead_letters WHERE correlation_id = '$pending'"),
	'timeout 1',
	'its dead letter keeps the attempt');

# An error inside a pass is logged and retried on the next pass: the worker
# does not exit.
$pid = AsyncrrTest::worker_pid($node);
my $log_offset = -s $node->logfile;
$node->safe_psql('postgres',
	"ALTER FUNCTION asyncrr._expire_deadlines(integer) RENAME TO _expire_deadlines_away");
$id = $node->safe_psql('postgres',
	"SELECT asyncrr.submit('q', '{}', timeout => '1 second')");
ok( $node->wait_for_log(qr/function asyncrr\._expire_deadlines\(integer\) does not exist/,
		$log_offset),
	'a failing pass is logged');
is(AsyncrrTest::worker_pid($node), $pid, 'the worker keeps running after a failing pass');
$node->safe_psql('postgres',
	"ALTER FUNCTION asyncrr._expire_deadlines_away(integer) RENAME TO _expire_deadlines");
ok(AsyncrrTest::wait_for_state($node, $id, 'timed_out'),
	'the next pass after the error does the work');

# SIGHUP: a reloaded setting reaches the worker (retention 1s removes a
# request whose reply was taken and whose dead letter was purged).
$id = $node->safe_psql('postgres',
	"SELECT asyncrr.submit('q', '{}', timeout => '1 second', correlation_id => gen_random_uuid())");
ok(AsyncrrTest::wait_for_state($node, $id, 'timed_out'), 'request timed out');
$node->safe_psql('postgres',
	"UPDATE asyncrr.request SET taken_at = now() WHERE correlation_id = '$id';
	 SELECT asyncrr.purge_dead_letters('0')");
is($node->safe_psql('postgres', "SELECT count(*) FROM asyncrr.request WHERE correlation_id = '$id'"),
	'1', 'kept under the default retention of 1 hour');
$node->append_conf('postgresql.conf', "asyncrr.retention = '1s'");
$node->reload;
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM asyncrr.request WHERE correlation_id = '$id'"),
	'a setting changed by SIGHUP is used by the worker');

# A request past its deadline that a client holds locked is skipped and
# looked at again one precision step (100ms here) later; the worker does not
# spin while the lock is held.
$id = $node->safe_psql('postgres', "SELECT asyncrr.submit('q', '{}', timeout => '1 second')");
my $locker = $node->background_psql('postgres');
$locker->query_safe("BEGIN; SELECT 1 FROM asyncrr.request WHERE correlation_id = '$id' FOR UPDATE");
sleep 2;    # past the deadline, lock held
my $before = $node->safe_psql('postgres', "SELECT pg_stat_get_db_xact_commit(oid) FROM pg_database WHERE datname = 'postgres'");
sleep 3;
my $after = $node->safe_psql('postgres', "SELECT pg_stat_get_db_xact_commit(oid) FROM pg_database WHERE datname = 'postgres'");
cmp_ok($after - $before, '<', 1000,
	'no busy loop over a locked overdue request (' . ($after - $before) . ' commits in 3 s)');
$locker->query_safe('COMMIT');
$locker->quit;
ok(AsyncrrTest::wait_for_state($node, $id, 'timed_out'), 'ended once the lock is released');

# A primary kept read-only (default_transaction_read_only, as
# pg_auto_failover does for seconds after a promotion): the worker waits
# without an ERROR, and ends what came due once writes are allowed.
$id = $node->safe_psql('postgres', "SELECT asyncrr.submit('q', '{}', timeout => '1 second')");
my $log_at = -s $node->logfile;
$node->safe_psql('postgres', 'ALTER SYSTEM SET default_transaction_read_only = on; SELECT pg_reload_conf()');
sleep 3;    # past the deadline, read-only
is($node->safe_psql('postgres', "SELECT state FROM asyncrr.request WHERE correlation_id = '$id'"),
	'pending', 'nothing ended while read-only');
unlike(slurp_file($node->logfile, $log_at), qr/ERROR:.*read-only transaction/,
	'the worker logged no read-only ERROR');
$node->safe_psql('postgres',
	'SET default_transaction_read_only = off; ALTER SYSTEM RESET default_transaction_read_only; SELECT pg_reload_conf()');
ok(AsyncrrTest::wait_for_state($node, $id, 'timed_out'), 'ended once writes are allowed');

# The worker ends with the server: a fast shutdown is not held up by it.
# (pg_ctl waits for every process of the server to exit, for at most its
# timeout, 60 s, and then fails; a shutdown with nothing to wait for takes
# about a second.)
$pid = AsyncrrTest::worker_pid($node);
isnt($pid, '', 'the worker runs before the shutdown');
my $t0 = Time::HiRes::time();
my $stopped = $node->stop('fast', fail_ok => 1);
my $took = Time::HiRes::time() - $t0;
ok($stopped, 'a fast shutdown with the worker running succeeds');
cmp_ok($took, '<', 15, sprintf('it is not held up by the worker (%.1f s)', $took));
ok(!kill(0, $pid), 'the worker has exited with the server');

done_testing();
