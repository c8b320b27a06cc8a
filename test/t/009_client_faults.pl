# What the clients of asyncrr can do to it (issue 11, plan items 2 to 4):
#   a. many concurrent round trips (CALL asyncrr.call, and submit + wait)
#      against batch workers all get their own reply, none "already taken";
#   b. a worker killed while its claim sleeps leaves a backend that exits at
#      once and claims nothing;
#   c. a caller of CALL asyncrr.call that is killed, hits statement_timeout
#      or is cancelled ends its request as cancelled at once (its backend
#      exits at once when killed), and the worker holding it gets "late";
#   d. a requester killed in asyncrr.wait leaves a backend that exits at once;
#   e. CALL asyncrr.call, asyncrr.wait_for_work and asyncrr.wait_for_reply
#      hold no snapshot while they sleep, and wake when they should.
# The clients are test/clients/client_faults.py, each on its own connection.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use AsyncrrTest;

my $python = AsyncrrTest::python();
my $client = "$ENV{TESTDIR}/test/clients/client_faults.py";

my $node = AsyncrrTest::new_node('faults');
$node->start;
AsyncrrTest::install($node);
my $connstr = $node->connstr('postgres');

$node->safe_psql('postgres', q{
	SELECT asyncrr.create_queue(q, default_timeout => '1 minute', lease => '1 minute')
	  FROM unnest(ARRAY['qa', 'qa2', 'qb', 'qc', 'qc2', 'qc3', 'qc4', 'qc5', 'qd',
	                    'qe', 'qe2', 'qe3', 'qe4']) q;
	CREATE ROLE rr_caller LOGIN IN ROLE asyncrr_requester;
	CREATE ROLE rr_worker LOGIN IN ROLE asyncrr_worker;
	SELECT asyncrr.grant_queue('qa', 'rr_caller', 'submit');
	SELECT asyncrr.grant_queue('qa', 'rr_worker', 'claim');
});

# A client running @sql in turn (client_faults.py hold), as application $app.
sub hold
{
	my ($app, @sql) = @_;
	my $h = { app => $app, out => '', err => '' };
	$h->{timer} = IPC::Run::timer($PostgreSQL::Test::Utils::timeout_default);
	$h->{run} = IPC::Run::start([ $python, $client, 'hold', "$connstr application_name=$app", @sql ],
		'>', \$h->{out}, '2>', \$h->{err}, $h->{timer});
	return $h;
}

# The PID of $h's backend once it sleeps in a statement, or '' if it does
# not within 10 s or its statements end first (e.g. with an error).
sub sleeping_pid
{
	my ($h) = @_;
	my $end = time + 10;
	while (time < $end)
	{
		my $pid = $node->safe_psql('postgres', qq{
			SELECT pid FROM pg_stat_activity
			 WHERE application_name = '$h->{app}' AND state = 'active'
			   AND (wait_event_type = 'Extension' OR pid IN (SELECT pid FROM asyncrr.waiters))});
		return $pid if $pid ne '';
		$h->{run}->pump_nb if $h->{run}->pumpable;
		if ($h->{out} =~ /DONE/ || !$h->{run}->pumpable)
		{
			diag("$h->{app} did not sleep: $h->{out}$h->{err}");
			return '';
		}
		usleep(50_000);
	}
	diag("$h->{app} did not sleep within 10 s");
	return '';
}

# Waits up to $secs for $h to print a line matching $pattern; returns it or ''.
sub output
{
	my ($h, $pattern, $secs) = @_;
	$h->{timer}->start($secs);
	return '' unless $h->{run}->pumpable || $h->{out} =~ $pattern;
	pump_until($h->{run}, $h->{timer}, \$h->{out}, $pattern) or return '';
	my ($line) = $h->{out} =~ /^(.*$pattern.*)$/m;
	return $line;
}

sub kill9
{
	my ($h) = @_;
	$h->{run}->signal('KILL');
	eval { $h->{run}->finish };
}

# Does $sql return $expected within $secs?  (AsyncrrTest::within)
sub within { return AsyncrrTest::within($node, @_); }

