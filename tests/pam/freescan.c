/* freescan: an LD_PRELOAD library that looks for secrets in memory the moment it is freed.
 *
 * The PAM tests (tests/integration/test_pam_heap.py) preload it into pam_driver to show that
 * the host process of pam_kontist.so leaves no secret behind in freed memory: every block given
 * to free() is searched, over its whole usable size (malloc_usable_size), before it goes back to
 * the allocator, and so is every block realloc() gives up. It finds
 *
 *   - the literal strings of the file named by KT_FREESCAN_SECRETS (one a line; read once, at
 *     the first free, into static memory), and
 *   - anything that looks like a JWT: "eyJ", at least 20 base64url characters, then a ".".
 *
 * Each hit appends one line to the file named by KT_FREESCAN_REPORT (standard error when unset),
 * after a "start pid=P secrets=N" line written when the library is loaded:
 *
 *   hit kind=secret index=N size=S offset=O via=free|realloc|realloc-shrink pid=P
 *   hit kind=jwt size=S offset=O via=... pid=P
 *
 * where N is the 1-based line of the secrets file, S the block's usable size and O where in the
 * block the first match starts (one line per secret and block; one jwt line per block). With
 * KT_FREESCAN_BACKTRACE=1 a "backtrace begin" line, the frames (backtrace_symbols_fd) and a
 * "backtrace end" line follow each hit.
 *
 * The whole process lifetime is covered, pam_end and exit included. Nothing here allocates
 * while checking a block, and the report is written with open(2) and write(2).
 *
 * realloc: growing a block always moves it here (new block, copy, the old one checked and
 * freed), since glibc may or may not move it in place depending on the heap's layout and a moved
 * block leaves its old contents behind; shrinking checks the part given up (via=realloc-shrink,
 * S and O then of that part).
 *
 * With KT_FREESCAN_AT_EXIT=1 a destructor searches, at exit, every private writable mapping of
 * the process (heap and malloc arenas, thread stacks, libraries' data) the same way: hits say
 * via=exit:MAPPING, S is the mapping's size, and an "exit pid=P regions=N" line ends the report.
 * This finds secrets that were never freed or never were on the heap. The environment and the
 * list of secrets itself, which hold them on purpose, are left out.
 *
 * It cannot work next to AddressSanitizer, which owns malloc and free itself. */
#include <config.h>

#include <dlfcn.h>
#include <execinfo.h>
#include <fcntl.h>
#include <malloc.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_SECRETS 64
#define SECRETS_BYTES 16384
#define JWT_MIN_TAIL 20
#define MAX_FRAMES 64

/* glibc's own entry points: used only while dlsym is still finding the next free and realloc. */
extern void __libc_free(void *p);
extern void *__libc_realloc(void *p, size_t n);

typedef void free_fn(void *);
typedef void *realloc_fn(void *, size_t);

enum { UNINIT, INITIALIZING, READY };

static atomic_int state = UNINIT;
static free_fn *real_free;
static realloc_fn *real_realloc;

static char secret_text[SECRETS_BYTES];
static struct {
    const char *s;
    size_t len;
} secrets[MAX_SECRETS];
static int nsecrets;

static char report_path[4096];
static bool want_backtrace;
static atomic_flag report_lock = ATOMIC_FLAG_INIT;

/* Set while this thread is inside the library: frees made by what it calls (dlsym, backtrace)
 * go straight through. */
static _Thread_local int busy __attribute__((tls_model("initial-exec")));

static void load_secrets(void)
{
    const char *path = getenv("KT_FREESCAN_SECRETS");
    size_t have = 0;
    char *line;
    int fd;

    if (path == NULL || path[0] == '\0')
        return;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    while (have < sizeof(secret_text) - 1) {
        ssize_t n = read(fd, secret_text + have, sizeof(secret_text) - 1 - have);

        if (n <= 0)
            break;
        have += (size_t)n;
    }
    close(fd);
    secret_text[have] = '\0';
    line = secret_text;
    while (*line != '\0' && nsecrets < MAX_SECRETS) {
        char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);

        if (len > 0 && line[len - 1] == '\r')
            len--;
        /* Empty lines keep their number, so indexes match the file's lines. */
        secrets[nsecrets].s = line;
        secrets[nsecrets].len = len;
        nsecrets++;
        if (end == NULL)
            break;
        line = end + 1;
    }
}

