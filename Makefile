# asyncrr: PGXS build.  `make && make install`, then the suites with
# `make installcheck installcheck-nodispatch` (throwaway servers; run as a
# non-root user), or the whole thing on a fresh machine with
# `sudo test/run_tests.sh`.

MODULE_big = asyncrr
OBJS = $(patsubst %.c,%.o,$(wildcard src/*.c))
# every file includes the shared header: a change to it rebuilds them all
$(OBJS): src/asyncrr.h
PG_CPPFLAGS = -I$(srcdir)/src

EXTENSION = asyncrr
DATA = $(wildcard asyncrr--*.sql)
PGFILEDESC = "asyncrr - durable request-reply for PostgreSQL"

# The suites run with asyncrr's default settings, as users do: the
# notifications of replies are sent after commit by the asyncrr dispatcher
# (src/notify.c), at a moment of its own and under its own PID
# (sql/00_install.sql checks).  The specs listed in ISOLATION_NODISPATCH
# instead run, with `make installcheck-nodispatch`, on a second temp
# instance with asyncrr.notify_dispatch = off (test/nodispatch.conf), where
# each session sends its own notifications at its commit: only specs whose
# point is that path, or whose output cannot be made independent of when
# a notification arrives.  reply-routing and progress-vs-complete: the
# isolation tester prints each notification with the session that sent
# it.  (No SQL file needs it.)
ISOLATION_NODISPATCH = reply-routing progress-vs-complete

REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --temp-instance=tmp_check_regress --temp-config=$(srcdir)/test/regress.conf \
	--dbname=contrib_regression

ISOLATION = $(filter-out $(ISOLATION_NODISPATCH),$(patsubst specs/%.spec,%,$(sort $(wildcard specs/*.spec))))
ISOLATION_OPTS = --temp-instance=tmp_check_iso --temp-config=$(srcdir)/test/isolation.conf \
	--dbname=isolation_regression

TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl
PROVE_FLAGS = -I $(srcdir)/test/perl

EXTRA_CLEAN = tmp_check_regress tmp_check_iso output_iso results regression.diffs regression.out \
	tmp_check_iso_nodispatch output_iso_nodispatch

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
# No JIT bitcode: nothing here is worth inlining, and it would need clang.
override with_llvm = no

include $(PGXS)

# The specs of ISOLATION_NODISPATCH, on a temp instance of their own with
# test/nodispatch.conf appended to test/isolation.conf; output in
# output_iso_nodispatch/.
.PHONY: installcheck-nodispatch
installcheck-nodispatch: submake
	$(pg_isolation_regress_installcheck) $(ISOLATION_OPTS) \
		--temp-instance=tmp_check_iso_nodispatch --outputdir=output_iso_nodispatch \
		--temp-config=$(srcdir)/test/nodispatch.conf $(ISOLATION_NODISPATCH)
