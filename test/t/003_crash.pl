# The durability promise under crashes: requesters submitting and workers
# completing while the server is stopped with -m immediate (twice) and
# restarted.  Afterwards every request whose submit was acknowledged has
# exactly one terminal outcome, none before its deadline; no reply was
# handed out twice; every reply was handed out; and status() agrees with
# what the requesters took.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AsyncrrTest;

my $python = AsyncrrTest::python();
my $client = "$ENV{TESTDIR}/test/clients/crash_load.py";

my $node = AsyncrrTest::new_node('crash');
$node->start;
AsyncrrTest::install($node);
$node->safe_psql('postgres', "SELECT asyncrr.create_queue('crash', max_attempts => 5)");

my $conninfo = $node->connstr('postgres');
my $dir = PostgreSQL::Test::Utils::tempdir();
my @requesters = map { "r$_" } 1 .. 3;
my @workers = map { "w$_" } 1 .. 2;

my @procs;
for my $r (@requesters)
{
	push @procs, IPC::Run::start([ $python, $client, 'requester', $conninfo, $r, 8, "$dir/$r.log" ]);
}
for my $w (@workers)
{
	push @procs, IPC::Run::start([ $python, $client, 'worker', $conninfo, $w, 8, "$dir/$w.log" ]);
}

for my $round (1 .. 2)
{
	sleep 2;
	$node->stop('immediate');
	$node->start;
	note "crash $round done";
}
$_->finish for @procs;

# Let every live request end (deadlines are 3 s), then take what is left.
ok($node->poll_query_until('postgres', 'SELECT count(*) = 0 FROM asyncrr.pending'),
	'every request reached an outcome');
for my $r (@requesters)
{
	IPC::Run::run([ $python, $client, 'drain', $conninfo, $r, 0, "$dir/$r.log" ])
	  or die "drain of $r failed";
}

# What the clients saw
my (%submitted, %taken, $unseen_takes, $duplicates);
$unseen_takes = 0;
$duplicates = 0;
for my $r (@requesters)
{
	open my $fh, '<', "$dir/$r.log" or die;
	while (<$fh>)
	{
		chomp;
		my ($what, $id, $status) = split / /;
		if ($what eq 'S') { $submitted{$id} = $r; }
		elsif ($what eq 'T')
		{
			$duplicates++ if exists $taken{$id};
			$taken{$id} = $status;
		}
		elsif ($what eq 'XT') { $unseen_takes++; }
	}
}
cmp_ok(scalar(keys %submitted), '>', 50, 'the requesters submitted requests ('
	  . scalar(keys %submitted) . ')');

# What the server has
my %server;
for my $line (split /\n/, $node->safe_psql('postgres', q{
	SELECT r.correlation_id, s.state, r.taken_at IS NOT NULL,
	       s.finished_at >= s.deadline OR s.state <> 'timed_out', r.inbox_name
	  FROM asyncrr.request r, asyncrr.status(r.correlation_id) s}))
{
	my ($id, $state, $taken, $not_early, $inbox) = split /\|/, $line;
	$server{$id} = { state => $state, taken => $taken, not_early => $not_early, inbox => $inbox };
}

my @missing = grep { !exists $server{$_} } keys %submitted;
is(scalar(@missing), 0, 'every acknowledged submit is on the server');
my @live = grep { $server{$_}{state} =~ /^(pending|claimed)$/ } keys %server;
is(scalar(@live), 0, 'every request has a terminal outcome');
my @early = grep { $server{$_}{not_early} ne 't' } keys %server;
is(scalar(@early), 0, 'no request timed out before its deadline');
is($duplicates, 0, 'no reply was handed out twice');
my @disagree = grep { !exists $server{$_} || $server{$_}{state} ne $taken{$_} } keys %taken;
is(scalar(@disagree), 0, 'status() agrees with every reply the requesters took');
my @untaken = grep { $server{$_}{taken} ne 't' && $server{$_}{inbox} =~ /^crash-/ } keys %server;
is(scalar(@untaken), 0, 'every reply was handed out');

# A take whose answer was lost in a crash may have taken replies the client
# never saw; there can be no more of those than such takes could return.
my @unseen = grep { !exists $taken{$_} } keys %server;
cmp_ok(scalar(@unseen), '<=', 50 * $unseen_takes,
	"replies taken but unseen (" . scalar(@unseen) . ") only from takes cut off by a crash ($unseen_takes)");

my %outcomes;
$outcomes{ $server{$_}{state} }++ for keys %server;
note 'outcomes: ' . join(', ', map { "$_=$outcomes{$_}" } sort keys %outcomes);

$node->stop;
done_testing();
