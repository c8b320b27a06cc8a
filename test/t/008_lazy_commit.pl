# Which commits wait for the WAL flush (src/commit.c, asyncrr.lazy_commit):
# a claim, or a take from a session inbox, that is the only write of its
# transaction does not; anything else does: submit, complete, a claim in a
# transaction that also writes something else (before or after it), a take
# from a durable inbox, everything with asyncrr.lazy_commit off.  And a
# lazy claim lost in a crash is harmless: the request is claimed again and
# its requester still gets exactly one reply.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AsyncrrTest;

my $node = AsyncrrTest::new_node('lazy');
# each statement in the log, and the DEBUG1 line of a lazy commit after it;
# the WAL writer seldom flushes, so a lazy commit is still unflushed when
# the server is stopped immediately
$node->append_conf(
	'postgresql.conf', q{
log_statement = 'all'
log_min_messages = debug1
wal_writer_delay = 10s
wal_writer_flush_after = 1GB
autovacuum = off
});
$node->start;
AsyncrrTest::install($node);
$node->safe_psql('postgres', q{
	SELECT asyncrr.create_queue('lz', default_timeout => '1 hour');
	CREATE TABLE lz_work (n integer);
});

# Runs a psql script; returns, for each statement marked with a comment
# "/* name */", whether its commit was lazy.
sub lazy_commits
{
	my ($script) = @_;
	my $offset = -s $node->logfile;
	$node->safe_psql('postgres', $script);
	my %lazy;
	my $current;
	for my $line (split /\n/, slurp_file($node->logfile, $offset))
	{
		if ($line =~ /statement: .*\/\* (\w+) \*\//) { $current = $1; $lazy{$current} //= 0; }
		elsif ($line =~ /statement: /) { $current = undef; }
		elsif ($line =~ /does not wait for the WAL flush/ && defined $current) { $lazy{$current} = 1; }
	}
	return \%lazy;
}

my $lazy = lazy_commits(q{
SELECT asyncrr.open_inbox() /* open */;
SELECT asyncrr.submit('lz', '{"n": 1}') /* submit */;
SELECT count(*) FROM asyncrr.claim('lz') /* claim */;
SELECT count(*) FROM asyncrr.claim('lz') /* claim_nothing */;
SELECT asyncrr.complete(correlation_id, '{}') FROM asyncrr.pending WHERE queue_name = 'lz' /* complete */;
SELECT count(*) FROM asyncrr.take_replies() /* take */;
SELECT asyncrr.submit('lz', '{"n": 2}');
BEGIN;
SELECT count(*) FROM asyncrr.claim('lz');
INSERT INTO lz_work VALUES (2);
COMMIT /* claim_then_write */;
SELECT asyncrr.submit('lz', '{"n": 3}');
BEGIN;
INSERT INTO lz_work VALUES (3);
SELECT count(*) FROM asyncrr.claim('lz');
COMMIT /* write_then_claim */;
SELECT asyncrr.submit('lz', '{"n": 4}');
SET asyncrr.lazy_commit = off;
SELECT count(*) FROM asyncrr.claim('lz') /* claim_setting_off */;
RESET asyncrr.lazy_commit;
SELECT asyncrr.complete(correlation_id, '{}') FROM asyncrr.pending WHERE queue_name = 'lz';
BEGIN;
SELECT count(*) FROM asyncrr.take_replies();
INSERT INTO lz_work VALUES (4);
COMMIT /* take_then_write */;
});
is($lazy->{claim}, 1, 'a claim alone commits lazily');
is($lazy->{take}, 1, 'a take from a session inbox alone commits lazily');
is($lazy->{$_}, 0, "$_ waits for the WAL flush")
  for qw(open submit claim_nothing complete claim_then_write write_then_claim
  claim_setting_off take_then_write);

$lazy = lazy_commits(q{
SELECT asyncrr.open_inbox('lz-durable');
SELECT asyncrr.submit('lz', '{"n": 5}');
SELECT count(*) FROM asyncrr.claim('lz');
SELECT asyncrr.complete(correlation_id, '{}') FROM asyncrr.pending WHERE queue_name = 'lz';
SELECT count(*) FROM asyncrr.take_replies() /* durable_take */;
});
is($lazy->{durable_take}, 0, 'a take from a durable inbox waits for the WAL flush');

# A crash right after a lazy claim: the claim may be lost (it usually is,
# with the WAL writer this idle), never the request; it is claimed again
# and its requester, reconnecting to its durable inbox, gets one reply.
my $id = $node->safe_psql('postgres', q{
	SELECT asyncrr.open_inbox('lz-crash');
	SELECT asyncrr.submit('lz', '{"n": 6}', correlation_id => 'e0000000-0000-0000-0000-000000000006');
});
$node->safe_psql('postgres', "SELECT count(*) FROM asyncrr.claim('lz')");
$node->stop('immediate');
$node->start;
my $state = $node->safe_psql('postgres',
	"SELECT state || ' ' || attempt FROM asyncrr.request WHERE correlation_id = 'e0000000-0000-0000-0000-000000000006'");
like($state, qr/^(pending 0|claimed 1)$/, "after the crash the request is pending again or still claimed ($state)");
diag("the lazy claim was " . ($state eq 'pending 0' ? 'lost in the crash' : 'flushed before it'));
$node->safe_psql('postgres', q{
	UPDATE asyncrr.request SET lease_until = now() - interval '1 second'
	 WHERE correlation_id = 'e0000000-0000-0000-0000-000000000006' AND state = 'claimed';
});
is( $node->safe_psql('postgres', q{
	SELECT asyncrr.complete(correlation_id, '{"after": "crash"}') FROM asyncrr.claim('lz');
}),
	'completed',
	'claimed again and completed');
is( $node->safe_psql('postgres', q{
	SELECT asyncrr.open_inbox('lz-crash');
	SELECT string_agg(correlation_id || ' ' || status || ' ' || reply, ',') FROM asyncrr.take_replies();
}),
	"asyncrr.lz-crash\ne0000000-0000-0000-0000-000000000006 completed {\"after\": \"crash\"}",
	'the requester gets exactly one reply');

done_testing();
