# moonbus — build, run and test. `make run` and `make test` each do their whole set-up.

CC      ?= cc
VERSION := 0.1.0
LUA_CFLAGS := $(shell pkg-config --cflags lua5.4 2>/dev/null)
WARN    := -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
DEFS    := -D_DEFAULT_SOURCE -D_GNU_SOURCE -DMOONBUS_VERSION='"$(VERSION)"' \
           -DMOONBUS_MODULES_DIR='"$(CURDIR)/modules"' -DMOONBUS_CMODULE_DIR='"$(CURDIR)/build"'
PG_CFLAGS := -I$(shell pg_config --includedir 2>/dev/null)
CFLAGS_COMMON := $(WARN) $(DEFS) $(LUA_CFLAGS) $(PG_CFLAGS) -iquote host -iquote bindings -fPIC -g
RELEASE_CFLAGS := $(CFLAGS_COMMON) -O2
SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
ASAN_CFLAGS := $(CFLAGS_COMMON) -O1 $(SAN) -DMOONBUS_TEST_BUILD
LIBS    := -lev -lsqlite3 -lrabbitmq -lmicrohttpd -lcrypto -lm -pthread
# PostgreSQL (DESIGN §12) is linked only where it is used: libpq and what it pulls in
# (Kerberos, LDAP, SASL) cost an idle host about 1 MB resident, past the 10 MB bar. Until
# persistence is wired into the host (issue 20, which should load libpq with dlopen when an
# endpoint sets `persistence`), only the tests of the pool link it.
PG_SRC  := host/pg.c host/persist.c
PG_TESTS := build/asan/tests/test_pg build/asan/tests/test_persist
PG_LIBS := -lpq
LUA_LIB := -llua5.4