# Does $sql keep returning $expected for $secs?  Polls every 50 ms.
sub stays
{
	my ($secs, $sql, $expected) = @_;
	my $end = time + $secs;
	while (time < $end)
	{
		my $got = $node->safe_psql('postgres', $sql);
		if ($got ne $expected)
		{
			diag("got \"$got\", expected \"$expected\" from: $sql");
			return 0;
		}
		usleep(50_000);
	}
	return 1;
}

sub backend_gone
{
	my ($pid, $secs) = @_;
	return $pid ne ''
	  && within($secs, "SELECT count(*) FROM pg_stat_activity WHERE pid = $pid", '0');
}

sub state_of
{
	my ($id) = @_;
	return $node->safe_psql('postgres',
		"SELECT state || ' ' || attempt FROM asyncrr.request WHERE correlation_id = '$id'");
}

# The id of the one request of $queue whose payload has this tag.
sub request_id
{
	my ($queue, $tag) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT correlation_id FROM asyncrr.request
		 WHERE queue_name = '$queue' AND payload->>'tag' = '$tag'});
}

# Terminates what today's code leaves behind, so one check's leftovers do
# not hold up the next.
sub terminate
{
	my ($app) = @_;
	$node->safe_psql('postgres',
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '$app'");
}

###########################################################################
# a. Concurrency: every round trip gets its own reply.

sub load
{
	my ($what, $caller, $worker, $queue, $mode, $callers, $per_caller) = @_;
	my ($out, $err) = ('', '');
	eval {
		IPC::Run::run([ $python, $client, 'load', $caller, $worker, $queue, $mode, $callers, $per_caller ],
			'>', \$out, '2>', \$err, IPC::Run::timeout(120));
	};
	diag("$what: $@") if $@;
	diag("$what: $err") if $err ne '';
	my %got = map { split /=/ } split ' ', $out;
	my $trips = $callers * $per_caller;
	is($got{errors}, 0, "$what: no round trip fails ($trips from $callers connections)");
	is($got{completed}, $trips, "$what: every round trip returns completed with its own payload echoed");
	is($got{worker_errors}, 0, "$what: every complete_many of the workers completes");
}

my $t0 = time;
load('CALL asyncrr.call as asyncrr_requester',
	"$connstr user=rr_caller", "$connstr user=rr_worker", 'qa', 'call', 16, 100);
load('submit and wait from session inboxes',
	$connstr, $connstr, 'qa2', 'wait', 16, 100);
note sprintf('the loads took %.1f s', time - $t0);

###########################################################################
# b. A worker killed while its claim sleeps.

my $h = hold('fault_b', "SELECT correlation_id FROM asyncrr.claim('qb', 1, wait => '60 seconds')");
my $pid = sleeping_pid($h);
ok($pid ne '', 'b: the claim sleeps');
kill9($h);
ok(backend_gone($pid, 3), 'b: the backend of a killed worker exits while its claim sleeps');
my $id = $node->safe_psql('postgres', "SELECT asyncrr.submit('qb', '{\"tag\": \"b\"}')");
ok(stays(1, "SELECT state || ' ' || attempt FROM asyncrr.request WHERE correlation_id = '$id'",
		'pending 0'),
	'b: a request submitted afterwards stays pending: the dead worker\'s backend does not claim it');
is($node->safe_psql('postgres', qq{
	SELECT attempt || ' ' || asyncrr.complete(correlation_id, '{}', attempt)
	  FROM asyncrr.claim('qb', 1)}),
	'1 completed', 'b: a live worker claims it (first attempt) and completes it');
terminate('fault_b');

###########################################################################
# c. A caller of CALL asyncrr.call that goes away ends its request.

# c1. killed
$h = hold('fault_c1', q{CALL asyncrr.call('qc', '{"tag": "kill"}', timeout => '60 seconds')});
$pid = sleeping_pid($h);
ok($pid ne '', 'c1: CALL asyncrr.call sleeps');
$id = request_id('qc', 'kill');
kill9($h);
ok(backend_gone($pid, 3), 'c1: the backend of a killed caller exits');
ok(within(3, "SELECT state FROM asyncrr.request WHERE correlation_id = '$id'", 'cancelled'),
	'c1: the request of a killed caller is cancelled');
terminate('fault_c1');

# c2. statement_timeout
$h = hold('fault_c2', "SET statement_timeout = '500ms'",
	q{CALL asyncrr.call('qc2', '{"tag": "timeout"}', timeout => '60 seconds')});
like(output($h, qr/^(ERROR|ROW)/m, 10), qr/^ERROR 57014 canceling statement due to statement timeout/,
	'c2: CALL asyncrr.call ends at statement_timeout with 57014');
is(state_of(request_id('qc2', 'timeout')), 'cancelled 0',
	'c2: its request is cancelled by the time the error arrives');
eval { $h->{run}->finish };

# c3. pg_cancel_backend
$h = hold('fault_c3', q{CALL asyncrr.call('qc3', '{"tag": "cancel"}', timeout => '60 seconds')});
$pid = sleeping_pid($h);
ok($pid ne '', 'c3: CALL asyncrr.call sleeps');
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
like(output($h, qr/^(ERROR|ROW)/m, 10), qr/^ERROR 57014 canceling statement due to user request/,
	'c3: a cancelled CALL asyncrr.call fails with 57014');
is(state_of(request_id('qc3', 'cancel')), 'cancelled 0',
	'c3: its request is cancelled by the time the error arrives');
eval { $h->{run}->finish };

# c4. a request claimed when its caller is cancelled: the worker is late
$h = hold('fault_c4', q{CALL asyncrr.call('qc4', '{"tag": "late"}', timeout => '60 seconds')});
$pid = sleeping_pid($h);
ok($pid ne '', 'c4: CALL asyncrr.call sleeps');
my ($claimed, $attempt) = split /\|/,
  $node->safe_psql('postgres', "SELECT correlation_id, attempt FROM asyncrr.claim('qc4', 1)");
is($claimed, request_id('qc4', 'late'), 'c4: a worker claims the request');
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)") if $pid ne '';
like(output($h, qr/^(ERROR|ROW)/m, 10), qr/^ERROR 57014/, 'c4: the cancelled CALL fails with 57014');
is(state_of($claimed), 'cancelled 1', 'c4: the claimed request is cancelled');
is($node->safe_psql('postgres', "SELECT asyncrr.complete('$claimed', '{}', $attempt)"),
	'late', 'c4: the worker completing it afterwards is late');
