/* Unit tests for temporary privilege dropping. Most need root (CI runs as root); run as another
 * user they check the refusals instead. */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <semaphore.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kontist.h"
#include "kt_privs.h"
#include "test_util.h"

#define NOBODY 65534

typedef struct fixture {
    test_dir dir;
    int ngroups;
    gid_t groups[NGROUPS_MAX];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));

    /* Always under /tmp, not $TMPDIR: the dropped identity must be able to reach the directory. */
    if (f == NULL || test_dir_create_in(&f->dir, "/tmp", "test-privs") != 0) {
        free(f);
        return -1;
    }
    f->ngroups = getgroups(NGROUPS_MAX, f->groups);
    *state = f;
    return 0;
}

/* Puts the identity back even when a test failed half-way. */
static int teardown(void **state)
{
    fixture *f = *state;

    if (getuid() == 0) {
        if (seteuid(0) != 0 || setegid(0) != 0)
            return -1;
        if (f->ngroups >= 0 && setgroups((size_t)f->ngroups, f->groups) != 0)
            return -1;
    }
    test_dir_remove(&f->dir);
    free(f);
    return 0;
}

static bool is_root(void)
{
    return geteuid() == 0;
}

static void test_drop_and_restore(void **state)
{
    fixture *f = *state;
    kt_privs p;
    kt_error err = {KT_OK, ""};
    gid_t groups[NGROUPS_MAX];
    char path[PATH_MAX], secret[PATH_MAX];
    struct stat st;
    int fd;

    if (!is_root()) {
        /* Without root there is nothing to switch to: the call must fail, not pretend. */
        assert_int_equal(kt_privs_drop(&p, getuid() == NOBODY ? NOBODY - 1 : NOBODY, NOBODY, &err),
                         -1);
        assert_int_equal(err.kind, KT_ERR_INTERNAL);
        assert_int_equal(p.dropped, 0);
        return;
    }
    test_path(&f->dir, "root-only", secret, sizeof(secret));
    fd = open(secret, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(chmod(f->dir.path, 0777), 0);

    assert_int_equal(kt_privs_drop(&p, NOBODY, NOBODY, &err), 0);
    assert_int_equal(err.kind, KT_OK);
    assert_int_equal(p.dropped, 1);
    assert_int_equal(geteuid(), NOBODY);
    assert_int_equal(getegid(), NOBODY);
    assert_int_equal(getgroups(NGROUPS_MAX, groups), 1);
    assert_int_equal(groups[0], NOBODY);

    /* Files made now belong to the user; root's private file is out of reach. */
    test_path(&f->dir, "made-by-user", path, sizeof(path));
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(open(secret, O_RDONLY), -1);
    assert_int_equal(errno, EACCES);

    assert_int_equal(kt_privs_restore(&p, &err), 0);
    assert_int_equal(err.kind, KT_OK);
    assert_int_equal(p.dropped, 0);
    assert_null(p.saved_groups);
    assert_int_equal(geteuid(), 0);
    assert_int_equal(getegid(), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_uid, NOBODY);
    assert_int_equal(st.st_gid, NOBODY);
    fd = open(secret, O_RDONLY);
    assert_true(fd >= 0);
    close(fd);
    /* Restoring twice is a no-op. */
    assert_int_equal(kt_privs_restore(&p, &err), 0);
}

static void test_restore_supplementary_groups(void **state)
{
    const gid_t custom[] = {4, 24, 27};
    gid_t groups[NGROUPS_MAX];
    kt_privs p;
    kt_error err = {KT_OK, ""};

    if (!is_root()) {
        /* Not root: dropping to ourselves keeps our groups untouched. */
        int n = getgroups(NGROUPS_MAX, groups);

        assert_int_equal(kt_privs_drop(&p, geteuid(), getegid(), &err), 0);
        assert_int_equal(getgroups(NGROUPS_MAX, groups), n);
        assert_int_equal(kt_privs_restore(&p, &err), 0);
        return;
    }
    assert_int_equal(setgroups(3, custom), 0);
    assert_int_equal(kt_privs_drop(&p, NOBODY, NOBODY, &err), 0);
    assert_int_equal(p.saved_ngroups, 3);
    assert_int_equal(getgroups(NGROUPS_MAX, groups), 1);
    assert_int_equal(kt_privs_restore(&p, &err), 0);
    assert_int_equal(getgroups(NGROUPS_MAX, groups), 3);
    assert_memory_equal(groups, custom, sizeof(custom));
}

static void test_drop_to_self_is_noop(void **state)
{
    uid_t euid = geteuid();
    gid_t egid = getegid();
    kt_privs p;
    kt_error err = {KT_OK, ""};

    assert_int_equal(kt_privs_drop(&p, euid, egid, &err), 0);
    assert_int_equal(p.dropped, 0);
    assert_null(p.saved_groups);
    assert_int_equal(geteuid(), euid);
    assert_int_equal(getegid(), egid);
    assert_int_equal(kt_privs_restore(&p, &err), 0);
    assert_int_equal(geteuid(), euid);
    assert_int_equal(err.kind, KT_OK);
}

static void test_nested_drop_refused(void **state)
{
    kt_privs outer, inner;
    kt_error err = {KT_OK, ""};

    if (!is_root()) {
        assert_int_equal(kt_privs_drop(&inner, 0, 0, &err), -1);
        assert_int_equal(err.kind, KT_ERR_INTERNAL);
        return;
    }
    assert_int_equal(kt_privs_drop(&outer, NOBODY, NOBODY, &err), 0);
    /* A dropped process is no longer root: it cannot become yet another user. */
    assert_int_equal(kt_privs_drop(&inner, 1234, 1234, &err), -1);
    assert_int_equal(err.kind, KT_ERR_INTERNAL);
    assert_int_equal(inner.dropped, 0);
    assert_int_equal(geteuid(), NOBODY);
    kt_error_clear(&err);
    assert_int_equal(kt_privs_restore(&outer, &err), 0);
    assert_int_equal(geteuid(), 0);
}

/* If the saved root identity is gone, restore must say so as an internal error. Done in a child:
 * the child gives up root for good. Exit 0 means the expectation held. */
static void test_restore_failure_reported(void **state)
{
    int status = -1;
    pid_t pid;

    if (!is_root()) {
        kt_privs p = {.saved_euid = 0, .saved_egid = 0, .dropped = 1};
        kt_error err = {KT_OK, ""};

        /* Pretend a drop happened: getting root back must fail loudly. */
        assert_int_equal(kt_privs_restore(&p, &err), -1);
        assert_int_equal(err.kind, KT_ERR_INTERNAL);
        return;
    }
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        kt_privs p;
        kt_error err = {KT_OK, ""};

        if (kt_privs_drop(&p, NOBODY, NOBODY, &err) != 0)
            _exit(10);
        if (setresuid(NOBODY, NOBODY, NOBODY) != 0)
            _exit(11);
        if (kt_privs_restore(&p, &err) != -1)
            _exit(12);
        if (err.kind != KT_ERR_INTERNAL || strstr(err.message, "euid") == NULL)
            _exit(13);
        if (geteuid() != NOBODY)
            _exit(14);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

struct other_thread {
    sem_t go, done;
    uid_t euid;
    gid_t egid;
};

static void *observe_credentials(void *arg)
{
    struct other_thread *t = arg;

    sem_wait(&t->go);
    t->euid = geteuid();
    t->egid = getegid();
    sem_post(&t->done);
    return NULL;
}

/* A PAM host may serve several users on several threads: a drop in one thread must leave the
 * credentials of every other thread alone. */
static void test_drop_is_per_thread(void **state)
{
    struct other_thread t;
    pthread_t th;
    kt_privs p;
    kt_error err = {KT_OK, ""};

    (void)state;
    if (!is_root()) {
        skip();
    }
    assert_int_equal(sem_init(&t.go, 0, 0), 0);
    assert_int_equal(sem_init(&t.done, 0, 0), 0);
    assert_int_equal(pthread_create(&th, NULL, observe_credentials, &t), 0);
    assert_int_equal(kt_privs_drop(&p, NOBODY, NOBODY, &err), 0);
    assert_int_equal(geteuid(), NOBODY);
    sem_post(&t.go);
    sem_wait(&t.done);
    assert_int_equal(kt_privs_restore(&p, &err), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(t.euid, 0);
    assert_int_equal(t.egid, 0);
    assert_int_equal(geteuid(), 0);
    sem_destroy(&t.go);
    sem_destroy(&t.done);
}

/* A group the dropped identity does not have as its own: only a supplementary group opens it. */
#define SUPPLEMENTARY 4242

static bool has_group(const gid_t *groups, int n, gid_t g)
{
    for (int i = 0; i < n; i++)
        if (groups[i] == g)
            return true;
    return false;
}

/* The TPM's device node is open to a group (tss), not to the user: after the drop every group of
 * the list must be there, and what it opens must open; the restore puts root's back. */
static void test_drop_sets_the_supplementary_groups(void **state)
{
    fixture *f = *state;
    const gid_t list[] = {NOBODY, SUPPLEMENTARY, 27};
    gid_t groups[NGROUPS_MAX];
    char path[PATH_MAX];
    kt_privs p;
    kt_error err = {KT_OK, ""};
    int fd, n;

    if (!is_root()) {
        assert_int_equal(kt_privs_drop_groups(&p, getuid() == NOBODY ? NOBODY - 1 : NOBODY, NOBODY,
                                              list, 3, &err),
                         -1);
        return;
    }
    assert_int_equal(chmod(f->dir.path, 0755), 0);
    test_path(&f->dir, "group-device", path, sizeof(path));
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0660);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(chown(path, 0, SUPPLEMENTARY), 0);
    assert_int_equal(chmod(path, 0660), 0);

    /* With the primary group alone (the old drop), the node stays shut. */
    assert_int_equal(kt_privs_drop(&p, NOBODY, NOBODY, &err), 0);
    assert_int_equal(open(path, O_RDWR), -1);
    assert_int_equal(errno, EACCES);
    assert_int_equal(kt_privs_restore(&p, &err), 0);

    assert_int_equal(kt_privs_drop_groups(&p, NOBODY, NOBODY, list, 3, &err), 0);
    assert_int_equal(geteuid(), NOBODY);
    assert_int_equal(getegid(), NOBODY);
    n = getgroups(NGROUPS_MAX, groups);
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++)
        assert_true(has_group(groups, n, list[i]));
    fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(kt_privs_restore(&p, &err), 0);
    assert_int_equal(geteuid(), 0);
    n = getgroups(NGROUPS_MAX, groups);
    assert_int_equal(n, f->ngroups);
    assert_false(has_group(groups, n, SUPPLEMENTARY));
}

typedef struct seen_groups {
    uid_t euid;
    int n;
    gid_t groups[NGROUPS_MAX];
} seen_groups;

static int record_groups(void *data, kt_error *err)
{
    seen_groups *seen = data;

    (void)err;
    seen->euid = geteuid();
    seen->n = getgroups(NGROUPS_MAX, seen->groups);
    return 0;
}

/* kt_privs_run_as_user takes the list from the group database: for every user of it that has
 * a group besides its own (a member line in /etc/group), and for nobody, the groups seen inside
 * are exactly getgrouplist's. */
static void test_run_as_user_takes_the_groups_of_the_database(void **state)
{
    const char *users[2] = {"nobody", NULL};
    char member[256] = "";
    struct group *g;
    (void)state;

    if (!is_root()) {
        seen_groups seen;
        kt_error err = {KT_OK, ""};

        assert_int_equal(kt_privs_run_as_user("nobody", NOBODY == getuid() ? NOBODY - 1 : NOBODY,
                                              NOBODY, record_groups, &seen, &err),
                         -1);
        return;
    }
    setgrent();
    while ((g = getgrent()) != NULL && member[0] == '\0')
        if (g->gr_mem != NULL && g->gr_mem[0] != NULL && getpwnam(g->gr_mem[0]) != NULL &&
            getpwnam(g->gr_mem[0])->pw_uid != 0)
            snprintf(member, sizeof(member), "%s", g->gr_mem[0]);
    endgrent();
    if (member[0] != '\0')
        users[1] = member;
    for (int u = 0; u < 2 && users[u] != NULL; u++) {
        struct passwd *pw = getpwnam(users[u]);
        gid_t want[NGROUPS_MAX];
        int nwant = NGROUPS_MAX;
        gid_t *listed = NULL;
        size_t nlisted = 0;
        seen_groups seen;
        kt_error err = {KT_OK, ""};
        uid_t uid;
        gid_t gid;

        assert_non_null(pw);
        uid = pw->pw_uid;
        gid = pw->pw_gid;
        assert_true(getgrouplist(users[u], gid, want, &nwant) >= 0);
        assert_int_equal(kt_privs_user_groups(users[u], gid, &listed, &nlisted, &err), 0);
        assert_int_equal(nlisted, (size_t)nwant);
        free(listed);
        memset(&seen, 0, sizeof(seen));
        assert_int_equal(kt_privs_run_as_user(users[u], uid, gid, record_groups, &seen, &err), 0);
        assert_int_equal(seen.euid, uid);
        assert_int_equal(seen.n, nwant);
        for (int i = 0; i < nwant; i++)
            assert_true(has_group(seen.groups, seen.n, want[i]));
        assert_int_equal(geteuid(), 0);
    }
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_drop_and_restore),
        T(test_restore_supplementary_groups),
        T(test_drop_to_self_is_noop),
        T(test_nested_drop_refused),
        T(test_restore_failure_reported),
        T(test_drop_is_per_thread),
        T(test_drop_sets_the_supplementary_groups),
        T(test_run_as_user_takes_the_groups_of_the_database),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
