# Issue 16 with the real background worker (asyncrr.precision 100ms):
# a delayed request wakes a sleeping claim(wait) at its time, not before;
# the end of a key's head wakes a claim sleeping on its queue; a scatter's
# straggler times out at the gather's deadline; and a gather a client held
# while the worker ended one of its parts still ends, at the worker's next
# pass.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use AsyncrrTest;

my $node = AsyncrrTest::new_node('later');
$node->start;
AsyncrrTest::install($node);
$node->safe_psql('postgres', q{
	SELECT asyncrr.create_queue('d', default_timeout => '5 minutes', lease => '5 minutes');
	SELECT asyncrr.create_queue('k', default_timeout => '5 minutes', lease => '5 minutes');
	SELECT asyncrr.create_queue('sa', default_timeout => '5 minutes', lease => '5 minutes');
	SELECT asyncrr.create_queue('sb', default_timeout => '5 minutes', lease => '5 minutes');
});

sub start_query
{
	my ($bg, $sql) = @_;
	$bg->query_until(qr/started/, "\\echo started\n$sql\n");
}

sub finish_query
{
	my ($bg, $pattern) = @_;
	pump_until($bg->{run}, $bg->{timeout}, \$bg->{stdout}, $pattern);
	my $out = $bg->{stdout};
	$bg->{stdout} = '';
	return $out;
}

# 1. A delayed request wakes a sleeping claim at its time.
my $bg = $node->background_psql('postgres');
start_query($bg,
	"SELECT payload::text || ' ' || (clock_timestamp() >= (payload->>'at')::timestamptz)"
	  . " FROM asyncrr.claim('d', wait => '60 seconds');");
ok($node->poll_query_until('postgres', "SELECT count(*) FROM asyncrr.waiters", '1'),
	'the claim sleeps');
my $t0 = time;
$node->safe_psql('postgres', q{
	SELECT asyncrr.submit('d', jsonb_build_object('at', clock_timestamp() + interval '2 seconds'),
	                      not_before => clock_timestamp() + interval '2 seconds')});
my $out = finish_query($bg, qr/"at".*\s(true|false)/);
my $took = time - $t0;
like($out, qr/ true/, 'claimed no earlier than its not_before');
cmp_ok($took, '>=', 1.9, "not woken before its time ($took s)");
cmp_ok($took, '<', 2 + 0.1 + 3, "woken at its time, within the precision and some slack ($took s)");

# 2. The end of a key's head wakes a claim sleeping on its queue.
$node->safe_psql('postgres', q{
	SELECT asyncrr.submit('k', '{"n": 1}', ordering_key => 'acct', correlation_id => '15000000-0000-0000-0000-000000000001');
	SELECT asyncrr.submit('k', '{"n": 2}', ordering_key => 'acct');
	SELECT count(*) FROM asyncrr.claim('k');});
start_query($bg, "SELECT payload::text FROM asyncrr.claim('k', wait => '60 seconds');");
ok($node->poll_query_until('postgres', "SELECT count(*) FROM asyncrr.waiters", '1'),
	'a claim sleeps while the head of the only key is claimed');
$t0 = time;
$node->safe_psql('postgres',
	"SELECT asyncrr.complete('15000000-0000-0000-0000-000000000001', '{}')");
like(finish_query($bg, qr/"n"/), qr/\{"n": 2\}/, 'the next of the key is claimed');
cmp_ok(time - $t0, '<', 30, 'woken by the head\'s completion, not by its 60 s wait');

# 3. A straggler: the worker times out the part at the gather's deadline,
#    and the gather with it.
my $gather = $bg->query_safe(q{
	SELECT asyncrr.open_inbox('gatherer');
	UNLISTEN *;
	SELECT asyncrr.scatter(ARRAY['sa', 'sb'], '{"q": 1}', timeout => '2 seconds');});
$gather = (split /\n/, $gather)[-1];
$node->safe_psql('postgres',
	"SELECT asyncrr.complete(correlation_id, '{\"a\": 1}') FROM asyncrr.claim('sa')");
$out = $bg->query_safe(
	"SELECT status || ' ' || reply::text FROM asyncrr.wait('$gather', '20 seconds')");