static void init(void)
{
    int expected = UNINIT;
    const char *s;

    if (!atomic_compare_exchange_strong(&state, &expected, INITIALIZING)) {
        /* Another thread is at it (this thread's own recursion never gets here: busy is set). */
        while (atomic_load(&state) != READY)
            sched_yield();
        return;
    }
    busy++;
    real_free = (free_fn *)dlsym(RTLD_NEXT, "free");
    real_realloc = (realloc_fn *)dlsym(RTLD_NEXT, "realloc");
    if (real_free == NULL)
        real_free = __libc_free;
    if (real_realloc == NULL)
        real_realloc = __libc_realloc;
    load_secrets();
    s = getenv("KT_FREESCAN_REPORT");
    if (s != NULL && strlen(s) < sizeof(report_path))
        memcpy(report_path, s, strlen(s) + 1);
    s = getenv("KT_FREESCAN_BACKTRACE");
    want_backtrace = s != NULL && strcmp(s, "1") == 0;
    busy--;
    atomic_store(&state, READY);
}

static bool ready(void)
{
    if (atomic_load(&state) != READY && busy == 0)
        init();
    return atomic_load(&state) == READY;
}

/* Decimal without stdio. */
static size_t put_num(char *out, unsigned long long v)
{
    char tmp[24];
    size_t n = 0, k = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0)
        out[k++] = tmp[--n];
    return k;
}

static size_t put_str(char *out, const char *s)
{
    size_t n = strlen(s);

    memcpy(out, s, n);
    return n;
}

static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);

        if (n <= 0)
            return;
        buf += n;
        len -= (size_t)n;
    }
}

