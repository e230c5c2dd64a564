/* Running kontist-pam-helper: the network flow in a process of its own.
 *
 * Why a process: libcurl, OpenSSL and json-c keep the password, the client secret and the tokens
 * in buffers they free without wiping, and some of them keep process-wide state. In the host's
 * address space those copies outlive pam_end (a core dump of sshd would show them); in a
 * short-lived helper they die with it, and the host's own libraries and global state stay as they
 * were. It is the model of pam_unix's unix_chkpwd: fork, exec a fixed binary with an empty
 * environment, talk over a private channel, wait with a deadline.
 *
 * sudo and su are started by the user they authenticate, so everything the helper could inherit
 * from them is reset first (reset_process_state): nothing the user controls may make a request
 * fail, since a failure that looked like an outage would open a stack's fallback. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pam_kontist.h"
#include "wire.h"

/* Seconds the module waits beyond login_timeout before it kills the helper: the helper ends its
 * own flow at login_timeout and needs a moment to write the cache and answer. */
#define HELPER_GRACE_SECONDS 10
/* How long a helper that has answered may take to exit before it is killed, and how long a
 * killed one may take to go (one stuck in the kernel, on a hung file system, is left behind
 * rather than hanging the host). */
#define HELPER_EXIT_MS 2000
/* Where the close_range fallback stops closing descriptors. */
#define FD_SCAN_MAX 65536

static int check_helper_stat(const char *path, const struct stat *st, kt_error *err)
{
    uid_t euid = geteuid();

    if (!S_ISREG(st->st_mode))
        return kt_error_set(err, KT_ERR_CONFIG, "helper %s is not a regular file", path);
    if (st->st_uid != 0 && st->st_uid != euid)
        return kt_error_set(err, KT_ERR_CONFIG, "helper %s is owned by uid %u, not root", path,
                            (unsigned)st->st_uid);
    if ((st->st_mode & (S_IWGRP | S_IWOTH)) != 0)
        return kt_error_set(err, KT_ERR_CONFIG, "helper %s is writable by group or others", path);
    return 0;
}

/* The helper is run as root by every login: only root (or, in a process that is not root, its
 * own user) may be able to change it. The checks are made on the open file that is then
 * executed, so it cannot be swapped between check and exec. Returns the descriptor or -1. */
