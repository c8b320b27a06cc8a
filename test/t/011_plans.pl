# The plans of the statements asyncrr runs, as auto_explain logs them, at
# 0, 100,000 and 1,000,000 live requests and right after the statistics of
# asyncrr.request went stale.  A plan must not depend on the statistics
# being right: no statement reads asyncrr.request sequentially (SEQ), or
# one of its indexes without an index condition other than for its first
# entries in order (FULL), or sorts what it read of the table to return the
# first few rows where an index gives them in order (SORT); no step of the
# background worker sorts at all; and no plan is compiled with JIT.  (While
# the table has no page at all, any plan of it costs nothing: a plan kept
# from then is checked in the next state.)
#
# Every API call (submit, submit_many, claim, complete, complete_many,
# take_replies, wait, cancel, fail, extend_lease, status, close_inbox) and
# every worker step (asyncrr._expire_deadlines and the rest, src/worker.c)
# is run in each state by three kinds of session:
#   fresh   new sessions, which plan with the statistics of the moment;
#   kept    sessions open since the start, which keep the plans they made
#           earlier (a saved plan lives until an ANALYZE invalidates it);
#   worker  the background worker itself, which keeps its plans too.
# The states, in order (live = pending or claimed, 10% of them claimed):
#   1  0 analyzed            ANALYZE of the empty table
#   2  100k stale:empty      filled since, without ANALYZE
#   3  100k analyzed
#   4  0 emptied+analyzed    every row deleted, then ANALYZE (the pages stay)
#   5  100k stale:emptied    filled since, without ANALYZE
#   6  100k stale:all-ended  every request ended, ANALYZE, then filled
#   7  1M stale:100k         ANALYZE at 100,000 live, then filled to 1,000,000
#   8  1M analyzed
# While a state is stale, a session holding SHARE UPDATE EXCLUSIVE on the
# table keeps the worker's own ANALYZE (asyncrr._refresh_statistics) out;
# autovacuum is off throughout.
#
# With ASYNCRR_PLANS_RESET=1 the functions' SET enable_seqscan clauses
# (and any enable_sort or jit) are reset after CREATE EXTENSION, to see
# which statements need them; with
# ASYNCRR_PLANS_CUSTOM=1 those functions get SET plan_cache_mode =
# force_custom_plan (an experiment: no saved plan outlives the statistics
# it was made with).  Either one turns the TODO marks off.  The plans are
# printed as notes (tmp_check/log/regress_log_011_plans, or prove -v), and
# a table of the findings as diagnostics.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
our $TODO;
use JSON::PP;
use Time::HiRes qw(time usleep);
use AsyncrrTest;

my $reset = $ENV{ASYNCRR_PLANS_RESET} ? 1 : 0;
my $custom = $ENV{ASYNCRR_PLANS_CUSTOM} ? 1 : 0;
# each call is repeated: from its sixth run a saved plan may be the generic one
my $reps = 7;
my $t0 = time;

my @states;      # their names, in order
my %found;       # {tag}{statement} = worst mark, for the table
my %slowest;     # {tag}{statement} = its slowest run with a wrong plan, in ms
my %where;       # {tag}{statement}{"mode step"}: where a plan was wrong

my $node = AsyncrrTest::new_node('plans');
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'asyncrr, auto_explain'
autovacuum = off
log_statement = none
logging_collector = on
log_destination = 'jsonlog'
log_directory = 'log'
log_filename = 'postgresql.log'
log_rotation_age = 0
log_rotation_size = 0
max_wal_size = '4GB'
# only log_min_duration, set per role, turns auto_explain on
auto_explain.log_format = json
auto_explain.log_nested_statements = on
auto_explain.log_analyze = off
});
$node->start;
AsyncrrTest::install($node);
my $log = $node->data_dir . '/log/postgresql.json';

# The functions that switch planner methods off (or jit), and what
# ASYNCRR_PLANS_RESET and ASYNCRR_PLANS_CUSTOM do to them
my $alter = $node->safe_psql(
	'postgres', qq{
SELECT string_agg(format('ALTER %s %s %s',
                         CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END,
                         p.oid::regprocedure, a), E';\n')
  FROM pg_proc p
 CROSS JOIN LATERAL (
        SELECT 'RESET ' || split_part(c, '=', 1) FROM unnest(p.proconfig) c
         WHERE ${reset}::boolean
           AND split_part(c, '=', 1) IN ('enable_seqscan', 'enable_sort', 'jit')
        UNION ALL
        SELECT 'SET plan_cache_mode = force_custom_plan' WHERE ${custom}::boolean) x(a)
 WHERE p.pronamespace = 'asyncrr'::regnamespace
   AND EXISTS (SELECT 1 FROM unnest(p.proconfig) c
                WHERE split_part(c, '=', 1) IN ('enable_seqscan', 'enable_sort', 'jit'))});