CORE_SRC := $(wildcard host/*.c host/transport/*.c host/ops/*.c bindings/*.c)
CORE_SRC := $(filter-out host/main.c $(PG_SRC),$(CORE_SRC))
HEADERS  := $(wildcard host/*.h host/transport/*.h host/ops/*.h bindings/*.h)
UNIT_SRC := $(wildcard tests/unit/test_*.c)

# The web UI (host/ops/web/*), turned into a C table by scripts/embed-web.sh (host/ops/web.h).
WEB_FILES := $(wildcard host/ops/web/*)
WEB_GEN   := build/gen/ops_web.c

REL_OBJ  := $(CORE_SRC:%.c=build/rel/%.o) build/rel/gen/ops_web.o
ASAN_OBJ := $(CORE_SRC:%.c=build/asan/%.o) build/asan/gen/ops_web.o
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=build/asan/tests/%) \
            $(FUZZ_SRC:tests/fuzz/%.c=build/asan/tests/%)
TOOL_BIN := $(patsubst tests/tools/%.c,build/tools/%,$(wildcard tests/tools/*.c))
BENCH_BIN := $(patsubst tests/bench/%.c,build/bench/%,$(wildcard tests/bench/*.c))
# Every C file of the tree, for `make fmt` and `make fmt-check` (the style is .clang-format's).
FMT_SRC  := $(CORE_SRC) $(PG_SRC) host/main.c $(HEADERS) \
            $(wildcard tests/unit/*.[ch] tests/fuzz/*.[ch] tests/tools/*.[ch] tests/bench/*.[ch])

.PHONY: all deps run test unit spec system browser clean bench fmt fmt-check lint install uninstall

all: deps build/moonbus build/moonbus.so build/asan/moonbus

deps:
	@bash scripts/install-deps.sh

build/rel/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(RELEASE_CFLAGS) -c $< -o $@

build/asan/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	@echo "  CC asan $<"
	@$(CC) $(ASAN_CFLAGS) -c $< -o $@

# (the folder too: a file removed from it changes its time, not that of any file left)
$(WEB_GEN): scripts/embed-web.sh host/ops/web $(WEB_FILES)
	@mkdir -p $(dir $@)
	@echo "  GEN     $@"
	@sh scripts/embed-web.sh host/ops/web $@

build/rel/gen/ops_web.o: $(WEB_GEN) host/ops/web.h
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(RELEASE_CFLAGS) -c $< -o $@

build/asan/gen/ops_web.o: $(WEB_GEN) host/ops/web.h
	@mkdir -p $(dir $@)
	@echo "  CC asan $<"
	@$(CC) $(ASAN_CFLAGS) -c $< -o $@

# The host, linked with Lua.
build/moonbus: build/rel/host/main.o $(REL_OBJ)
	@echo "  LD      $@"
	@$(CC) $(RELEASE_CFLAGS) $^ -o $@ $(LUA_LIB) $(LIBS) -rdynamic

# The same core as a Lua module for stock lua5.4 and busted (Lua's symbols come from the
# interpreter that loads it, so liblua is not linked in).
build/moonbus.so: $(REL_OBJ)
	@echo "  LD      $@"
	@$(CC) $(RELEASE_CFLAGS) -shared $^ -o $@ $(LIBS)

# The host under AddressSanitizer and UndefinedBehaviorSanitizer, for the system tests.
build/asan/moonbus: build/asan/host/main.o $(ASAN_OBJ)
	@echo "  LD asan $@"
	@$(CC) $(ASAN_CFLAGS) $^ -o $@ $(LUA_LIB) $(LIBS) -rdynamic

# The tests of the PostgreSQL parts link them and libpq (see PG_LIBS).
$(PG_TESTS): build/asan/tests/%: tests/unit/%.c $(ASAN_OBJ) $(PG_SRC:%.c=build/asan/%.o) $(wildcard tests/unit/*.h)
	@mkdir -p $(dir $@)
	@echo "  LD asan $@"
	@$(CC) $(ASAN_CFLAGS) -Itests/unit $< $(ASAN_OBJ) $(PG_SRC:%.c=build/asan/%.o) -o $@ $(LUA_LIB) $(LIBS) $(PG_LIBS)

build/asan/tests/%: tests/unit/%.c $(ASAN_OBJ) $(wildcard tests/unit/*.h)
	@mkdir -p $(dir $@)
	@echo "  LD asan $@"
	@$(CC) $(ASAN_CFLAGS) -Itests/unit $< $(ASAN_OBJ) -o $@ $(LUA_LIB) $(LIBS)

# Fuzz targets, run by make test as a fixed-seed mutation loop (see the file's header
# for libFuzzer).
build/asan/tests/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(ASAN_OBJ)
	@mkdir -p $(dir $@)
	@echo "  LD asan $@"
	@$(CC) $(ASAN_CFLAGS) -DMB_FUZZ_STANDALONE -Itests/fuzz $< $(ASAN_OBJ) -o $@ $(LUA_LIB) $(LIBS)

# Test tools that play a broken or foreign sender (they bypass every check of the core).
build/tools/%: tests/tools/%.c build/rel/host/transport/rabbitmq_conn.o build/rel/host/status.o \
               build/rel/host/url.o
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(RELEASE_CFLAGS) $^ -o $@ $(LIBS)

# The raw baselines `make bench` measures moonbus against (release build, no sanitizers).
build/bench/%: tests/bench/%.c build/rel/host/transport/rabbitmq_conn.o build/rel/host/status.o \
               build/rel/host/url.o \
               $(wildcard tests/bench/*.h)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(RELEASE_CFLAGS) $(filter %.c %.o,$^) -o $@ $(LIBS)

run: all
	@bash scripts/run-example.sh examples/orders

test: all $(UNIT_BIN) $(TOOL_BIN)
	@bash scripts/test.sh

bench: all $(BENCH_BIN)
	@bash tests/bench/run.sh

unit: all $(UNIT_BIN)
	@bash scripts/test.sh unit

spec: all $(TOOL_BIN)
	@bash scripts/test.sh spec

system: all $(TOOL_BIN)
	@bash scripts/test.sh system

# The ops web UI in headless Chromium against a real `moonbus ops` (tests/browser/run.sh).
browser: all
	@bash tests/browser/run.sh

clean:
	rm -rf build .moonbus

fmt:
	clang-format -i $(FMT_SRC)

# Fails, naming each file and line, if `make fmt` would change anything (make test runs it).
fmt-check:
	clang-format --dry-run --Werror $(FMT_SRC)

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	  --suppress=missingIncludeSystem $(LUA_CFLAGS) -Ihost -Ibindings host bindings

# make install PREFIX=/usr/local [DESTDIR=/staging]: the host, the Lua module and moonbus's
# Lua modules where lua5.4 looks, the templates of `moonbus new` under them, the LuaLS
# definitions, the README and the systemd unit (its ExecStart pointing into PREFIX). The
# installed binary finds its modules relative to itself (host/paths.c: PREFIX/bin/moonbus ->
# PREFIX/share/lua/5.4), so a tree staged under DESTDIR works where it lies too.
PREFIX   ?= /usr/local
LUA_CDIR := $(PREFIX)/lib/lua/5.4
LUA_LDIR := $(PREFIX)/share/lua/5.4
DATADIR  := $(PREFIX)/share/moonbus
DOCDIR   := $(PREFIX)/share/doc/moonbus
UNITDIR  := $(PREFIX)/lib/systemd/system
D        := $(DESTDIR)

install: build/moonbus build/moonbus.so
	install -d $(D)$(PREFIX)/bin $(D)$(LUA_CDIR) $(D)$(LUA_LDIR)/moonbus/templates \
	  $(D)$(DATADIR)/types $(D)$(DOCDIR) $(D)$(UNITDIR)
	install -m 0755 build/moonbus $(D)$(PREFIX)/bin/moonbus
	install -m 0644 build/moonbus.so $(D)$(LUA_CDIR)/moonbus.so
	install -m 0644 modules/moonbus/*.lua $(D)$(LUA_LDIR)/moonbus/
	install -m 0644 modules/moonbus/templates/*.tmpl $(D)$(LUA_LDIR)/moonbus/templates/
	install -m 0644 types/*.lua $(D)$(DATADIR)/types/
	install -m 0644 README.md $(D)$(DOCDIR)/README.md
	sed 's|/usr/local/|$(PREFIX)/|g' contrib/systemd/moonbus@.service \
	  >$(D)$(UNITDIR)/moonbus@.service
	chmod 0644 $(D)$(UNITDIR)/moonbus@.service

uninstall:
	rm -f $(D)$(PREFIX)/bin/moonbus $(D)$(LUA_CDIR)/moonbus.so $(D)$(UNITDIR)/moonbus@.service
	rm -rf $(D)$(LUA_LDIR)/moonbus $(D)$(DATADIR) $(D)$(DOCDIR)
