/*
 * oom_host.c: allocation failure at any point (issue 11, item 3). A host like examples/embed.c
 * (lua_newstate with its own allocator, moongrad linked in statically) whose allocator fails the
 * N-th allocation and otherwise counts live bytes. It runs a Lua script (spec/hosts/oom_script.lua)
 * in lua_pcall, after handing Lua two host buffers (mg_push_host_tensor); for every N the host must
 * survive: the call fails with an error or succeeds, the tensors the script kept are whole (its
 * OOM_CHECK), each buffer handed over was released once (and none whose push raised), and 0 bytes
 * are live after lua_close.
 *
 *   oom_host [options] SCRIPT LUADIR        LUADIR holds moongrad/<name>.lua (package.path is set to it)
 *     --fail N     one run whose N-th allocation fails (0: none fails; prints the allocation count);
 *                  worker threads as MOONGRAD_NUM_THREADS says (the sweep runs without)
 *     --sweep      every N from 1 to the count of a full run (default)
 *     --upto B --stride S   sweep every N up to B, then every S-th beyond it
 *     --jobs J     run J children at a time (default 1)
 *     --sticky     every allocation from the N-th on fails (while the script runs and at lua_close)
 *     --budget B   the state gets a memory budget of B bytes (mg_set_memory_limit) once moongrad is
 *                  loaded: the allocator's failures come before it is reached, and every one inside a
 *                  tensor's allocation must then be the named error ("'fn': not enough memory for a
 *                  tensor of N bytes"), never Lua's bare "not enough memory"
 *
 * An allocation is a call that asks for new bytes (a new block, or growing one); frees and shrinks
 * are not counted and never fail. Failures are armed while the state is made, while the script
 * runs and while lua_close runs; not while the host checks the tensors the script left. Lua retries a failed allocation once after an emergency
 * collection, and moongrad once more after emptying its block cache and a full collection: every
 * retry (the same request again, before any other) fails too, so that the failure reaches the script.
 *
 * The sweep forks: the process runs the script once with every allocation working, and at each
 * swept allocation a child is forked that sees that allocation fail, finishes the script, checks
 * and exits; the parent waits for it, then goes on. A child is what a fresh run failing its N-th
 * allocation would be, without redoing the first N - 1 allocations. Each child works in its own
 * directory, and files open at the fork get private offsets (and private copies when written), so
 * that it cannot disturb the parent's reads and writes.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <execinfo.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "moongrad.h"

typedef struct {
    size_t live;       /* bytes live in the allocator */
    long count;        /* allocations so far */
    long fail_at;      /* the allocation to fail (0: none) */
    int sticky;        /* --sticky: every allocation after it fails too (while armed) */
    int retry_pending; /* the last allocation failed: fail Lua's retry of it too */
    size_t budget;     /* --budget */
    int failed_kind;   /* what the failed allocation was for: Lua's osize tag of a new object
                        * (LUA_TUSERDATA, LUA_TTABLE, ...), 0 for moongrad's scratch, -1 a block grown */
    long failed_at;    /* report.failed_at */
    const void *retry_ptr;
    size_t retry_size;
    /* sweep */
    int armed; /* failures happen (and children are forked) only while set: not in the host's checks */
    int sweeping, is_child;
    long upto, stride;
} heap;

static heap H;

/* what a child reports to its parent (shared memory) */
typedef struct {
    int done;
    int status;   /* the pcall's status */
    int checked;  /* OOM_CHECK ran and passed (or was not defined yet) */
    size_t live;  /* after lua_close */
    int failed_kind; /* heap.failed_kind of the first failure */
    long failed_at;  /* the innermost frame of the host's executable (moongrad is linked in) under the
                      * failed allocation, as an offset from its load address (0: none) */
    char msg[4096];
} report;
/* the sweep runs up to `jobs` children at a time, each with its own slot: a report in shared
 * memory and a directory */
