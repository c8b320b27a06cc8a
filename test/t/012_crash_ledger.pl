# The crash ledger, short (the full run: sudo bash test/ledger/run.sh --kills 50).
# test/ledger/ledger.py loads the cluster with requesters of every kind
# (durable and session inboxes, CALL asyncrr.call, submit + wait_for_reply)
# and workers (claim with and without wait, complete, complete_many, fail,
# retries, leases and deadlines running out), while it kills it six times:
# pg_ctl stop -m immediate, SIGKILL of a random server process, SIGKILL of a
# random client.  Then it checks every acknowledged request, reply and
# outcome against status(), the tables, asyncrr.waiters, asyncrr.inboxes and
# the server log, and exits non-zero on any failure; its report is in the
# output (and in the test's log).
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AsyncrrTest;

my $python = AsyncrrTest::python();
my $ledger = "$ENV{TESTDIR}/test/ledger/ledger.py";

my $node = AsyncrrTest::new_node('ledger');
# durable as a server is (PostgreSQL::Test::Cluster turns fsync off); the
# log names each process, which the ledger reads
$node->append_conf(
	'postgresql.conf', q{
fsync = on
log_line_prefix = '%m [%p] %b %a '
});
$node->start;
AsyncrrTest::install($node);

my $dir = PostgreSQL::Test::Utils::tempdir();
my ($out, $err) = ('', '');
my $timer = IPC::Run::timer(170);
my $started = time;
my $ok = eval {
	IPC::Run::run(
		[
			$python, $ledger, 'run',
			'--dsn' => $node->connstr('postgres'),
			'--pgdata' => $node->data_dir,
			'--pglog' => $node->logfile,
			'--bindir' => $node->config_data('--bindir'),
			'--workdir' => $dir,
			'--kills' => 6,
			'--gap' => '2:4'
		],
		'>', \$out, '2>', \$err, $timer);
};
my $rc = $ok ? 0 : ($? >> 8 || 1);
note $out;
diag("ledger.py: $@") if $@;
diag($err) if $err ne '';
is($rc, 0, 'the ledger found no failure') or diag($out);

my ($kills) = $out =~ /^kills: (\d+)/m;
cmp_ok($kills // 0, '>=', 5, 'at least five kills');
for my $kind (qw(immediate backend client))
{
	like($out, qr/^kills: .*\b$kind \d+/m, "kills of kind $kind");
}
my ($acked) = $out =~ /^requests acknowledged: (\d+)/m;
cmp_ok($acked // 0, '>', 100, 'requests were acknowledged (' . ($acked // 0) . ')');
like($out, qr/^outcomes: completed [1-9]\d*, failed [1-9]\d*, timed_out [1-9]\d*, cancelled [1-9]\d*, dead_lettered [1-9]\d*$/m,
	'every kind of outcome occurred');
like($out, qr/^failures: 0$/m, 'the report counts no failure');
note sprintf('the ledger ran %d s', time - $started);

# the ledger restarted the server under the node's feet: find it again
$node->_update_pid(1);
$node->stop;
done_testing();
