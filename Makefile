# walnotify: a PostgreSQL logical-replication daemon with dlopen-loaded handler plugins.
#
#   make                 the host (build/walnotify) and every shipped plugin (build/plugins/*.so)
#   make check           every unit and integration test (starts a throwaway PostgreSQL 15)
#   make check PG=17     the same against PostgreSQL 17 (14, 16, 17, 18: see tests/pg-versions)
#   make check-versions  the integration tests against every other supported major version
#   make check-install   make install and make uninstall into a temporary folder, checked
#   make check-faults    the longer fault loops (a flipped link, rewinds at random points)
#   make run             the example pipeline against a throwaway PostgreSQL
#   make install         PREFIX (default /usr/local), DESTDIR; make uninstall takes the same;
#                        the manual pages go under MANDIR (default $(PREFIX)/share/man)
#   make SANITIZE=1 ...  everything built with AddressSanitizer and UndefinedBehaviorSanitizer
#   make fuzz            the decoder under libFuzzer for FUZZ_SECONDS (default 60)
#   make format-check    the C files follow .clang-format (clang-format 14); make format fixes
#   make valgrind        the test suite under valgrind memcheck
#   make bench           throughput, CPU, memory and latency beside pg_recvlogical
#   make pair-loop       an active/standby pair's walsender terminated PAIR_ROUNDS times
#   make check-sinks     the sinks' longer fault runs (tests/sinks), apart from make check
#
# CFLAGS, CPPFLAGS and LDFLAGS are the user's: they are added after the project's own flags
# (WN_*), so `make CFLAGS=-O0` changes the optimisation and keeps the include paths.

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
SYSCONFDIR ?= $(PREFIX)/etc
# The systemd unit's folder: under PREFIX like the rest (packagers may set /lib/systemd/system).
UNITDIR    ?= $(PREFIX)/lib/systemd/system
MANDIR     ?= $(PREFIX)/share/man
# Where plugins are installed, and where the host looks for a plugin named by a bare file name;
# walnotify.pc's plugindir says the same.
PLUGINDIR  := $(LIBDIR)/walnotify
VERSION    := 1.2.0
# The plugin ABI the header declares, for walnotify.pc's abi ("1.2").
ABI        := $(shell sed -n 's/^\#define WALNOTIFY_ABI_MAJOR //p' include/walnotify/plugin.h).$(shell \
                  sed -n 's/^\#define WALNOTIFY_ABI_MINOR //p' include/walnotify/plugin.h)

PG_INC  := $(shell pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)
WARN    := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes \
           -Wvla -Wno-missing-field-initializers
CFLAGS  ?= -O2 -g
WN_CPPFLAGS := -D_GNU_SOURCE -Iinclude -Icore -I$(PG_INC) -DWALNOTIFY_VERSION='"$(VERSION)"'
WN_CFLAGS   := -std=c11 -pthread -fPIC $(WARN)
WN_LDFLAGS  := -pthread
ifeq ($(SANITIZE),1)
WN_CFLAGS   += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
WN_LDFLAGS  += -fsanitize=address,undefined
endif
# Every compile line: the project's flags first, the user's last.
COMPILE = $(WN_CPPFLAGS) $(CPPFLAGS) $(WN_CFLAGS) $(CFLAGS)
LINK    = $(WN_LDFLAGS) $(LDFLAGS)
# Each object or binary compiled from one .c writes its header dependencies beside it (.d).
DEPFLAGS = -MMD -MP

