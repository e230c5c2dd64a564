#include <config.h>

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kt_privs.h"

/* The credentials are switched with the raw system calls, not glibc's seteuid/setegid/setgroups:
 * on Linux credentials belong to a thread, and glibc's wrappers deliberately apply a change to
 * every thread of the process. A PAM module runs inside hosts that may serve several users on
 * several threads at once, so a drop for one user must never leak into another thread. */
#if defined(SYS_setresuid32)
#define KT_SYS_SETRESUID SYS_setresuid32
#define KT_SYS_SETRESGID SYS_setresgid32
#define KT_SYS_SETGROUPS SYS_setgroups32
#else
#define KT_SYS_SETRESUID SYS_setresuid
#define KT_SYS_SETRESGID SYS_setresgid
#define KT_SYS_SETGROUPS SYS_setgroups
#endif

static int thread_seteuid(uid_t uid)
{
    return (int)syscall(KT_SYS_SETRESUID, (uid_t)-1, uid, (uid_t)-1);
}

static int thread_setegid(gid_t gid)
{
    return (int)syscall(KT_SYS_SETRESGID, (gid_t)-1, gid, (gid_t)-1);
}

static int thread_setgroups(size_t n, const gid_t *groups)
{
    return (int)syscall(KT_SYS_SETGROUPS, n, groups);
}

