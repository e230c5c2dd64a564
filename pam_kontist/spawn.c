/* Running kontist-pam-helper: the network flow in a process of its own.
 *
 * Why a process: libcurl, OpenSSL and json-c keep the password, the client secret and the tokens
 * in buffers they free without wiping, and some of them keep process-wide state. In the host's
 * address space those copies outlive pam_end (a core dump of sshd would show them); in a
 * short-lived helper they die with it, and the host's own libraries and global state stay as they
 * were. It is the model of pam_unix's unix_chkpwd: fork, exec a fixed binary with an empty
 * environment, talk over a private channel, wait with a deadline. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pam_kontist.h"
#include "wire.h"

/* Seconds the module waits beyond login_timeout before it kills the helper: the helper ends its
 * own flow at login_timeout and needs a moment to write the cache and answer. */
#define HELPER_GRACE_SECONDS 10

/* The helper is run as root by every login: only root (or, in a process that is not root, its
 * own user) may be able to change it. */
static int check_helper(const char *path, kt_error *err)
{
    struct stat st;
    uid_t euid = geteuid();

    if (stat(path, &st) != 0)
        return kt_error_set(err, KT_ERR_CONFIG, "helper %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return kt_error_set(err, KT_ERR_CONFIG, "helper %s is not a regular file", path);
    if (st.st_uid != 0 && st.st_uid != euid)
        return kt_error_set(err, KT_ERR_CONFIG, "helper %s is owned by uid %u, not root", path,
                            (unsigned)st.st_uid);
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
        return kt_error_set(err, KT_ERR_CONFIG, "helper %s is writable by group or others", path);
    return 0;
}

static bool add_number(char *buf, size_t size, size_t *len, const char *key, long value)
{
    char num[32];

    snprintf(num, sizeof(num), "%ld", value);
    return kt_wire_add(buf, size, len, key, num);
}

static int build_request(const kt_pam_args *args, kt_pam_op op, const kt_pam_local_user *user,
                         char *buf, size_t size, size_t *len, kt_error *err)
{
    bool ok = true;

    *len = 0;
    ok = ok && kt_wire_add(buf, size, len, "op", op == KT_PAM_OP_LOGIN ? "login" : "logout");
    ok = ok && kt_wire_add(buf, size, len, "user", user->name);
    ok = ok && add_number(buf, size, len, "uid", (long)user->uid);
    ok = ok && add_number(buf, size, len, "gid", (long)user->gid);
    ok = ok && kt_wire_add(buf, size, len, "home", user->home);
    ok = ok && kt_wire_add(buf, size, len, "config", args->config);
    ok = ok && kt_wire_add(buf, size, len, "authfile", args->authfile);
    ok = ok && kt_wire_add(buf, size, len, "authfile_given", args->authfile_given ? "1" : "0");
    ok = ok && kt_wire_add(buf, size, len, "mfa", kt_pam_mfa_name(args->mfa));
    ok = ok && add_number(buf, size, len, "login_timeout", args->login_timeout);
    ok = ok && kt_wire_add(buf, size, len, "nocache", args->nocache ? "1" : "0");
    if (!ok)
        return kt_error_set(err, KT_ERR_INTERNAL, "request for the helper too long");
    /* Values are cut at a newline by kt_wire_add; a name or path with one is refused instead of
     * being passed on as something else. */
    if (strchr(user->name, '\n') != NULL || strchr(user->home, '\n') != NULL)
        return kt_error_set(err, KT_ERR_CONFIG, "user name or home directory with a newline");
    if (*len + strlen(KT_WIRE_PASSWORD_LINE) >= size)
        return kt_error_set(err, KT_ERR_INTERNAL, "request for the helper too long");
    memcpy(buf + *len, KT_WIRE_PASSWORD_LINE, strlen(KT_WIRE_PASSWORD_LINE));
    *len += strlen(KT_WIRE_PASSWORD_LINE);
    return 0;
}

/* MSG_NOSIGNAL: a helper that died must give an error here, not a SIGPIPE that kills the host. */
static int send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads the answer until the helper closes its end or the deadline passes. Returns the length,
 * -1 on error, -2 on timeout. */
static ssize_t read_answer(int fd, char *buf, size_t size, uint64_t deadline_ms)
{
    size_t len = 0;

    for (;;) {
        uint64_t now = kt_pam_now_ms();
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int rc;
        ssize_t n;

        if (now >= deadline_ms)
            return -2;
        rc = poll(&pfd, 1, (int)(deadline_ms - now));
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return -1;
        if (rc == 0)
            return -2;
        if (len + 1 >= size)
            return -1;
        n = recv(fd, buf + len, size - 1 - len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return (ssize_t)len;
}

/* In the child, between fork and exec: only async-signal-safe calls (the host may have threads). */
static void exec_child(int sock, const char *path)
{
    char name[] = "kontist-pam-helper";
    char *const argv[] = {name, NULL};
    char *const envp[] = {NULL};
    sigset_t none;
    int devnull;

    /* A setuid host (sudo, su) runs with the invoking user as real uid: the helper gets root
     * as its only identity, so that what it does never depends on who called sudo. */
    if (geteuid() == 0 && (setresgid(0, 0, 0) != 0 || setresuid(0, 0, 0) != 0))
        _exit(127);
    /* A host that closed its standard descriptors may have been given one of them for the
     * socket: move it out of the way before they are set up. */
    if (sock <= STDERR_FILENO && (sock = fcntl(sock, F_DUPFD, STDERR_FILENO + 1)) < 0)
        _exit(127);
    if (dup2(sock, STDIN_FILENO) < 0 || dup2(sock, STDOUT_FILENO) < 0)
        _exit(127);
    devnull = open("/dev/null", O_WRONLY);
    if (devnull < 0 || dup2(devnull, STDERR_FILENO) < 0)
        _exit(127);
    /* Nothing of the host's (its sockets, its files) leaks into the helper. */
    for (int fd = STDERR_FILENO + 1; fd < 1024; fd++)
        close(fd);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(path, argv, envp);
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
    if (strcmp(kind, "ok") != 0) {
        kt_wire_get(buf, len, "reason", res->err.message, sizeof(res->err.message));
        /* An answer that names no known kind is a failure all the same, never a success. */
        res->err.kind = kt_pam_kind_from_name(kind);
        if (res->err.kind == KT_OK)
            res->err.kind = KT_ERR_INTERNAL;
    }
}

/* Waits for the child; kills it first when it overran. Returns its wait status. */
static int reap(pid_t pid, bool kill_it)
{
    int status = 0;

    if (kill_it)
        kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return status;
}

static void talk(int sock, pid_t pid, const char *request, size_t request_len, const char *password,
                 uint64_t deadline_ms, kt_pam_result *res)
{
    char answer[KT_WIRE_MAX];
    ssize_t n;
    int status;

    if (send_all(sock, request, request_len) != 0 ||
        (password != NULL && send_all(sock, password, strlen(password)) != 0) ||
        shutdown(sock, SHUT_WR) != 0) {
        reap(pid, true);
        kt_error_set(&res->err, KT_ERR_INTERNAL, "cannot send the request to the helper");
        return;
    }
    n = read_answer(sock, answer, sizeof(answer), deadline_ms);
    status = reap(pid, n < 0);
    if (n == -2) {
        kt_error_set(&res->err, KT_ERR_UNAVAILABLE, "no answer within the login timeout");
        return;
    }
    /* A helper that crashed (a hostile answer could make it) is not an outage: nothing here
     * may turn into a fallback to a weaker factor. */
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
                       const char *password, kt_pam_result *res)
{
    char request[KT_WIRE_MAX];
    size_t request_len = 0;
    long timeout = args->login_timeout > 0 ? args->login_timeout : KT_PAM_LOGIN_TIMEOUT_MAX;
    uint64_t deadline_ms = kt_pam_now_ms() + (uint64_t)(timeout + HELPER_GRACE_SECONDS) * 1000u;
    struct sigaction dfl, saved;
    int sv[2];
    pid_t pid;

    memset(res, 0, sizeof(*res));
    if (check_helper(args->helper, &res->err) != 0 ||
        build_request(args, op, user, request, sizeof(request), &request_len, &res->err) != 0)
        return;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        kt_error_set(&res->err, KT_ERR_INTERNAL, "socketpair: %s", strerror(errno));
        return;
    }
    /* The host may reap children in a SIGCHLD handler; ours must be waited for here (pam_unix
     * does the same around unix_chkpwd). */
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGCHLD, &dfl, &saved);
    pid = fork();
    if (pid == 0) {
        close(sv[0]);
        exec_child(sv[1], args->helper);
    }
    close(sv[1]);
    if (pid < 0)
        kt_error_set(&res->err, KT_ERR_INTERNAL, "fork: %s", strerror(errno));
    else
        talk(sv[0], pid, request, request_len, password, deadline_ms, res);
    close(sv[0]);
    sigaction(SIGCHLD, &saved, NULL);
}
