# Backups: pg_dump (plain and custom format) of a database with asyncrr,
# restored on another cluster with asyncrr preloaded, brings back the
# queues with their settings, the grants, the requests in flight with
# their state, attempt and deadline, the replies not yet taken from a
# durable inbox and the dead letters, row for row; and the restored
# cluster's worker carries on with them.
#
#   A  the source: queues, grants, requests of every kind, two live
#      sessions holding inboxes while it is dumped
#   B  roles from pg_dumpall --roles-only, then the plain dump into
#      postgres (asyncrr.database: the worker serves it) and the custom
#      dump into "copy" (no worker: compared with A row for row); dumps of
#      0.1 and 0.2 databases restored as 0.3
#   C  the custom dump restored with asyncrr.request's rows committed
#      before asyncrr.inbox's and asyncrr.dead_letter's, as pg_restore -j
#      does: the worker runs meanwhile, and must neither take the durable
#      inbox's replies for orphans nor remove requests whose dead letters
#      are still to come
#   D  pg_restore -j of everything but asyncrr's rows, then asyncrr's rows
#      in one transaction (the procedure of doc/operations.md)
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
our $TODO;
use AsyncrrTest;

my $dir = PostgreSQL::Test::Utils::tempdir;

sub id { return sprintf('d0000000-0000-0000-0000-%012d', $_[0]); }

my %pk = (
	queue => 'queue_name',
	queue_grant => 'queue_name, privilege, role_name',
	inbox => 'inbox_name',
	request => 'correlation_id',
	dead_letter => 'correlation_id');