#define MAX_JOBS 16
static int jobs = 1, nrunning;
static report *reports, *shared; /* shared: the child's own report */
static pid_t slot_pid[MAX_JOBS];
static long slot_n[MAX_JOBS];
static char child_dirs[MAX_JOBS][4096];
static const char *child_dir;
static void child_start(void);
static void fork_child(long n);

/* The innermost of the frames (after oom_alloc's own) that lies in this executable, as an offset
 * from its load address; 0 when none does. */
static long innermost_own_frame(void *const *frames, int n) {
    Dl_info self, f;
    if (!dladdr((void *)innermost_own_frame, &self)) return 0;
    for (int i = 1; i < n; i++)
        if (dladdr(frames[i], &f) && f.dli_fbase == self.dli_fbase) return (long)((char *)frames[i] - (char *)self.dli_fbase);
    return 0;
}

static void *oom_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    (void)ud;
    const size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        H.live -= old;
        return NULL;
    }
    if (nsize > old) { /* an allocation: counted, and perhaps failed */
        if (H.retry_pending && ptr == H.retry_ptr && nsize == H.retry_size) return NULL; /* a retry: fails too */
        H.retry_pending = 0;
        if (!H.armed) goto allocate;
        H.count++;
        int fail = H.fail_at > 0 && (H.sticky ? H.count >= H.fail_at : H.count == H.fail_at);
        if (H.armed && H.sweeping && !H.is_child &&
            (H.count <= H.upto || (H.stride > 0 && (H.count - H.upto) % H.stride == 0))) {
            fork_child(H.count);
            if (H.is_child) fail = 1;
        }
        if (fail) {
            if (H.failed_kind == -2) {
                H.failed_kind = ptr ? -1 : (int)osize;
                void *frames[32];
                const int nf = backtrace(frames, 32);
                H.failed_at = innermost_own_frame(frames, nf);
                /* OOM_BACKTRACE=1 with --fail N: where it failed (addr2line -f -e oom_host on the offsets) */
                if (!H.sweeping && getenv("OOM_BACKTRACE")) backtrace_symbols_fd(frames, nf, 2);
            }
            H.retry_pending = 1;
            H.retry_ptr = ptr;
            H.retry_size = nsize;
            return NULL;
        }
    }
allocate:;
    void *p = realloc(ptr, nsize);
    if (p) H.live = H.live - old + nsize;
    return p;
}

/* ---- the child's isolation ---------------------------------------------------------------- */

/* fd now reads/writes a file of its own, at the same offset: a read-only file reopened, a written
 * one copied into the child's directory. */
static void privatize(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return;
    const int flags = fcntl(fd, F_GETFL);
    const off_t off = lseek(fd, 0, SEEK_CUR);
    int nfd;
    if ((flags & O_ACCMODE) == O_RDONLY) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        nfd = open(path, O_RDONLY);
    } else {
        char path[4200];
        snprintf(path, sizeof path, "%s/fd%d", child_dir, fd);
        nfd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
        char buf[65536];
        off_t at = 0;
        ssize_t n;
        while (nfd >= 0 && (n = pread(fd, buf, sizeof buf, at)) > 0) {
            if (write(nfd, buf, (size_t)n) != n) break;
            at += n;
        }
    }
    if (nfd < 0) {
        perror("oom_host: privatize");
        _exit(2);
    }
    lseek(nfd, off, SEEK_SET);
    fcntl(nfd, F_SETFL, flags & (O_APPEND | O_NONBLOCK));
    dup2(nfd, fd);
    close(nfd);
}

static void child_start(void) {
    DIR *d = opendir("/proc/self/fd");
    int fds[256], n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL && n < 256) {
        const int fd = atoi(e->d_name);
        if (fd > 2 && fd != dirfd(d)) fds[n++] = fd;
    }
    if (d) closedir(d);
    for (int i = 0; i < n; i++) privatize(fds[i]);
    if (chdir(child_dir) != 0) {
        perror("oom_host: chdir");
        _exit(2);
    }
}

/* empties the child's directory (it holds only files); returns the number of temporaries mg.save
 * left there (its promise: removed on every error) */
