# walnotify: a PostgreSQL logical-replication daemon with dlopen-loaded handler plugins.
#
#   make                 the host (build/walnotify) and every shipped plugin (build/plugins/*.so)
#   make check           every unit and integration test (starts a throwaway PostgreSQL)
#   make run             the example pipeline against a throwaway PostgreSQL
#   make install         PREFIX (default /usr/local), DESTDIR
#   make SANITIZE=1 ...  everything built with AddressSanitizer and UndefinedBehaviorSanitizer
#   make fuzz            the decoder under libFuzzer for FUZZ_SECONDS (default 60)
#   make valgrind        the test suite under valgrind memcheck
#   make bench           throughput, CPU, memory and latency beside pg_recvlogical
#   make check-sinks     the sinks' longer fault runs (tests/sinks), apart from make check

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
VERSION    := 1.0.0

CC      ?= cc
PG_INC  := $(shell pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)
WARN    := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes \
           -Wvla -Wno-missing-field-initializers
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -pthread -fPIC -Iinclude -Icore -I$(PG_INC) $(WARN) \
           -DWALNOTIFY_VERSION='"$(VERSION)"'
LDFLAGS ?=
LDFLAGS += -pthread
ifeq ($(SANITIZE),1)
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined
endif

HOST_LIBS  := -lpq -lconfig -ldl
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt -lm)

B := build

# `make V=1` shows every command.
ifeq ($(V),1)
Q :=
else
Q := @
endif

