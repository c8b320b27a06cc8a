# AsyncrrTest: what the asyncrr TAP tests share.
#
#   my $node = AsyncrrTest::new_node('main');   # initialized, asyncrr preloaded
#   $node->start;
#   AsyncrrTest::install($node);                # CREATE EXTENSION, wait for the worker
#   my $pid = AsyncrrTest::worker_pid($node);
#   my $python = AsyncrrTest::python();         # or skip the file without psycopg
#   ok(AsyncrrTest::within($node, 5, $sql, 'expected'));   # polls until it is
package AsyncrrTest;

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

# A new cluster with asyncrr preloaded and its worker on database postgres.
sub new_node
{
	my ($name, %init) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(%init);
	$node->append_conf(
		'postgresql.conf', qq{
shared_preload_libraries = 'asyncrr'
asyncrr.database = 'postgres'
asyncrr.precision = '100ms'
asyncrr.orphan_grace = '1s'
restart_after_crash = on
});
	return $node;
}

sub install
{
	my ($node) = @_;
	$node->safe_psql('postgres', 'CREATE EXTENSION asyncrr');
	wait_for_worker($node);
}

# The worker's PID, or '' when none runs.
sub worker_pid
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'asyncrr worker'");
}

# Waits until a worker runs whose PID is not $old_pid; returns its PID.
sub wait_for_worker
{
	my ($node, $old_pid) = @_;
	$old_pid //= 0;
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity
		  WHERE backend_type = 'asyncrr worker' AND pid <> $old_pid")
	  or die "no asyncrr worker came up";
	return worker_pid($node);
}

# The Python that runs the clients of test/clients/ (Debian's, which has
# python3-psycopg); skips the whole test file when psycopg is missing.
sub python
{
	my $python = '/usr/bin/python3';
	plan skip_all => 'python3-psycopg is not installed'
	  unless system($python, '-c', 'import psycopg') == 0;
	return $python;
}

# Waits until the request has the given state.
sub wait_for_state
{
	my ($node, $id, $state) = @_;
	return $node->poll_query_until('postgres',
		"SELECT state FROM asyncrr.request WHERE correlation_id = '$id'", $state);
}

# Does $sql return $expected within $secs?  Polls every 50 ms; says what it
# got last when it gives up.
sub within
{
	my ($node, $secs, $sql, $expected) = @_;
	my $end = time + $secs;
	my $got;
	while (1)
	{
		$got = $node->safe_psql('postgres', $sql);
		return 1 if $got eq $expected;
		last if time > $end;
		usleep(50_000);
	}
	diag("after $secs s: got \"$got\", expected \"$expected\" from: $sql");
	return 0;
}

1;