like($out, qr/^timed_out \{"sa": \{"reply": \{"a": 1\}, "status": "completed"\}, "sb": \{"status": "timed_out"\}\}$/,
	'the gather times out with its straggler');

# 4. The worker times out one part while a client, completing the other,
#    holds the gather: it does not wait for the client, and ends the gather
#    at its next pass after the client's commit.
$gather = $bg->query_safe(
	"SELECT asyncrr.scatter(ARRAY['sa', 'sb'], '{\"q\": 2}', timeout => '2 seconds')");
$gather = (split /\n/, $gather)[-1];
my $worker = $node->background_psql('postgres');
$worker->query_safe(q{
	BEGIN;
	SELECT asyncrr.complete(correlation_id, '{"a": 2}') FROM asyncrr.claim('sa');});
ok( AsyncrrTest::within(
		$node, 20,
		"SELECT state FROM asyncrr.parts('$gather') WHERE queue_name = 'sb'", 'timed_out'),
	'the worker times out the unheld part while the gather is held');
is($node->safe_psql('postgres', "SELECT state FROM asyncrr.status('$gather')"),
	'pending', 'the gather waits for its held part');
$worker->query_safe('COMMIT');
$t0 = time;
$out = $bg->query_safe(
	"SELECT status || ' ' || reply::text FROM asyncrr.wait('$gather', '20 seconds')");
like($out, qr/^timed_out \{"sa": \{"reply": \{"a": 2\}, "status": "completed"\}, "sb": \{"status": "timed_out"\}\}$/,
	'then the worker ends it, its reply as its parts ended');
cmp_ok(time - $t0, '<', 10, 'at its next pass');

# 5. The worker dead-letters a part whose lease ran out (its last attempt)
#    while a client, completing the other part, holds the gather: it does
#    not wait, and ends the gather at its next pass, not at its deadline an
#    hour away.
$node->safe_psql('postgres',
	"SELECT asyncrr.create_queue('once', default_timeout => '1 hour', lease => '1 second', max_attempts => 1)");
$gather = $bg->query_safe(
	"SELECT asyncrr.scatter(ARRAY['sa', 'once'], '{\"q\": 3}', timeout => '1 hour')");
$gather = (split /\n/, $gather)[-1];
$node->safe_psql('postgres', "SELECT count(*) FROM asyncrr.claim('once')");
$worker->query_safe(q{
	BEGIN;
	SELECT asyncrr.complete(correlation_id, '{"a": 3}') FROM asyncrr.claim('sa');});
ok( AsyncrrTest::within(
		$node, 20,
		"SELECT state FROM asyncrr.parts('$gather') WHERE queue_name = 'once'", 'dead_lettered'),
	'the worker dead-letters the part whose lease ran out while the gather is held');
$worker->query_safe('COMMIT');
$t0 = time;
$out = $bg->query_safe(
	"SELECT status || ' ' || reply::text FROM asyncrr.wait('$gather', '30 seconds')");
like($out, qr/^failed \{"sa": \{"reply": \{"a": 3\}, "status": "completed"\}, "once": \{"error": "lease expired on attempt 1 of 1", "status": "dead_lettered"\}\}$/,
	'the gather ends failed, its reply as its parts ended');
cmp_ok(time - $t0, '<', 10, 'at the worker\'s next pass, not at its deadline');

# 6. A requester holding its inbox's row in an open transaction (open_inbox
#    of a durable inbox whose last holder has exited) does not stall the
#    worker: deadlines still pass.
$node->safe_psql('postgres', "SELECT asyncrr.open_inbox('stall-me')");
my $stall = $node->background_psql('postgres');
$stall->query_safe("BEGIN; SELECT asyncrr.open_inbox('stall-me');");
my $victim = $node->safe_psql('postgres',
	"SELECT asyncrr.submit('d', '{\"v\": 1}', timeout => '1 second')");
ok( AsyncrrTest::within(
		$node, 20, "SELECT state FROM asyncrr.status('$victim')", 'timed_out'),
	'a request times out while another session holds an inbox row locked');
$stall->query_safe('ROLLBACK');
$stall->quit;
$worker->quit;
$bg->quit;

done_testing();