static int clean_child_dir(void) {
    DIR *d = opendir(child_dir);
    struct dirent *e;
    int tmps = 0;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        const size_t len = strlen(e->d_name);
        if (len > 4 && !strcmp(e->d_name + len - 4, ".tmp")) {
            if (!tmps) fprintf(stderr, "oom: a temporary left behind: %s\n", e->d_name);
            tmps++;
        }
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", child_dir, e->d_name);
        unlink(path);
    }
    if (d) closedir(d);
    return tmps;
}

/* ---- the sweep's tally ---------------------------------------------------------------------- */

static long swept, survived, n_ok, n_memerr, n_other;
/* memory errors that name the function and bytes ("'zeros': not enough memory for a tensor of 80
 * bytes"), and bare ones (Lua's "not enough memory") by what the failed allocation was for */
static long n_named, n_bare, n_bare_kind[16];
/* bare errors by the innermost function of the executable under the failed allocation */
#define MAX_SITES 64
static long site_at[MAX_SITES], site_count[MAX_SITES];
static int nsites;
static void count_site(long at) {
    int i = 0;
    while (i < nsites && site_at[i] != at) i++;
    if (i == nsites && nsites < MAX_SITES) site_at[nsites++] = at;
    if (i < MAX_SITES) site_count[i]++;
}
/* prints "count: fn" for each function of the sites (named by addr2line on this executable) */
static void print_sites(void) {
    static char names[MAX_SITES][128];
    long counts[MAX_SITES] = {0};
    int nnames = 0;
    for (int i = 0; i < nsites; i++) {
        char cmd[4200], name[128] = "Lua alone (no moongrad or host frame)";
        snprintf(cmd, sizeof cmd, "addr2line -f -e /proc/%d/exe 0x%lx 2>/dev/null", (int)getpid(), site_at[i]);
        FILE *f = site_at[i] ? popen(cmd, "r") : NULL;
        if (f) {
            if (fgets(name, sizeof name, f)) name[strcspn(name, "\n")] = 0;
            pclose(f);
        }
        int k = 0;
        while (k < nnames && strcmp(names[k], name) != 0) k++;
        if (k == nnames) snprintf(names[nnames++], sizeof names[0], "%s", name);
        counts[k] += site_count[i];
    }
    for (int k = 0; k < nnames; k++)
        printf("oom: bare \"not enough memory\" x%ld: allocated under %s\n", counts[k], names[k]);
}
static int is_named(const report *r) { return strstr(r->msg, "': not enough memory for ") != NULL; }
/* k: heap.failed_kind (Lua's tags: LUA_TSTRING 4, LUA_TTABLE 5, LUA_TFUNCTION 6, LUA_TUSERDATA 7,
 * LUA_TTHREAD 8, an upvalue 9, a prototype 10) */
static const char *kind_name(int k) {
    static const char *const names[] = {"a block grown", "an array (moongrad's scratch, or Lua's)", "?", "?", "?",
                                        "a string", "a table", "a closure", "a userdata", "a thread",
                                        "an upvalue", "a function prototype"};
    return k >= -1 && k <= 10 ? names[k + 1] : "?";
}
#define MAX_MSGS 40
static char msgs[MAX_MSGS][200];
static int msg_counts[MAX_MSGS], nmsgs;

static int is_memory_error(const report *r) {
    return r->status == LUA_ERRMEM || strstr(r->msg, "not enough memory") != NULL;
}