CORE_SRCS := $(wildcard core/*.c)
CORE_OBJS := $(patsubst core/%.c,$(B)/core/%.o,$(CORE_SRCS))
PLUGINS   := $(notdir $(wildcard plugins/*))
PLUGIN_SOS := $(patsubst %,$(B)/plugins/%.so,$(PLUGINS))

.PHONY: all check unit integration run install clean tests deps fuzz valgrind bench check-sinks
all: $(B)/walnotify $(PLUGIN_SOS)

$(B)/core/%.o: core/%.c $(wildcard core/*.h) include/walnotify/plugin.h
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

$(B)/walnotify: $(CORE_OBJS)
	@echo "  CC      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(HOST_LIBS)

# A plugin is every .c in its folder, plus the core sources PLUGIN_SRCS_<name> lists (compiled
# into it, hidden), linked against nothing of the host (only against the libraries
# PLUGIN_LIBS_<name> names).
PLUGIN_SRCS_jsonl := core/files.c
PLUGIN_LIBS_webhook := -lcurl
# Intermediate objects of the tests are kept, so a second make has nothing to do.
.SECONDARY:
.SECONDEXPANSION:
$(B)/plugins/%.so: $$(wildcard plugins/%/*.c) $$(wildcard plugins/%/*.h) $$(PLUGIN_SRCS_$$*) \
                   $$(addsuffix .h,$$(basename $$(PLUGIN_SRCS_$$*))) include/walnotify/plugin.h
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS) -fvisibility=hidden -shared $(LDFLAGS) -o $@ $(filter %.c,$^) $(PLUGIN_LIBS_$*)

# ---- tests -------------------------------------------------------------------------------------
# Each unit test links only the core modules it exercises, named here.
UNIT_DEPS_decoder    := decoder lsn log
UNIT_DEPS_relcache   := relcache decoder lsn log
UNIT_DEPS_config     := config conninfo lsn log
UNIT_DEPS_loader     := loader encoder jsonbuf namecache config conninfo lsn log
UNIT_DEPS_abi        :=
UNIT_DEPS_jsonl      := encoder jsonbuf namecache
UNIT_DEPS_encoder    := encoder jsonbuf namecache
UNIT_DEPS_handoff    := handoff lsn log
UNIT_DEPS_lsn        := lsn
UNIT_DEPS_backoff    := backoff
UNIT_DEPS_conninfo   := conninfo log
UNIT_DEPS_log        := log
UNIT_DEPS_state      := state files lsn log
# The dead-letter file's tests link what the dead-letter module needs, as the dispatcher's do.
UNIT_DEPS_files       = files $(filter-out dispatcher,$(UNIT_DEPS_dispatcher))
UNIT_DEPS_dispatcher := dispatcher deadletter files encoder jsonbuf namecache handoff decoder \
                        relcache tablewatch loader config conninfo lsn log
UNIT_DEPS_tablewatch := tablewatch conninfo log

UNIT_SRCS    := $(wildcard tests/unit/test_*.c)
UNIT_BINS    := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRCS))
FIXTURE_SRCS := $(wildcard tests/fixtures/*.c)
FIXTURE_SOS  := $(patsubst tests/fixtures/%.c,$(B)/tests/fixtures/%.so,$(FIXTURE_SRCS))
ITEST_SRCS   := $(wildcard tests/integration/test_*.c)
ITEST_BINS   := $(patsubst tests/integration/test_%.c,$(B)/tests/itest_%,$(ITEST_SRCS))
TESTLIB_OBJS := $(patsubst tests/lib/%.c,$(B)/tests/lib/%.o,$(wildcard tests/lib/*.c))

$(B)/tests/test_%: tests/unit/test_%.c $$(addprefix $(B)/core/,$$(addsuffix .o,$$(UNIT_DEPS_$$*))) \
                   $(wildcard tests/lib/*.h)
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS) -Itests/lib $(LDFLAGS) -o $@ $(filter %.c %.o,$^) $(CHECK_LIBS) $(HOST_LIBS)

$(B)/tests/fixtures/%.so: tests/fixtures/%.c $(wildcard tests/fixtures/*.h) include/walnotify/plugin.h
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS) -fvisibility=hidden -shared $(LDFLAGS) -o $@ $<

# A fixture named abi10_* is built as a plugin compiled before ABI 1.1: against the 1.0 header
# kept in tests/fixtures/abi-1.0, found before include/.
$(B)/tests/fixtures/abi10_%.so: tests/fixtures/abi10_%.c tests/fixtures/abi-1.0/walnotify/plugin.h
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) -Itests/fixtures/abi-1.0 $(CFLAGS) -fvisibility=hidden -shared $(LDFLAGS) -o $@ $<

$(B)/tests/lib/%.o: tests/lib/%.c $(wildcard tests/lib/*.h)
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS) -Itests/lib -c -o $@ $<

$(B)/tests/itest_%: tests/integration/test_%.c $(TESTLIB_OBJS) $(B)/core/lsn.o
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS) -Itests/lib $(LDFLAGS) -o $@ $(filter %.c %.o,$^) $(CHECK_LIBS) -lpq

tests: all $(UNIT_BINS) $(FIXTURE_SOS) $(ITEST_BINS)

# The sinks' longer runs: integration tests kept out of make check for their length.
SINK_SRCS := $(wildcard tests/sinks/test_*.c)
SINK_BINS := $(patsubst tests/sinks/test_%.c,$(B)/tests/sinks/itest_%,$(SINK_SRCS))

$(B)/tests/sinks/itest_%: tests/sinks/test_%.c $(TESTLIB_OBJS) $(B)/core/lsn.o
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS) -Itests/lib $(LDFLAGS) -o $@ $(filter %.c %.o,$^) $(CHECK_LIBS) -lpq

check-sinks:
	@tests/deps.sh
	@$(MAKE) --no-print-directory tests $(SINK_BINS)
	@tests/sinks/run.sh

# The dependency check runs first, in its own make, so a missing header is named, not a
# compiler error.
check:
	@tests/deps.sh
	@$(MAKE) --no-print-directory tests
	@tests/run.sh unit integration

unit:
	@tests/deps.sh
	@$(MAKE) --no-print-directory tests
	@tests/run.sh unit

integration:
	@tests/deps.sh
	@$(MAKE) --no-print-directory tests
	@tests/run.sh integration

# The decoder under libFuzzer (clang) for FUZZ_SECONDS.
FUZZ_SECONDS ?= 60
fuzz:
	@tests/deps.sh
	@FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh

# Every test with the host and the unit tests under valgrind memcheck.
valgrind:
	@tests/deps.sh
	@$(MAKE) --no-print-directory tests
	@tests/valgrind.sh

# walnotify side by side with pg_recvlogical (and a Node.js client when npm is there).
bench:
	@tests/deps.sh
	@$(MAKE) --no-print-directory all
	@tests/bench/run.sh

run:
	@tests/deps.sh
	@$(MAKE) --no-print-directory all
	@etc/run-demo.sh

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/walnotify \
	           $(DESTDIR)$(INCLUDEDIR)/walnotify $(DESTDIR)$(LIBDIR)/pkgconfig
	install -m 0755 $(B)/walnotify $(DESTDIR)$(BINDIR)/walnotify
	install -m 0755 $(PLUGIN_SOS) $(DESTDIR)$(LIBDIR)/walnotify/
	install -m 0644 include/walnotify/plugin.h $(DESTDIR)$(INCLUDEDIR)/walnotify/plugin.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' etc/walnotify.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/walnotify.pc

clean:
	rm -rf $(B)