eval { $h->{run}->finish };

# c5. cancelled while a worker's transaction holds the request (a lease
# extension not yet committed): the CALL cannot wait for it, so the
# background worker cancels the request once that transaction ends
$h = hold('fault_c5', q{CALL asyncrr.call('qc5', '{"tag": "held"}', timeout => '60 seconds')});
$pid = sleeping_pid($h);
ok($pid ne '', 'c5: CALL asyncrr.call sleeps');
my $held = $node->background_psql('postgres');
($claimed, $attempt) = split /\|/,
  $held->query_safe("SELECT correlation_id, attempt FROM asyncrr.claim('qc5', 1)");
$held->query_safe("BEGIN; SELECT asyncrr.extend_lease('$claimed', '1 minute', $attempt)");
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)") if $pid ne '';
like(output($h, qr/^(ERROR|ROW)/m, 10), qr/^ERROR 57014/, 'c5: the cancelled CALL fails with 57014 at once');
is(state_of($claimed), 'claimed 1', 'c5: the held request is not cancelled while held');
$held->query_safe('COMMIT');
ok($node->poll_query_until('postgres',
	"SELECT state FROM asyncrr.request WHERE correlation_id = '$claimed'", 'cancelled'),
	'c5: the background worker cancels it once the worker\'s transaction ends');
is($held->query_safe("SELECT asyncrr.complete('$claimed', '{}', $attempt)"),
	'late', 'c5: the worker completing it afterwards is late');
$held->quit;
eval { $h->{run}->finish };

###########################################################################
# d. A requester killed in asyncrr.wait.

$h = hold('fault_d', 'SELECT asyncrr.open_inbox()', q{SELECT asyncrr.submit('qd', '{"tag": "d"}')},
	"SELECT status FROM asyncrr.wait(%s, '60 seconds')");