/* waits for one child and tallies its report */
static void reap_one(void) {
    int ws;
    pid_t pid;
    while ((pid = wait(&ws)) < 0) {}
    int slot = 0;
    while (slot < MAX_JOBS && slot_pid[slot] != pid) slot++;
    if (slot == MAX_JOBS) return; /* not ours */
    slot_pid[slot] = 0;
    nrunning--;
    const long n = slot_n[slot];
    shared = &reports[slot];
    child_dir = child_dirs[slot];
    swept++;
    const int tmps = clean_child_dir();
    const int clean = WIFEXITED(ws) && WEXITSTATUS(ws) == 0 && shared->done && tmps == 0;
    if (clean) {
        survived++;
        if (shared->status == LUA_OK) n_ok++;
        else if (is_memory_error(shared)) {
            n_memerr++;
            if (is_named(shared)) n_named++;
            else {
                n_bare++;
                const int k = shared->failed_kind;
                n_bare_kind[k >= -1 && k <= 10 ? k + 1 : 15]++;
                count_site(shared->failed_at);
                if (k == 7 && getenv("OOM_LIST_USERDATA")) fprintf(stderr, "oom: N=%ld: bare \"not enough memory\" from a userdata\n", n);
            }
        }
        else {
            n_other++;
            int i;
            for (i = 0; i < nmsgs && strncmp(msgs[i], shared->msg, 199) != 0; i++) {}
            if (i == nmsgs && nmsgs < MAX_MSGS) snprintf(msgs[nmsgs++], sizeof msgs[0], "%.199s", shared->msg);
            if (i < MAX_MSGS) msg_counts[i]++;
        }
    } else {
        fprintf(stderr, "oom: N=%ld FAILED: ", n);
        if (WIFSIGNALED(ws)) fprintf(stderr, "killed by signal %d", WTERMSIG(ws));
        else if (!shared->done) fprintf(stderr, "exit status %d before its report", WEXITSTATUS(ws));
        else fprintf(stderr, "status %d, OOM_CHECK %s, %zu bytes live after lua_close, %d temporaries left, error: %s",
                     shared->status, shared->checked ? "passed" : "FAILED", shared->live, tmps, shared->msg);
        fprintf(stderr, "\n");
    }
}

/* Forks the child that sees allocation n fail (H.is_child is set in it), waiting first for a free
 * slot. */
static void fork_child(long n) {
    while (nrunning >= jobs) reap_one();
    int slot = 0;
    while (slot_pid[slot]) slot++;
    memset(&reports[slot], 0, sizeof reports[slot]);
    fflush(NULL);
    const pid_t pid = fork();
    if (pid < 0) {
        perror("oom_host: fork");
        exit(2);
    }
    if (pid == 0) {
        H.is_child = 1;
        H.fail_at = n;
        shared = &reports[slot];
        child_dir = child_dirs[slot];
        child_start();
        return;
    }
    slot_pid[slot] = pid;
    slot_n[slot] = n;
    nrunning++;
}

/* ---- one run ------------------------------------------------------------------------------ */

static const char *script_path, *lua_dir;

/* Two host buffers handed to Lua as tensors (mg_push_host_tensor), as globals frame1 and frame2:
 * the release callback must run once for each that was handed over, and never for one whose
 * mg_push_host_tensor raised. */
static float frames[2][6];
static int handed[2], released[2];
static void release_frame(void *ud, void *data, size_t nbytes) {
    (void)data;
    (void)nbytes;
    released[(int *)ud - handed]++;
}

static int push_frame(lua_State *L) {
    const int k = (int)lua_tointeger(L, 1);
    const int64_t shape[2] = {2, 3};
    mg_push_host_tensor(L, MG_FLOAT32, 2, shape, frames[k], release_frame, &handed[k]);
    handed[k] = 1;
    lua_setglobal(L, k ? "frame2" : "frame1");
    return 0;
}

static int setup_and_run(lua_State *L) {
    luaL_openlibs(L);
    luaL_requiref(L, "moongrad.core", luaopen_moongrad_core, 0);
    lua_pop(L, 1);
    if (H.budget) mg_set_memory_limit(L, H.budget);
    /* each in its own pcall: a host that shrugs off a failed push and makes the next one */
    for (int k = 0; k < 2; k++) {
        lua_pushcfunction(L, push_frame);
        lua_pushinteger(L, k);
        if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1);
    }
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_moongrad_core);
    lua_setfield(L, -2, "moongrad.core");
    lua_pop(L, 1);
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", lua_dir, lua_dir);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
    if (luaL_loadfile(L, script_path) != LUA_OK) return lua_error(L);
    lua_call(L, 0, 1);
    return 1;
}

