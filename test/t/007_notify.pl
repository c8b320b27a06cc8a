# How notifications of replies reach their requester (src/notify.c): the
# asyncrr dispatcher sends them after the replying transaction commits,
# once each, on the requester's channel, with the reply visible by then;
# nothing for an outcome rolled back, in a subtransaction or not.  The
# committing session sends them itself with asyncrr.notify_dispatch off,
# when they do not fit in the dispatcher's ring, and in a database the
# dispatcher does not serve.  (The checks run in
# test/clients/notify_check.py; this file states what each must print.)
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AsyncrrTest;

my $python = AsyncrrTest::python();

my $node = AsyncrrTest::new_node('notify');
$node->start;
AsyncrrTest::install($node);
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql('other', 'CREATE EXTENSION asyncrr');
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'asyncrr dispatcher'")
  or die 'no asyncrr dispatcher came up';

my $host = $node->host;
my $port = $node->port;
my ($out, $err) = ('', '');
IPC::Run::run(
	[
		$python, "$ENV{TESTDIR}/test/clients/notify_check.py",
		"host=$host port=$port dbname=postgres",
		"host=$host port=$port dbname=other"
	],
	'>', \$out, '2>', \$err);
is($err, '', 'the client ran without error');
my %got = map { /^(.*): (.*)$/ ? ($1 => $2) : () } split /\n/, $out;

is($got{'before commit'}, 0, 'nothing is notified before the commit');
for my $case ('dispatched', 'subtransactions', 'dispatch off', 'ring full',
	'other database', 'dispatched again')
{
	is($got{"$case ids"}, 'True', "$case: each reply's id, and only those, arrives");
	is($got{"$case once"}, 'True', "$case: each once");
	is($got{"$case status"}, 'True', "$case: with its status");
	is($got{"$case sender"}, 'True',
		"$case: sent by " . ($case =~ /^dispatched|^subtr/ ? 'the dispatcher' : 'the session'));
	is($got{"$case visible"}, 'True', "$case: its reply can be taken when it arrives");
}

done_testing();
