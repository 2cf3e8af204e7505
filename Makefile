# moongrad: `make` builds the module, `make test` runs the specs, `make demo` the headline example.
# Both `test` and `demo` first install what is missing (see scripts/deps.sh).

LUA_VERSION ?= 5.4
LUA         ?= lua$(LUA_VERSION)
LUA_INC     ?= $(shell pkg-config --cflags lua$(LUA_VERSION) 2>/dev/null || echo -I/usr/include/lua$(LUA_VERSION))
CC          ?= cc
OPT         ?= -O3
CFLAGS      ?= $(OPT) -g
WARN         = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
ALL_CFLAGS   = -std=gnu11 -fPIC -fvisibility=hidden -fno-math-errno $(WARN) $(CFLAGS) -Iinclude $(LUA_INC)
LDLIBS       = -lm -lpthread

CORE_SRC = $(wildcard src/core/*.c) $(wildcard src/ops/*.c)
BIND_SRC = $(wildcard src/bind/*.c)
SRC      = $(CORE_SRC) $(BIND_SRC)
HDR      = $(wildcard include/*.h src/*/*.h)

BUILD      = build
ASAN_BUILD = build-asan
MODULE     = $(BUILD)/moongrad/core.so
ASAN_MODULE= $(ASAN_BUILD)/moongrad/core.so

OBJ       = $(SRC:%.c=$(BUILD)/%.o)
ASAN_OBJ  = $(SRC:%.c=$(ASAN_BUILD)/%.o)
SANITIZE  = -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all

export LUA_PATH  := $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/spec/?.lua;;
export LUA_CPATH := $(CURDIR)/$(BUILD)/?.so;;

.PHONY: all test demo asan deps clean bench check-werror
all: $(MODULE)

$(MODULE): $(OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared -o $@ $(OBJ) $(LDLIBS)

$(BUILD)/%.o: %.c $(HDR) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# the generator must give the same numbers on every build: no fused multiply-add there
$(BUILD)/src/core/rng.o $(ASAN_BUILD)/src/core/rng.o $(BUILD)/src/ops/fill.o $(ASAN_BUILD)/src/ops/fill.o: ALL_CFLAGS += -ffp-contract=off

# Sanitized build: the interpreter is not instrumented, so the runtime is preloaded (see asan).
$(ASAN_MODULE): $(ASAN_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared -fsanitize=address,undefined -o $@ $(ASAN_OBJ) $(LDLIBS)

$(ASAN_BUILD)/%.o: %.c $(HDR) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SANITIZE) -c -o $@ $<

deps:
	@sh scripts/deps.sh

test: deps $(MODULE)
	busted --lua=$(LUA) $(BUSTED_ARGS) spec

demo: deps $(MODULE)
	$(LUA) examples/thermometer.lua

asan: deps $(ASAN_MODULE)
	LUA_CPATH="$(CURDIR)/$(ASAN_BUILD)/?.so;;" \
	LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	busted --lua=$(LUA) --exclude-tags=slow,noasan $(BUSTED_ARGS) spec

# ThreadSanitizer: the threads spec on a -fsanitize=thread build (the runtime preloaded, as asan's).
TSAN_BUILD  = build-tsan
TSAN_MODULE = $(TSAN_BUILD)/moongrad/core.so
TSAN_OBJ    = $(SRC:%.c=$(TSAN_BUILD)/%.o)
.PHONY: tsan tsan-clean
$(TSAN_MODULE): $(TSAN_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared -fsanitize=thread -o $@ $(TSAN_OBJ) $(LDLIBS)
$(TSAN_BUILD)/%.o: %.c $(HDR) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -O1 -g -fsanitize=thread -c -o $@ $<
# Only the interpreter gets the runtime (a shell crashes with it): #notsan specs start processes.
# A busy loop runs meanwhile, so that threads wait for one another in every way.
tsan: deps $(TSAN_MODULE)
	sh -c 'while :; do :; done' & hog=$$!; \
	LUA_CPATH="$(CURDIR)/$(TSAN_BUILD)/?.so;;" LD_PRELOAD="$$($(CC) -print-file-name=libtsan.so)" \
	  TSAN_OPTIONS=halt_on_error=0 $(LUA) "$$(command -v busted)" --ignore-lua --exclude-tags=notsan \
	  $(BUSTED_ARGS) spec/threads_spec.lua; rc=$$?; kill $$hog; exit $$rc
clean: tsan-clean
tsan-clean:
	rm -rf $(TSAN_BUILD)

# CI builds with warnings as errors
check-werror:
	$(CC) $(ALL_CFLAGS) -Werror -fsyntax-only $(SRC)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)

bench: deps $(MODULE)
	sh bench/run.sh

# The embedding example: a host program with its own allocator and a zero-copy buffer.
$(BUILD)/embed: examples/embed.c $(OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ examples/embed.c $(OBJ) $(shell pkg-config --libs lua$(LUA_VERSION) 2>/dev/null || echo -llua$(LUA_VERSION)) $(LDLIBS)

# ---- Embedding in a host's build (see README "Embedding") ----
# `make static`: build/libmoongrad.a, the module's objects; link the host with -llua5.4 -lm -lpthread.
# `make amalgamation`: build/moongrad.c, everything in one file (scripts/amalgamate.lua says how);
# compile it with -ffp-contract=off, as rng.c and fill.c are compiled here.
LUA_LIBS     = $(shell pkg-config --libs lua$(LUA_VERSION) 2>/dev/null || echo -llua$(LUA_VERSION))
STATIC_LIB   = $(BUILD)/libmoongrad.a
AMALGAMATION = $(BUILD)/moongrad.c
AMALG_OPT   ?= -O2 -g
AMALG_CFLAGS = -std=gnu11 -ffp-contract=off -fno-math-errno $(WARN) $(AMALG_OPT) $(LUA_INC)

.PHONY: static amalgamation
static: $(STATIC_LIB)
amalgamation: $(AMALGAMATION)

$(STATIC_LIB): $(OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $(OBJ)

$(AMALGAMATION): scripts/amalgamate.lua $(SRC) $(HDR) Makefile
	@mkdir -p $(dir $@)
	$(LUA) scripts/amalgamate.lua $@.tmp "$(CC)" "-std=gnu11 -Iinclude $(LUA_INC)" $(SRC)
	mv $@.tmp $@

# examples/embed.c linked against the static library, and compiled with the amalgamation
$(BUILD)/embed-static: examples/embed.c $(STATIC_LIB)
	$(CC) -std=gnu11 $(WARN) $(CFLAGS) -Iinclude $(LUA_INC) -o $@ examples/embed.c $(STATIC_LIB) $(LUA_LIBS) $(LDLIBS)

$(BUILD)/embed-amalg: examples/embed.c $(AMALGAMATION)
	$(CC) $(AMALG_CFLAGS) -Iinclude -o $@ examples/embed.c $(AMALGAMATION) $(LUA_LIBS) $(LDLIBS)