static int open_helper(const char *path, kt_error *err)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

    if (fd < 0 || fstat(fd, &st) != 0) {
        kt_error_set(err, KT_ERR_CONFIG, "helper %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (check_helper_stat(path, &st, err) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool add_number(char *buf, size_t size, size_t *len, const char *key, unsigned long value)
{
    char num[32];

    snprintf(num, sizeof(num), "%lu", value);
    return kt_wire_add(buf, size, len, key, num);
}

static int build_request(const kt_pam_args *args, kt_pam_op op, const kt_pam_local_user *user,
                         size_t password_len, char *buf, size_t size, size_t *len, kt_error *err)
{
    bool ok = true;

    /* Values are cut at a newline by kt_wire_add; a name or path with one is refused instead of
     * being passed on as something else. */
    if (strchr(user->name, '\n') != NULL || strchr(user->home, '\n') != NULL)
        return kt_error_set(err, KT_ERR_CONFIG, "user name or home directory with a newline");
    *len = 0;
    ok = ok && kt_wire_add(buf, size, len, "version", KT_WIRE_VERSION);
    ok = ok && kt_wire_add(buf, size, len, "op", op == KT_PAM_OP_LOGIN ? "login" : "logout");
    ok = ok && kt_wire_add(buf, size, len, "user", user->name);
    ok = ok && add_number(buf, size, len, "uid", (unsigned long)user->uid);
    ok = ok && add_number(buf, size, len, "gid", (unsigned long)user->gid);
    ok = ok && kt_wire_add(buf, size, len, "home", user->home);
    ok = ok && kt_wire_add(buf, size, len, "config", args->config);
    ok = ok && kt_wire_add(buf, size, len, "authfile", args->authfile);
    ok = ok && kt_wire_add(buf, size, len, "authfile_given", args->authfile_given ? "1" : "0");
    ok = ok && kt_wire_add(buf, size, len, "mfa", kt_pam_mfa_name(args->mfa));
    ok = ok && add_number(buf, size, len, "login_timeout", (unsigned long)args->login_timeout);
    ok = ok && kt_wire_add(buf, size, len, "nocache", args->nocache ? "1" : "0");
    ok = ok && add_number(buf, size, len, "password_len", (unsigned long)password_len);
    if (!ok || *len + strlen(KT_WIRE_PASSWORD_LINE) >= size)
        return kt_error_set(err, KT_ERR_INTERNAL, "request for the helper too long");
    memcpy(buf + *len, KT_WIRE_PASSWORD_LINE, strlen(KT_WIRE_PASSWORD_LINE));
    *len += strlen(KT_WIRE_PASSWORD_LINE);
    return 0;
}

/* A push wait notice at the start of what arrived so far (wire.h): 1 when it was handled, 0
 * when it is not there (yet), -1 when the person could not be told. */
static int handle_notice(const char *buf, size_t len, const kt_pam_notice *notice)
{
    static const char key[] = KT_WIRE_PUSH_WAIT "=";
    const char *nl;
    char *end = NULL;
    long secs;

    if (len < sizeof(key) - 1 || memcmp(buf, key, sizeof(key) - 1) != 0)
        return 0;
    nl = memchr(buf, '\n', len);
    if (nl == NULL)
        return 0;
    errno = 0;
    secs = strtol(buf + sizeof(key) - 1, &end, 10);
    if (errno != 0 || end != nl || secs < 0 || secs > 3600)
        secs = 0;
    return notice->push_wait(notice->data, secs) == 0 ? 1 : -1;
}

/* Reads the answer until the helper closes its end or the deadline passes, handing a push wait
 * notice to `notice` (when not NULL) as soon as it is complete, or until it has asked a whole PIN
 * question (*question set: the buffer holds that one line). Returns the length, -1 on error, -2
 * on timeout, -3 when the notice could not be given. */
static ssize_t read_answer(int fd, char *buf, size_t size, uint64_t deadline_ms,
                           const kt_pam_notice *notice, bool *question)
{
    size_t len = 0, ask_len = strlen(KT_WIRE_ASK_PIN);
    bool noticed = notice == NULL;

    *question = false;
    for (;;) {
        uint64_t now = kt_now_ms();
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int rc;
        ssize_t n;

        /* Past the deadline, what has already arrived still counts (a zero timeout only looks):
         * a host that was stopped for a while must not throw away an answer it has. */
        rc = poll(&pfd, 1, now >= deadline_ms ? 0 : (int)(deadline_ms - now));
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return -1;
        if (rc == 0)
            return -2;
        if (len + 1 >= size)
            return -1;
        n = recv(fd, buf + len, size - 1 - len, MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        len += (size_t)n;
        /* The helper waits after a question: it is complete with its newline. */
        if (len > ask_len && memcmp(buf, KT_WIRE_ASK_PIN, ask_len) == 0 &&
            memchr(buf, '\n', len) != NULL) {
            *question = true;
            break;
        }
        if (!noticed) {
            int told = handle_notice(buf, len, notice);

            if (told < 0)
                return -3;
            /* Only the first line can be a notice. */
            noticed = told > 0 || memchr(buf, '\n', len) != NULL;
        }
    }
    buf[len] = '\0';
    return (ssize_t)len;
}

/* Everything of the calling process that a user could have set (sudo and su are started by the
 * user) goes back to a known state: resource limits low enough to make a request fail, a working
 * directory the user owns (OpenSSL tries a key URI as a relative file name first), the umask,
 * supplementary groups, the nice value, signal dispositions (an ignored SIGALRM would disable the
 * helper's own deadline) and the controlling terminal (^Z on it would stop the helper). */
static void reset_process_state(void)
{
    static const struct {
        int resource;
        rlim_t soft, hard;
    } limits[] = {
        {RLIMIT_CORE, 0, 0},
        {RLIMIT_NOFILE, 1024, 1024},
        {RLIMIT_AS, RLIM_INFINITY, RLIM_INFINITY},
        {RLIMIT_DATA, RLIM_INFINITY, RLIM_INFINITY},
        {RLIMIT_STACK, 8u << 20, RLIM_INFINITY},
        {RLIMIT_FSIZE, RLIM_INFINITY, RLIM_INFINITY},
        {RLIMIT_CPU, RLIM_INFINITY, RLIM_INFINITY},
        {RLIMIT_RSS, RLIM_INFINITY, RLIM_INFINITY},
        {RLIMIT_MEMLOCK, 8u << 20, 8u << 20},
    };
    struct sigaction dfl;
    sigset_t none;

    /* Only root may raise limits; a host that is not root keeps its own, and then its own user is
     * all the helper can act for anyway. */
    if (geteuid() == 0) {
        for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
            struct rlimit rl = {limits[i].soft, limits[i].hard};

            setrlimit(limits[i].resource, &rl);
        }
        if (setgroups(0, NULL) != 0)
            _exit(127);
        setpriority(PRIO_PROCESS, 0, 0);
    }
    /* A user can also starve a process: scheduling class, CPUs, I/O priority back to normal. */
    {
        struct sched_param normal = {.sched_priority = 0};
        cpu_set_t all;

        sched_setscheduler(0, SCHED_OTHER, &normal);
        memset(&all, 0xff, sizeof(all));
        sched_setaffinity(0, sizeof(all), &all);
        /* IOPRIO_WHO_PROCESS, IOPRIO_CLASS_NONE: the default for the process's nice value. */
        syscall(SYS_ioprio_set, 1, 0, 0);
    }
    umask(077);
    if (chdir("/") != 0)
        _exit(127);
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (int sig = 1; sig < NSIG; sig++)
        sigaction(sig, &dfl, NULL);
    /* Every signal was blocked across the fork (kt_pam_run_helper), so none of the host's
     * handlers could run in the child before the dispositions above were reset. */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* A session of its own: no controlling terminal, out of the terminal's process group. */
    setsid();
}

/* In the child, between fork and exec: only async-signal-safe calls (the host may have threads). */
static void exec_child(int sock, int exe, pid_t parent)
{
    char name[] = "kontist-pam-helper";
    char *const argv[] = {name, NULL};
    char *const envp[] = {NULL};
    int devnull;

    /* A setuid host (sudo, su) runs with the invoking user as real uid: the helper gets root as
     * its only identity, so that what it does never depends on who called sudo, and that user can
     * neither signal nor trace it. */
    if (geteuid() == 0 && (setresgid(0, 0, 0) != 0 || setresuid(0, 0, 0) != 0))
        _exit(127);
    reset_process_state();
    /* A helper whose module is gone (a host killed at sshd's LoginGraceTime) has nobody to answer
     * and must not go on to write a cache for a login that was given up. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(127);
    /* A host that closed its standard descriptors may have been given one of them for the socket
     * or the executable: move them out of the way before those are set up. */
    if (sock <= STDERR_FILENO && (sock = fcntl(sock, F_DUPFD, STDERR_FILENO + 1)) < 0)
        _exit(127);
    if (exe <= STDERR_FILENO && (exe = fcntl(exe, F_DUPFD_CLOEXEC, STDERR_FILENO + 1)) < 0)
        _exit(127);
    if (dup2(sock, STDIN_FILENO) < 0 || dup2(sock, STDOUT_FILENO) < 0)
        _exit(127);
    devnull = open("/dev/null", O_WRONLY);
    if (devnull < 0 || dup2(devnull, STDERR_FILENO) < 0)
        _exit(127);
    /* Nothing of the host's (its sockets, its files) leaks into the helper. The executable's
     * descriptor is close-on-exec and must stay open until the exec itself. Kernels before 5.9
     * have no close_range: close one by one there. */
    if ((exe > STDERR_FILENO + 1 && close_range(STDERR_FILENO + 1, (unsigned)exe - 1, 0) != 0) ||
        close_range((unsigned)exe + 1, ~0u, 0) != 0) {
        for (int fd = STDERR_FILENO + 1; fd < FD_SCAN_MAX; fd++) {
            if (fd != exe)
                close(fd);
        }
    }
    fexecve(exe, argv, envp);
    _exit(127);
}

static void parse_answer(const char *buf, size_t len, kt_pam_result *res)
{
    char kind[64], flag[8];

    if (!kt_wire_get(buf, len, "kind", kind, sizeof(kind))) {
        kt_error_set(&res->err, KT_ERR_INTERNAL, "the helper gave no result");
        return;
    }
    kt_wire_get(buf, len, "pinned", flag, sizeof(flag));
    res->pinned = strcmp(flag, "1") == 0;
    kt_wire_get(buf, len, "kontist_user", res->kontist_user, sizeof(res->kontist_user));
    kt_wire_get(buf, len, "device_id", res->device_id, sizeof(res->device_id));
    kt_wire_get(buf, len, "cache", res->cache, sizeof(res->cache));
    kt_wire_get(buf, len, "cache_reason", res->cache_reason, sizeof(res->cache_reason));
    kt_wire_get(buf, len, "connections", res->connections, sizeof(res->connections));
    kt_wire_get(buf, len, "factor", res->factor, sizeof(res->factor));
    kt_wire_get(buf, len, "passed_over", res->passed_over, sizeof(res->passed_over));
    if (strcmp(kind, "ok") != 0) {
        kt_wire_get(buf, len, "reason", res->err.message, sizeof(res->err.message));
        /* An answer that names no known kind is a failure all the same, never a success. */
        res->err.kind = kt_pam_kind_from_name(kind);
        if (res->err.kind == KT_OK)
            res->err.kind = KT_ERR_INTERNAL;
    }
}

/* Waits for the child: HELPER_EXIT_MS for it to exit, then (or at once with kill_it) kills it
 * and waits HELPER_EXIT_MS more. Returns its wait status, or -1 when it could not be had. */
static int reap(pid_t pid, bool kill_it)
{
    uint64_t until = kt_now_ms() + HELPER_EXIT_MS;
    int status = 0;

    if (kill_it)
        kill(pid, SIGKILL);
    for (;;) {
        pid_t rc = waitpid(pid, &status, WNOHANG);
        struct timespec ts = {0, 10 * 1000 * 1000};

        if (rc == pid)
            return status;
        if (rc < 0 && errno != EINTR)
            return -1;
        if (rc == 0 && kt_now_ms() >= until) {
            if (kill_it)
                return -1;
            kill_it = true;
            kill(pid, SIGKILL);
            until = kt_now_ms() + HELPER_EXIT_MS;
        }
        nanosleep(&ts, NULL);
    }
}

/* Answers the helper's PIN question (the one line in question) with the person's PIN, or with
 * none when the conversation gives none. Returns -1 when the answer cannot be sent. */
static int answer_pin_question(int sock, const char *question, size_t len,
                               const kt_pam_pin_asker *pins)
{
    char label[128], head[32];
    char *pin = NULL;
    size_t pin_len = 0;
    int rc;

    if (!kt_wire_get(question, len, "ask_pin", label, sizeof(label)))
        label[0] = '\0';
    if (pins != NULL && pins->ask(pins->data, label, &pin) == 0 && pin != NULL)
        pin_len = strlen(pin);
    if (pin_len > KT_WIRE_PIN_MAX)
        pin_len = 0; /* too long for any token: sent as none, the helper says so */
    snprintf(head, sizeof(head), "pin_len=%zu\n", pin_len);
    rc = kt_wire_send_all(sock, head, strlen(head)) == 0 &&
                 (pin_len == 0 || kt_wire_send_all(sock, pin, pin_len) == 0)
             ? 0
             : -1;
    if (pin != NULL) {
        explicit_bzero(pin, strlen(pin));
        free(pin);
    }
    return rc;
}

static void talk(int sock, pid_t pid, const char *request, size_t request_len, const char *password,
                 const kt_pam_pin_asker *pins, const kt_pam_notice *notice, long timeout,
                 uint64_t deadline_ms, kt_pam_result *res)
{
    char answer[KT_WIRE_MAX];
    ssize_t n;
    int status;
    bool question, asked = false;

    if (kt_wire_send_all(sock, request, request_len) != 0 ||
        (password != NULL && kt_wire_send_all(sock, password, strlen(password)) != 0)) {
        reap(pid, true);
        kt_error_set(&res->err, KT_ERR_INTERNAL, "cannot send the request to the helper");
        return;
    }
    for (;;) {
        n = read_answer(sock, answer, sizeof(answer), deadline_ms, asked ? NULL : notice,
                        &question);
        if (n < 0 || !question)
            break;
        /* One PIN question per login, never more: a second is a broken helper. */
        if (asked || answer_pin_question(sock, answer, (size_t)n, pins) != 0) {
            reap(pid, true);
            kt_error_set(&res->err, KT_ERR_INTERNAL,
                         asked ? "the helper asked for a PIN twice" : "cannot send the PIN");
            return;
        }
        asked = true;
        /* The person took their time: the helper's flow has its own bound again from here. */
        deadline_ms = kt_now_ms() + (uint64_t)(timeout + HELPER_GRACE_SECONDS) * 1000u;
    }
    status = reap(pid, n < 0);
    /* The person could not be told to approve the push challenge: the helper is stopped (the
     * challenge is left to expire) and nothing was written. */
    if (n == -3) {
        kt_error_set(&res->err, KT_ERR_CONV,
                     "the conversation could not show the push MFA prompt: nothing was waited for");
        return;
    }
    /* The helper bounds every network wait itself and says "unavailable" when the bank does not
     * answer in time. A helper still silent after that is stuck on something else, which the
     * user may have caused (a stopped or starved host): never a reason to fall back. */
    if (n == -2) {
        kt_error_set(&res->err, KT_ERR_INTERNAL, "the helper did not answer in time");
        return;
    }
    /* A helper that crashed (a hostile answer could make it) is not an outage either. */
    if (n < 0 || status == -1 || !WIFEXITED(status)) {
        if (status != -1 && WIFSIGNALED(status))
            kt_error_set(&res->err, KT_ERR_INTERNAL, "the helper died of signal %d",
                         WTERMSIG(status));
        else
            kt_error_set(&res->err, KT_ERR_INTERNAL, "no answer from the helper");
        return;
    }
    if (WEXITSTATUS(status) == 127) {
        kt_error_set(&res->err, KT_ERR_CONFIG, "cannot run the helper");
        return;
    }
    parse_answer(answer, (size_t)n, res);
    /* The exit status and the answer must agree that it worked. */
    if (res->err.kind == KT_OK && WEXITSTATUS(status) != 0)
        kt_error_set(&res->err, KT_ERR_INTERNAL, "the helper exited with %d", WEXITSTATUS(status));
}

void kt_pam_run_helper(const kt_pam_args *args, kt_pam_op op, const kt_pam_local_user *user,
                       const char *password, const kt_pam_pin_asker *pins,
                       const kt_pam_notice *notice, kt_pam_result *res)
{
    char request[KT_WIRE_MAX];
    size_t request_len = 0;
    long timeout = args->login_timeout > 0 ? args->login_timeout : KT_PAM_LOGIN_TIMEOUT_MAX;
    uint64_t deadline_ms = kt_now_ms() + (uint64_t)(timeout + HELPER_GRACE_SECONDS) * 1000u;
    struct sigaction dfl, saved;
    sigset_t all, saved_mask;
    pid_t pid, parent = getpid();
    int sv[2], exe;

    memset(res, 0, sizeof(*res));
    if (build_request(args, op, user, password != NULL ? strlen(password) : 0, request,
                      sizeof(request), &request_len, &res->err) != 0)
        return;
    exe = open_helper(args->helper, &res->err);
    if (exe < 0)
        return;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        kt_error_set(&res->err, KT_ERR_INTERNAL, "socketpair: %s", strerror(errno));
        close(exe);
        return;
    }
    /* The host may reap children in a SIGCHLD handler; ours must be waited for here (pam_unix
     * does the same around unix_chkpwd). */
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGCHLD, &dfl, &saved);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved_mask);
    pid = fork();
    if (pid == 0) {
        close(sv[0]);
        exec_child(sv[1], exe, parent);
    }
    pthread_sigmask(SIG_SETMASK, &saved_mask, NULL);
    close(sv[1]);
    close(exe);
    if (pid < 0)
        kt_error_set(&res->err, KT_ERR_INTERNAL, "fork: %s", strerror(errno));
    else
        talk(sv[0], pid, request, request_len, password, pins, notice, timeout, deadline_ms, res);
    close(sv[0]);
    sigaction(SIGCHLD, &saved, NULL);
}