# One table's rows, one jsonb per line in key order (jsonb: the same text
# whatever the order of the table's columns); $drop removes keys.
sub rows
{
	my ($node, $db, $table, $where, $drop) = @_;
	$where //= 'true';
	$drop //= '';
	return $node->safe_psql($db,
		"SELECT coalesce(string_agg((to_jsonb(t) $drop)::text, E'\\n' ORDER BY $pk{$table}), '')
		   FROM asyncrr.$table t WHERE $where");
}

sub all_rows
{
	my ($node, $db) = @_;
	return { map { $_ => rows($node, $db, $_) } sort keys %pk };
}

# Members of the asyncrr roles.
sub memberships
{
	my ($node) = @_;
	return $node->safe_psql('postgres', q{
		SELECT string_agg(m.rolname || ' in ' || r.rolname, ',' ORDER BY m.rolname, r.rolname)
		  FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
		 WHERE r.rolname LIKE 'asyncrr%'});
}

# The replies waiting in an inbox, as take_replies() would hand them out.
sub untaken
{
	my ($node, $db, $inbox) = @_;
	return $node->safe_psql($db, qq{
		SELECT coalesce(string_agg(concat_ws(' ', correlation_id, state, reply, error), E'\\n'
		                           ORDER BY finished_at, correlation_id), '')
		  FROM asyncrr.request
		 WHERE inbox_name = '$inbox' AND finished_at IS NOT NULL AND taken_at IS NULL});
}

# Opens the durable inbox as app_req and takes every reply in it.
sub take
{
	my ($node, $db, $inbox) = @_;
	return $node->safe_psql($db, qq{
		SET ROLE app_req;
		DO \$\$ BEGIN PERFORM asyncrr.open_inbox('$inbox'); END \$\$;
		SELECT coalesce(string_agg(concat_ws(' ', correlation_id, status, reply, error), E'\\n'
		                           ORDER BY finished_at, correlation_id), '')
		  FROM asyncrr.take_replies(1000);
		DO \$\$ BEGIN PERFORM asyncrr.close_inbox(); END \$\$;});
}

sub restore_plain
{
	my ($node, $db, $file, $name) = @_;
	$node->command_ok(
		[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $db, '-f', $file ], $name);
}

# The output of pg_dumpall --roles-only, run as its documentation says:
# without ON_ERROR_STOP, the one error being the restoring superuser's
# CREATE ROLE.
sub restore_roles
{
	my ($node) = @_;
	my ($ret, $out, $err) =
	  $node->psql('postgres', slurp_file("$dir/roles.sql"), on_error_stop => 0);
	is( join(',', $err =~ /ERROR:  (.*)/g),
		'role "' . $node->safe_psql('postgres', 'SELECT current_user') . '" already exists',
		$node->name . ': roles restored from pg_dumpall --roles-only');
}

###########################################################################
# A
###########################################################################

my $a = AsyncrrTest::new_node('a');
$a->start;
AsyncrrTest::install($a);

# Queues with settings other than the defaults, and grants, made by an
# administrator login.
$a->safe_psql('postgres', q{
	CREATE ROLE app_req LOGIN IN ROLE asyncrr_requester;
	CREATE ROLE app_wrk LOGIN IN ROLE asyncrr_worker;
	CREATE ROLE ops LOGIN IN ROLE asyncrr_admin;
	SET ROLE ops;
	SELECT asyncrr.create_queue('orders', default_timeout => '1 hour', lease => '1 hour', max_attempts => 5);
	SELECT asyncrr.alter_queue('orders', max_depth => 100, max_priority => 9, max_timeout => '2 hours');
	SELECT asyncrr.create_queue('once', default_timeout => '1 hour', lease => '1 hour', max_attempts => 1);
	SELECT asyncrr.create_queue('fast', default_timeout => '1 hour', lease => '1 hour', max_attempts => 5);
	SELECT asyncrr.alter_queue('fast', lease => '45 minutes', max_depth => 10);
	SELECT asyncrr.grant_queue('orders', 'app_req', 'submit');
	SELECT asyncrr.grant_queue('orders', 'app_wrk', 'claim');
	SELECT asyncrr.grant_queue('once', 'app_req', 'submit');
	SELECT asyncrr.grant_queue('once', 'app_wrk', 'claim');
	SELECT asyncrr.grant_queue('fast', 'app_req', 'submit');
	SELECT asyncrr.grant_queue('fast', 'app_wrk', 'all');
});

# Durable inbox "billing": 9 completed and taken; 5 completed, 6 failed,
# 7 timed out (dead letter: timeout), 8 out of attempts (dead letter:
# max_attempts), all four not taken; 2 claimed; 1 pending.
$a->safe_psql('postgres', qq{
	SET ROLE app_req;
	SELECT asyncrr.open_inbox('billing');
	SELECT asyncrr.submit('orders', '{"n": 5}', correlation_id => '@{[id(5)]}', headers => '{"trace": "t5"}');
	SELECT asyncrr.submit('orders', '{"n": 6}', correlation_id => '@{[id(6)]}');
	SELECT asyncrr.submit('orders', '{"n": 9}', correlation_id => '@{[id(9)]}');
	SELECT asyncrr.close_inbox();
	SET ROLE app_wrk;
	SELECT count(*) FROM asyncrr.claim('orders', 3, worker => 'w-a');
	SELECT asyncrr.complete('@{[id(9)]}', '{"r": 9}', 1);
	SELECT asyncrr.complete('@{[id(5)]}', '{"r": 5}', 1);
	SELECT asyncrr.fail('@{[id(6)]}', 'bad input', 1);
	SET ROLE app_req;
	SELECT asyncrr.open_inbox('billing');
	SELECT count(*) FROM asyncrr.take_replies(1);
	SELECT asyncrr.submit('orders', '{"n": 7}', timeout => '1 second', correlation_id => '@{[id(7)]}');
	SELECT asyncrr.submit('once', '{"n": 8}', correlation_id => '@{[id(8)]}');
	SELECT asyncrr.submit('orders', '{"n": 2}', correlation_id => '@{[id(2)]}', priority => 1);
	SELECT asyncrr.close_inbox();
	SET ROLE app_wrk;
	SELECT count(*) FROM asyncrr.claim('once', 1, lease => '200 milliseconds', worker => 'w-a');
	SELECT count(*) FROM asyncrr.claim('orders', 1, worker => 'w-a');
});
# Durable inbox "archive": 11 timed out and its reply taken.
$a->safe_psql('postgres', qq{
	SET ROLE app_req;
	SELECT asyncrr.open_inbox('archive');
	SELECT asyncrr.submit('orders', '{"n": 11}', timeout => '1 second', correlation_id => '@{[id(11)]}');
	SELECT asyncrr.close_inbox();
});
ok(AsyncrrTest::wait_for_state($a, id(7), 'timed_out'), 'A: 7 timed out');
ok(AsyncrrTest::wait_for_state($a, id(11), 'timed_out'), 'A: 11 timed out');
$a->safe_psql('postgres', q{
	SET ROLE app_req;
	SELECT asyncrr.open_inbox('archive');
	SELECT count(*) FROM asyncrr.take_replies();
	SELECT asyncrr.close_inbox();
});
ok(AsyncrrTest::wait_for_state($a, id(8), 'dead_lettered'), 'A: 8 dead-lettered, its lease gone');
$a->safe_psql('postgres', qq{
	SET ROLE app_req;
	SELECT asyncrr.open_inbox('billing');
	SELECT asyncrr.submit('orders', '{"n": 1}', correlation_id => '@{[id(1)]}', priority => 5,
	                      headers => '{"trace": "t1"}');
	SELECT asyncrr.close_inbox();
});
# Replies in a durable inbox wait there for hours, and dead letters are
# kept for days: 5 and 6 as if recorded ten minutes ago, 11 two hours ago
# (past asyncrr.retention; its dead letter keeps it).  This test cannot
# wait that long.
$a->safe_psql('postgres', qq{
	UPDATE asyncrr.request
	   SET submitted_at = submitted_at - interval '10 minutes', deadline = deadline - interval '10 minutes',
	       claimed_at = claimed_at - interval '10 minutes', finished_at = finished_at - interval '10 minutes'
	 WHERE correlation_id IN ('@{[id(5)]}', '@{[id(6)]}');
	UPDATE asyncrr.request
	   SET submitted_at = submitted_at - interval '2 hours', deadline = deadline - interval '2 hours',
	       finished_at = finished_at - interval '2 hours', taken_at = taken_at - interval '2 hours'
	 WHERE correlation_id = '@{[id(11)]}';
	UPDATE asyncrr.dead_letter
	   SET submitted_at = submitted_at - interval '2 hours', dead_lettered_at = dead_lettered_at - interval '2 hours'
	 WHERE correlation_id = '@{[id(11)]}';});

# Two live sessions hold inboxes while A is dumped: a session inbox with
# 10's reply in it, and durable inbox "held" with 3 claimed under a short
# lease and 4 pending with a short deadline (both run out after the dump).
my $s2 = $a->background_psql('postgres');
$s2->query_safe(qq{SET ROLE app_req; SELECT asyncrr.open_inbox();
	SELECT asyncrr.submit('fast', '{"n": 10}', correlation_id => '@{[id(10)]}');});
$a->safe_psql('postgres', qq{SET ROLE app_wrk;
	SELECT count(*) FROM asyncrr.claim('fast', 1, worker => 'w-a');
	SELECT asyncrr.complete('@{[id(10)]}', '{"r": 10}', 1);});
my $s1 = $a->background_psql('postgres');
$s1->query_safe(qq{SET ROLE app_req; SELECT asyncrr.open_inbox('held');
	SELECT asyncrr.submit('fast', '{"n": 3}', correlation_id => '@{[id(3)]}');
	SELECT asyncrr.submit('fast', '{"n": 4}', correlation_id => '@{[id(4)]}', timeout => '10 seconds');});
$a->safe_psql('postgres', qq{SET ROLE app_wrk;
	SELECT count(*) FROM asyncrr.claim('fast', 1, lease => '10 seconds', worker => 'w-a');});

# The dumps.  A's rows before and after them are the same: both dumps
# hold them.
my $a_rows = all_rows($a, 'postgres');
my $a_billing = untaken($a, 'postgres', 'billing');
$a->command_ok([ 'pg_dump', '-d', 'postgres', '-f', "$dir/a.sql" ], 'pg_dump, plain');
$a->command_ok([ 'pg_dump', '-Fc', '-d', 'postgres', '-f', "$dir/a.dump" ], 'pg_dump, custom');
$a->command_ok([ 'pg_dumpall', '--roles-only', '-f', "$dir/roles.sql" ], 'pg_dumpall --roles-only');
is_deeply(all_rows($a, 'postgres'), $a_rows, 'A did not change while it was dumped')
  or die 'A changed during the dumps (a slow machine: the 10 s lease and deadline ran out)';
is( $a->safe_psql('postgres', qq{
		SELECT string_agg(correlation_id || ' ' || state || ' ' || attempt, ',' ORDER BY correlation_id)
		  FROM asyncrr.request}),
	join(',',
		id(1) . ' pending 0', id(2) . ' claimed 1', id(3) . ' claimed 1', id(4) . ' pending 0',
		id(5) . ' completed 1', id(6) . ' failed 1', id(7) . ' timed_out 0',
		id(8) . ' dead_lettered 1', id(9) . ' completed 1', id(10) . ' completed 1',
		id(11) . ' timed_out 0'),
	'A as dumped: requests of every state');
is( $a->safe_psql('postgres',
		"SELECT string_agg(correlation_id || ' ' || reason, ',' ORDER BY correlation_id) FROM asyncrr.dead_letter"),
	id(7) . ' timeout,' . id(8) . ' max_attempts,' . id(11) . ' timeout',
	'A as dumped: dead letters');
is( $a->safe_psql('postgres',
		"SELECT string_agg(durable || ' ' || (holder_pid IS NOT NULL), ',' ORDER BY durable, inbox_name) FROM asyncrr.inbox"),
	'false true,true false,true false,true true',
	'A as dumped: a held session inbox, durable "archive" and "billing" free, durable "held" held');

# Only a superuser can dump asyncrr: its tables are the extension owner's.
$a->command_fails_like([ 'pg_dump', '-U', 'ops', '-d', 'postgres', '-f', '/dev/null' ],
	qr/permission denied for (table|sequence)/, 'pg_dump as an asyncrr administrator fails');

# Databases made under 0.1 and 0.2 (the 0.3 library serves their catalogs),
# with a claimed request, a pending one, an untaken reply and a dead letter.
for my $v ('0.1', '0.2')
{
	(my $db = "v$v") =~ s/\.//;
	$a->safe_psql('postgres', "CREATE DATABASE $db");
	$a->safe_psql($db, qq{
		CREATE EXTENSION asyncrr VERSION '$v';
		SELECT asyncrr.create_queue('old', default_timeout => '1 hour', lease => '1 hour');
		SELECT asyncrr.alter_queue('old', max_depth => 50);
		SELECT asyncrr.create_queue('old-once', default_timeout => '1 hour', max_attempts => 1);
		SELECT asyncrr.grant_queue('old', 'app_req', 'submit');
		SELECT asyncrr.open_inbox('old-inbox');
		UNLISTEN *;
		SELECT asyncrr.submit('old', '{"v": 1}', correlation_id => 'f0000000-0000-0000-0000-000000000001');
		SELECT asyncrr.submit('old', '{"v": 2}', correlation_id => 'f0000000-0000-0000-0000-000000000002');
		SELECT asyncrr.submit('old', '{"v": 3}', correlation_id => 'f0000000-0000-0000-0000-000000000003');
		SELECT asyncrr.submit('old-once', '{"v": 4}', correlation_id => 'f0000000-0000-0000-0000-000000000004');
		SELECT count(*) FROM asyncrr.claim('old', 2);
		SELECT count(*) FROM asyncrr.claim('old-once', 1);
		SELECT asyncrr.complete('f0000000-0000-0000-0000-000000000002', '{"r": 2}', attempt => 1);
		SELECT asyncrr.fail('f0000000-0000-0000-0000-000000000004', 'boom', attempt => 1, retry => true);
		SELECT asyncrr.close_inbox();
	});
	is($a->safe_psql($db, "SELECT extversion FROM pg_extension WHERE extname = 'asyncrr'"),
		$v, "A: database $db on $v");
	$a->command_ok([ 'pg_dump', '-Fc', '-d', $db, '-f', "$dir/$db.dump" ], "pg_dump of $db");
}

###########################################################################
# B
###########################################################################

my $b = AsyncrrTest::new_node('b');
$b->start;
restore_roles($b);
is(memberships($b), memberships($a), 'B: the same members of the asyncrr roles');

# The custom dump, into a database the worker does not serve: nothing
# changes there after the restore, so it must equal A as dumped.
$b->safe_psql('postgres', 'CREATE DATABASE copy');
$b->command_ok([ 'pg_restore', '--exit-on-error', '-d', 'copy', "$dir/a.dump" ],
	'B: custom dump restored (pg_restore)');
is($b->safe_psql('copy', "SELECT extversion FROM pg_extension WHERE extname = 'asyncrr'"),
	'0.3', 'B copy: asyncrr 0.3');
for my $t (sort keys %pk)
{
	is(rows($b, 'copy', $t), $a_rows->{$t}, "B copy: asyncrr.$t equals A's");
}
is(untaken($b, 'copy', 'billing'), $a_billing, 'B copy: the replies waiting in "billing" are A\'s');
# the inbox's holder on A means nothing on B: it may be opened at once
is($b->safe_psql('copy', "SET ROLE app_req; SELECT asyncrr.open_inbox('held')"),
	'asyncrr.held', 'B copy: durable inbox "held", held on A, opens on B');

# The plain dump, into asyncrr.database: the worker takes over.
restore_plain($b, 'postgres', "$dir/a.sql", 'B: plain dump restored (psql)');
for my $t ('queue', 'queue_grant')
{
	is(rows($b, 'postgres', $t), $a_rows->{$t}, "B: asyncrr.$t equals A's");
}
my $stable = "correlation_id NOT IN ('@{[id(3)]}', '@{[id(4)]}', '@{[id(10)]}')";
is(rows($b, 'postgres', 'request', $stable), rows($a, 'postgres', 'request', $stable),
	'B: the requests not due equal A\'s (state, attempt, deadline, lease, reply)');
is(rows($b, 'postgres', 'dead_letter', "correlation_id IN ('@{[id(7)]}', '@{[id(8)]}', '@{[id(11)]}')"),
	$a_rows->{dead_letter}, 'B: A\'s dead letters');
is(take($b, 'postgres', 'billing'), $a_billing, 'B: "billing" hands out A\'s untaken replies');
is(take($b, 'postgres', 'billing'), '', 'B: each once');

# B's worker: 4 is timed out (a dead letter), 3's lease runs out (back to
# pending), the session inbox of A's session is released and its reply
# dead-lettered, every holder recorded on A is released.
ok(AsyncrrTest::wait_for_state($b, id(4), 'timed_out'), 'B: 4 timed out by B\'s worker');
ok( $b->poll_query_until('postgres',
		"SELECT state || ' ' || attempt || ' ' || error FROM asyncrr.request WHERE correlation_id = '@{[id(3)]}'",
		'pending 1 lease expired on attempt 1 of 5'),
	'B: 3\'s lease ran out, back to pending');
ok( $b->poll_query_until('postgres',
		"SELECT reason FROM asyncrr.dead_letter WHERE correlation_id = '@{[id(10)]}'", 'requester_gone'),
	'B: the reply in the session inbox of A\'s session is dead-lettered');
ok( $b->poll_query_until('postgres',
		"SELECT string_agg(inbox_name || ' ' || (holder_pid IS NULL), ',' ORDER BY inbox_name) FROM asyncrr.inbox",
		'archive true,billing true,held true'),
	'B: inboxes released, the session inbox removed');
is( $b->safe_psql('postgres',
		"SELECT string_agg(correlation_id || ' ' || reason || ' ' || attempt, ',' ORDER BY correlation_id) FROM asyncrr.dead_letter"),
	join(',', id(4) . ' timeout 0', id(7) . ' timeout 0', id(8) . ' max_attempts 1',
		id(10) . ' requester_gone 1', id(11) . ' timeout 0'),
	'B: dead letters: A\'s and those of B\'s worker');

# Claims on B serve the requests from A: 1 pending, 3 requeued; 2, claimed
# on A, is completed with its attempt.
is( $b->safe_psql('postgres', qq{
		SET ROLE app_wrk;
		SELECT string_agg(correlation_id || ':' || attempt, ',' ORDER BY correlation_id)
		  FROM (SELECT * FROM asyncrr.claim('orders', 10, worker => 'w-b')
		        UNION ALL SELECT * FROM asyncrr.claim('fast', 10, worker => 'w-b')) c;
		SELECT asyncrr.complete('@{[id(1)]}', '{"r": 1}', 1);
		SELECT asyncrr.complete('@{[id(3)]}', '{"r": 3}', 2);
		SELECT asyncrr.complete('@{[id(2)]}', '{"r": 2}', 1);}),
	join("\n", id(1) . ':1,' . id(3) . ':2', 'completed', 'completed', 'completed'),
	'B: claims serve 1 and 3; 2, claimed on A, completes');
is(take($b, 'postgres', 'billing'),
	join("\n", id(1) . ' completed {"r": 1}', id(2) . ' completed {"r": 2}'),
	'B: their replies in "billing"');
is(take($b, 'postgres', 'held'),
	join("\n", id(4) . ' timed_out no reply within 00:00:10', id(3) . ' completed {"r": 3}'),
	'B: and in "held"');
# the queues' bounds hold on B
my ($ret, $out, $err) = $b->psql('postgres',
	"SET ROLE app_req; SELECT asyncrr.open_inbox('billing'); SELECT asyncrr.submit('orders', '{}', priority => 10)");
like($err, qr/priority 10 exceeds max_priority 9 of queue "orders"/, 'B: max_priority of "orders" holds');

# Dumps of 0.1 and 0.2 databases: restored as 0.3, every row kept, and
# what was in flight carries on.  (The columns 0.3 added are left out of
# the comparison.)
my %added_in_0_3 = (
	queue => "- 'max_priority' - 'max_timeout'",
	request => "- 'not_before' - 'ordering_key' - 'key_seq' - 'gather' - 'progress' - 'progress_at'",
	dead_letter => "- 'progress' - 'progress_at' - 'ordering_key'");
for my $db ('v01', 'v02')
{
	$b->safe_psql('postgres', "CREATE DATABASE $db");
	$b->command_ok([ 'pg_restore', '--exit-on-error', '-d', $db, "$dir/$db.dump" ],
		"B: dump of $db restored");
	is($b->safe_psql($db, "SELECT extversion FROM pg_extension WHERE extname = 'asyncrr'"),
		'0.3', "B $db: asyncrr 0.3");
	for my $t (sort keys %pk)
	{
		is(rows($b, $db, $t, undef, $added_in_0_3{$t} // ''),
			rows($a, $db, $t), "B $db: asyncrr.$t equals A's");
	}
	is( $b->safe_psql($db, q{
			SELECT asyncrr.open_inbox('old-inbox');
			UNLISTEN *;
			SELECT asyncrr.complete('f0000000-0000-0000-0000-000000000001', '{"r": 1}', attempt => 1);
			SELECT count(*) FROM asyncrr.claim('old', 1);
			SELECT asyncrr.complete('f0000000-0000-0000-0000-000000000003', '{"r": 3}', attempt => 1);
			SELECT string_agg(correlation_id || ' ' || status, ',' ORDER BY finished_at) FROM asyncrr.take_replies();
			SELECT asyncrr.close_inbox();}),
		join("\n", 'asyncrr.old-inbox', 'completed', '1', 'completed',
			'f0000000-0000-0000-0000-000000000002 completed,'
			  . 'f0000000-0000-0000-0000-000000000004 dead_lettered,'
			  . 'f0000000-0000-0000-0000-000000000001 completed,'
			  . 'f0000000-0000-0000-0000-000000000003 completed', '0'),
		"B $db: requests made under an old version complete under 0.3");
}

###########################################################################
# C: asyncrr.request's rows committed before asyncrr.inbox's and
# asyncrr.dead_letter's, with the worker running in between.  pg_restore -j
# does that: it restores the largest tables first, several at a time
# (pg_restore -j 2 -v of a database with a few tables of its own: request,
# then the other tables, then inbox, queue, queue_grant, dead_letter); so
# may a list given with -L.  The restored database must still hold A's
# rows.
###########################################################################

my $c = AsyncrrTest::new_node('c');
$c->start;
restore_roles($c);
$c->command_ok([ 'pg_restore', '-l', '-f', "$dir/list", "$dir/a.dump" ], 'C: the dump\'s list');
my @list = split /\n/, slurp_file("$dir/list");
my $later = qr/TABLE DATA asyncrr (inbox|dead_letter) /;
is(scalar(grep { /$later/ } @list), 2, 'the dump holds the rows of asyncrr.inbox and asyncrr.dead_letter');
append_to_file("$dir/list1", join("\n", grep { !/$later/ } @list) . "\n");
append_to_file("$dir/list2", join("\n", grep { /$later/ } @list) . "\n");
$c->command_ok([ 'pg_restore', '--exit-on-error', '-d', 'postgres', '-L', "$dir/list1", "$dir/a.dump" ],
	'C: everything but the rows of asyncrr.inbox and asyncrr.dead_letter');
# Two housekeeping passes of the worker begun after that commit: each
# releases the durable inbox of a session that ended just before.
for my $probe ('probe1', 'probe2')
{
	$c->safe_psql('postgres', "SELECT asyncrr.open_inbox('$probe')");
	$c->poll_query_until('postgres',
		"SELECT holder_pid IS NULL FROM asyncrr.inbox WHERE inbox_name = '$probe'")
	  or die "the worker did not release $probe";
}
$c->command_ok([ 'pg_restore', '--exit-on-error', '-d', 'postgres', '-L', "$dir/list2", "$dir/a.dump" ],
	'C: then the rows of asyncrr.inbox and asyncrr.dead_letter');
is(untaken($c, 'postgres', 'billing'), $a_billing, 'C: "billing" still holds A\'s untaken replies');
is( $c->safe_psql('postgres',
		"SELECT coalesce(string_agg(correlation_id || ' ' || reason, ',' ORDER BY correlation_id), '')
		   FROM asyncrr.dead_letter WHERE inbox_name = 'billing' AND reason = 'requester_gone'"),
	'', 'C: none of them dead-lettered as requester_gone');
{
	# Retention keeps an ended request while its dead letter exists; it
	# cannot know of a dead letter not restored yet.  doc/operations.md
	# says to restore asyncrr's rows in one transaction (D).
	local $TODO = 'retention removes a request whose dead letter is not restored yet';
	is(rows($c, 'postgres', 'request', "correlation_id = '@{[id(11)]}'"),
		rows($a, 'postgres', 'request', "correlation_id = '@{[id(11)]}'"),
		'C: 11, ended two hours ago, is kept while its dead letter is');
}

###########################################################################
# D: what doc/operations.md says to do with pg_restore -j: everything but
# asyncrr's rows in parallel, then asyncrr's rows in one transaction.
###########################################################################

my $d = AsyncrrTest::new_node('d');
$d->start;
restore_roles($d);
my $asyncrr_data = qr/TABLE DATA asyncrr /;
append_to_file("$dir/main.list", join("\n", grep { !/$asyncrr_data/ } @list) . "\n");
append_to_file("$dir/asyncrr.list", join("\n", grep { /$asyncrr_data/ } @list) . "\n");
$d->command_ok(
	[ 'pg_restore', '--exit-on-error', '-j', '2', '-d', 'postgres', '-L', "$dir/main.list", "$dir/a.dump" ],
	'D: pg_restore -j 2 of all but asyncrr\'s rows');
$d->command_ok(
	[
		'pg_restore', '--exit-on-error', '--single-transaction', '-d', 'postgres',
		'-L', "$dir/asyncrr.list", "$dir/a.dump"
	],
	'D: then asyncrr\'s rows, in one transaction');
is(untaken($d, 'postgres', 'billing'), $a_billing, 'D: "billing" holds A\'s untaken replies');
is(rows($d, 'postgres', 'request', "correlation_id = '@{[id(11)]}'"),
	rows($a, 'postgres', 'request', "correlation_id = '@{[id(11)]}'"),
	'D: 11 is kept while its dead letter is');
for my $t ('queue', 'queue_grant', 'dead_letter')
{
	is(rows($d, 'postgres', $t, $t eq 'dead_letter' ? "correlation_id NOT IN ('@{[id(4)]}', '@{[id(10)]}')" : undef),
		$a_rows->{$t}, "D: asyncrr.$t equals A's");
}

$s1->quit;
$s2->quit;
$a->stop;
$b->stop;
$c->stop;
$d->stop;
done_testing();