$pid = sleeping_pid($h);
ok($pid ne '', 'd: asyncrr.wait sleeps');
kill9($h);
ok(backend_gone($pid, 3), 'd: the backend of a requester killed in asyncrr.wait exits');
terminate('fault_d');

###########################################################################
# e. Sleeping without a snapshot.

sub no_snapshot
{
	my ($pid) = @_;
	return $pid ne ''
	  && within(3, "SELECT backend_xmin IS NULL FROM pg_stat_activity WHERE pid = $pid", 't');
}

# e1. CALL asyncrr.call
$h = hold('fault_e1', q{CALL asyncrr.call('qe', '{"tag": "e1"}', timeout => '60 seconds')});
$pid = sleeping_pid($h);
ok(no_snapshot($pid), 'e1: CALL asyncrr.call sleeps with no snapshot (backend_xmin NULL)');
# asyncrr.waiters shows an administrator every waiter of this database, and
# another role none of this superuser's: asyncrr.list_waiters() filters
# itself (0.2's _waiters(), which did not, is gone: sql/security.sql)
is($node->safe_psql('postgres', "SELECT count(*) FROM asyncrr.waiters WHERE pid = $pid"),
	'1', 'e1: an administrator sees the waiter');
is($node->safe_psql('postgres', "SELECT count(*) FROM asyncrr.waiters", extra_params => [ '-U', 'rr_caller' ]),
	'0', "e1: another role does not see it");
$node->safe_psql('postgres',
	q{SELECT asyncrr.complete(correlation_id, '{"r": "e1"}') FROM asyncrr.claim('qe', 1)});
like(output($h, qr/^(ERROR|ROW)/m, 10), qr/^ROW [-0-9a-f]+\|completed\|\{"r": "e1"\}\|$/,
	'e1: and returns its reply');
terminate('fault_e1');

# e2. CALL asyncrr.wait_for_work, woken by a submit
$h = hold('fault_e2', "CALL asyncrr.wait_for_work('qe2', '30 seconds')");
$pid = sleeping_pid($h);
ok(no_snapshot($pid), 'e2: CALL asyncrr.wait_for_work sleeps with no snapshot');
$id = $node->safe_psql('postgres', q{SELECT asyncrr.submit('qe2', '{"tag": "e2"}')});
$t0 = time;
my $got = output($h, qr/^(ERROR|ROW)/m, 10);
my $took = time - $t0;
is($got, 'ROW t', 'e2: a submit wakes it with ready = true');
ok($got eq 'ROW t' && $took < 1, sprintf('e2: within a second of the submit (%.2f s)', $took));
is(state_of($id), 'pending 0', 'e2: it claims nothing');
terminate('fault_e2');

# e3. CALL asyncrr.wait_for_work with nothing to do
$t0 = time;
$h = hold('fault_e3', "CALL asyncrr.wait_for_work('qe3', '1 second')");
$got = output($h, qr/^(ERROR|ROW)/m, 10);
$took = time - $t0;
is($got, 'ROW f', 'e3: with no work it returns ready = false');
ok($got eq 'ROW f' && $took >= 1, sprintf('e3: at its timeout (%.2f s)', $took));
eval { $h->{run}->finish };

# e4. CALL asyncrr.wait_for_reply
$h = hold('fault_e4', 'SELECT asyncrr.open_inbox()', q{SELECT asyncrr.submit('qe4', '{"tag": "e4"}')},
	"CALL asyncrr.wait_for_reply(%s, '30 seconds')");
$pid = sleeping_pid($h);
ok(no_snapshot($pid), 'e4: CALL asyncrr.wait_for_reply sleeps with no snapshot');
$node->safe_psql('postgres',
	q{SELECT asyncrr.complete(correlation_id, '{"r": "e4"}') FROM asyncrr.claim('qe4', 1)});
is(output($h, qr/^(ERROR|ROW)/m, 10), 'ROW completed|{"r": "e4"}|',
	'e4: it returns status completed and the reply once a worker completes it');
terminate('fault_e4');

$node->stop;
done_testing();
