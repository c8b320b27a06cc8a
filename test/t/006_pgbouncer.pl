# CALL asyncrr.call through a real pgbouncer in transaction pooling mode
# with a single server connection: two clients call at once, a worker
# (connected directly) answers, each client gets its own reply, and the
# shared server connection is left with no LISTEN and no inbox.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AsyncrrTest;

my $pgbouncer = '/usr/sbin/pgbouncer';
plan skip_all => 'pgbouncer is not installed' unless -x $pgbouncer;

my $node = AsyncrrTest::new_node('pgbouncer');
$node->start;
AsyncrrTest::install($node);
$node->safe_psql('postgres',
	"SELECT asyncrr.create_queue('pb', default_timeout => '60 seconds')");

# pgbouncer on a free loopback port, transaction pooling, one server connection
my $dir = PostgreSQL::Test::Utils::tempdir();
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $user = $node->safe_psql('postgres', 'SELECT current_user');
my $host = $node->host;
my $node_port = $node->port;
PostgreSQL::Test::Utils::append_to_file("$dir/users.txt", qq{"$user" ""\n});
PostgreSQL::Test::Utils::append_to_file(
	"$dir/pgbouncer.ini", qq{
[databases]
postgres = host=$host port=$node_port dbname=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/users.txt
pool_mode = transaction
default_pool_size = 1
max_client_conn = 20
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
});
my $bouncer = IPC::Run::start([ $pgbouncer, "$dir/pgbouncer.ini" ]);
my $via_bouncer = "host=127.0.0.1 port=$port dbname=postgres user=$user";
my $psql = $node->installed_command('psql');
my $up = 0;
for (1 .. 100)
{
	if (system($psql, '-XAtq', '-d', $via_bouncer, '-c', 'SELECT 1') == 0) { $up = 1; last; }
	select(undef, undef, undef, 0.1);
}
ok($up, 'pgbouncer is up in transaction pooling mode');

# The worker, straight to PostgreSQL: claims with wait, answers two requests
# with their payloads echoed, one transaction each.
my $worker = $node->background_psql('postgres');
$worker->query_until(qr/started/, q{\echo started
DO $$
DECLARE
    r record;
    n integer := 0;
BEGIN
    WHILE n < 2 LOOP
        FOR r IN SELECT * FROM asyncrr.claim('pb', 1, worker => 'bouncer-worker', wait => '30 seconds') LOOP
            PERFORM asyncrr.complete(r.correlation_id, jsonb_build_object('echo', r.payload));
            n := n + 1;
        END LOOP;
        COMMIT;
    END LOOP;
END
$$;
\echo worker-done
});

# Two clients at once, through the single pooled server connection.
my (@out, @err, @h);
for my $c (1 .. 2)
{
	push @h, IPC::Run::start(
		[ $psql, '-XAtq', '-d', $via_bouncer, '-c',
		  "CALL asyncrr.call('pb', '{\"client\": $c}', timeout => '30 seconds')" ],
		'>', \$out[$c], '2>', \$err[$c]);
}
$_->finish for @h;
for my $c (1 .. 2)
{
	like($out[$c], qr/\|completed\|\{"echo": \{"client": $c\}\}\|$/m,
		"client $c gets its own reply through pgbouncer");
	is($err[$c], '', "client $c saw no error");
}
pump_until($worker->{run}, $worker->{timeout}, \$worker->{stdout}, qr/worker-done/);
$worker->quit;

# The pooled server connection carries no LISTEN and holds no inbox.
is( `$psql -XAtq -d "$via_bouncer" -c "SELECT count(*) FROM pg_listening_channels()"`,
	"0\n", 'no LISTEN left on the pooled connection');
is( $node->safe_psql('postgres', 'SELECT count(*) FROM asyncrr.inboxes'),
	'0', 'no inbox was opened');
is( $node->safe_psql('postgres',
		"SELECT string_agg(state, ',') FROM asyncrr.request WHERE queue_name = 'pb'"),
	'completed,completed', 'both requests completed, both replies taken')
  and is($node->safe_psql('postgres',
		"SELECT count(*) FROM asyncrr.request WHERE taken_at IS NULL"), '0', 'nothing left untaken');

# asyncrr.call refuses to run inside a transaction block here too.
my ($o, $e) = ('', '');
IPC::Run::run([ $psql, '-XAtq', '-d', $via_bouncer, '-c', 'BEGIN',
	'-c', "CALL asyncrr.call('pb', '{}')" ], '>', \$o, '2>', \$e);
like($e, qr/asyncrr.call cannot run inside a transaction block/, 'refused inside a transaction block');

$bouncer->kill_kill;
$node->stop;
done_testing();