static int save_groups(kt_privs *p, kt_error *err)
{
    int n = getgroups(0, NULL);

    if (n < 0)
        return kt_error_set(err, KT_ERR_INTERNAL, "getgroups: %s", strerror(errno));
    /* One spare slot: the list may not be empty for malloc's sake. */
    p->saved_groups = calloc((size_t)n + 1, sizeof(gid_t));
    if (p->saved_groups == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    n = getgroups(n, p->saved_groups);
    if (n < 0) {
        free(p->saved_groups);
        p->saved_groups = NULL;
        return kt_error_set(err, KT_ERR_INTERNAL, "getgroups: %s", strerror(errno));
    }
    p->saved_ngroups = n;
    return 0;
}

/* Reverse order of the drop: the uid first, because only root may change groups. Every step is
 * tried even after a failure so that as much as possible is back, and every step is checked. */
static int restore_ids(kt_privs *p, kt_error *err)
{
    int rc = 0;

    if (thread_seteuid(p->saved_euid) != 0 || geteuid() != p->saved_euid)
        rc = kt_error_set(err, KT_ERR_INTERNAL, "cannot restore euid %lu: %s",
                          (unsigned long)p->saved_euid, strerror(errno));
    if (thread_setegid(p->saved_egid) != 0 || getegid() != p->saved_egid)
        rc = kt_error_set(err, KT_ERR_INTERNAL, "cannot restore egid %lu: %s",
                          (unsigned long)p->saved_egid, strerror(errno));
    if (thread_setgroups((size_t)p->saved_ngroups, p->saved_groups) != 0)
        rc = kt_error_set(err, KT_ERR_INTERNAL, "cannot restore supplementary groups: %s",
                          strerror(errno));
    return rc;
}

static void forget(kt_privs *p)
{
    free(p->saved_groups);
    p->saved_groups = NULL;
    p->saved_ngroups = 0;
    p->dropped = 0;
}

int kt_privs_drop_groups(kt_privs *p, uid_t uid, gid_t gid, const gid_t *groups, size_t ngroups,
                         kt_error *err)
{
    memset(p, 0, sizeof(*p));
    p->saved_euid = geteuid();
    p->saved_egid = getegid();
    if (p->saved_euid == uid)
        return 0; /* already that user: nothing to switch, nothing to restore */
    if (p->saved_euid != 0)
        return kt_error_set(err, KT_ERR_INTERNAL,
                            "cannot switch to uid %lu: running as uid %lu, not root",
                            (unsigned long)uid, (unsigned long)p->saved_euid);
    if (groups == NULL || ngroups == 0) {
        groups = &gid;
        ngroups = 1;
    }
    if (save_groups(p, err) != 0)
        return -1;
    p->dropped = 1;
    /* Groups first and the uid last: once the euid is not root, nothing else may change. */
    if (thread_setgroups(ngroups, groups) != 0) {
        kt_error_set(err, KT_ERR_INTERNAL, "setgroups(%zu groups): %s", ngroups, strerror(errno));
        goto fail;
    }
    if (thread_setegid(gid) != 0 || getegid() != gid) {
        kt_error_set(err, KT_ERR_INTERNAL, "setegid(%lu): %s", (unsigned long)gid, strerror(errno));
        goto fail;
    }
    if (thread_seteuid(uid) != 0 || geteuid() != uid) {
        kt_error_set(err, KT_ERR_INTERNAL, "seteuid(%lu): %s", (unsigned long)uid, strerror(errno));
        goto fail;
    }
    return 0;
fail:
    restore_ids(p, err);
    forget(p);
    return -1;
}

int kt_privs_drop(kt_privs *p, uid_t uid, gid_t gid, kt_error *err)
{
    return kt_privs_drop_groups(p, uid, gid, &gid, 1, err);
}

int kt_privs_user_groups(const char *user, gid_t gid, gid_t **groups, size_t *ngroups,
                         kt_error *err)
{
    int n = 16;

    *groups = NULL;
    *ngroups = 0;
    if (user == NULL || user[0] == '\0')
        return kt_error_set(err, KT_ERR_INTERNAL, "no user name for the group list");
    /* getgrouplist says how many there are when the buffer was too small: at most two rounds
     * unless the group database changes in between. */
    for (int round = 0; round < 4; round++) {
        int want = n;
        gid_t *list = calloc((size_t)n, sizeof(gid_t));

        if (list == NULL)
            return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
        if (getgrouplist(user, gid, list, &want) >= 0) {
            *groups = list;
            *ngroups = (size_t)want;
            return 0;
        }
        free(list);
        if (want <= n || want > NGROUPS_MAX)
            break;
        n = want;
    }
    return kt_error_set(err, KT_ERR_INTERNAL, "cannot read the groups of user %s", user);
}

/* Runs fn with the identity dropped to, then restores it. A failed restore is what is reported:
 * the process is then not who its caller thinks, which outweighs whatever fn said. */
static int run_then_restore(kt_privs *privs, int (*fn)(void *data, kt_error *err), void *data,
                            kt_error *err)
{
    kt_error restore_err = {KT_OK, ""};
    int rc = fn(data, err);

    if (kt_privs_restore(privs, &restore_err) != 0) {
        *err = restore_err;
        err->kind = KT_ERR_INTERNAL;
        return -1;
    }
    return rc;
}

int kt_privs_run_as_user(const char *user, uid_t uid, gid_t gid,
                         int (*fn)(void *data, kt_error *err), void *data, kt_error *err)
{
    kt_privs privs;
    gid_t *groups = NULL;
    size_t ngroups = 0;
    int rc;

    memset(&privs, 0, sizeof(privs));
    /* Only a process that will switch needs the list (and only root can set it). */
    if (geteuid() != uid && kt_privs_user_groups(user, gid, &groups, &ngroups, err) != 0)
        return -1;
    rc = kt_privs_drop_groups(&privs, uid, gid, groups, ngroups, err);
    free(groups);
    if (rc != 0)
        return -1;
    return run_then_restore(&privs, fn, data, err);
}

int kt_privs_restore(kt_privs *p, kt_error *err)
{
    int rc;

    if (p == NULL || !p->dropped)
        return 0;
    rc = restore_ids(p, err);
    forget(p);
    return rc;
}

int kt_privs_run_as(uid_t uid, gid_t gid, int (*fn)(void *data, kt_error *err), void *data,
                    kt_error *err)
{
    kt_privs privs;

    memset(&privs, 0, sizeof(privs));
    if (kt_privs_drop(&privs, uid, gid, err) != 0)
        return -1;
    return run_then_restore(&privs, fn, data, err);
}