static int make_box_metatable(lua_State *L) {
    luaL_Buffer b;
    luaL_buffinitsize(L, &b, 4 * LUAL_BUFFERSIZE);
    luaL_pushresultsize(&b, 0);
    return 0;
}

static int traceback(lua_State *L) {
    luaL_traceback(L, L, lua_tostring(L, 1), 1);
    return 1;
}

/* OOM_CHECK(), if the script got to define it */
static int run_check(lua_State *L) {
    if (lua_getglobal(L, "OOM_CHECK") != LUA_TFUNCTION) return 0;
    lua_call(L, 0, 0);
    return 0;
}

/* Runs the script once; returns the report. */
static void run(report *r) {
    H.failed_kind = -2;
    H.failed_at = 0;
    H.armed = 1;
    lua_State *L = lua_newstate(oom_alloc, NULL);
    if (!L) { /* the state itself could not be made: nothing to check */
        r->status = LUA_ERRMEM;
        snprintf(r->msg, sizeof r->msg, "lua_newstate: not enough memory");
        r->checked = 1;
        r->done = 1;
        return;
    }
    /* lauxlib makes the metatable of a growing luaL_Buffer's box on first use, in two steps
     * (luaL_newmetatable, then luaL_setfuncs): a failure between them leaves a metatable without
     * __close in the registry, and every later large buffer of the state fails with "got a
     * non-closable value" (a Lua 5.4 bug, not moongrad's). It is made here, before failures. */
    H.armed = 0;
    lua_pushcfunction(L, make_box_metatable);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
        fprintf(stderr, "oom_host: %s\n", lua_tostring(L, -1));
        exit(2);
    }
    H.armed = 1;
    lua_pushcfunction(L, setup_and_run);
    r->status = lua_pcall(L, 0, 1, 0);
    H.armed = 0; /* allocation works while the host checks what the script left */
    H.retry_pending = 0;
    const char *m = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(not a string)";
    snprintf(r->msg, sizeof r->msg, "%s", r->status == LUA_OK ? "" : m);
    lua_settop(L, 0);
    if (r->status != LUA_OK) {
        lua_pushcfunction(L, traceback);
        lua_pushcfunction(L, run_check);
        if (lua_pcall(L, 0, 0, 1) == LUA_OK) r->checked = 1;
        else snprintf(r->msg + strlen(r->msg), sizeof r->msg - strlen(r->msg), " | OOM_CHECK: %s",
                      lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
        lua_settop(L, 0);
    } else {
        r->checked = 1;
    }
    lua_gc(L, LUA_GCCOLLECT);
    H.armed = 1; /* finalizers run by lua_close may see failures too */
    lua_close(L);
    H.armed = 0;
    r->live = H.live;
    r->failed_kind = H.failed_kind;
    r->failed_at = H.failed_at;
    for (int k = 0; k < 2; k++)
        if (released[k] != handed[k]) {
            snprintf(r->msg + strlen(r->msg), sizeof r->msg - strlen(r->msg),
                     " | host buffer %d: handed over %d, released %d time(s)", k + 1, handed[k], released[k]);
            r->checked = 0;
        }
    r->done = 1;
}

static int report_ok(const report *r) { return r->done && r->checked && r->live == 0; }