if ($alter ne '')
{
	$node->safe_psql('postgres', $alter);
	diag sprintf('%d SET clauses reset, %d functions set to force_custom_plan',
		scalar(() = $alter =~ /RESET/g), scalar(() = $alter =~ /force_custom_plan/g));
}
if ($reset)
{
	is($node->safe_psql('postgres', q{
SELECT count(*) FROM pg_proc p CROSS JOIN LATERAL unnest(p.proconfig) c
 WHERE p.pronamespace = 'asyncrr'::regnamespace
   AND split_part(c, '=', 1) IN ('enable_seqscan', 'enable_sort', 'jit')}),
		'0', 'no asyncrr function switches a planner method off');
}

# The queues: bulk holds the live requests; deep has a max_depth (its
# submits count live requests); idle stays empty (claims that wait).
# Requester and worker are plain roles, so that the access checks run too.
my $superuser = $node->safe_psql('postgres', 'SELECT rolname FROM pg_roles WHERE oid = 10');
$node->safe_psql(
	'postgres', qq{
SELECT asyncrr.create_queue('bulk', default_timeout => '1 hour', lease => '1 hour');
SELECT asyncrr.create_queue('deep', default_timeout => '1 hour');
SELECT asyncrr.alter_queue('deep', max_depth => 100000);
SELECT asyncrr.create_queue('idle');
CREATE ROLE plan_req LOGIN IN ROLE asyncrr_requester;
CREATE ROLE plan_wrk LOGIN IN ROLE asyncrr_worker;
SELECT asyncrr.grant_queue('bulk', 'plan_req', 'submit');
SELECT asyncrr.grant_queue('deep', 'plan_req', 'submit');
SELECT asyncrr.grant_queue('bulk', 'plan_wrk', 'claim');
SELECT asyncrr.grant_queue('idle', 'plan_wrk', 'claim');
ALTER ROLE plan_req SET auto_explain.log_min_duration = 0;
ALTER ROLE plan_wrk SET auto_explain.log_min_duration = 0;
-- the worker connects as the bootstrap superuser (the helper session below
-- turns it off for itself)
ALTER ROLE "$superuser" SET auto_explain.log_min_duration = 0;
});
# the worker reads its role's settings when it starts
my $old_pid = AsyncrrTest::worker_pid($node);
$node->safe_psql('postgres', "SELECT pg_terminate_backend($old_pid)");
AsyncrrTest::wait_for_worker($node, $old_pid);

