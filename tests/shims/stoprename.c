/* stoprename: an LD_PRELOAD library that stops a process just before it renames a file onto the
 * path named by KT_STOPRENAME_TARGET.
 *
 * The cache tests (tests/integration/test_helper_cache.py) preload it into kontist-auth to kill
 * the process at the one moment that decides whether a crash can tear the token cache: the new
 * contents are written and synced to a temporary file, and the rename that puts them in place
 * has not happened. The process raises SIGSTOP; the test sees it stopped (state T in
 * /proc/PID/stat) and kills it. Any other rename, and every rename when the variable is unset,
 * goes straight to the C library's. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <stdlib.h>
#include <string.h>

int rename(const char *from, const char *to)
{
    int (*real_rename)(const char *, const char *) =
        (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
    const char *target = getenv("KT_STOPRENAME_TARGET");

    if (real_rename == NULL) {
        fputs("stoprename: no rename() after this library\n", stderr);
        abort();
    }
    if (target != NULL && to != NULL && strcmp(to, target) == 0) {
        /* A test that dies leaves no process stopped for good: SIGKILL reaches a stopped one. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        raise(SIGSTOP);
    }
    return real_rename(from, to);
}