int main(int argc, char **argv) {
    long fail = -1, upto = -1, stride = 0;
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
        if (!strcmp(argv[i], "--fail") && i + 1 < argc) fail = atol(argv[++i]);
        else if (!strcmp(argv[i], "--sweep")) fail = -1;
        else if (!strcmp(argv[i], "--sticky")) H.sticky = 1;
        else if (!strcmp(argv[i], "--budget") && i + 1 < argc) H.budget = (size_t)atoll(argv[++i]);
        else if (!strcmp(argv[i], "--jobs") && i + 1 < argc) jobs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--upto") && i + 1 < argc) upto = atol(argv[++i]);
        else if (!strcmp(argv[i], "--stride") && i + 1 < argc) stride = atol(argv[++i]);
        else break;
    }
    if (argc - i != 2) {
        fprintf(stderr, "usage: %s [--sticky] [--budget B] [--jobs J] [--fail N | --sweep [--upto B --stride S]] SCRIPT LUADIR\n", argv[0]);
        return 2;
    }
    static char script_abs[4096], dir_abs[4096], work[] = "/tmp/oom_host.XXXXXX";
    if (!realpath(argv[i], script_abs) || !realpath(argv[i + 1], dir_abs)) {
        perror("oom_host: realpath");
        return 2;
    }
    script_path = script_abs;
    lua_dir = dir_abs;
    if (!mkdtemp(work) || chdir(work) != 0) {
        perror("oom_host: scratch directory");
        return 2;
    }
    if (jobs < 1) jobs = 1;
    if (jobs > MAX_JOBS) jobs = MAX_JOBS;
    for (int k = 0; k < jobs; k++) {
        snprintf(child_dirs[k], sizeof child_dirs[k], "%s/child%d", work, k);
        mkdir(child_dirs[k], 0700);
    }

    report own = {0};
    int rc;
    if (fail >= 0) {
        H.fail_at = fail;
        run(&own);
        printf("oom: N=%ld: %s%s; %ld allocations; OOM_CHECK %s; %zu bytes live after lua_close%s%s\n", fail,
               own.status == LUA_OK ? "succeeded" : "error: ", own.msg, H.count,
               own.checked ? "passed" : "FAILED", own.live, fail ? "; the failed allocation was " : "",
               fail ? kind_name(own.failed_kind) : "");
        rc = report_ok(&own) && (fail != 0 || own.status == LUA_OK) ? 0 : 1;
    } else {
        reports = mmap(NULL, sizeof *reports * MAX_JOBS, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (reports == MAP_FAILED) {
            perror("oom_host: mmap");
            return 2;
        }
        setenv("MOONGRAD_NUM_THREADS", "1", 1); /* no worker threads: the sweep forks */
        H.sweeping = 1;
        H.upto = upto < 0 ? -1 : upto;
        if (upto < 0) H.upto = 1L << 62;
        H.stride = stride;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        run(&own);
        if (H.is_child) { /* a child ends here: its report is in shared memory */
            *shared = own;
            _exit(report_ok(&own) ? 0 : 1);
        }
        while (nrunning > 0) reap_one();
        clock_gettime(CLOCK_MONOTONIC, &t1);
        const double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        for (int k = 0; k < nmsgs; k++) printf("oom: other error x%d: %s\n", msg_counts[k], msgs[k]);
        printf("oom: full run: %ld allocations, %s, %zu bytes live after lua_close\n", H.count,
               own.status == LUA_OK ? "succeeded" : own.msg, own.live);
        if (H.upto >= H.count) printf("oom: swept every N in 1..%ld\n", H.count);
        else printf("oom: swept every N in 1..%ld, then every %ld-th up to %ld\n", H.upto, H.stride, H.count);
        printf("oom: %ld errors (%ld memory errors, %ld other), %ld succeeded\n", n_memerr + n_other, n_memerr,
               n_other, n_ok);
        printf("oom: memory errors: %ld name the function and bytes, %ld say only \"not enough memory\"%s\n", n_named,
               n_bare, H.budget ? " (with a memory budget)" : "");
        for (int k = 0; k < 16; k++)
            if (n_bare_kind[k])
                printf("oom: bare \"not enough memory\" x%ld: the failed allocation was %s\n", n_bare_kind[k],
                       kind_name(k - 1));
        if (getenv("OOM_SITES")) print_sites();
        printf("oom: %ld survived / %ld total in %.1f s\n", survived, swept, secs);
        rc = survived == swept && own.status == LUA_OK && report_ok(&own) ? 0 : 1;
    }
    for (int k = 0; k < jobs; k++) {
        child_dir = child_dirs[k];
        clean_child_dir();
        rmdir(child_dir);
    }
    char own_file[4200];
    snprintf(own_file, sizeof own_file, "%s/oom.safetensors", work);
    unlink(own_file);
    rmdir(work);
    return rc;
}