HOST_LIBS  := -lpq -lconfig -ldl -lmicrohttpd
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
# The manual pages, man/NAME.SECTION, installed under $(MANDIR)/manSECTION.
MAN_PAGES  := $(wildcard man/*.[1-9])
# Extra libraries of one plugin, PLUGIN_LIBS_<name> (e.g. PLUGIN_LIBS_webhook := -lcurl);
# none unless set.
$(foreach p,$(PLUGINS),$(eval PLUGIN_LIBS_$(p) ?=))

.PHONY: all check unit integration check-versions check-install check-faults check-sinks \
        format-check format pair-loop run install uninstall clean tests deps fuzz valgrind bench
all: $(B)/walnotify $(PLUGIN_SOS)

$(B)/core/%.o: core/%.c $(B)/core/%.d
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(COMPILE) $(DEPFLAGS) -c -o $@ $<

# The plugin folder is compiled into the configuration reader. $(B)/plugindir holds the value it
# was built with and is rewritten (when make reads this file) only when PLUGINDIR changes, so
# `make install PREFIX=...` after a plain `make` rebuilds the host for the folder it installs
# into, and a make with nothing to do stays quiet (make -q too).
$(B)/core/config.o: WN_CPPFLAGS += -DWALNOTIFY_PLUGINDIR='"$(PLUGINDIR)"'
$(B)/core/config.o: $(B)/plugindir
$(shell mkdir -p $(B) && { echo '$(PLUGINDIR)' | cmp -s - $(B)/plugindir || \
        echo '$(PLUGINDIR)' > $(B)/plugindir; })

$(B)/walnotify: $(CORE_OBJS)
	@echo "  CC      $@"
	$(Q)$(CC) $(LINK) -o $@ $^ $(HOST_LIBS)

# A plugin is every .c in its folder, plus the core sources PLUGIN_SRCS_<name> lists (compiled
# into it, hidden), linked against nothing of the host but PLUGIN_LIBS_<name>. Its header
# dependencies are listed by a separate -MM pass: -MMD keeps only the last source's when one
# command compiles several.
PLUGIN_SRCS_jsonl := core/files.c core/appendfile.c
PLUGIN_SRCS_exec := core/trust.c
PLUGIN_SRCS_webhook := core/trust.c
PLUGIN_LIBS_webhook := -lcurl
PLUGIN_SRCS_redis := core/trust.c
PLUGIN_LIBS_redis := -lhiredis
PLUGIN_SRCS_kafka := core/trust.c
PLUGIN_LIBS_kafka := -lrdkafka
PLUGIN_LIBS_postgres := -lpq
# What the recipe compiles: the rule's own sources, not a .c that an old .d adds to $^.
PLUGIN_SOURCES = $(wildcard plugins/$*/*.c) $(PLUGIN_SRCS_$*)
.SECONDEXPANSION:
$(B)/plugins/%.so: $$(wildcard plugins/%/*.c) $$(PLUGIN_SRCS_$$*) $(B)/plugins/%.d
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(COMPILE) -MM -MP -MT $@ $(PLUGIN_SOURCES) > $(@:.so=.d)
	$(Q)$(CC) $(COMPILE) -fvisibility=hidden -shared $(LINK) -o $@ $(PLUGIN_SOURCES) $(PLUGIN_LIBS_$*)

# ---- tests -------------------------------------------------------------------------------------
# Each unit test links only the core modules it exercises, named here.
UNIT_DEPS_decoder    := decoder lsn log
UNIT_DEPS_relcache   := relcache decoder lsn log
UNIT_DEPS_config     := config conftext paths trust conninfo lsn log
UNIT_DEPS_loader     := loader settings services appendfile files requests encoder jsonbuf namecache config conftext paths trust \
                        snapshot conninfo lsn log
UNIT_DEPS_abi        :=
UNIT_DEPS_jsonl      := encoder jsonbuf namecache
UNIT_DEPS_encoder    := encoder jsonbuf namecache
UNIT_DEPS_jsonbuf    := jsonbuf
UNIT_DEPS_exec       :=
UNIT_DEPS_handoff    := handoff lsn log
UNIT_DEPS_lsn        := lsn
UNIT_DEPS_acklag     := acklag
UNIT_DEPS_backoff    := backoff
UNIT_DEPS_conninfo   := conninfo log
UNIT_DEPS_log        := log
UNIT_DEPS_state      := state files lsn log
UNIT_DEPS_appendfile := appendfile files
UNIT_DEPS_writers    := writers config conftext paths trust conninfo files lsn log
# The dead-letter file's tests link what the dead-letter module needs, as the dispatcher's do.
UNIT_DEPS_files       = files appendfile $(filter-out $(DISPATCHER_MODULES),$(UNIT_DEPS_dispatcher))
DISPATCHER_MODULES   := dispatcher policy tableident events reload session
UNIT_DEPS_dispatcher := $(DISPATCHER_MODULES) requests deadletter appendfile files encoder jsonbuf namecache \
                        handoff decoder relcache tablewatch loader settings services config \
                        conftext paths trust snapshot conninfo lsn log metrics notify
UNIT_DEPS_tablewatch := tablewatch conninfo log
UNIT_DEPS_conftext   := conftext
UNIT_DEPS_paths      := paths
UNIT_DEPS_trust      := trust
UNIT_DEPS_metrics    := metrics
# ... and the tests/lib helpers it uses (UNIT_LIBS_<name>; none unless set).
UNIT_LIBS_decoder    := pgoutput
UNIT_LIBS_dispatcher := pgoutput

UNIT_SRCS    := $(wildcard tests/unit/test_*.c)
UNIT_BINS    := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRCS))
# The bad-plugin fixtures are one source, tests/fixtures/bad_plugin.c, built once per flaw:
# build/tests/fixtures/bad_NAME.so with the flags BAD_FLAGS_NAME (see the source for each flag).
BAD_FIXTURES := magic major minor_newer short_minor small_size no_entry null_entry wild_entry \
                no_init no_handle no_shutdown settings_boolean settings_integer settings_type \
                settings_decl
BAD_FLAGS_magic            := -DBAD_MAGIC=0x12345678u
BAD_FLAGS_major            := -DBAD_MAJOR=2
BAD_FLAGS_minor_newer      := '-DBAD_MINOR=(WALNOTIFY_ABI_MINOR + 7)'
# Claims ABI 1.1 but is only as long as 1.0's descriptor: the host must not read past it.
BAD_FLAGS_short_minor      := -DBAD_MAJOR=1 -DBAD_MINOR=1 '-DBAD_SIZE=offsetof(walnotify_plugin, ops)'
BAD_FLAGS_small_size       := -DBAD_SIZE=16
BAD_FLAGS_no_entry         := -DBAD_ENTRY=walnotify_plugin_entry_v1
BAD_FLAGS_null_entry       := -DBAD_NULL_ENTRY
BAD_FLAGS_wild_entry       := -DBAD_WILD_ENTRY
BAD_FLAGS_no_init          := -DBAD_NO_INIT
BAD_FLAGS_no_handle        := -DBAD_NO_HANDLE
BAD_FLAGS_no_shutdown      := -DBAD_NO_SHUTDOWN
BAD_FLAGS_settings_boolean := -DBAD_SETTINGS_BOOLEAN
BAD_FLAGS_settings_integer := -DBAD_SETTINGS_INTEGER
BAD_FLAGS_settings_type    := -DBAD_SETTINGS_TYPE
BAD_FLAGS_settings_decl    := -DBAD_SETTINGS_DECL
BAD_SOS      := $(patsubst %,$(B)/tests/fixtures/bad_%.so,$(BAD_FIXTURES))
FIXTURE_SRCS := $(filter-out tests/fixtures/bad_plugin.c,$(wildcard tests/fixtures/*.c))
FIXTURE_SOS  := $(patsubst tests/fixtures/%.c,$(B)/tests/fixtures/%.so,$(FIXTURE_SRCS)) $(BAD_SOS)
ITEST_SRCS   := $(wildcard tests/integration/test_*.c)
ITEST_BINS   := $(patsubst tests/integration/test_%.c,$(B)/tests/itest_%,$(ITEST_SRCS))
TESTLIB_OBJS := $(patsubst tests/lib/%.c,$(B)/tests/lib/%.o,$(wildcard tests/lib/*.c))
# What only unit tests link (UNIT_LIBS_*), kept out of the integration tests.
UNITLIB_OBJS := $(B)/tests/lib/pgoutput.o
ITESTLIB_OBJS := $(filter-out $(UNITLIB_OBJS),$(TESTLIB_OBJS))

$(B)/tests/test_%: tests/unit/test_%.c $(B)/tests/test_%.d \
                   $$(addprefix $(B)/core/,$$(addsuffix .o,$$(UNIT_DEPS_$$*))) \
                   $$(addprefix $(B)/tests/lib/,$$(addsuffix .o,$$(UNIT_LIBS_$$*)))
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(COMPILE) $(DEPFLAGS) -Itests/lib $(LINK) -o $@ $(filter %.c %.o,$^) $(CHECK_LIBS) $(HOST_LIBS)

$(B)/tests/fixtures/%.so: tests/fixtures/%.c $(B)/tests/fixtures/%.d
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(COMPILE) $(DEPFLAGS) -fvisibility=hidden -shared $(LINK) -o $@ $<

$(BAD_SOS): $(B)/tests/fixtures/bad_%.so: tests/fixtures/bad_plugin.c $(B)/tests/fixtures/bad_%.d
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(COMPILE) $(DEPFLAGS) -DBAD_NAME='"bad_$*"' $(BAD_FLAGS_$*) -fvisibility=hidden \
	    -shared $(LINK) -o $@ $<

# versioned.c built a second time: a new build of the same plugin (version "2").
FIXTURE_SOS += $(B)/tests/fixtures/versioned_2.so
$(B)/tests/fixtures/versioned_2.so: tests/fixtures/versioned.c $(B)/tests/fixtures/versioned_2.d
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(COMPILE) $(DEPFLAGS) -DVERSIONED_BUILD='"2"' -fvisibility=hidden -shared $(LINK) -o $@ $<

# A fixture named abi10_* is built as a plugin compiled before ABI 1.1: against the 1.0 header
# kept in tests/fixtures/abi-1.0, found before include/.
$(B)/tests/fixtures/abi10_%.so: tests/fixtures/abi10_%.c $(B)/tests/fixtures/abi10_%.d
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) -Itests/fixtures/abi-1.0 $(COMPILE) $(DEPFLAGS) -fvisibility=hidden -shared $(LINK) -o $@ $<

# A fixture named abi11_* is built as a plugin compiled before ABI 1.2, against the 1.1 header
# kept in tests/fixtures/abi-1.1.
$(B)/tests/fixtures/abi11_%.so: tests/fixtures/abi11_%.c $(B)/tests/fixtures/abi11_%.d
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) -Itests/fixtures/abi-1.1 $(COMPILE) $(DEPFLAGS) -fvisibility=hidden -shared $(LINK) -o $@ $<

$(B)/tests/lib/%.o: tests/lib/%.c $(B)/tests/lib/%.d
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(COMPILE) $(DEPFLAGS) -Itests/lib -c -o $@ $<

# An integration test that calls core modules directly links them too (ITEST_DEPS_<name>, beside
# lsn; none unless set).
ITEST_DEPS_snapshot := snapshot conninfo
ITEST_DEPS_batchsink := encoder jsonbuf namecache appendfile files

$(B)/tests/itest_%: tests/integration/test_%.c $(B)/tests/itest_%.d $(ITESTLIB_OBJS) $(B)/core/lsn.o \
                    $$(addprefix $(B)/core/,$$(addsuffix .o,$$(ITEST_DEPS_$$*)))
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(COMPILE) $(DEPFLAGS) -Itests/lib $(LINK) -o $@ $(filter %.c %.o,$^) $(CHECK_LIBS) -lpq

tests: all $(UNIT_BINS) $(FIXTURE_SOS) $(ITEST_BINS)

# The kafka plugin's tests serve librdkafka's mock cluster from a program of their own.
KAFKA_MOCK := $(B)/tests/kafka/mockkafka
$(KAFKA_MOCK): tests/kafka/mockkafka.c
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(COMPILE) $(LINK) -o $@ $< -lrdkafka
tests: $(KAFKA_MOCK)

# What the compiler found each file to include (written by -MMD -MP and the plugins' -MM). A
# target whose .d is missing (built before these were written) is out of date.
DEP_FILES := $(CORE_OBJS:.o=.d) $(PLUGIN_SOS:.so=.d) $(UNIT_BINS:=.d) $(FIXTURE_SOS:.so=.d) \
             $(ITEST_BINS:=.d) $(TESTLIB_OBJS:.o=.d)
$(DEP_FILES): ;
-include $(wildcard $(DEP_FILES))
# A source that a .d still names but that is gone (deleted, or the target now built from another
# one) is taken as -MP takes a vanished header: it puts the target out of date instead of
# stopping make with "No rule to make target", and the rebuild writes the .d anew.
core/%.c: ;
plugins/%.c: ;
tests/%.c: ;
# The tests' library objects are prerequisites of pattern rules only, which makes them
# intermediate: kept, so that a second make has nothing to do. Only they: a .d made secondary
# would no longer put its target out of date when it is missing.
.SECONDARY: $(TESTLIB_OBJS)

# The sinks' longer runs: integration tests kept out of make check for their length.
SINK_SRCS := $(wildcard tests/sinks/test_*.c)
SINK_BINS := $(patsubst tests/sinks/test_%.c,$(B)/tests/sinks/itest_%,$(SINK_SRCS))

$(B)/tests/sinks/itest_%: tests/sinks/test_%.c $(TESTLIB_OBJS) $(B)/core/lsn.o
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(COMPILE) -Itests/lib $(LINK) -o $@ $(filter %.c %.o,$^) $(CHECK_LIBS) -lpq

check-sinks:
	@tests/deps.sh
	@$(MAKE) --no-print-directory tests $(SINK_BINS)
	@tests/sinks/run.sh

# The dependency check runs first, in its own make, so a missing header is named, not a
# compiler error.
# PG=14|16|17|18 runs the integration tests against that major version instead of Debian's 15,
# installed into build/pg/ on first use (tests/pg-versions pins the exact release).
PG ?=
export PG

check:
	@tests/deps.sh
	@$(MAKE) --no-print-directory tests
	@tests/run.sh unit integration install

# The integration tests against every supported major version but 15 (make check's), one after
# the other; every version runs, and the summary names the ones that failed.
check-versions:
	@PG= tests/deps.sh versions
	@$(MAKE) --no-print-directory tests
	@tests/run.sh versions

# make install into a temporary PREFIX, the installed host finding a plugin by its bare name
# there, then make uninstall leaving nothing behind.
check-install:
	@tests/deps.sh
	@tests/run.sh install

unit:
	@tests/deps.sh
	@$(MAKE) --no-print-directory tests
	@tests/run.sh unit

integration:
	@tests/deps.sh
	@$(MAKE) --no-print-directory tests
	@tests/run.sh integration

# Fault loops too long for `make check`: WN_REWIND_ROUNDS rounds of WN_REWIND_MAX rewinds.
check-faults:
	@tests/deps.sh
	@$(MAKE) --no-print-directory tests
	@tests/check-faults.sh

# Every C file of the host, the plugins and the header laid out as .clang-format says
# (clang-format 14, Debian 12's); `make format` rewrites them.
format-check:
	@tests/format-check.sh

format:
	@tests/format-check.sh --fix

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

# The active/standby pair of itest_reconnect (two hosts on one jsonl file) with the streaming
# host's walsender terminated PAIR_ROUNDS times, where make check does a few.
PAIR_ROUNDS ?= 40
pair-loop:
	@tests/deps.sh
	@$(MAKE) --no-print-directory tests
	@D=$$(mktemp -d /tmp/walnotify-pg.XXXXXX) && tests/pg-harness.sh start "$$D" >/dev/null && \
	 . "$$D/env" && rc=0 && WN_TEST_PGDIR="$$D" WN_ROOT="$(CURDIR)" \
	 WN_PAIR_ROUNDS=$(PAIR_ROUNDS) CK_RUN_CASE=pair $(B)/tests/itest_reconnect || rc=$$?; \
	 tests/pg-harness.sh stop "$$D"; exit $$rc

run:
	@tests/deps.sh
	@$(MAKE) --no-print-directory all
	@etc/run-demo.sh

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(PLUGINDIR) \
	           $(DESTDIR)$(INCLUDEDIR)/walnotify $(DESTDIR)$(LIBDIR)/pkgconfig
	install -m 0755 $(B)/walnotify $(DESTDIR)$(BINDIR)/walnotify
	install -m 0755 $(PLUGIN_SOS) $(DESTDIR)$(PLUGINDIR)/
	install -m 0644 include/walnotify/plugin.h $(DESTDIR)$(INCLUDEDIR)/walnotify/plugin.h
	$(foreach m,$(MAN_PAGES),install -D -m 0644 $(m) $(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(m)))/$(notdir $(m)) &&) true
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' -e 's|@ABI@|$(ABI)|' etc/walnotify.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/walnotify.pc
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/walnotify
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	    etc/walnotify.service.in > $(DESTDIR)$(UNITDIR)/walnotify.service
	# The example configuration, never over one that is there already (the user's own).
	[ -e $(DESTDIR)$(SYSCONFDIR)/walnotify/walnotify.conf ] || \
	    install -m 0640 etc/walnotify.conf $(DESTDIR)$(SYSCONFDIR)/walnotify/walnotify.conf

# Removes what install put there; the plugin and header folders only when nothing else is left
# in them (plugins of other packages stay), the example configuration only while it is unchanged
# (an edited one is the user's).
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/walnotify $(addprefix $(DESTDIR)$(PLUGINDIR)/,$(notdir $(PLUGIN_SOS))) \
	      $(DESTDIR)$(INCLUDEDIR)/walnotify/plugin.h $(DESTDIR)$(LIBDIR)/pkgconfig/walnotify.pc \
	      $(DESTDIR)$(UNITDIR)/walnotify.service \
	      $(foreach m,$(MAN_PAGES),$(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(m)))/$(notdir $(m)))
	! cmp -s etc/walnotify.conf $(DESTDIR)$(SYSCONFDIR)/walnotify/walnotify.conf || \
	    rm -f $(DESTDIR)$(SYSCONFDIR)/walnotify/walnotify.conf
	rmdir --ignore-fail-on-non-empty $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(INCLUDEDIR)/walnotify \
	      $(DESTDIR)$(SYSCONFDIR)/walnotify 2>/dev/null || true

clean:
	rm -rf $(B)
