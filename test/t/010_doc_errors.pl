# Every error message the documentation quotes is one the tests see raised:
# each must appear in some expected/*.out (the outputs of sql/ and specs/),
# or be listed in %untested below with the reason no test produces it
# (reported as TODO).  A doc that quotes a message the code never raises
# fails here.  No cluster: plain Perl over README.md and doc/*.md.
#
# What counts as a quoted error message (the forms the docs use):
#   R1  in a fenced code block, a line "ERROR:  <message>";
#   R2  a code span starting with "ERROR:", `ERROR: <message>`; and, in a
#       bold lead that starts with one (the Troubleshooting entries of
#       operations.md: **`ERROR: <a>`, or `<b>` (22023).**), each further
#       code span;
#   R3  in a table row that starts with a SQLSTATE (the Errors tables of
#       reference.md), a code span right after "(": (`<message>`);
#   R4  in prose, a code span next to a SQLSTATE: 22023 `<message>`,
#       `42501 <message>`, `53400 condition_name` (`<message>`),
#       `<message>` (SQLSTATE 55P02);
#   R5  the code spans of a paragraph "Messages are in the form ...".
# Only a span with a space in it is a message (not `wait()` or `claim`);
# DETAIL and HINT texts are not checked.
#
# A quoted message is a pattern: "..." and "…" match anything, and so do
# <placeholders>; a single capital letter (N, M) matches any word, a number
# any number, and a double-quoted value ("q", "billing-1") any quoted
# value, since the docs' names and figures are examples.
use strict;
use warnings;
use utf8;

use FindBin;
use Test::More;

binmode(Test::More->builder->$_, ':encoding(UTF-8)') for qw(output failure_output todo_output);

my $top = "$FindBin::RealBin/../..";

# Quoted messages no expected/*.out shows, and why.  An entry must match
# some quoted message, and none that an expected/*.out shows (else it is
# stale: drop it).
my @untested = (
	[ qr/requires asyncrr to be loaded via shared_preload_libraries$/,
	  'no test waits without asyncrr preloaded (test/t/004_not_preloaded.pl does not try)' ],
	[ qr/^unrecognized configuration parameter "asyncrr\./,
	  "PostgreSQL's message for asyncrr.database or asyncrr.max_waiters without the preload; no test" ],
	[ qr/^parameter "asyncrr\.[^"]*" cannot be changed now$/,
	  "PostgreSQL's message for SET of a sighup setting; no test" ],
	[ qr/^this session already holds inbox /,
	  'sql/inboxes.sql shows only its SQLSTATE (a session inbox name is random)' ],
);

my $sqlstate = qr/\b(?=[0-9A-Z]*[0-9])[0-9A-Z]{5}\b/;

