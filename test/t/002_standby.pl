# On a hot standby the asyncrr worker does not run and nothing is ended;
# once the standby is promoted, its worker ends what is due.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AsyncrrTest;

my $primary = AsyncrrTest::new_node('primary', allows_streaming => 1);
$primary->start;
AsyncrrTest::install($primary);
$primary->safe_psql('postgres',
	"SELECT asyncrr.create_queue('q', default_timeout => '1 hour', lease => '1 hour')");
$primary->backup('base');

my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;

# Requests with deadlines a few seconds away, one pending and one claimed,
# and a reply waiting in a durable inbox.
$primary->safe_psql('postgres', q{
	SELECT asyncrr.open_inbox('standby-test');
	SELECT asyncrr.submit('q', '{"n": 1}', timeout => '4 seconds',
	                      correlation_id => '00000000-0000-0000-0000-000000000001');
	SELECT count(*) FROM asyncrr.claim('q');
	SELECT asyncrr.submit('q', '{"n": 3}', correlation_id => '00000000-0000-0000-0000-000000000003');
	SELECT count(*) FROM asyncrr.claim('q');
	SELECT asyncrr.complete('00000000-0000-0000-0000-000000000003', '{"r": 3}');
	SELECT asyncrr.submit('q', '{"n": 2}', timeout => '4 seconds',
	                      correlation_id => '00000000-0000-0000-0000-000000000002');
	SELECT asyncrr.close_inbox();
});
$primary->wait_for_catchup($standby);
# the primary goes away before the deadlines
$primary->stop('immediate');

is($standby->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'asyncrr worker'"),
	'0', 'no asyncrr worker on a hot standby');

# wait until the deadlines are well past
$standby->poll_query_until('postgres',
	"SELECT now() > max(deadline) + interval '1 second' FROM asyncrr.request
	  WHERE correlation_id IN ('00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-000000000002')")
  or die 'deadlines never passed';
is( $standby->safe_psql('postgres',
		"SELECT string_agg(state, ',' ORDER BY correlation_id) FROM asyncrr.request"),
	'claimed,pending,completed',
	'the standby changes nothing past the deadlines');

$standby->promote;
AsyncrrTest::wait_for_worker($standby);
ok(AsyncrrTest::wait_for_state($standby, '00000000-0000-0000-0000-000000000001', 'timed_out'),
	'after promotion the worker times out the pending request');
ok(AsyncrrTest::wait_for_state($standby, '00000000-0000-0000-0000-000000000002', 'timed_out'),
	'and the claimed one');
is( $standby->safe_psql('postgres',
		"SELECT string_agg(reason || ':' || attempt, ',' ORDER BY correlation_id) FROM asyncrr.dead_letters"),
	'timeout:1,timeout:0',
	'with their dead letters');

# The reply recorded on the old primary survived the failover and is taken once.
is( $standby->safe_psql('postgres', q{
		SELECT asyncrr.open_inbox('standby-test');
		SELECT string_agg(correlation_id || ' ' || status, ',' ORDER BY finished_at)
		  FROM asyncrr.take_replies();
	}),
	"asyncrr.standby-test\n"
	  . '00000000-0000-0000-0000-000000000003 completed,'
	  . '00000000-0000-0000-0000-000000000001 timed_out,'
	  . '00000000-0000-0000-0000-000000000002 timed_out',
	'replies recorded before and after failover are all in the durable inbox');

$standby->stop;
done_testing();
