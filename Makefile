# moongrad: `make` builds the module, `make test` runs the specs, `make demo` the headline example.
# Both `test` and `demo` first install what is missing (see scripts/deps.sh).
# LuaRocks builds through this Makefile too (rockspec/: `make`, then `make install`), so every
# build of moongrad gets the flags below.

LUA_VERSION ?= 5.4
LUA         ?= lua$(LUA_VERSION)
# LuaRocks passes LUA_INCDIR; otherwise pkg-config, or Debian's place
ifdef LUA_INCDIR
LUA_INC      = -I$(LUA_INCDIR)
else
LUA_INC     ?= $(shell pkg-config --cflags lua$(LUA_VERSION) 2>/dev/null || echo -I/usr/include/lua$(LUA_VERSION))
endif
CC          ?= cc
LIBFLAG     ?= -shared

# ---- The flags of every build, in one place ---------------------------------------------------
# `make`, `luarocks make` / `luarocks install`, `make static` and the amalgamation compile every file
# with MG_CFLAGS, placed AFTER the user's CFLAGS (LuaRocks passes "-O2 -fPIC"; a user may add
# -march=native), so that they win:
#   -O3                the speed the kernels are written and measured for
#   -fno-math-errno    sqrt, floor, ... inline: there is no errno to set
#   -ffp-contract=off  no a*b+c fused into one rounding behind the source's back (GCC's default
#                      in gnu modes fuses on any FMA target, e.g. with -march=native): the same
#                      numbers with any -march. Kernels that want FMA use intrinsics (the gemm),
#                      chosen at run time. spec/builds_spec.lua checks the numbers bit for bit.
# OPT is for a debugging session (`make OPT=-O0 BUILD=build-debug`); nothing else changes it.
OPT         ?= -O3
MG_FPFLAGS   = -fno-math-errno -ffp-contract=off
MG_CFLAGS    = $(OPT) $(MG_FPFLAGS)
CFLAGS      ?= -g
WARN         = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
ALL_CFLAGS   = -std=gnu11 -fPIC -fvisibility=hidden $(WARN) $(CFLAGS) $(MG_CFLAGS) -Iinclude $(LUA_INC)
LDLIBS       = -lm -lpthread

CORE_SRC = $(wildcard src/core/*.c) $(wildcard src/ops/*.c)
BIND_SRC = $(wildcard src/bind/*.c)
SRC      = $(CORE_SRC) $(BIND_SRC)
HDR      = $(wildcard include/*.h src/*/*.h)

# BUILD=dir builds into another directory (spec/builds_spec.lua builds with -march=native there)
BUILD     ?= build
ASAN_BUILD = build-asan
MODULE     = $(BUILD)/moongrad/core.so
ASAN_MODULE= $(ASAN_BUILD)/moongrad/core.so

OBJ       = $(SRC:%.c=$(BUILD)/%.o)
ASAN_OBJ  = $(SRC:%.c=$(ASAN_BUILD)/%.o)
SANITIZE  = -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all

export LUA_PATH  := $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/spec/?.lua;;
export LUA_CPATH := $(CURDIR)/$(BUILD)/?.so;;

# ---- moongrad.idx: mg.data.read_idx's file reader, a module of its own (ext/idx.c) because it
# needs zlib (gzip-compressed IDX files) and the core needs only libc, libm and pthreads. Built when
# zlib's header is there (Debian: zlib1g-dev); without it read_idx says what to install.
ZLIB_LIBS   ?= -lz
# (the compiler runs without the sanitizer runtimes `make asan` preloads into the specs, which
# start make again: LeakSanitizer would fail the compiler itself)
HAVE_ZLIB   := $(shell printf '\043include <zlib.h>\n' | env -u LD_PRELOAD $(CC) -E - >/dev/null 2>&1 && echo yes)
ifeq ($(HAVE_ZLIB),yes)
IDX_MODULE      = $(BUILD)/moongrad/idx.so
ASAN_IDX_MODULE = $(ASAN_BUILD)/moongrad/idx.so
endif

.PHONY: all test demo asan deps clean bench bench-ops check-werror install rock FORCE
all: $(MODULE) $(IDX_MODULE)

