# asyncrr: PGXS build.  `make && make install`, then the suites with
# `make installcheck` (throwaway servers; run as a non-root user), or the
# whole thing on a fresh machine with `sudo test/run_tests.sh`.

MODULE_big = asyncrr
OBJS = $(patsubst %.c,%.o,$(wildcard src/*.c))
PG_CPPFLAGS = -I$(srcdir)/src

EXTENSION = asyncrr
DATA = $(wildcard asyncrr--*.sql)
PGFILEDESC = "asyncrr - durable request-reply for PostgreSQL"

REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --temp-instance=tmp_check_regress --temp-config=$(srcdir)/test/regress.conf \
	--dbname=contrib_regression

ISOLATION = $(patsubst specs/%.spec,%,$(sort $(wildcard specs/*.spec)))
ISOLATION_OPTS = --temp-instance=tmp_check_iso --temp-config=$(srcdir)/test/isolation.conf \
	--dbname=isolation_regression

TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl
PROVE_FLAGS = -I $(srcdir)/test/perl

EXTRA_CLEAN = tmp_check_regress tmp_check_iso output_iso results regression.diffs regression.out

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
# No JIT bitcode: nothing here is worth inlining, and it would need clang.
override with_llvm = no

include $(PGXS)
