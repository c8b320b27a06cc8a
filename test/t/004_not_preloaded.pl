# Without shared_preload_libraries asyncrr still installs and every SQL
# function works (the library loads on demand); there is just no
# background worker, so nothing is timed out.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('on_demand');
$node->init;
$node->append_conf('postgresql.conf', 'max_prepared_transactions = 2');
$node->start;

# A role under one of asyncrr's names that can log in is not adopted (its
# creator would receive asyncrr's privileges); a plain NOLOGIN one is.
$node->safe_psql('postgres',
	'CREATE ROLE asyncrr_worker LOGIN; CREATE ROLE asyncrr_requester NOLOGIN');
my ($rc, $out, $err) = $node->psql('postgres', 'CREATE EXTENSION asyncrr');
like($err, qr/role "asyncrr_worker" already exists and is not a plain NOLOGIN role/,
	'CREATE EXTENSION refuses a pre-existing LOGIN role of its names');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_extension WHERE extname = 'asyncrr'"),
	'0', 'and installs nothing');
$node->safe_psql('postgres', 'DROP ROLE asyncrr_worker');
($rc, $out, $err) = $node->psql('postgres', 'CREATE EXTENSION asyncrr');
is($rc, 0, 'CREATE EXTENSION works without shared_preload_libraries, '
	. 'reusing a plain NOLOGIN role of its names');

is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'asyncrr worker'"),
	'0', 'no background worker');

$out = $node->safe_psql('postgres', q{
	SELECT asyncrr.create_queue('q', default_timeout => '1 second');
	SELECT asyncrr.open_inbox('r');
	SELECT asyncrr.submit('q', '{"x": 1}', correlation_id => '00000000-0000-0000-0000-000000000001');
	SELECT attempt FROM asyncrr.claim('q');
	SELECT asyncrr.complete('00000000-0000-0000-0000-000000000001', '{"y": 2}');
	SELECT status || ' ' || reply::text FROM asyncrr.take_replies();
});
like($out, qr/completed \{"y": 2\}$/, 'a whole round trip works when loaded on demand');

# A transaction that recorded a reply cannot be prepared: COMMIT PREPARED,
# later and elsewhere, could not notify its requester (as NOTIFY itself).
($rc, $out, $err) = $node->psql('postgres', q{
	SELECT asyncrr.submit('q', '{"x": 3}', correlation_id => '00000000-0000-0000-0000-000000000003');
	SELECT count(*) FROM asyncrr.claim('q');
	BEGIN;
	SELECT asyncrr.complete('00000000-0000-0000-0000-000000000003', '{}');
	PREPARE TRANSACTION 'p';
});
like($err, qr/cannot PREPARE a transaction that has changed asyncrr requests/,
	'PREPARE TRANSACTION after a reply is refused');
is($node->safe_psql('postgres', q{
	SELECT state FROM asyncrr.request WHERE correlation_id = '00000000-0000-0000-0000-000000000003';
	SELECT count(*) FROM pg_prepared_xacts;
}), "claimed\n0", 'and nothing was recorded or prepared');

# The same policy, with the same message, as when preloaded
# (sql/wait.sql): a submit cannot be prepared either.
($rc, $out, $err) = $node->psql('postgres', q{
	BEGIN;
	SELECT asyncrr.submit('q', '{"x": 4}', correlation_id => '00000000-0000-0000-0000-000000000004');
	PREPARE TRANSACTION 'p';
});
like($err, qr/cannot PREPARE a transaction that has changed asyncrr requests/,
	'PREPARE TRANSACTION after a submit is refused, as when preloaded');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM asyncrr.request WHERE correlation_id = '00000000-0000-0000-0000-000000000004';
	SELECT count(*) FROM pg_prepared_xacts;
}), "0\n0", 'and nothing was submitted or prepared');

# settings are known (and reserved) once the library is loaded
is($node->safe_psql('postgres', "LOAD 'asyncrr'; SHOW asyncrr.max_payload_bytes"),
	'1MB', 'settings defined when loaded on demand');

my $id = $node->safe_psql('postgres',
	"SELECT asyncrr.submit('q', '{}', timeout => '1 second')");
sleep 2;
is($node->safe_psql('postgres', "SELECT state FROM asyncrr.status('$id')"),
	'pending', 'without the worker, a request past its deadline stays pending');

$node->stop;
done_testing();