$(BUILD)/moongrad/idx.so: ext/idx.c Makefile $(BUILD)/cflags
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LIBFLAG) -o $@ ext/idx.c $(ZLIB_LIBS)

$(ASAN_BUILD)/moongrad/idx.so: ext/idx.c Makefile $(ASAN_BUILD)/cflags
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SANITIZE) -shared -o $@ ext/idx.c $(ZLIB_LIBS)

$(MODULE): $(OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LIBFLAG) -o $@ $(OBJ) $(LDLIBS)

# Each build directory records its compile line: when it changes (`make`, then `luarocks make` with
# other CFLAGS, say), every object is rebuilt instead of being silently reused.
$(BUILD)/cflags: FORCE
	@mkdir -p $(dir $@)
	@echo '$(CC) $(ALL_CFLAGS)' | cmp -s - $@ || echo '$(CC) $(ALL_CFLAGS)' > $@

$(BUILD)/%.o: %.c $(HDR) Makefile $(BUILD)/cflags
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# Sanitized build: the interpreter is not instrumented, so the runtime is preloaded (see asan).
$(ASAN_MODULE): $(ASAN_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared -fsanitize=address,undefined -o $@ $(ASAN_OBJ) $(LDLIBS)

$(ASAN_BUILD)/cflags: FORCE
	@mkdir -p $(dir $@)
	@echo '$(CC) $(ALL_CFLAGS) $(SANITIZE)' | cmp -s - $@ || echo '$(CC) $(ALL_CFLAGS) $(SANITIZE)' > $@

$(ASAN_BUILD)/%.o: %.c $(HDR) Makefile $(ASAN_BUILD)/cflags
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SANITIZE) -c -o $@ $<

# ---- Installing (what LuaRocks runs after `make`, with its tree's LIBDIR and LUADIR) ----------
PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib/lua/$(LUA_VERSION)
LUADIR  ?= $(PREFIX)/share/lua/$(LUA_VERSION)
# every Lua file under lua/moongrad/, subdirectories (moongrad.nn.*) included
LUA_SRC  = $(shell find lua/moongrad -name '*.lua' | sort)

install: $(MODULE) $(IDX_MODULE)
	install -d $(DESTDIR)$(LIBDIR)/moongrad $(DESTDIR)$(LUADIR)/moongrad
	install -m 755 $(MODULE) $(DESTDIR)$(LIBDIR)/moongrad/core.so
	$(if $(IDX_MODULE),install -m 755 $(IDX_MODULE) $(DESTDIR)$(LIBDIR)/moongrad/idx.so)
	$(foreach f,$(LUA_SRC),install -D -m 644 $(f) $(DESTDIR)$(LUADIR)/$(f:lua/%=%) && ) true

# `make rock`: a source rock of the working tree (tracked or not), installable without network:
#   luarocks --lua-version=5.4 --tree=DIR install build/moongrad-scm-1.src.rock
# It holds the rockspec and the sources in moongrad/ (the directory the rockspec's git URL names).
ROCKSPEC  = rockspec/moongrad-scm-1.rockspec
ROCK      = $(BUILD)/moongrad-scm-1.src.rock
ROCK_SRC  = Makefile README.md include src ext lua rockspec scripts

rock: $(ROCK)
$(ROCK): $(ROCKSPEC) $(SRC) $(HDR) $(LUA_SRC) ext/idx.c Makefile
	rm -rf $(BUILD)/rock $@
	mkdir -p $(BUILD)/rock/moongrad
	tar -cf - $(ROCK_SRC) | tar -xf - -C $(BUILD)/rock/moongrad
	cp $(ROCKSPEC) $(BUILD)/rock/
	cd $(BUILD)/rock && zip -qr $(abspath $@) $(notdir $(ROCKSPEC)) moongrad
	rm -rf $(BUILD)/rock

deps:
	@sh scripts/deps.sh

test: deps $(MODULE) $(IDX_MODULE)
	busted --lua=$(LUA) $(BUSTED_ARGS) spec

demo: deps $(MODULE)
	$(LUA) examples/thermometer.lua