sub session
{
	my ($user) = @_;
	my $s = $node->background_psql('postgres',
		extra_params => [ '-U', $user // $superuser ]);
	$s->set_query_timer_restart;
	return $s;
}

# the helper: loads, analyzes, deletes; logs no plans
my $admin = session();
$admin->query_safe('SET auto_explain.log_min_duration = -1');
# holds SHARE UPDATE EXCLUSIVE while a state is stale: no ANALYZE gets in
my $locker = session();
$locker->query_safe('SET auto_explain.log_min_duration = -1');

my $batch = 0;

# Adds $n live requests to queue bulk: submit_many in batches of 10,000
# from one session, then claims of a tenth of them (lease 1 hour).
sub fill
{
	my ($n) = @_;
	my $t = time;
	for (my $done = 0; $done < $n; $done += 10000)
	{
		my $prio = $batch++ % 3;
		$admin->query_safe(
			"SELECT count(*) FROM asyncrr.submit_many('bulk',
			   (SELECT array_agg(jsonb_build_object('order', g, 'sku', 'sku-' || g % 977, 'qty', g % 7 + 1))
			      FROM generate_series(1, 10000) g),
			   timeout => '1 hour', priority => $prio)");
		$admin->query_safe('UNLISTEN *') if $batch == 1;
	}
	for (my $done = 0; $done < $n / 10; $done += 10000)
	{
		$admin->query_safe(
			"SELECT count(*) FROM asyncrr.claim('bulk', 10000, lease => '1 hour', worker => 'loader')");
	}
	note sprintf('filled %d live requests in %.1f s', $n, time - $t);
}

sub analyze
{
	my $t = time;
	$admin->query_safe('ANALYZE asyncrr.request');
	note sprintf('ANALYZE in %.1f s', time - $t);
}

# what ANALYZE last saw (ANALYZE updates pg_class at once)
sub reltuples
{
	return $admin->query_safe(
		"SELECT reltuples::bigint FROM pg_class WHERE oid = 'asyncrr.request'::regclass");
}

my $analyzed;

sub lock_out_analyze
{
	$locker->query_safe('BEGIN; LOCK TABLE asyncrr.request IN SHARE UPDATE EXCLUSIVE MODE');
	$analyzed = reltuples();
}

sub let_in_analyze
{
	is(reltuples(), $analyzed, "$states[-1]: no ANALYZE since the statistics went stale");
	$locker->query_safe('COMMIT');
}

# ----------------------------------------------------------------------
# The log
# ----------------------------------------------------------------------

my $json = JSON::PP->new;

# Log entries from byte $from to the last complete line: (entries, end).
sub read_log
{
	my ($from) = @_;
	open my $fh, '<', $log or die "cannot open $log: $!";
	seek $fh, $from, 0;
	local $/;
	my $text = <$fh> // '';
	close $fh;
	$text =~ s/[^\n]*\z//;    # a line still being written
	my @entries;
	for my $line (split /\n/, $text)
	{
		my $e = eval { $json->decode($line) } or next;
		next unless ($e->{message} // '') =~ /^duration: ([\d.]+) ms  plan:\n(.*)\z/s;
		my $ms = $1;
		my $p = eval { $json->decode($2) } or next;
		push @entries,
		  {
			app => $e->{application_name} // '',
			backend_type => $e->{backend_type} // '',
			context => $e->{context} // '',
			text => $p->{'Query Text'} // '',
			plan => $p->{Plan},
			jit => exists $p->{JIT} ? 1 : 0,
			ms => $ms,
		  };
	}
	return (\@entries, $from + length $text);
}

sub log_end { return -s $log; }

# Short names for the statements asyncrr runs on asyncrr.request (those of
# src/request.c are named after its plans); anything else by its first words.
my @names = (
	[ qr/^SELECT correlation_id, owner_role, queue_name, payload FROM asyncrr\.request/ => 'known_ids' ],
	[ qr/^SELECT \(SELECT count\(\*\) FROM \(SELECT 1 FROM asyncrr\.request l/ => 'depth' ],
	[ qr/^INSERT INTO asyncrr\.request.*unnest/s => 'insert' ],
	[ qr/^INSERT INTO asyncrr\.request/ => 'insert_one' ],
	[ qr/^SELECT ARRAY\(SELECT c\.correlation_id FROM asyncrr\.request c\s+WHERE c\.state = 'claimed'/ => 'expired' ],
	[ qr/^WITH claimed AS/ => 'claim' ],
	[ qr/^SELECT c\.correlation_id FROM asyncrr\.request c WHERE c\.state = 'pending'/ => 'pending' ],
	[ qr/^SELECT correlation_id, queue_name, owner_role FROM asyncrr\.request/ => 'access' ],
	[ qr/^SELECT r FROM asyncrr\.request r WHERE r\.correlation_id = \$1/ => 'lock_row' ],
	[ qr/^SELECT state FROM asyncrr\.request WHERE correlation_id = \$1 FOR UPDATE/ => 'lock_state' ],
	[ qr/^SELECT correlation_id, state, attempt, claimed_by\b.*WHERE correlation_id = \$1/s => 'lock_claim' ],
	[ qr/^SELECT correlation_id, state, attempt, claimed_by\b.*WHERE correlation_id = ANY/s => 'lock_claims' ],
	[ qr/^SELECT asyncrr\._after_end|^WITH r AS \(UPDATE asyncrr\.request SET late_reply/ => 'late_reply' ],
	[ qr/^WITH ended AS.*no reply within/s => 'end_timed_out' ],
	[ qr/^WITH ended AS.*lease expired/s => 'end_lease_expired' ],
	[ qr/^WITH ended AS.*unnest/s => 'end' ],
	[ qr/^WITH ended AS/ => 'end_one' ],
	[ qr/^WITH taken AS/ => 'take' ],
	[ qr/WHERE l\.inbox_name = \$1 AND l\.taken_at IS NULL/ => 'live_of_inbox' ],
	[ qr/^SELECT correlation_id FROM asyncrr\.request\s+WHERE correlation_id = ANY \(ARRAY\(SELECT l\.correlation_id FROM asyncrr\.request l WHERE l\.state = 'pending'/ => 'live_of_queue' ],
	[ qr/^SELECT count\(\*\) FROM \(SELECT l\.correlation_id/ => 'count_live' ],
	[ qr/^UPDATE asyncrr\.request SET taken_at = pg_catalog\.clock_timestamp\(\) WHERE correlation_id = \$1 AND/ => 'take_one' ],
	[ qr/^SELECT correlation_id, state, reply, error, finished_at, deadline, taken_at IS NOT NULL/ => 'standing' ],
	[ qr/^SELECT 1 FROM asyncrr\.request WHERE correlation_id = \$1 AND inbox_name = \$2/ => 'in_inbox' ],
	[ qr/^SELECT \(SELECT 1 FROM asyncrr\.request c\s+WHERE c\.state = 'pending'/ => 'work' ],
	[ qr/correlation_id = (\$1|_time_out\.correlation_id)\s.*deadline <=/s => 'due_one' ],
	[ qr/asyncrr\.request q\s+WHERE q\.correlation_id = _time_out\.correlation_id/ => 'due_one' ],
	[ qr/WHERE finished_at IS NULL AND deadline <= now\(\)/ => 'due' ],
	[ qr/r\.state = 'claimed' AND r\.queue_name = q\.queue_name\s+AND r\.lease_until <= now\(\)/ => 'lease_expired' ],
	[ qr/SET state = 'pending', lease_until = NULL,\s+error = (pg_catalog\.)?format/ => 'requeue' ],
	[ qr/SET state = 'pending', lease_until = NULL, error = / => 'retry' ],
	[ qr/^UPDATE asyncrr\.request SET lease_until = / => 'extend' ],
	[ qr/^WITH RECURSIVE names/ => 'orphan_replies' ],
	[ qr/SET taken_at = now\(\), dead_letter_reason/ => 'orphan_replies' ],
	[ qr/^DELETE FROM asyncrr\.inbox i/ => 'remove_session_inboxes' ],
	[ qr/DELETE FROM asyncrr\.request r/ => 'purge_requests' ],
	[ qr/SELECT least\(\(SELECT r\.deadline FROM asyncrr\.request/ => 'next_event' ],
	[ qr/FROM asyncrr\.request r\s+WHERE r\.correlation_id = \$1 AND asyncrr\._sees/ => 'status' ],
);

sub statement_name
{
	my ($text) = @_;
	for my $n (@names)
	{
		return $n->[1] if $text =~ $n->[0];
	}
	(my $words = $text) =~ s/\s+/ /g;
	return substr($words, 0, 40);
}

my %short = (
	'Seq Scan' => 'Seq', 'Index Scan' => 'Idx', 'Index Only Scan' => 'IdxOnly',
	'Bitmap Heap Scan' => 'BmpHeap', 'Bitmap Index Scan' => 'BmpIdx',
	'Nested Loop' => 'NestLoop', 'Function Scan' => 'Func', 'CTE Scan' => 'CTE',
	'Hash Join' => 'HashJoin', 'Merge Join' => 'MergeJoin', 'Subquery Scan' => 'Subq',
	'Values Scan' => 'Values', 'ProjectSet' => 'ProjSet', 'Materialize' => 'Mat');

# What a plan does with asyncrr.request: a one-line rendering of it, and
# what is wrong with it:
#   SEQ   a sequential scan of request;
#   FULL  an index of request read without an index condition, other than
#         for its first entries in order (a Limit above, no Sort between);
#   SORT  a Limit over a Sort of what a scan of request returned (other
#         than by primary key): every matching row read to return the first
#         few, where an index could give them in order.  In a worker step,
#         any Sort.
sub examine
{
	my ($plan, $worker_step, $no_pages) = @_;
	my %r = (touches => 0, bad => [], marks => {});
	my $walk;
	# returns (rendering, whether the subtree scans request other than by pkey)
	$walk = sub {
		my ($n, $limited) = @_;
		my $type = $n->{'Node Type'};
		my $rel = $n->{'Relation Name'} // '';
		my $index = $n->{'Index Name'} // '';
		my $on_request = $rel eq 'request' || $index =~ /^request_/;
		my $cond = exists $n->{'Index Cond'};
		$r{touches} = 1 if $on_request;
		my $label = $short{$type} // $type;
		$label = $n->{Operation} if $type eq 'ModifyTable';
		$label .= "[$rel]" if $rel ne '' && $index eq '';
		if ($index ne '')
		{
			(my $i = $index) =~ s/^request_//;
			$label .= "[$i" . ($cond ? '' : ' FULL') . ']';
		}
		my $scans = 0;
		if ($on_request && $type eq 'Seq Scan')
		{
			push @{ $r{bad} }, 'a Seq Scan on request';
			$r{marks}{SEQ} = 1;
			$scans = 1;
		}
		elsif ($on_request && $index ne '')
		{
			$scans = 1 if $index ne 'request_pkey';
			if (!$cond && ($type eq 'Bitmap Index Scan' || !$limited))
			{
				push @{ $r{bad} }, "$type on $index without an index condition";
				$r{marks}{FULL} = 1;
			}
		}
		# a Limit makes a condition-less ordered scan below it a short read;
		# a Sort, an aggregate or a hash in between reads it all
		my $below = $type eq 'Limit' ? 1
		  : ($type =~ /Sort|Aggregate|Hash|Materialize|Append/) ? 0 : $limited;
		my @kids;
		for my $k (@{ $n->{Plans} // [] })
		{
			my ($text, $s) = $walk->($k, $below);
			push @kids, $text;
			$scans ||= $s unless ($k->{'Parent Relationship'} // '') =~ /^(InitPlan|SubPlan)$/;
		}
		if ($type =~ /Sort/ && ($worker_step || ($limited && $scans)))
		{
			push @{ $r{bad} }, $worker_step ? 'a Sort in a worker step'
			  : 'a Sort under a Limit of what a scan of request returned';
			$r{marks}{SORT} = 1;
		}
		return ((@kids ? "$label(" . join(',', @kids) . ')' : $label), $scans);
	};
	($r{sig}) = $walk->($plan, 0);
	# no plan of an empty table is wrong: a plan kept from then shows in the
	# next state
	($r{bad}, $r{marks}) = ([], {}) if $no_pages;
	$r{mark} = join('+', grep { $r{marks}{$_} } qw(SEQ FULL SORT)) || 'ok';
	return \%r;
}

# ----------------------------------------------------------------------
# The calls
# ----------------------------------------------------------------------

# Runs $sql in session $s as step $step of $tag (state number and mode);
# returns its rows.
sub step
{
	my ($s, $tag, $step, $sql) = @_;
	my $out = $s->query_safe("SET application_name = 'plans|$tag|$step';\n$sql");
	return grep { $_ ne '' } split /\n/, $out;
}

# Every API call and worker step, $reps times each (close_inbox once).
sub exercise
{
	my ($tag, $req, $wrk, $sup) = @_;
	my (@sub, @many, @deep, @claimed);

	step($req, $tag, 'open_inbox', 'SELECT asyncrr.open_inbox(); UNLISTEN *');
	for my $i (1 .. $reps)
	{
		my $id = $i % 2 ? "correlation_id => gen_random_uuid()," : '';
		push @sub, step($req, $tag, 'submit',
			"SELECT asyncrr.submit('bulk', '{\"probe\": $i}', timeout => '1 hour', $id priority => 9)");
	}
	for my $i (1 .. $reps)
	{
		push @many, step($req, $tag, 'submit_many',
			"SELECT * FROM asyncrr.submit_many('bulk', ARRAY['{\"p\": 1}', '{\"p\": 2}', '{\"p\": 3}', '{\"p\": 4}']::jsonb[],
			                                   timeout => '1 hour', priority => 9)");
	}
	for my $i (1 .. $reps)
	{
		push @deep, step($req, $tag, 'submit(max_depth)',
			"SELECT asyncrr.submit('deep', '{\"probe\": $i}', timeout => '1 hour')");
	}

	# the priority 9 requests just submitted come first (and are all that
	# is claimed here when the queue holds nothing else)
	push @claimed, step($wrk, $tag, 'claim',
		"SELECT correlation_id FROM asyncrr.claim('bulk', lease => '1 hour')") for 1 .. $reps;
	push @claimed, step($wrk, $tag, 'claim(wait 0)',
		"SELECT correlation_id FROM asyncrr.claim('bulk', lease => '1 hour', wait => '0')") for 1 .. $reps;
	push @claimed, step($wrk, $tag, 'claim(many)',
		"SELECT correlation_id FROM asyncrr.claim('bulk', " . 3 * $reps . ", lease => '1 hour')");
	die "claimed " . scalar(@claimed) . " requests, not " . 5 * $reps if @claimed != 5 * $reps;
	die "the first claims are not the requests just submitted"
	  if join(',', sort @claimed[ 0 .. $reps - 1 ]) ne join(',', sort @sub);
	step($wrk, $tag, 'claim(wait, nothing)',
		"SELECT count(*) FROM asyncrr.claim('idle', wait => '10 ms')") for 1 .. $reps;
	step($wrk, $tag, 'wait_for_work', "CALL asyncrr.wait_for_work('idle', '10 ms')") for 1 .. $reps;
	for my $i (0 .. $reps - 1)
	{
		step($wrk, $tag, 'complete', "SELECT asyncrr.complete('$claimed[$i]', '{\"ok\": $i}')");
	}
	for my $i (0 .. $reps - 1)
	{
		my ($a, $b) = @claimed[ $reps + 2 * $i, $reps + 2 * $i + 1 ];
		step($wrk, $tag, 'complete_many',
			"SELECT count(*) FROM asyncrr.complete_many(ARRAY['$a', '$b']::uuid[], ARRAY['{}', '{}']::jsonb[])");
	}
	for my $i (0 .. $reps - 1)
	{
		my $retry = $i % 2 ? 'true' : 'false';
		step($wrk, $tag, 'fail',
			"SELECT asyncrr.fail('$claimed[3 * $reps + $i]', 'boom', retry => $retry)");
	}
	for my $i (0 .. $reps - 1)
	{
		step($wrk, $tag, 'extend_lease',
			"SELECT asyncrr.extend_lease('$claimed[4 * $reps + $i]', '2 hours') IS NOT NULL");
	}

	step($req, $tag, 'wait', "SELECT status FROM asyncrr.wait('$sub[$_]', '10 s')") for 0 .. $reps - 1;
	step($req, $tag, 'wait(live)', "SELECT status FROM asyncrr.wait('$deep[$_]', '10 ms')")
	  for 0 .. $reps - 1;
	step($req, $tag, 'status', "SELECT state FROM asyncrr.status('$many[$_]')") for 0 .. $reps - 1;
	step($req, $tag, 'take_replies', 'SELECT count(*) FROM asyncrr.take_replies(3)') for 1 .. $reps;
	step($req, $tag, 'cancel', "SELECT asyncrr.cancel('$deep[$_]')") for 0 .. $reps - 1;
	# cancels what is left live: the requests fail() sent back to the queue
	step($req, $tag, 'close_inbox', 'SELECT asyncrr.close_inbox(cancel_pending => true)');

	# the worker's steps, called as it calls them
	for (1 .. $reps)
	{
		step($sup, $tag, '_expire_deadlines', 'SELECT asyncrr._expire_deadlines(1000)');
		step($sup, $tag, '_expire_leases', 'SELECT asyncrr._expire_leases(1000)');
		step($sup, $tag, '_orphan_inboxes', "SELECT asyncrr._orphan_inboxes(1000, '1 s')");
		step($sup, $tag, '_purge_requests', "SELECT asyncrr._purge_requests(1000, '1 hour')");
		step($sup, $tag, '_purge_old_dead_letters',
			"SELECT asyncrr._purge_old_dead_letters(1000, '7 days')");
		step($sup, $tag, '_next_event', 'SELECT asyncrr._next_event()');
	}
}

# the sessions that keep their plans from the start
my %kept = (req => session('plan_req'), wrk => session('plan_wrk'), sup => session());

# Waits until the worker has run each of its steps at least $passes times
# after byte $from of the log: $passes + 1 housekeeping passes logged (by
# their _orphan_inboxes, in the middle of a pass).
sub worker_passes
{
	my ($from, $passes) = @_;
	my $deadline = time + 60;
	while (time < $deadline)
	{
		my ($entries) = read_log($from);
		my $n = grep {
			$_->{backend_type} eq 'asyncrr worker'
			  && $_->{text} =~ /^SELECT asyncrr\._orphan_inboxes/
		} @$entries;
		return 1 if $n >= $passes + 1;    # (the first may have begun before)
		usleep(200_000);
	}
	return 0;
}

# ----------------------------------------------------------------------
# The states
# ----------------------------------------------------------------------

# Runs every call in a new state and checks the plans logged.
sub in_state
{
	my ($size, $what) = @_;
	my $tag = "$size $what";
	push @states, $tag;
	my $n = @states;
	my $from = log_end();
	my $t = time;
	my $pages = $admin->query_safe("SELECT pg_relation_size('asyncrr.request')");

	my %fresh = (req => session('plan_req'), wrk => session('plan_wrk'), sup => session());
	exercise("$n|fresh", $fresh{req}, $fresh{wrk}, $fresh{sup});
	$_->quit for values %fresh;
	exercise("$n|kept", $kept{req}, $kept{wrk}, $kept{sup});
	# a whole pass of the worker in this state
	ok(worker_passes($from, 1), "$tag: the worker made a housekeeping pass");
	my ($entries) = read_log($from);
	note sprintf('state %d (%s): calls in %.1f s', $n, $tag, time - $t);
	check($n, $tag, $entries, $pages == 0);
}

# Statements whose plans are known to be wrong, by statement name and
# state number, each with its reason: their checks are TODO.  Remove an
# entry once its statement is fixed.
#
# In states 4 and 5 the statistics say the table holds no row while it has
# thousands of pages (every row deleted and analyzed, not yet vacuumed:
# a long transaction can keep VACUUM from removing them).  Every index
# path then costs about one page, and the planner picks among them by
# rounding: a bitmap scan of the right index and a sort of what it read,
# where reading the index in order would stop at the first few.  With
# autovacuum on, asyncrr.request is analyzed again after 50 changed rows
# (its autovacuum_analyze_scale_factor), within a naptime.
my $no_rows = 'the statistics say the table has no row while it has pages:'
  . ' a bitmap scan and a sort cost the same as the ordered index scan';
my %todo = (
	(map { $_ => { states => [ 4, 5 ], why => $no_rows } }
		qw(claim pending work expired take purge_requests next_event orphan_replies end
		  remove_session_inboxes)),
	due => { states => [2],
		why => 'the statistics of the empty table leave the planner guessing how many are due:'
		  . ' a bitmap scan of the due entries and a sort, not the first in order' },
);

sub check
{
	my ($n, $tag, $entries, $no_pages) = @_;
	my %by_name;    # {statement} = {plans => {"mode step sig" => ...}, modes => {...}}
	for my $e (@$entries)
	{
		my ($mode, $step);
		if ($e->{app} =~ /^plans\|$n\|(\w+)\|(.+)\z/)
		{
			($mode, $step) = ($1, $2);
		}
		elsif ($e->{backend_type} eq 'asyncrr worker')
		{
			($step) = $e->{context} =~ /SQL statement "SELECT asyncrr\.(\w+)\([^\n]*"\s*\z/;
			($step) = $e->{text} =~ /^SELECT asyncrr\.(\w+)\(/ unless defined $step;
			next unless defined $step;
			$mode = 'worker';
		}
		else
		{
			next;
		}
		my $x = examine($e->{plan}, $step =~ /^_/ ? 1 : 0, $no_pages);
		if ($e->{jit})
		{
			push @{ $x->{bad} }, 'compiled with JIT';
			$x->{mark} = $x->{mark} eq 'ok' ? 'JIT' : "$x->{mark}+JIT";
		}
		next unless $x->{touches};
		my $name = statement_name($e->{text});
		my $s = $by_name{$name} //= { plans => {}, modes => {} };
		$s->{modes}{$mode} = 1;
		my $p = $s->{plans}{"$mode $step $x->{sig}"} //=
		  { mode => $mode, step => $step, x => $x, runs => 0, ms => 0, jit => 0 };
		$p->{runs}++;
		$p->{ms} = $e->{ms} if $e->{ms} > $p->{ms};
		$p->{jit} ||= $e->{jit};
	}

	for my $name (sort keys %by_name)
	{
		my $s = $by_name{$name};
		my @problems;
		my $worst = 'ok';
		my $ms = 0;
		for my $p (sort { $a->{mode} cmp $b->{mode} || $a->{step} cmp $b->{step} }
			values %{ $s->{plans} })
		{
			my $x = $p->{x};
			note sprintf('%d %-6s %-22s %-22s %-9s %4d runs, max %8.3f ms%s  %s',
				$n, $p->{mode}, $p->{step}, $name, $x->{mark}, $p->{runs}, $p->{ms},
				$p->{jit} ? ' JIT' : '', $x->{sig});
			next if $x->{mark} eq 'ok';
			$ms = $p->{ms} if $p->{ms} > $ms;
			push @problems,
			  sprintf("%s %s (max %.1f ms): %s\n      %s",
				$p->{mode}, $p->{step}, $p->{ms}, join('; ', @{ $x->{bad} }), $x->{sig});
			$where{$tag}{$name}{"$p->{mode} $p->{step}"} = 1;
			# the worst first: SEQ, then FULL, then SORT
			$worst = $x->{mark}
			  if $worst eq 'ok' || ($x->{mark} =~ /SEQ/ && $worst !~ /SEQ/)
			  || ($x->{mark} =~ /FULL/ && $worst !~ /SEQ|FULL/);
		}
		$found{$tag}{$name} = $worst;
		$slowest{$tag}{$name} = $ms;
		local $TODO =
		  (!$reset && !$custom && $todo{$name} && grep { $_ == $n } @{ $todo{$name}{states} })
		  ? $todo{$name}{why} : undef;
		ok(!@problems,
			"$tag: $name reads asyncrr.request through its indexes ("
			  . join(', ', sort keys %{ $s->{modes} }) . ')')
		  or $TODO ? note(join("\n", @problems)) : diag(join("\n", @problems));
	}
}

# 0 live: analyzed while empty.  The kept sessions and the worker make
# their plans now (the worker runs its steps each second: from its sixth
# run a plan may be the generic one).
analyze();
my $from = log_end();
in_state(0, 'analyzed');
ok(worker_passes($from, 6), 'the worker ran its steps six times with the table empty');

lock_out_analyze();
fill(100_000);
in_state(100_000, 'stale:empty');
let_in_analyze();

analyze();
in_state(100_000, 'analyzed');

# retention removed every request and ANALYZE saw it (no VACUUM: the pages
# stay, and the planner takes the table for empty however it grows)
my $t = time;
$admin->query_safe('DELETE FROM asyncrr.request');
note sprintf('deleted every request in %.1f s', time - $t);
analyze();
in_state(0, 'emptied+analyzed');

lock_out_analyze();
fill(100_000);
in_state(100_000, 'stale:emptied');
let_in_analyze();

# every request ended (completed, reply taken), ANALYZE saw it, and new
# live requests arrived: the statistics say that none is live
$admin->query_safe(
	"UPDATE asyncrr.request SET state = 'completed', finished_at = now(), lease_until = NULL,
	        reply = '{}', taken_at = now()
	  WHERE state IN ('pending', 'claimed')");
analyze();
lock_out_analyze();
fill(100_000);
in_state(100_000, 'stale:all-ended');
let_in_analyze();

analyze();
lock_out_analyze();
fill(900_000);
in_state(1_000_000, 'stale:100k');
let_in_analyze();

analyze();
in_state(1_000_000, 'analyzed');

# ----------------------------------------------------------------------
# The findings: per statement and state, ok or what is wrong with its
# worst plan (SEQ, FULL, SORT: see examine) as diagnostics; where it was
# seen, and its slowest run with such a plan, as notes
# ----------------------------------------------------------------------

my %all_names;
$all_names{$_} = 1 for map { keys %{ $found{$_} } } @states;
diag sprintf('plans on asyncrr.request%s%s, by state (%.0f s):',
	$reset ? ', the SET clauses RESET' : '',
	$custom ? ', force_custom_plan' : '', time - $t0);
diag sprintf('  %-22s %s', 'state:', join(' ', map { sprintf '%-9d', $_ } 1 .. @states));
for my $name (sort keys %all_names)
{
	diag sprintf('  %-22s %s', $name,
		join(' ', map { sprintf '%-9s', $found{$_}{$name} // '-' } @states));
}
diag sprintf('  %d: %s', $_ + 1, $states[$_]) for 0 .. $#states;
for my $i (0 .. $#states)
{
	for my $name (sort keys %{ $where{ $states[$i] } })
	{
		note sprintf('  %d %s %s (slowest such run %.1f ms): %s', $i + 1, $name,
			$found{ $states[$i] }{$name}, $slowest{ $states[$i] }{$name},
			join(', ', sort keys %{ $where{ $states[$i] }{$name} }));
	}
}

$_->quit for values %kept;
$admin->quit;
$locker->quit;
$node->stop;
done_testing();