# The error messages quoted in one Markdown file: [message, line, rule].
sub quoted_errors
{
	my ($file) = @_;
	open my $fh, '<:encoding(UTF-8)', $file or die "$file: $!";
	my @lines = <$fh>;
	close $fh;
	chomp @lines;

	my @found;
	my @para;
	my $para_line;
	my $add = sub {
		my ($msg, $line, $rule) = @_;
		$msg =~ s/\s+/ /g;
		$msg =~ s/^ | $//g;
		push @found, [ $msg, $line, $rule ] if $msg =~ / /;
	};
	my $flush = sub {
		return unless @para;
		my $text = join("\n", @para);
		my $first = $para_line;
		@para = ();
		my $line_at = sub { $first + (() = substr($text, 0, $_[0]) =~ /\n/g) };
		my $table_row = $text =~ /^\|\s*$sqlstate/;
		while ($text =~ /`([^`]+)`/g)
		{
			my ($span, $from, $to) = ($1, $-[0], $+[0]);
			my $before = substr($text, 0, $from);
			my $after = substr($text, $to);
			my $line = $line_at->($from);
			if ($span =~ /^ERROR:\s*(.*)$/s)
			{
				$add->($1, $line, 'R2');
			}
			elsif ($table_row && $before =~ /\(\s*$/)
			{
				$add->($span, $line, 'R3');
			}
			elsif ($before =~ /$sqlstate\s*$/
				|| $before =~ /`$sqlstate [a-z_]+`\s*\(\s*$/
				|| $after =~ /^\s*\(SQLSTATE $sqlstate\)/)
			{
				$add->($span, $line, 'R4');
			}
			elsif ($span =~ /^$sqlstate\s+([a-z].*)$/s)
			{
				$add->($1, $line, 'R4');
			}
			elsif ($text =~ /^Messages are in the form/)
			{
				$add->($span, $line, 'R5');
			}
		}
		while ($text =~ /\*\*(.*?)\*\*/gs)
		{
			my ($bold, $at) = ($1, $-[1]);
			my @spans;
			while ($bold =~ /`([^`]+)`/g) { push @spans, [ $1, $at + $-[0] ]; }
			next unless @spans && $spans[0][0] =~ /^ERROR:/;
			$add->($_->[0], $line_at->($_->[1]), 'R2') for @spans[ 1 .. $#spans ];
		}
	};

	my $fence;
	for my $i (0 .. $#lines)
	{
		my $l = $lines[$i];
		if ($l =~ /^\s*(```|~~~)/)
		{
			$flush->();
			$fence = $fence ? undef : 1;
			next;
		}
		if ($fence)
		{
			$add->($1, $i + 1, 'R1') if $l =~ /^\s*ERROR:\s+(.*)$/;
			next;
		}
		if ($l =~ /^\s*$/ || $l =~ /^\s*\|/)
		{
			$flush->();
			next if $l =~ /^\s*$/;
		}
		$para_line = $i + 1 unless @para;
		push @para, $l;
		$flush->() if $l =~ /^\s*\|/;    # a table row is a paragraph of its own
	}
	$flush->();
	return @found;
}

# A quoted message as a regular expression.
sub pattern
{
	my ($msg) = @_;
	my $re = '';
	for my $tok (split /("[^"]*"|\.\.\.|…|<[^<>]*>|\b\d+\b|\b[A-Z]\b)/, $msg)
	{
		next if $tok eq '';
		if ($tok =~ /^"/) { $re .= '"[^"]*"'; }
		elsif ($tok eq '...' || $tok eq '…') { $re .= '.*?'; }
		elsif ($tok =~ /^</) { $re .= '.+?'; }
		elsif ($tok =~ /^\d+$/) { $re .= '\d+'; }
		elsif ($tok =~ /^[A-Z]$/) { $re .= '\S+'; }
		else { $re .= quotemeta($tok); }
	}
	return qr/$re/;
}

# Every line of every expected output, whitespace collapsed.
my @outputs;
for my $file (sort glob("$top/expected/*.out"))
{
	open my $fh, '<:encoding(UTF-8)', $file or die "$file: $!";
	(my $name = $file) =~ s{^\Q$top\E/}{};
	while (my $l = <$fh>)
	{
		$l =~ s/\s+/ /g;
		push @outputs, [ $name, $l ];
	}
	close $fh;
}
cmp_ok(scalar(@outputs), '>', 0, 'expected/*.out read');

# Each message once, with every place that quotes it.
my %quoted;
for my $doc ('README.md', map { s{^\Q$top\E/}{}r } sort glob("$top/doc/*.md"))
{
	push @{ $quoted{ $_->[0] } }, "$doc:$_->[1] ($_->[2])" for quoted_errors("$top/$doc");
}
my @messages = sort keys %quoted;
# (so that the extraction cannot quietly find nothing)
cmp_ok(scalar(@messages), '>=', 10, 'the docs quote error messages (' . scalar(@messages) . ')');

my (%untested_quoted, %untested_tested);
for my $msg (@messages)
{
	my $where = join(', ', @{ $quoted{$msg} });
	my $re = pattern($msg);
	my ($hit) = grep { $_->[1] =~ $re } @outputs;
	my ($why) = grep { $msg =~ $_->[0] } @untested;
	$untested_quoted{ $why->[0] } = 1 if $why;
	$untested_tested{ $why->[0] } = $hit->[0] if $why && $hit;
	if ($hit || !$why)
	{
		ok($hit, "\"$msg\" ($where) is in " . ($hit ? $hit->[0] : 'no expected/*.out'));
	}
	else
	{
		TODO:
		{
			local $TODO = $why->[1];
			ok(0, "\"$msg\" ($where) is in no expected/*.out");
		}
	}
}
for my $entry (@untested)
{
	ok($untested_quoted{ $entry->[0] }, "the docs quote a message \@untested lists: $entry->[0]");
	ok(!$untested_tested{ $entry->[0] },
		"no test shows a message \@untested lists: $entry->[0]"
		  . ($untested_tested{ $entry->[0] } ? " ($untested_tested{ $entry->[0] } does)" : ''));
}

done_testing();