# `make fashion`: examples/fashion_cnn.lua, chapter 8's convolutional network trained on all of
# Fashion-MNIST (minutes; FASHION_EPOCHS=2 FASHION_SUBSET=5000 make fashion for a quick look)
.PHONY: fashion
fashion: deps $(MODULE) $(IDX_MODULE)
	$(LUA) examples/fashion_cnn.lua

# busted gets the sanitized build with --cpath: .busted's cpath (build/?.so) comes before LUA_CPATH,
# so without it the suite ran the plain build under the sanitizers' runtime (spec/build_spec.lua now
# checks which core.so is loaded when MOONGRAD_EXPECT_CORE is set).
# LeakSanitizer is on: busted ends with os.exit(code, true), which closes the Lua state, so every
# byte moongrad allocated must be freed by then (nothing needed suppressing: the interpreter, busted
# and the processes the specs start, which inherit the preload, leak nothing it reports).
asan: deps $(ASAN_MODULE) $(ASAN_IDX_MODULE)
	LUA_CPATH="$(CURDIR)/$(ASAN_BUILD)/?.so;;" \
	LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	MOONGRAD_EXPECT_CORE="$(CURDIR)/$(ASAN_MODULE)" \
	busted --lua=$(LUA) --cpath="$(CURDIR)/$(ASAN_BUILD)/?.so" --exclude-tags=slow,noasan $(BUSTED_ARGS) spec

# The API fuzzer (scripts/fuzz.lua), in a scratch directory (functions that write files get names
# like "x") and under a memory limit. `make fuzz` runs the -O3 build as long as asked
# (FUZZ_SEEDS, FUZZ_CALLS per seed); `make fuzz-asan` a bounded seeded run under ASan + UBSan +
# LeakSanitizer (what CI runs; the script ends normally, so lua.c closes the state and every byte
# must be freed). A crash, sanitizer report or hang ends the run with the log's last call named.
FUZZ_SEEDS ?= 1 2 3 4 5 6 7 8 9 10
FUZZ_CALLS ?= 100000
FUZZ_TIMEOUT ?= 600
define run_fuzz
	@dir=$$(mktemp -d) && status=0 && for seed in $(FUZZ_SEEDS); do \
	    ( cd "$$dir" && $(1) timeout $(FUZZ_TIMEOUT) $(LUA) $(CURDIR)/scripts/fuzz.lua --seed $$seed \
	      --calls $(FUZZ_CALLS) --log "$$dir/log" > /dev/null 2> "$$dir/err" ) || { status=$$?; \
	      grep -v 'failed to allocate' "$$dir/err" | tail -n 40; \
	      echo "fuzz: seed $$seed failed (status $$status); last call:"; tail -n 1 "$$dir/log"; break; }; \
	    tail -n 1 "$$dir/err"; \
	done; rm -rf "$$dir"; exit $$status
endef
.PHONY: fuzz fuzz-asan
fuzz: deps $(MODULE)
	$(call run_fuzz,ulimit -v 8000000 &&)
fuzz-asan: deps $(ASAN_MODULE) $(ASAN_IDX_MODULE)
	$(call run_fuzz,LUA_CPATH="$(CURDIR)/$(ASAN_BUILD)/?.so;;" \
	LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1:max_allocation_size_mb=512 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1)

# The soak: 10^5 steps of an MLP with Adam and of the book's autograd loop, no collectgarbage();
# resident memory every 10^4 steps, and its growth after warm-up.
.PHONY: soak
soak: deps $(MODULE)
	LUA_CPATH="$(CURDIR)/$(BUILD)/?.so;;" $(LUA) bench/soak.lua $(SOAK_STEPS)

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
	  TSAN_OPTIONS=halt_on_error=0 MOONGRAD_EXPECT_CORE="$(CURDIR)/$(TSAN_MODULE)" \
	  $(LUA) "$$(command -v busted)" --ignore-lua --cpath="$(CURDIR)/$(TSAN_BUILD)/?.so" --exclude-tags=notsan \
	  $(BUSTED_ARGS) spec/threads_spec.lua spec/loaded_build_spec.lua; rc=$$?; kill $$hog; exit $$rc
clean: tsan-clean
tsan-clean:
	rm -rf $(TSAN_BUILD)