static void report(int index, size_t size, size_t offset, const char *via, bool trace)
{
    char line[512];
    size_t n = 0;
    int fd = 2;

    n += put_str(line + n, "hit kind=");
    if (index > 0) {
        n += put_str(line + n, "secret index=");
        n += put_num(line + n, (unsigned long long)index);
    } else {
        n += put_str(line + n, "jwt");
    }
    n += put_str(line + n, " size=");
    n += put_num(line + n, size);
    n += put_str(line + n, " offset=");
    n += put_num(line + n, offset);
    n += put_str(line + n, " via=");
    for (const char *v = via; *v != '\0' && n < sizeof(line) - 64; v++)
        line[n++] = *v == ' ' || *v == '\n' ? '_' : *v;
    n += put_str(line + n, " pid=");
    n += put_num(line + n, (unsigned long long)getpid());
    line[n++] = '\n';

    while (atomic_flag_test_and_set(&report_lock))
        sched_yield();
    if (report_path[0] != '\0')
        fd = open(report_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        fd = 2; /* never lose a hit: the tests fail on any output of the driver */
    write_all(fd, line, n);
    if (want_backtrace && trace) {
        void *frames[MAX_FRAMES];
        int depth = backtrace(frames, MAX_FRAMES);

        write_all(fd, "backtrace begin\n", 16);
        backtrace_symbols_fd(frames, depth, fd);
        write_all(fd, "backtrace end\n", 14);
    }
    if (fd != 2)
        close(fd);
    atomic_flag_clear(&report_lock);
}

/* Runs after the libraries it depends on are set up; the first free may have come earlier.
 * Writes "start pid=P secrets=N", so that a report with no hit shows the check was there. */
__attribute__((constructor)) static void freescan_start(void)
{
    char line[96];
    size_t n = 0;
    int fd;

    if (!ready())
        return;
    if (want_backtrace) {
        /* The first backtrace() loads libgcc_s, which allocates: do it now, not in a hit. */
        void *frame[2];

        busy++;
        (void)backtrace(frame, 2);
        busy--;
    }
    n += put_str(line + n, "start pid=");
    n += put_num(line + n, (unsigned long long)getpid());
    n += put_str(line + n, " secrets=");
    n += put_num(line + n, (unsigned long long)nsecrets);
    line[n++] = '\n';
    fd = report_path[0] != '\0' ? open(report_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)
                                : -1;
    if (fd >= 0) {
        write_all(fd, line, n);
        close(fd);
    }
}

static bool b64url(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* Offset of the first JWT-looking run in p[from..n), or n. */
static size_t find_jwt(const unsigned char *p, size_t n, size_t from)
{
    size_t i = from;

    while (n >= 3 && i <= n - 3) {
        const unsigned char *e = memchr(p + i, 'e', n - 2 - i);
        size_t j, start;

        if (e == NULL)
            break;
        start = (size_t)(e - p);
        if (e[1] != 'y' || e[2] != 'J') {
            i = start + 1;
            continue;
        }
        for (j = start + 3; j < n && b64url(p[j]); j++)
            ;
        if (j - start - 3 >= JWT_MIN_TAIL && j < n && p[j] == '.')
            return start;
        i = j > start + 3 ? j : start + 3;
    }
    return n;
}

/* At exit, what holds the planted strings on purpose: the list read from the secrets file and
 * the environment (a test may hand a password to a PAM module through it). */
static bool planted_here(const unsigned char *at)
{
    if (at >= (const unsigned char *)secret_text &&
        at < (const unsigned char *)secret_text + sizeof(secret_text))
        return true;
    for (char **e = environ; e != NULL && *e != NULL; e++)
        if (at >= (const unsigned char *)*e && at < (const unsigned char *)*e + strlen(*e))
            return true;
    return false;
}

/* Reports the first match of each secret, and the first JWT, in p[0..size). */
static void scan(const void *block, size_t size, const char *via, bool at_exit)
{
    const unsigned char *p = block;
    size_t off = 0;

    for (int i = 0; i < nsecrets; i++) {
        const unsigned char *from = p, *hit;

        if (secrets[i].len == 0)
            continue;
        while ((size_t)(p + size - from) >= secrets[i].len &&
               (hit = memmem(from, (size_t)(p + size - from), secrets[i].s, secrets[i].len)) !=
                   NULL) {
            if (!at_exit || !planted_here(hit)) {
                report(i + 1, size, (size_t)(hit - p), via, !at_exit);
                break;
            }
            from = hit + 1;
        }
    }
    while ((off = find_jwt(p, size, off)) < size) {
        if (!at_exit || !planted_here(p + off)) {
            report(0, size, off, via, !at_exit);
            break;
        }
        off++;
    }
}

/* --- at exit: every private writable mapping (heap, stacks, libraries' data, anonymous) ------ */

static char maps[1 << 18];

static unsigned long parse_hex(const char **s)
{
    unsigned long v = 0;

    for (;; (*s)++) {
        char c = **s;

        if (c >= '0' && c <= '9')
            v = v * 16 + (unsigned long)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v = v * 16 + (unsigned long)(c - 'a' + 10);
        else
            return v;
    }
}

static void scan_memory(void)
{
    size_t have = 0;
    unsigned long regions = 0;
    char via[320], line[96];
    size_t n = 0;
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return;
    while (have < sizeof(maps) - 1) {
        ssize_t got = read(fd, maps + have, sizeof(maps) - 1 - have);

        if (got <= 0)
            break;
        have += (size_t)got;
    }
    close(fd);
    maps[have] = '\0';
    for (char *l = maps; *l != '\0';) {
        char *end = strchr(l, '\n');
        const char *c = l, *name;
        unsigned long lo, hi;
        char perms[5];

        if (end != NULL)
            *end = '\0';
        lo = parse_hex(&c);
        c++;
        hi = parse_hex(&c);
        if (*c == ' ' && strlen(c) > 5) {
            memcpy(perms, c + 1, 4);
            perms[4] = '\0';
            /* pathname: after the fifth field */
            name = c;
            for (int field = 0; field < 4 && name != NULL; field++) {
                name = strchr(name + 1, ' ');
            }
            while (name != NULL && *name == ' ')
                name++;
            if (strcmp(perms, "rw-p") == 0 && hi > lo) {
                size_t k = 0;

                k += put_str(via + k, "exit:");
                for (const char *q = name != NULL && *name != '\0' ? name : "[anon]";
                     *q != '\0' && k < sizeof(via) - 1; q++)
                    via[k++] = *q;
                via[k] = '\0';
                scan((const void *)lo, (size_t)(hi - lo), via, true);
                regions++;
            }
        }
        if (end == NULL)
            break;
        l = end + 1;
    }
    n += put_str(line + n, "exit pid=");
    n += put_num(line + n, (unsigned long long)getpid());
    n += put_str(line + n, " regions=");
    n += put_num(line + n, regions);
    line[n++] = '\n';
    fd = report_path[0] != '\0' ? open(report_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)
                                : 2;
    if (fd >= 0) {
        write_all(fd, line, n);
        if (fd != 2)
            close(fd);
    }
}

__attribute__((destructor)) static void freescan_exit(void)
{
    const char *s = getenv("KT_FREESCAN_AT_EXIT");

    if (s != NULL && strcmp(s, "1") == 0 && ready()) {
        busy++;
        scan_memory();
        busy--;
    }
}

void free(void *p)
{
    if (p == NULL)
        return;
    if (!ready() || busy != 0) {
        (real_free != NULL ? real_free : __libc_free)(p);
        return;
    }
    busy++;
    scan(p, malloc_usable_size(p), "free", false);
    busy--;
    real_free(p);
}

void *realloc(void *p, size_t n)
{
    size_t have;
    void *q;

    if (!ready() || busy != 0)
        return (real_realloc != NULL ? real_realloc : __libc_realloc)(p, n);
    if (p == NULL)
        return real_realloc(NULL, n);
    if (n == 0) {
        /* glibc: realloc(p, 0) frees p and returns NULL. */
        free(p);
        return NULL;
    }
    have = malloc_usable_size(p);
    if (n <= have) {
        busy++;
        scan((const char *)p + n, have - n, "realloc-shrink", false);
        busy--;
        return real_realloc(p, n);
    }
    q = malloc(n);
    if (q == NULL)
        return NULL;
    memcpy(q, p, have);
    busy++;
    scan(p, have, "realloc", false);
    busy--;
    real_free(p);
    return q;
}