# CI builds with warnings as errors
check-werror:
	$(CC) $(ALL_CFLAGS) -Werror -fsyntax-only $(SRC)
	$(if $(IDX_MODULE),$(CC) $(ALL_CFLAGS) -Werror -fsyntax-only ext/idx.c)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)

bench: deps $(MODULE)
	BENCH_MAKE_CC="$(CC) $(ALL_CFLAGS)" sh bench/run.sh

# the common ops one by one against PyTorch (1 thread, 1000 x 256 float32): bench/ops.sh
bench-ops: deps $(MODULE)
	sh bench/ops.sh

# The embedding example: a host program with its own allocator and a zero-copy buffer.
$(BUILD)/embed: examples/embed.c $(OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ examples/embed.c $(OBJ) $(shell pkg-config --libs lua$(LUA_VERSION) 2>/dev/null || echo -llua$(LUA_VERSION)) $(LDLIBS)

# ---- Embedding in a host's build (see README "Embedding") ----
# `make static`: build/libmoongrad.a, the module's objects; link the host with -llua5.4 -lm -lpthread.
# `make amalgamation`: build/moongrad.c, everything in one file (scripts/amalgamate.lua says how);
# compile it with the flags of every build, $(MG_CFLAGS) (its first lines name them), as
# build/embed-amalg is here. AMALG_OPT only makes a quick spec build quicker.
LUA_LIBS     = $(shell pkg-config --libs lua$(LUA_VERSION) 2>/dev/null || echo -llua$(LUA_VERSION))
STATIC_LIB   = $(BUILD)/libmoongrad.a
AMALGAMATION = $(BUILD)/moongrad.c
AMALG_OPT   ?= $(OPT)
AMALG_CFLAGS = -std=gnu11 $(WARN) $(CFLAGS) $(AMALG_OPT) $(MG_FPFLAGS) $(LUA_INC)

.PHONY: static amalgamation
static: $(STATIC_LIB)
amalgamation: $(AMALGAMATION)

$(STATIC_LIB): $(OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $(OBJ)

$(AMALGAMATION): scripts/amalgamate.lua $(SRC) $(HDR) Makefile
	@mkdir -p $(dir $@)
	$(LUA) scripts/amalgamate.lua $@.tmp "$(CC)" "-std=gnu11 -Iinclude $(LUA_INC)" "$(MG_CFLAGS)" $(SRC)
	mv $@.tmp $@

# examples/embed.c linked against the static library, and compiled with the amalgamation
$(BUILD)/embed-static: examples/embed.c $(STATIC_LIB)
	$(CC) -std=gnu11 $(WARN) $(CFLAGS) -Iinclude $(LUA_INC) -o $@ examples/embed.c $(STATIC_LIB) $(LUA_LIBS) $(LDLIBS)

$(BUILD)/embed-amalg: examples/embed.c $(AMALGAMATION)
	$(CC) $(AMALG_CFLAGS) -Iinclude -o $@ examples/embed.c $(AMALGAMATION) $(LUA_LIBS) $(LDLIBS)

# spec/builds_spec.lua: a host running one Lua chunk, linked with the static library / the amalgamation
$(BUILD)/host-static: spec/fixtures/host.c $(STATIC_LIB)
	$(CC) -std=gnu11 $(WARN) $(CFLAGS) -Iinclude $(LUA_INC) -o $@ spec/fixtures/host.c $(STATIC_LIB) $(LUA_LIBS) $(LDLIBS)

$(BUILD)/host-amalg: spec/fixtures/host.c $(AMALGAMATION)
	$(CC) $(AMALG_CFLAGS) -Iinclude -o $@ spec/fixtures/host.c $(AMALGAMATION) $(LUA_LIBS) $(LDLIBS)

# ---- Allocation failure at any point (issue 11): spec/hosts/oom_host.c runs
# spec/hosts/oom_script.lua with its N-th allocation failing, for every N of a full run (forking
# at each: see the host), and checks that every run fails cleanly or succeeds, with 0 bytes live
# after lua_close. `make oom` on the -O3 objects, `make oom-asan` under ASan + UBSan + LeakSanitizer
# (what CI runs), OOM_JOBS children at a time. OOM_ARGS=--sticky fails every allocation from the
# N-th on; "--upto B --stride S" bounds the sweep; "--fail N" is one run; "--budget B" sets a memory
# budget (then a failure inside a tensor's allocation must be the named error; OOM_SITES=1 lists
# where the bare "not enough memory" ones were allocated; spec/robust2_spec.lua runs it).
OOM_JOBS     ?= 2
OOM_HOST      = $(BUILD)/oom_host
OOM_ASAN_HOST = $(ASAN_BUILD)/oom_host
OOM_RUN       = --jobs $(OOM_JOBS) $(OOM_ARGS) spec/hosts/oom_script.lua lua
.PHONY: oom oom-asan
$(OOM_HOST): spec/hosts/oom_host.c $(STATIC_LIB)
	$(CC) -std=gnu11 $(WARN) $(CFLAGS) -Iinclude $(LUA_INC) -o $@ spec/hosts/oom_host.c $(STATIC_LIB) $(LUA_LIBS) $(LDLIBS)
$(OOM_ASAN_HOST): spec/hosts/oom_host.c $(ASAN_OBJ)
	$(CC) -std=gnu11 $(WARN) $(CFLAGS) $(SANITIZE) -Iinclude $(LUA_INC) -o $@ spec/hosts/oom_host.c $(ASAN_OBJ) $(LUA_LIBS) $(LDLIBS)
oom: $(OOM_HOST)
	$(OOM_HOST) $(OOM_RUN)
oom-asan: $(OOM_ASAN_HOST)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(OOM_ASAN_HOST) $(OOM_RUN)

# spec/hosts/threads_host.c: 4 Lua states trained concurrently in 4 pthreads give the results of
# one state bit for bit; states closed while their pools have workers leave no thread behind.
# `make threads-host` builds and runs it; `make threads-host-tsan` with the host and the module's
# objects built with -fsanitize=thread (as `make tsan`): a race report makes it fail (exit 66).
THREADS_HOST      = $(BUILD)/threads-host
THREADS_HOST_TSAN = $(TSAN_BUILD)/threads-host
.PHONY: threads-host threads-host-tsan
$(THREADS_HOST): spec/hosts/threads_host.c $(OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ spec/hosts/threads_host.c $(OBJ) $(LUA_LIBS) $(LDLIBS)
$(THREADS_HOST_TSAN): spec/hosts/threads_host.c $(TSAN_OBJ)
	$(CC) $(ALL_CFLAGS) -O1 -g -fsanitize=thread -o $@ spec/hosts/threads_host.c $(TSAN_OBJ) $(LUA_LIBS) $(LDLIBS)
threads-host: $(THREADS_HOST)
	$(THREADS_HOST) $(THREADS_HOST_ARGS)
threads-host-tsan: $(THREADS_HOST_TSAN)
	TSAN_OPTIONS="halt_on_error=0 exitcode=66 suppressions=$(CURDIR)/spec/hosts/threads_host.tsan.supp $(TSAN_OPTIONS)" $(THREADS_HOST_TSAN) $(THREADS_HOST_ARGS)

# ---- moongrad.distributed (issue 12): a module of its own over Open MPI, built from distributed/
# (outside src/: the core never sees MPI). `make distributed` builds build/moongrad/distributed_core.so;
# `make mpi-deps` installs Open MPI when missing (apt-get, as root; otherwise it names the packages);
# `make test-mpi` runs spec/distributed/ under mpirun with 1, 2, 3 and 4 (3 and 4 oversubscribed) ranks, then
# the fault specs (which start jobs of their own). MPIRUN may name another launcher line.
MPI_CFLAGS  ?= $(shell pkg-config --cflags ompi-c 2>/dev/null || mpicc --showme:compile 2>/dev/null)
MPI_LIBS    ?= $(shell pkg-config --libs ompi-c 2>/dev/null || mpicc --showme:link 2>/dev/null)
DIST_SRC     = $(wildcard distributed/*.c)
DIST_OBJ     = $(DIST_SRC:%.c=$(BUILD)/%.o)
DIST_MODULE  = $(BUILD)/moongrad/distributed_core.so
MPIRUN      ?= env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none mpirun
.PHONY: distributed mpi-deps test-mpi test-dist install-distributed
test-dist: test-mpi
# MPI's flags on these objects only, by a rule of their own: a target-specific ALL_CFLAGS would reach
# $(BUILD)/cflags too, and every `make distributed` would then make the next `make` rebuild the core
$(BUILD)/distributed/%.o: distributed/%.c $(HDR) Makefile $(BUILD)/cflags
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(MPI_CFLAGS) -c -o $@ $<
$(DIST_OBJ): $(wildcard distributed/*.h)
distributed: $(DIST_MODULE)
$(DIST_MODULE): $(DIST_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LIBFLAG) -o $@ $(DIST_OBJ) $(MPI_LIBS) $(LDLIBS)
mpi-deps:
	@sh distributed/deps.sh
test-mpi: deps mpi-deps $(MODULE)
	$(MAKE) -s distributed $(DIST_HOST)
	$(CC) $(ALL_CFLAGS) $(MPI_CFLAGS) -Werror -fsyntax-only $(DIST_SRC)
	@status=0; for np in 1 2 "3 --oversubscribe" "4 --oversubscribe"; do \
	  echo "== spec/distributed under mpirun -np $$np"; \
	  $(MPIRUN) -np $$np sh distributed/rank0.sh busted --lua=$(LUA) --pattern=_mpi $(BUSTED_ARGS) spec/distributed \
	    || status=1; \
	done; \
	echo "== spec/hosts/dist_host.c under mpirun -np 2 (a host's own MPI_Comm and its own transport)"; \
	$(MPIRUN) -np 2 $(DIST_HOST) || status=1; \
	echo "== spec/distributed fault specs (each starts its own mpirun job)"; \
	MOONGRAD_MPIRUN="$(MPIRUN)" busted --lua=$(LUA) --pattern=_faults $(BUSTED_ARGS) spec/distributed || status=1; \
	exit $$status
# `make test-mpi-asan`: spec/distributed under mpirun -np 2 and 4 with the core and this module built
# with ASan + UBSan (the interpreter preloads the runtimes, as `make asan`); a report fails it.
DIST_ASAN_OBJ    = $(DIST_SRC:%.c=$(ASAN_BUILD)/%.o)
DIST_ASAN_MODULE = $(ASAN_BUILD)/moongrad/distributed_core.so
$(ASAN_BUILD)/distributed/%.o: distributed/%.c $(HDR) Makefile $(ASAN_BUILD)/cflags
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SANITIZE) $(MPI_CFLAGS) -c -o $@ $<
$(DIST_ASAN_OBJ): $(wildcard distributed/*.h)
$(DIST_ASAN_MODULE): $(DIST_ASAN_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared -fsanitize=address,undefined -o $@ $(DIST_ASAN_OBJ) $(MPI_LIBS) $(LDLIBS)
.PHONY: test-mpi-asan
test-mpi-asan: deps mpi-deps $(ASAN_MODULE) $(DIST_ASAN_MODULE)
	@status=0; for np in 2 "4 --oversubscribe"; do \
	  $(MPIRUN) -np $$np env LUA_CPATH="$(CURDIR)/$(ASAN_BUILD)/?.so;;" \
	    LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	    ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    sh distributed/rank0.sh busted --lua=$(LUA) --cpath="$(CURDIR)/$(ASAN_BUILD)/?.so" --pattern=_mpi \
	    $(BUSTED_ARGS) spec/distributed || status=1; \
	done; ! grep -lE 'ERROR: AddressSanitizer|runtime error:' /tmp/moongrad-rank*.log && exit $$status

# spec/hosts/dist_host.c: a host handing moongrad.distributed its own communicator and transport
DIST_HOST = $(BUILD)/dist_host
$(DIST_HOST): spec/hosts/dist_host.c $(STATIC_LIB) $(DIST_OBJ)
	$(CC) -std=gnu11 $(WARN) $(CFLAGS) $(MPI_CFLAGS) -Iinclude $(LUA_INC) -o $@ spec/hosts/dist_host.c \
	  $(DIST_OBJ) $(STATIC_LIB) $(LUA_LIBS) $(MPI_LIBS) $(LDLIBS)
install-distributed: $(DIST_MODULE)
	install -d $(DESTDIR)$(LIBDIR)/moongrad $(DESTDIR)$(LUADIR)/moongrad
	install -m 755 $(DIST_MODULE) $(DESTDIR)$(LIBDIR)/moongrad/distributed_core.so

# spec/hosts/interrupt_host.c (mg_interrupt from a thread and a signal handler; spec/interrupt_spec.lua;
# its ASan + UBSan + LSan build: `make build-asan/interrupt_host`)
# and spec/hosts/host_buffer_host.c (a host's buffer closed by a finalizer during an op), on the
# static library like the oom host.
$(BUILD)/interrupt_host: spec/hosts/interrupt_host.c $(STATIC_LIB)
	$(CC) -std=gnu11 $(WARN) $(CFLAGS) -Iinclude $(LUA_INC) -o $@ spec/hosts/interrupt_host.c $(STATIC_LIB) $(LUA_LIBS) $(LDLIBS)
$(ASAN_BUILD)/interrupt_host: spec/hosts/interrupt_host.c $(ASAN_OBJ)
	$(CC) -std=gnu11 $(WARN) $(CFLAGS) $(SANITIZE) -Iinclude $(LUA_INC) -o $@ spec/hosts/interrupt_host.c $(ASAN_OBJ) $(LUA_LIBS) $(LDLIBS)
$(BUILD)/host_buffer_host: spec/hosts/host_buffer_host.c $(STATIC_LIB)
	$(CC) -std=gnu11 $(WARN) $(CFLAGS) -Iinclude $(LUA_INC) -o $@ spec/hosts/host_buffer_host.c $(STATIC_LIB) $(LUA_LIBS) $(LDLIBS)
$(ASAN_BUILD)/host_buffer_host: spec/hosts/host_buffer_host.c $(ASAN_OBJ)
	$(CC) -std=gnu11 $(WARN) $(CFLAGS) $(SANITIZE) -Iinclude $(LUA_INC) -o $@ spec/hosts/host_buffer_host.c $(ASAN_OBJ) $(LUA_LIBS) $(LDLIBS)

# ---- libFuzzer harnesses for the decoders of outside data (issue 11): fuzz/harness.c, one binary per
# target (FUZZ_TARGETS), each with its seed corpus fuzz/corpus/<target>/ (committed) and a dictionary
# fuzz/<target>.dict when there is one. The decoders are partly Lua, so the harness links Lua 5.4.4
# built from its source (Debian's .orig tarball, checked by sha256; LUA_TARBALL=path to use a local
# copy) with the same clang instrumentation as moongrad's C: libFuzzer sees the interpreter's
# branches, and the harness's line hook adds the Lua code's own (fuzz/harness.c says how).
# `make fuzz-files` runs each target FUZZ_SECONDS (default 60) one after the other, new inputs going
# to build-fuzz/corpus/<target>/ (not committed); a crash leaves build-fuzz/crash-<target>-* and
# fails the run. A target is one row in fuzz/harness.c plus its name here.
# ext/idx.c (mg.data.read_idx's reader, a module of its own needing zlib) is fuzzed when the tree has it
FUZZ_EXT_SRC   = $(wildcard ext/idx.c)
FUZZ_TARGETS  ?= safetensors csv table $(if $(FUZZ_EXT_SRC),idx)
FUZZ_EXT_FLAGS = $(if $(FUZZ_EXT_SRC),-DMG_FUZZ_WITH_IDX $(FUZZ_EXT_SRC) -lz)
FUZZ_SECONDS  ?= 60
FUZZ_CC       ?= clang
FUZZ_BUILD     = build-fuzz
FUZZ_SAN       = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS    = -std=gnu11 -g -O1 $(MG_FPFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link
LUA_SRC_VER    = 5.4.4
LUA_SRC_URL    = http://deb.debian.org/debian/pool/main/l/lua5.4/lua5.4_$(LUA_SRC_VER).orig.tar.gz
LUA_SRC_SHA256 = 164c7849653b80ae67bec4b7473b884bf5cc8d2dca05653475ec2ed27b9ebf61
FUZZ_LUA_DIR   = $(FUZZ_BUILD)/lua-$(LUA_SRC_VER)/src
FUZZ_LUA_C     = lapi lcode lctype ldebug ldo ldump lfunc lgc llex lmem lobject lopcodes lparser lstate \
                 lstring ltable ltm lundump lvm lzio lauxlib lbaselib lcorolib ldblib liolib lmathlib \
                 loadlib loslib lstrlib ltablib lutf8lib linit
FUZZ_LUA_OBJ   = $(FUZZ_LUA_C:%=$(FUZZ_BUILD)/lua/%.o)
FUZZ_MG_OBJ    = $(SRC:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_BINS      = $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz-%)
.PHONY: fuzz-files fuzz-build fuzz-clean
.SECONDARY: $(FUZZ_MG_OBJ) $(FUZZ_LUA_OBJ)
$(FUZZ_BUILD)/lua-$(LUA_SRC_VER)/src/lua.h:
	@mkdir -p $(FUZZ_BUILD)
	if [ -n "$(LUA_TARBALL)" ]; then cp "$(LUA_TARBALL)" $(FUZZ_BUILD)/lua.tar.gz; \
	else curl -fsSL -o $(FUZZ_BUILD)/lua.tar.gz $(LUA_SRC_URL) || wget -q -O $(FUZZ_BUILD)/lua.tar.gz $(LUA_SRC_URL); fi
	echo "$(LUA_SRC_SHA256)  $(FUZZ_BUILD)/lua.tar.gz" | sha256sum -c --quiet
	tar -xzf $(FUZZ_BUILD)/lua.tar.gz -C $(FUZZ_BUILD) && touch $@
# the collector's branches depend on the heap's history, not on the input: no coverage for lgc.c
$(FUZZ_BUILD)/lua/%.o: $(FUZZ_BUILD)/lua-$(LUA_SRC_VER)/src/lua.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(if $(filter lgc,$*),-fsanitize-coverage-ignorelist=/dev/null -fno-sanitize=fuzzer-no-link) \
	  -DLUA_USE_POSIX -w -c -o $@ $(FUZZ_LUA_DIR)/$*.c
$(FUZZ_BUILD)/%.o: %.c $(HDR) Makefile $(FUZZ_BUILD)/lua-$(LUA_SRC_VER)/src/lua.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fPIC $(WARN) -Iinclude -I$(FUZZ_LUA_DIR) -c -o $@ $<
$(FUZZ_BUILD)/fuzz-%: fuzz/harness.c $(FUZZ_MG_OBJ) $(FUZZ_LUA_OBJ) $(FUZZ_EXT_SRC)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(WARN) -fsanitize=fuzzer -Iinclude -I$(FUZZ_LUA_DIR) \
	  -DMG_FUZZ_NAME='"$*"' \
	  -DMG_FUZZ_ROOT='"$(CURDIR)"' -o $@ fuzz/harness.c $(FUZZ_MG_OBJ) $(FUZZ_LUA_OBJ) $(FUZZ_EXT_FLAGS) -lm -lpthread
fuzz-build: $(FUZZ_BINS)
fuzz-files: $(FUZZ_BINS)
	@status=0; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$t; \
	  dict=; [ -f fuzz/$$t.dict ] && dict=-dict=fuzz/$$t.dict; \
	  echo "fuzz-files: $$t for $(FUZZ_SECONDS) s"; \
	  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(FUZZ_BUILD)/fuzz-$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	    -max_len=65536 -print_final_stats=1 $$dict -artifact_prefix=$(FUZZ_BUILD)/crash-$$t- \
	    $(FUZZ_BUILD)/corpus/$$t fuzz/corpus/$$t > $(FUZZ_BUILD)/$$t.log 2>&1 || status=1; \
	  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)|ERROR|SUMMARY|^fuzz ' $(FUZZ_BUILD)/$$t.log | tail -n 8; \
	  grep -E '^#[0-9]+' $(FUZZ_BUILD)/$$t.log | tail -n 1; \
	  [ $$status = 0 ] || { echo "fuzz-files: $$t FAILED (log: $(FUZZ_BUILD)/$$t.log)"; break; }; \
	done; exit $$status
clean: fuzz-clean
fuzz-clean:
	rm -rf $(FUZZ_BUILD)
