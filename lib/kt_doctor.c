#include <config.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "kt_cache.h"
#include "kt_ctx.h"
#include "kt_device.h"
#include "kontist.h"
#include "kt_file.h"
#include "kt_flow.h"
#include "kt_hex.h"
#include "kt_json.h"
#include "kt_keys.h"
#include "kt_record.h"
#include "kt_secret.h"
#include "kt_token.h"

#define DEFAULT_PAM_DIR "/etc/pam.d"
#define DEFAULT_SSHD_CONFIG "/etc/ssh/sshd_config"
#define DEFAULT_SSHD_BINARY "/usr/sbin/sshd"
/* sshd -T reads only its configuration; it answers at once or something is badly wrong. */
#define SSHD_T_TIMEOUT_MS 5000
#define SSHD_INCLUDE_DEPTH 8
/* What the module's whole flow may take beyond login_timeout before sshd gives up on the login. */
#define SSHD_GRACE_MARGIN_S 5
#define TEST_MESSAGE "kontist-auth doctor: test signature"

typedef struct doctor {
    const kt_doctor_options *o;
    kt_doctor_report_fn report;
    void *data;
    kt_doctor_summary *sum;
    kt_config cfg;
    bool cfg_ok;
    bool api_ok;
    kt_token_set tokens;
    bool token_usable;
    long sshd_login_timeout; /* login_timeout of the sshd stack's pam_kontist line; 0: none */
    bool sshd_stack;         /* a pam_kontist line in the sshd stack */
} doctor;

static void emit_va(doctor *d, const char *name, kt_doctor_status status, kt_err_kind kind,
                    kt_doctor_next next, const char *fix, const char *fmt, va_list ap)
    __attribute__((format(printf, 7, 0)));

/* Reports one check; the detail is formatted, the fix is taken as it is. */
static void emit(doctor *d, const char *name, kt_doctor_status status, kt_err_kind kind,
                 const char *fix, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* The same, for a fix that leads to one of the front end's commands (it names the command). */
static void emit_next(doctor *d, const char *name, kt_doctor_status status, kt_err_kind kind,
                      kt_doctor_next next, const char *fix, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

static void emit(doctor *d, const char *name, kt_doctor_status status, kt_err_kind kind,
                 const char *fix, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    emit_va(d, name, status, kind, KT_DOCTOR_NEXT_NONE, fix, fmt, ap);
    va_end(ap);
}

static void emit_next(doctor *d, const char *name, kt_doctor_status status, kt_err_kind kind,
                      kt_doctor_next next, const char *fix, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    emit_va(d, name, status, kind, next, fix, fmt, ap);
    va_end(ap);
}

static void emit_va(doctor *d, const char *name, kt_doctor_status status, kt_err_kind kind,
                    kt_doctor_next next, const char *fix, const char *fmt, va_list ap)
{
    char detail[1024];
    kt_doctor_result r;

    vsnprintf(detail, sizeof(detail), fmt, ap);
    r.name = name;
    r.next = status == KT_DOCTOR_OK ? KT_DOCTOR_NEXT_NONE : next;
    r.status = status;
    r.detail = detail;
    r.fix = status == KT_DOCTOR_OK ? NULL : fix;
    r.kind = status == KT_DOCTOR_FAIL ? (kind != KT_OK ? kind : KT_ERR_INTERNAL) : KT_OK;
    switch (status) {
    case KT_DOCTOR_OK:
        d->sum->ok++;
        break;
    case KT_DOCTOR_WARN:
        d->sum->warn++;
        break;
    case KT_DOCTOR_FAIL:
        d->sum->fail++;
        if (d->sum->first_failure == KT_OK)
            d->sum->first_failure = r.kind;
        break;
    case KT_DOCTOR_SKIP:
        d->sum->skip++;
        break;
    }
    d->report(&r, d->data);
}

const char *kt_doctor_status_name(kt_doctor_status status)
{
    switch (status) {
    case KT_DOCTOR_OK:
        return "ok";
    case KT_DOCTOR_WARN:
        return "warn";
    case KT_DOCTOR_FAIL:
        return "fail";
    case KT_DOCTOR_SKIP:
        return "skip";
    }
    return "unknown";
}

/* "root:root 0644" for a path, or "" when it cannot be looked at. */
static void owner_mode(const char *path, char *buf, size_t size)
{
    struct passwd *pw;
    struct group *gr;
    struct stat st;
    char user[24], group[24];

    buf[0] = '\0';
    if (stat(path, &st) != 0)
        return;
    pw = getpwuid(st.st_uid);
    gr = getgrgid(st.st_gid);
    snprintf(user, sizeof(user), "%s", pw != NULL ? pw->pw_name : "?");
    snprintf(group, sizeof(group), "%s", gr != NULL ? gr->gr_name : "?");
    if (pw == NULL)
        snprintf(user, sizeof(user), "%lu", (unsigned long)st.st_uid);
    if (gr == NULL)
        snprintf(group, sizeof(group), "%lu", (unsigned long)st.st_gid);
    snprintf(buf, size, "%.23s:%.23s %04o", user, group, (unsigned)(st.st_mode & 07777));
}

static const char *owner_word(const kt_owner_policy *p)
{
    if (p->allow_root && p->allow_uid)
        return "root or you";
    return p->allow_root ? "root" : "you";
}

/* ---- configuration ----------------------------------------------------------------------- */

/* Reads and parses one file on top of d->cfg. Returns 1 when read, 0 when absent and optional,
 * -1 on a failure (reported). */
static int check_config_file(doctor *d, const kt_doctor_config_file *f)
{
    kt_file_policy policy = {.owners = f->owners, .private_read = false, .max_size = 0};
    kt_error err = {KT_OK, ""};
    char om[64], fix[512];
    char *data = NULL;
    size_t len = 0;
    int e = 0;

    if (kt_file_read(f->path, &policy, &data, &len, &e, &err) != 0) {
        if (e == ENOENT && f->missing_ok) {
            emit(d, "config-file", KT_DOCTOR_SKIP, KT_OK, NULL, "%s: not present (optional)",
                 f->path);
            return 0;
        }
        if (e == ENOENT)
            snprintf(fix, sizeof(fix),
                     "create %s with at least client_id (kontist.conf(5) lists every key)",
                     f->path);
        else
            snprintf(fix, sizeof(fix),
                     "make %s a regular file (not a link) owned by %s and not writable by group "
                     "or others, e.g. chown root:root %s && chmod 0644 %s",
                     f->path, owner_word(&f->owners), f->path, f->path);
        emit(d, "config-file", KT_DOCTOR_FAIL, KT_ERR_CONFIG, fix, "%s", err.message);
        return -1;
    }
    if (kt_config_parse(&d->cfg, f->path, data, len, &err) != 0) {
        kt_wipe(data, len);
        free(data);
        emit(d, "config-file", KT_DOCTOR_FAIL, KT_ERR_CONFIG,
             "correct the line named: kontist.conf(5) lists every key and its syntax", "%s",
             err.message);
        return -1;
    }
    kt_wipe(data, len);
    free(data);
    owner_mode(f->path, om, sizeof(om));
    emit(d, "config-file", KT_DOCTOR_OK, KT_OK, NULL, "%s: %s, syntax ok", f->path, om);
    return 1;
}

/* The owner policy of the file that set client_secret_file (the one whose line origin names it). */
static const kt_owner_policy *secret_owners(const doctor *d)
{
    const char *origin = kt_config_origin(&d->cfg, "client_secret_file");

    for (size_t i = d->o->n_config_files; i-- > 0;) {
        size_t n = strlen(d->o->config_files[i].path);

        if (origin != NULL && strncmp(origin, d->o->config_files[i].path, n) == 0 &&
            origin[n] == ':')
            return &d->o->config_files[i].owners;
    }
    return d->o->n_config_files > 0 ? &d->o->config_files[0].owners : &d->o->user_owners;
}

static void check_config(doctor *d)
{
    kt_error err = {KT_OK, ""};
    char fix[600], om[64];
    int read = 0;
    bool broken = false;

    for (size_t i = 0; i < d->o->n_config_files; i++) {
        int rc = check_config_file(d, &d->o->config_files[i]);

        if (rc < 0)
            broken = true;
        else
            read += rc;
    }
    if (broken) {
        emit(d, "config", KT_DOCTOR_SKIP, KT_OK, NULL,
             "not checked further: a configuration file above is unusable");
        return;
    }
    if (read == 0) {
        emit(d, "config", KT_DOCTOR_FAIL, KT_ERR_CONFIG,
             "create /etc/kontist/kontist.conf (root:root 0644) with at least client_id; "
             "kontist.conf(5) has examples",
             "no configuration file was found");
        return;
    }
    if (kt_config_validate(&d->cfg, &err) != 0) {
        emit(d, "config", KT_DOCTOR_FAIL, KT_ERR_CONFIG,
             "set the missing key in the configuration file (kontist.conf(5))", "%s", err.message);
        return;
    }
    emit(d, "config", KT_DOCTOR_OK, KT_OK, NULL, "api %s, client %s, login_timeout %ld s",
         d->cfg.base_url, d->cfg.client_id, d->cfg.login_timeout);

    if (d->cfg.client_secret_file == NULL) {
        emit(d, "client-secret", KT_DOCTOR_OK, KT_OK, NULL,
             "no client_secret_file: a public client");
    } else if (kt_config_load_secret(&d->cfg, secret_owners(d), &err) != 0) {
        snprintf(fix, sizeof(fix),
                 "the secret file must be a regular file owned by %s and readable by its owner "
                 "only: chown root:root %s && chmod 0600 %s (users who run the client "
                 "themselves need a configuration without client_secret_file)",
                 owner_word(secret_owners(d)), d->cfg.client_secret_file,
                 d->cfg.client_secret_file);
        emit(d, "client-secret", KT_DOCTOR_FAIL, KT_ERR_CONFIG, fix, "%s", err.message);
        return;
    } else {
        owner_mode(d->cfg.client_secret_file, om, sizeof(om));
        emit(d, "client-secret", KT_DOCTOR_OK, KT_OK, NULL, "%s: %s, one line",
             d->cfg.client_secret_file, om);
    }

    kt_error_clear(&err);
    if (kt_config_check_files(&d->cfg, &err) != 0) {
        emit(d, "config-files", KT_DOCTOR_FAIL, KT_ERR_CONFIG,
             "make the file exist and readable by everyone who uses this configuration "
             "(chmod 0644 FILE and a+x on its directories)",
             "%s", err.message);
        return;
    }
    emit(d, "config-files", KT_DOCTOR_OK, KT_OK, NULL, "ca_file %s, pinned_pubkey %s",
         d->cfg.ca_file != NULL ? d->cfg.ca_file : "(system trust store)",
         d->cfg.pinned_pubkey != NULL ? "set" : "(none)");
    d->cfg_ok = true;
}

/* ---- the API ----------------------------------------------------------------------------- */

/* Splits the authority of base_url into host and port ("443" when none). */
static int split_authority(const kt_config *cfg, char *host, size_t hsize, char *port, size_t psize)
{
    char *auth = kt_config_host(cfg);
    char *colon;

    if (auth == NULL)
        return -1;
    snprintf(port, psize, "443");
    if (auth[0] == '[') {
        char *close = strchr(auth, ']');

        if (close == NULL) {
            free(auth);
            return -1;
        }
        *close = '\0';
        if (close[1] == ':')
            snprintf(port, psize, "%s", close + 2);
        snprintf(host, hsize, "%s", auth + 1);
    } else {
        colon = strchr(auth, ':');
        if (colon != NULL) {
            *colon = '\0';
            snprintf(port, psize, "%s", colon + 1);
        }
        snprintf(host, hsize, "%s", auth);
    }
    free(auth);
    return 0;
}

/* getaddrinfo with a deadline: the resolver's own retries can take far longer than
 * connect_timeout. A lookup that does not finish in time and cannot be cancelled keeps its
 * request, which its thread still writes to: it is left allocated (this process ends soon). */
static int resolve(const char *host, const char *port, long timeout_s, struct addrinfo **out,
                   char *why, size_t wsize)
{
    struct gaicb *req = calloc(1, sizeof(*req));
    struct addrinfo *hints = calloc(1, sizeof(*hints));
    struct gaicb *list[1];
    struct timespec ts = {timeout_s, 0};
    int rc;

    if (req == NULL || hints == NULL) {
        free(req);
        free(hints);
        snprintf(why, wsize, "out of memory");
        return -1;
    }
    hints->ai_socktype = SOCK_STREAM;
    hints->ai_family = AF_UNSPEC;
    req->ar_name = host;
    req->ar_service = port;
    req->ar_request = hints;
    list[0] = req;
    rc = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL);
    if (rc == 0)
        rc = gai_suspend((const struct gaicb *const *)list, 1, &ts);
    if (rc == 0 || rc == EAI_ALLDONE || rc == EAI_INTR)
        rc = gai_error(req);
    if (rc == EAI_INPROGRESS || rc == EAI_AGAIN) {
        snprintf(why, wsize, "no answer from the resolver within %ld s", timeout_s);
        if (gai_cancel(req) == EAI_CANCELED) {
            free(req);
            free(hints);
        }
        return -1;
    }
    if (rc != 0) {
        snprintf(why, wsize, "%s", gai_strerror(rc));
        free(req);
        free(hints);
        return -1;
    }
    *out = req->ar_result;
    free(req);
    free(hints);
    return 0;
}

/* Connects to one address with a timeout; returns 0 or an errno value. */
static int try_connect(const struct addrinfo *ai, long timeout_s)
{
    struct pollfd pfd;
    socklen_t len = sizeof(int);
    int fd, e = 0;

    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0)
        return errno;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        e = errno;
        if (e == EINPROGRESS) {
            pfd.fd = fd;
            pfd.events = POLLOUT;
            pfd.revents = 0;
            e = poll(&pfd, 1, (int)(timeout_s * 1000));
            if (e == 0)
                e = ETIMEDOUT;
            else if (e < 0)
                e = errno;
            else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0)
                e = errno;
        }
    }
    close(fd);
    return e;
}

/* scheme://host:port of a proxy URL: never the user name and password it may carry, nor a
 * path. */
static void proxy_for_display(const char *url, char *out, size_t size)
{
    const char *sep = strstr(url, "://");
    const char *auth = sep != NULL ? sep + 3 : url;
    size_t len = strcspn(auth, "/?#");
    const char *at = NULL;

    for (const char *p = auth; p < auth + len; p++)
        if (*p == '@')
            at = p;
    if (at != NULL) {
        len -= (size_t)(at + 1 - auth);
        auth = at + 1;
    }
    snprintf(out, size, "%.*s%.*s", sep != NULL ? (int)(sep + 3 - url) : 0, url, (int)len, auth);
}

static void check_dns_tcp(doctor *d)
{
    char host[256], port[16], why[256], addr[NI_MAXHOST];
    struct addrinfo *res = NULL;
    int e = 0;

    if (d->cfg.proxy != NULL && d->cfg.proxy[0] != '\0') {
        char shown[512];

        proxy_for_display(d->cfg.proxy, shown, sizeof(shown));
        emit(d, "dns", KT_DOCTOR_SKIP, KT_OK, NULL,
             "requests go through the proxy %s: it resolves and connects; the request below "
             "shows whether that works",
             shown);
        return;
    }
    if (split_authority(&d->cfg, host, sizeof(host), port, sizeof(port)) != 0) {
        emit(d, "dns", KT_DOCTOR_FAIL, KT_ERR_CONFIG, "correct base_url", "base_url %s has no host",
             d->cfg.base_url);
        return;
    }
    if (resolve(host, port, d->cfg.connect_timeout, &res, why, sizeof(why)) != 0) {
        emit(d, "dns", KT_DOCTOR_FAIL, KT_ERR_UNAVAILABLE,
             "check /etc/resolv.conf and that the name in base_url is right", "%s: %s", host, why);
        emit(d, "tcp", KT_DOCTOR_SKIP, KT_OK, NULL, "no address to connect to");
        return;
    }
    if (getnameinfo(res->ai_addr, res->ai_addrlen, addr, sizeof(addr), NULL, 0, NI_NUMERICHOST) !=
        0)
        snprintf(addr, sizeof(addr), "?");
    emit(d, "dns", KT_DOCTOR_OK, KT_OK, NULL, "%s is %s", host, addr);
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        e = try_connect(ai, d->cfg.connect_timeout);
        if (e == 0) {
            if (getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof(addr), NULL, 0,
                            NI_NUMERICHOST) != 0)
                snprintf(addr, sizeof(addr), "?");
            emit(d, "tcp", KT_DOCTOR_OK, KT_OK, NULL, "connected to %s port %s", addr, port);
            freeaddrinfo(res);
            return;
        }
    }
    freeaddrinfo(res);
    emit(d, "tcp", KT_DOCTOR_FAIL, KT_ERR_UNAVAILABLE,
         "a firewall or the network path blocks the API; allow outgoing HTTPS to it (or set "
         "proxy in the configuration)",
         "cannot connect to %s port %s: %s", host, port, strerror(e));
}

static bool mentions_tls(const char *s)
{
    return strstr(s, "SSL") != NULL || strstr(s, "certificate") != NULL ||
           strstr(s, "TLS") != NULL || strstr(s, "pinned") != NULL ||
           strstr(s, "public key") != NULL;
}

/* One request: TLS, the server's clock and the token endpoint (a refresh grant with a token that
 * does not exist; no password, no real token). */
static void check_api(doctor *d, kt_ctx *ctx)
{
    static const char probe[] = "grant_type=refresh_token&refresh_token=kontist-auth-doctor-probe";
    kt_http_request req = {
        .method = "POST",
        .path = "/api/oauth/token",
        .content_type = "application/x-www-form-urlencoded",
        .body = probe,
        .body_len = sizeof(probe) - 1,
        .auth = KT_AUTH_BASIC_CLIENT,
    };
    kt_http_response resp;
    kt_error err = {KT_OK, ""};
    char code[KT_JSON_SERVER_TEXT_MAX + 1];
    long skew;

    if (kt_http_send(ctx->http, &req, &resp, &err) != 0) {
        if (mentions_tls(err.message) || err.kind == KT_ERR_CONFIG)
            emit(d, "tls", KT_DOCTOR_FAIL, err.kind,
                 "ca_file must name the CA that signed the API's certificate (leave it unset "
                 "for the system trust store), and pinned_pubkey, when set, the API's current "
                 "key",
                 "%s", err.message);
        else
            emit(d, "tls", KT_DOCTOR_FAIL, err.kind,
                 "the API did not answer in time: check the network path, the proxy setting and "
                 "timeout in the configuration",
                 "%s", err.message);
        emit(d, "clock", KT_DOCTOR_SKIP, KT_OK, NULL, "no answer to read the server's clock from");
        emit(d, "token-endpoint", KT_DOCTOR_SKIP, KT_OK, NULL, "no answer");
        return;
    }
    emit(d, "tls", KT_DOCTOR_OK, KT_OK, NULL, "certificate verified with %s%s",
         d->cfg.ca_file != NULL ? d->cfg.ca_file : "the system trust store",
         d->cfg.pinned_pubkey != NULL ? ", public key pin matches" : "");
    d->api_ok = true;

    if (resp.date == 0) {
        emit(d, "clock", KT_DOCTOR_WARN, KT_OK,
             "nothing to do here, but make sure the clock is synchronised (timedatectl)",
             "the server sent no Date header to compare the clock with");
    } else {
        skew = (long)(resp.date - time(NULL));
        if (labs(skew) > KT_DOCTOR_MAX_SKEW_S)
            emit(d, "clock", KT_DOCTOR_FAIL, KT_ERR_CONFIG,
                 "synchronise this machine's clock: timedatectl set-ntp true (systemd-timesyncd) "
                 "or install chrony",
                 "this machine's clock is %ld s %s the server's (at most %d s are fine): tokens "
                 "would look valid or expired at the wrong times",
                 labs(skew), skew > 0 ? "behind" : "ahead of", KT_DOCTOR_MAX_SKEW_S);
        else
            emit(d, "clock", KT_DOCTOR_OK, KT_OK, NULL, "%ld s from the server's clock", skew);
    }

    /* RFC 6749 lets a server refuse the client with 400 as well as 401: the code decides. */
    kt_json_server_text(resp.body, resp.body_len, code, sizeof(code), NULL, 0);
    if (resp.status == 400 && strcmp(code, "invalid_client") != 0)
        emit(d, "token-endpoint", KT_DOCTOR_OK, KT_OK, NULL,
             "answers; client %s accepted (HTTP 400 to a refresh token that does not exist, as "
             "expected)",
             d->cfg.client_id);
    else if (resp.status == 401 || resp.status == 400)
        emit(d, "token-endpoint", KT_DOCTOR_FAIL, KT_ERR_CONFIG,
             "client_id and the secret in client_secret_file must be those the bank issued "
             "(a public client has no client_secret_file)",
             "the token endpoint refused client %s (HTTP %ld%s%s)", d->cfg.client_id, resp.status,
             code[0] != '\0' ? " " : "", code);
    else if (resp.status == 429)
        emit(d, "token-endpoint", KT_DOCTOR_WARN, KT_OK,
             "wait and run the doctor again; many failed logins from this address cause this",
             "the token endpoint is rate limiting this client (HTTP 429)");
    else if (resp.status >= 500)
        emit(d, "token-endpoint", KT_DOCTOR_FAIL, KT_ERR_UNAVAILABLE,
             "the bank's service is failing: try again later", "HTTP %ld from the token endpoint",
             resp.status);
    else
        emit(d, "token-endpoint", KT_DOCTOR_FAIL, KT_ERR_PROTOCOL,
             "base_url must be the Kontist API (https://api.kontist.com)",
             "unexpected HTTP %ld from %s/api/oauth/token", resp.status, d->cfg.base_url);
    kt_http_response_free(&resp);
}

/* ---- the token cache --------------------------------------------------------------------- */

static void check_cache(doctor *d)
{
    const char *path = d->o->paths->cache_file;
    kt_error err = {KT_OK, ""};
    char fix[512], when[64];
    time_t now = time(NULL);
    struct tm tm;
    int st;

    st = kt_cache_load(path, &d->o->user_owners, &d->tokens, &err);
    if (st < 0) {
        snprintf(fix, sizeof(fix),
                 "the cache must be a regular file of yours, mode 0600: chmod 0600 %s, or remove "
                 "it (log out) and log in again",
                 path);
        emit_next(d, "token-cache", KT_DOCTOR_FAIL, err.kind == KT_OK ? KT_ERR_IO : err.kind,
                  KT_DOCTOR_NEXT_RELOGIN, fix, "%s", err.message);
        return;
    }
    if (st == KT_CACHE_CORRUPT) {
        emit_next(d, "token-cache", KT_DOCTOR_FAIL, KT_ERR_IO, KT_DOCTOR_NEXT_RELOGIN,
                  "log out and log in again", "%s", err.message);
        return;
    }
    if (st == KT_CACHE_ABSENT) {
        emit_next(d, "token-cache", KT_DOCTOR_WARN, KT_OK, KT_DOCTOR_NEXT_LOGIN, "log in",
                  "%s: not logged in", path);
        return;
    }
    if (gmtime_r(&d->tokens.expires_at, &tm) == NULL ||
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(when, sizeof(when), "%lld", (long long)d->tokens.expires_at);
    d->token_usable = kt_token_set_usable(&d->tokens, now, KT_TOKEN_MIN_LEFT);
    if (d->token_usable)
        emit(d, "token-cache", KT_DOCTOR_OK, KT_OK, NULL,
             "%s: logged in as %s, access token valid until %s%s", path,
             d->tokens.username != NULL ? d->tokens.username : "(unknown)", when,
             d->tokens.confirmed ? ", confirmed by device MFA" : "");
    else if (d->tokens.refresh_token != NULL)
        emit(d, "token-cache", KT_DOCTOR_OK, KT_OK, NULL,
             "%s: access token expired (%s), a refresh token is kept", path, when);
    else
        emit_next(d, "token-cache", KT_DOCTOR_WARN, KT_OK, KT_DOCTOR_NEXT_LOGIN, "log in",
                  "%s: the access token expired at %s and there is no refresh token", path, when);
}

/* ---- the device record and key ----------------------------------------------------------- */

/* A public-only key from the uncompressed point the bank was given at enrollment. */
static EVP_PKEY *public_key_from_hex(const char *hex)
{
    unsigned char point[KT_PUBKEY_HEX_LEN / 2];
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    EVP_PKEY *pub = NULL;
    long n = kt_hex_decode(hex, point, sizeof(point));

    if (bld == NULL || n != (long)sizeof(point) ||
        !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)) ||
        (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
        (pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL ||
        EVP_PKEY_fromdata_init(pctx) <= 0 ||
        EVP_PKEY_fromdata(pctx, &pub, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        pub = NULL;
    EVP_PKEY_CTX_free(pctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    return pub;
}

/* Whether sig_hex is a valid signature of the test message under the public point pub_hex. */
static bool test_signature_verifies(const char *pub_hex, const char *sig_hex)
{
    unsigned char sig[160];
    long n = kt_hex_decode(sig_hex, sig, sizeof(sig));
    EVP_PKEY *pub = public_key_from_hex(pub_hex);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = n > 0 && pub != NULL && md != NULL &&
              EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub) == 1 &&
              EVP_DigestVerify(md, sig, (size_t)n, (const unsigned char *)TEST_MESSAGE,
                               strlen(TEST_MESSAGE)) == 1;

    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pub);
    return ok;
}

/* Signs a test message the way a login signs a challenge and verifies the signature with the
 * public key as the bank holds it (the hex point sent at enrollment). */
static int sign_and_verify(EVP_PKEY *key, char *why, size_t wsize)
{
    char pub_hex[KT_PUBKEY_HEX_LEN + 1];
    kt_error err = {KT_OK, ""};
    char *sig_hex = NULL;
    bool ok;

    if (kt_key_public_hex(key, pub_hex, &err) != 0 ||
        kt_key_sign_hex(key, TEST_MESSAGE, strlen(TEST_MESSAGE), &sig_hex, &err) != 0) {
        snprintf(why, wsize, "%s", err.message);
        return -1;
    }
    ok = test_signature_verifies(pub_hex, sig_hex);
    free(sig_hex);
    if (!ok) {
        snprintf(why, wsize, "its signature does not verify with its own public key");
        return -1;
    }
    return 0;
}

/* The bank checks a signature with the public key it bound: one challenge, signed and verified.
 * The confirmed tokens the verification gives are wiped, not stored. */
static void check_bound(doctor *d, kt_ctx *ctx, const kt_device_record *rec, EVP_PKEY *key)
{
    kt_error err = {KT_OK, ""};
    kt_token_set confirmed;

    memset(&confirmed, 0, sizeof(confirmed));
    if (kt_flow_device_confirm(ctx, d->tokens.access_token, rec->device_id, key, &confirmed,
                               &err) != 0) {
        if (err.kind == KT_ERR_MFA_FAILED)
            emit_next(d, "device-bound", KT_DOCTOR_FAIL, err.kind, KT_DOCTOR_NEXT_ENROLL,
                      "the key is not the one the bank bound to this device: restore the key the "
                      "device was enrolled with, or enroll again",
                      "device %s: the bank refused a challenge signed with %s: %s", rec->device_id,
                      rec->key_ref[0] == '/' ? rec->key_ref : "its key (URI)", err.message);
        else if (err.kind == KT_ERR_NOT_ENROLLED)
            emit_next(d, "device-bound", KT_DOCTOR_FAIL, err.kind, KT_DOCTOR_NEXT_ENROLL,
                      "the bank no longer knows this device: enroll again", "%s", err.message);
        else if (err.kind == KT_ERR_LOGIN_REQUIRED)
            emit_next(d, "device-bound", KT_DOCTOR_SKIP, KT_OK, KT_DOCTOR_NEXT_LOGIN, NULL,
                      "the cached access token was refused (%s); log in to check the key with "
                      "the bank",
                      err.message);
        else
            emit(d, "device-bound", KT_DOCTOR_FAIL, err.kind,
                 "see the message; run the doctor again when the API answers", "%s", err.message);
    } else {
        emit(d, "device-bound", KT_DOCTOR_OK, KT_OK, NULL,
             "the bank verified a challenge signed with this key for device %s", rec->device_id);
    }
    kt_token_set_free(&confirmed);
}

static void check_device(doctor *d, kt_ctx *ctx)
{
    const char *path = d->o->paths->record_file;
    kt_device_record rec;
    kt_error err = {KT_OK, ""};
    char why[sizeof(((kt_error *)0)->message) + 64], fix[512], om[64];
    EVP_PKEY *key;
    int e = 0;

    memset(&rec, 0, sizeof(rec));
    if (kt_record_load(path, &d->o->user_owners, &rec, &e, &err) != 0) {
        if (e == ENOENT) {
            emit_next(d, "device-record", KT_DOCTOR_WARN, KT_OK, KT_DOCTOR_NEXT_ENROLL,
                      "enroll this machine (logins without a device get no MFA-confirmed token)",
                      "%s: no device enrolled", path);
        } else {
            snprintf(fix, sizeof(fix),
                     "the record must be a regular file of yours, mode 0600: chmod 0600 %s "
                     "(or enroll again)",
                     path);
            emit(d, "device-record", KT_DOCTOR_FAIL, err.kind, fix, "%s", err.message);
        }
        emit(d, "device-key", KT_DOCTOR_SKIP, KT_OK, NULL, "no usable device record");
        return;
    }
    if (rec.device_id == NULL || rec.key_ref == NULL) {
        emit_next(d, "device-record", KT_DOCTOR_WARN, KT_OK, KT_DOCTOR_NEXT_ENROLL,
                  "enroll this machine", "%s: user %s, but no device enrolled", path,
                  rec.username != NULL ? rec.username : "(unknown)");
        emit(d, "device-key", KT_DOCTOR_SKIP, KT_OK, NULL, "no device enrolled");
        kt_record_free(&rec);
        return;
    }
    emit(d, "device-record", KT_DOCTOR_OK, KT_OK, NULL, "%s: device %s for %s", path, rec.device_id,
         rec.username);

    key = kt_key_load(rec.key_ref, &d->o->user_owners, &err);
    if (key == NULL) {
        if (rec.key_ref[0] == '/')
            snprintf(fix, sizeof(fix),
                     "the key must be a regular file of yours, mode 0600: chown $USER %s && "
                     "chmod 0600 %s; if it is lost, enroll again",
                     rec.key_ref, rec.key_ref);
        else
            snprintf(fix, sizeof(fix),
                     "the key's provider must be reachable: check the TPM or PKCS#11 token and "
                     "the OpenSSL provider configuration (openssl.cnf)");
        emit_next(d, "device-key", KT_DOCTOR_FAIL, KT_ERR_KEY_UNUSABLE,
                  rec.key_ref[0] == '/' ? KT_DOCTOR_NEXT_ENROLL : KT_DOCTOR_NEXT_NONE, fix, "%s",
                  err.message);
        kt_record_free(&rec);
        return;
    }
    if (sign_and_verify(key, why, sizeof(why)) != 0) {
        emit_next(d, "device-key", KT_DOCTOR_FAIL, KT_ERR_KEY_UNUSABLE, KT_DOCTOR_NEXT_ENROLL,
                  "enroll again with a new key", "%s: %s",
                  rec.key_ref[0] == '/' ? rec.key_ref : "(key URI)", why);
    } else {
        if (rec.key_ref[0] == '/')
            owner_mode(rec.key_ref, om, sizeof(om));
        else
            snprintf(om, sizeof(om), "provider key");
        emit(d, "device-key", KT_DOCTOR_OK, KT_OK, NULL,
             "%s: %s, signs; the signature verifies with its public key",
             rec.key_ref[0] == '/' ? rec.key_ref : "(key URI)", om);
        if (ctx == NULL || !d->api_ok)
            emit(d, "device-bound", KT_DOCTOR_SKIP, KT_OK, NULL,
                 "the API was not reached: the key was not checked with the bank");
        else if (!d->token_usable)
            emit_next(d, "device-bound", KT_DOCTOR_SKIP, KT_OK, KT_DOCTOR_NEXT_LOGIN, NULL,
                      "no valid access token in the cache: log in to check the key with the "
                      "bank");
        else
            check_bound(d, ctx, &rec, key);
    }
    EVP_PKEY_free(key);
    kt_record_free(&rec);
}

/* ---- PAM stacks -------------------------------------------------------------------------- */

#define MAX_WORDS 64

/* Splits a pam.d line into words; a word starting with '[' runs to its ']' (controls and
 * arguments may hold blanks that way). Returns the number of words. */
static int split_words(char *line, char **words)
{
    int n = 0;
    char *p = line;

    while (*p != '\0' && n < MAX_WORDS) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            break;
        words[n++] = p;
        if (*p == '[') {
            char *close = strchr(p, ']');

            p = close != NULL ? close + 1 : p + strlen(p);
        }
        while (*p != '\0' && *p != ' ' && *p != '\t')
            p++;
        if (*p != '\0')
            *p++ = '\0';
    }
    return n;
}

/* The action for `code` in a bracket control ("[success=done authinfo_unavail=ignore ...]"),
 * written into out, or "" when not named. */
static void bracket_action(const char *control, const char *code, char *out, size_t size)
{
    size_t n = strlen(code);
    const char *p = control;

    out[0] = '\0';
    while ((p = strstr(p, code)) != NULL) {
        if ((p == control || p[-1] == '[' || p[-1] == ' ' || p[-1] == '\t') && p[n] == '=') {
            size_t len = strcspn(p + n + 1, " \t]");

            snprintf(out, size, "%.*s", (int)len, p + n + 1);
            return;
        }
        p += n;
    }
}

static bool action_continues(const char *action)
{
    return strcmp(action, "ignore") == 0 || strcmp(action, "ok") == 0 ||
           isdigit((unsigned char)action[0]);
}

/* The codes the module returns for a failure that is not an outage. Any of them going on to the
 * next module lets whoever fails Kontist in that way (a wrong password, a rejected device
 * signature, a broken configuration) try the next module instead. user_unknown is only one of
 * them without nouserok: with it, an unknown local user is refused by the next module anyway. */
static const char *const failure_codes[] = {"auth_err",      "cred_insufficient", "user_unknown",
                                            "service_err",   "system_err",        "conv_err",
                                            "module_unknown"};

/* The action a bracket control takes for code: its own, else default's. */
static void action_for(const char *control, const char *code, char *out, size_t size)
{
    bracket_action(control, code, out, size);
    if (out[0] == '\0')
        bracket_action(control, "default", out, size);
}

/* The first failure code (not an outage) whose action goes on to the next module, "default"
 * when no default is given (libpam's default is then "bad" but the stack reads as unfinished),
 * or NULL when every failure ends the login. */
static const char *failure_fallback(const char *control, bool nouserok)
{
    char act[32];

    bracket_action(control, "default", act, sizeof(act));
    if (act[0] == '\0' || action_continues(act))
        return "default";
    for (size_t i = 0; i < sizeof(failure_codes) / sizeof(failure_codes[0]); i++) {
        if (nouserok && strcmp(failure_codes[i], "user_unknown") == 0)
            continue;
        action_for(control, failure_codes[i], act, sizeof(act));
        if (action_continues(act))
            return failure_codes[i];
    }
    return NULL;
}

/* Whether a pam_kontist auth line with this control lets a login go on to the next module when
 * Kontist did not succeed: on an outage (authinfo_unavail) or on any failure. */
static bool control_falls_back(const char *control, bool nouserok)
{
    char act[32];

    if (strcmp(control, "sufficient") == 0 || strcmp(control, "optional") == 0)
        return true;
    if (control[0] != '[')
        return false;
    action_for(control, "authinfo_unavail", act, sizeof(act));
    return action_continues(act) || failure_fallback(control, nouserok) != NULL;
}

/* What the control of an auth line means when the API is down or a login fails. */
static void explain_control(doctor *d, const char *where, const char *control,
                            const kt_doctor_module_args *a)
{
    char unavail[32], fail[32];
    const char *leak;

    if (strcmp(control, "sufficient") == 0 || strcmp(control, "optional") == 0) {
        emit(d, "pam-stack", KT_DOCTOR_WARN, KT_OK,
             "use [success=done authinfo_unavail=ignore ignore=ignore default=die] (fallback "
             "only when the API is unavailable) or requisite (no fallback)",
             "%s: '%s': any Kontist failure (a wrong password, a rejected device signature) "
             "goes on to the next module, so the device MFA protects nothing",
             where, control);
        return;
    }
    if (strcmp(control, "required") == 0 || strcmp(control, "requisite") == 0) {
        emit(d, "pam-stack", KT_DOCTOR_OK, KT_OK, NULL,
             "%s: %s: Kontist or nothing, no fallback when the API is unavailable%s; mfa=%s", where,
             control, a->nouserok ? "; nouserok: users root has not pinned are ignored" : "",
             a->mfa != NULL  ? a->mfa
             : a->mfa_device ? "device"
                             : "none");
        return;
    }
    if (control[0] != '[') {
        emit(d, "pam-stack", KT_DOCTOR_WARN, KT_OK, "see pam_kontist(8) for the stacks it supports",
             "%s: unusual control '%s'", where, control);
        return;
    }
    action_for(control, "authinfo_unavail", unavail, sizeof(unavail));
    if ((leak = failure_fallback(control, a->nouserok)) != NULL) {
        char fix[128];

        action_for(control, leak, fail, sizeof(fail));
        snprintf(fix, sizeof(fix),
                 "end the control with default=die and let only authinfo_unavail%s go on",
                 a->nouserok ? " and ignore" : "");
        emit(d, "pam-stack", KT_DOCTOR_WARN, KT_OK, fix,
             "%s: a Kontist failure other than an outage goes on to the next module (%s=%s): "
             "whoever fails Kontist that way only faces that module; the device MFA protects "
             "nothing",
             where, leak, fail[0] != '\0' ? fail : "(not given)");
        return;
    }
    if (action_continues(unavail))
        emit(d, "pam-stack", KT_DOCTOR_OK, KT_OK, NULL,
             "%s: falls back to the next module only when the API is unavailable (unreachable, "
             "past login_timeout, 5xx): whoever can block the network then faces only that "
             "module; every other failure ends the login%s",
             where, a->nouserok ? "; nouserok: users root has not pinned go on" : "");
    else
        emit(d, "pam-stack", KT_DOCTOR_OK, KT_OK, NULL,
             "%s: Kontist or nothing: no fallback when the API is unavailable%s", where,
             a->nouserok ? "; nouserok: users root has not pinned go on" : "");
}

/* config= read the way kontist-pam-helper reads it (root's file, or in a process that is not
 * root its own user's; every required key; the files it names readable), so that a stack the
 * helper would answer with PAM_SERVICE_ERR is found before anyone logs in. */
static int load_as_helper(const char *path, kt_error *err)
{
    kt_owner_policy owners = {.allow_root = true, .allow_uid = geteuid() != 0, .uid = geteuid()};
    kt_error verr = {KT_OK, ""};
    kt_config cfg;
    int rc;

    kt_config_init(&cfg);
    rc = kt_config_load_file(&cfg, path, &owners, false, NULL, err);
    if (rc == 0 && kt_config_validate(&cfg, &verr) != 0)
        rc = kt_error_set(err, verr.kind, "%s: %s", path, verr.message);
    if (rc == 0)
        rc = kt_config_check_files(&cfg, err);
    kt_config_free(&cfg);
    return rc;
}

/* helper= with the module's own rules: a regular executable file that root (or, in a process
 * that is not root, its own user) owns and group and others cannot write. */
static int helper_refused(const char *path, kt_error *err)
{
    struct stat st;

    if (stat(path, &st) != 0)
        return kt_error_set(err, KT_ERR_CONFIG, "helper %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return kt_error_set(err, KT_ERR_CONFIG, "helper %s is not a regular file", path);
    if (st.st_uid != 0 && st.st_uid != geteuid())
        return kt_error_set(err, KT_ERR_CONFIG, "helper %s is owned by uid %lu, not root", path,
                            (unsigned long)st.st_uid);
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
        return kt_error_set(err, KT_ERR_CONFIG, "helper %s is writable by group or others (%04o)",
                            path, (unsigned)(st.st_mode & 07777));
    if (access(path, X_OK) != 0)
        return kt_error_set(err, KT_ERR_CONFIG, "helper %s: %s", path, strerror(errno));
    return 0;
}

static void check_module_line(doctor *d, const char *file, const char *where, char **words, int n)
{
    const char *type = words[0][0] == '-' ? words[0] + 1 : words[0];
    kt_doctor_module_args a;
    kt_error err = {KT_OK, ""};
    char fix[512];
    const char *args[MAX_WORDS];

    for (int i = 3; i < n; i++)
        args[i - 3] = words[i];
    memset(&a, 0, sizeof(a));
    if (d->o->parse_module_args != NULL && d->o->parse_module_args(n - 3, args, &a, &err) != 0) {
        emit(d, "pam-stack", KT_DOCTOR_FAIL, KT_ERR_CONFIG,
             "correct the module arguments (pam_kontist(8) lists them); the module refuses to "
             "run with these",
             "%s: %s", where, err.message);
        return;
    }
    if (a.config != NULL && load_as_helper(a.config, &err) != 0) {
        snprintf(fix, sizeof(fix),
                 "make config= name a configuration the helper accepts: owned by root, not "
                 "writable by group or others, with every key kontist.conf(5) requires%s",
                 geteuid() != 0 ? " (or run the doctor as root)" : "");
        emit(d, "pam-stack", geteuid() == 0 ? KT_DOCTOR_FAIL : KT_DOCTOR_WARN, KT_ERR_CONFIG, fix,
             "%s: config=%s is refused by the helper: %s", where, a.config, err.message);
        return;
    }
    if (a.helper != NULL && helper_refused(a.helper, &err) != 0) {
        emit(d, "pam-stack", KT_DOCTOR_FAIL, KT_ERR_CONFIG,
             "install kontist-pam-helper (the kontist-auth package, or make install) owned by "
             "root and not writable by group or others, or point helper= at it",
             "%s: %s", where, err.message);
        return;
    }
    if (strcmp(type, "auth") == 0) {
        if (strcmp(file, "sshd") == 0) {
            d->sshd_stack = true;
            d->sshd_login_timeout = a.login_timeout;
        }
        explain_control(d, where, words[1], &a);
    } else {
        emit(d, "pam-stack", KT_DOCTOR_OK, KT_OK, NULL, "%s: %s %s, arguments accepted", where,
             type, words[1]);
    }
}

/* A stack root does not own, or one others may write, lets them change how logins work. */
static bool stack_file_safe(doctor *d, const char *path, int fd)
{
    struct stat st;

    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        return false;
    /* The stacks of /etc/pam.d are root's; a test copy (--pam-dir) may be the caller's. */
    if ((st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & 022) != 0) {
        char fix[2 * PATH_MAX + 40];

        snprintf(fix, sizeof(fix), "chown root:root %s && chmod 0644 %s", path, path);
        emit(d, "pam-stack", KT_DOCTOR_FAIL, KT_ERR_CONFIG, fix,
             "%s: owned by uid %lu with mode %04o: others than root can change this stack", path,
             (unsigned long)st.st_uid, (unsigned)(st.st_mode & 07777));
        return false;
    }
    return true;
}

/* Reads the next logical line of a pam.d file (backslash continuations joined, comment cut) and
 * splits it into words. Returns the number of words, -1 at the end of the file; *start is the
 * number of the line it began on. */
static int next_pam_line(FILE *f, char *joined, size_t size, char **words, unsigned *lineno,
                         unsigned *start)
{
    char line[4096];
    size_t used = 0;

    joined[0] = '\0';
    while (fgets(line, sizeof(line), f) != NULL) {
        size_t len = strlen(line);
        char *hash;

        ++*lineno;
        if (used == 0)
            *start = *lineno;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        /* A backslash at the end continues the line. */
        if (len > 0 && line[len - 1] == '\\') {
            line[--len] = ' ';
            if (used + len < size) {
                memcpy(joined + used, line, len + 1);
                used += len;
            }
            continue;
        }
        if (used + len < size)
            memcpy(joined + used, line, len + 1);
        if ((hash = strchr(joined, '#')) != NULL)
            *hash = '\0';
        return split_words(joined, words);
    }
    return -1;
}

static bool names_pam_kontist(const char *module)
{
    const char *base = strrchr(module, '/');

    return strcmp(base != NULL ? base + 1 : module, "pam_kontist.so") == 0;
}

static int scan_stack(doctor *d, const char *dir, const char *file)
{
    char path[PATH_MAX], where[PATH_MAX + 32], joined[8192];
    char *words[MAX_WORDS];
    unsigned lineno = 0, start = 0;
    int fd, n, found = 0;
    FILE *f;

    if (snprintf(path, sizeof(path), "%s/%s", dir, file) >= (int)sizeof(path))
        return 0;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return 0;
    f = fdopen(fd, "r");
    if (f == NULL) {
        close(fd);
        return 0;
    }
    while ((n = next_pam_line(f, joined, sizeof(joined), words, &lineno, &start)) >= 0) {
        if (n < 3 || words[0][0] == '@' || !names_pam_kontist(words[2]))
            continue;
        if (found++ == 0 && !stack_file_safe(d, path, fd))
            break;
        snprintf(where, sizeof(where), "%s:%u", path, start);
        check_module_line(d, file, where, words, n);
    }
    fclose(f);
    return found;
}

#define PAM_INCLUDE_DEPTH 8

/* Whether the auth stack of dir/file, or a file it includes (@include, include, substack), has a
 * pam_kontist.so line (with fallback_only, one that goes on to the next module when Kontist did
 * not succeed); where gets that line's file:line and *login_timeout its login_timeout= (0 when
 * not given). */
static bool find_kontist_auth(const char *dir, const char *file, int depth, bool fallback_only,
                              char *where, size_t wsize, long *login_timeout)
{
    char path[PATH_MAX], joined[8192];
    char *words[MAX_WORDS];
    unsigned lineno = 0, start = 0;
    bool found = false;
    int n;
    FILE *f;

    if (depth > PAM_INCLUDE_DEPTH || strstr(file, "..") != NULL)
        return false;
    if (snprintf(path, sizeof(path), "%s/%s", dir,
                 file[0] == '/' ? strrchr(file, '/') + 1 : file) >= (int)sizeof(path))
        return false;
    if ((f = fopen(path, "re")) == NULL)
        return false;
    while (!found && (n = next_pam_line(f, joined, sizeof(joined), words, &lineno, &start)) >= 0) {
        const char *type;

        if (n >= 2 && strcmp(words[0], "@include") == 0) {
            found = find_kontist_auth(dir, words[1], depth + 1, fallback_only, where, wsize,
                                      login_timeout);
            continue;
        }
        if (n < 3)
            continue;
        type = words[0][0] == '-' ? words[0] + 1 : words[0];
        if (strcmp(type, "auth") != 0)
            continue;
        if (strcmp(words[1], "include") == 0 || strcmp(words[1], "substack") == 0) {
            found = find_kontist_auth(dir, words[2], depth + 1, fallback_only, where, wsize,
                                      login_timeout);
            continue;
        }
        if (!names_pam_kontist(words[2]))
            continue;
        {
            bool nouserok = false;
            long timeout = 0;

            for (int i = 3; i < n; i++) {
                nouserok = nouserok || strcmp(words[i], "nouserok") == 0;
                if (strncmp(words[i], "login_timeout=", 14) == 0)
                    timeout = strtol(words[i] + 14, NULL, 10);
            }
            if (!fallback_only || control_falls_back(words[1], nouserok)) {
                snprintf(where, wsize, "%s:%u", path, start);
                *login_timeout = timeout > 0 ? timeout : 0;
                found = true;
            }
        }
    }
    fclose(f);
    return found;
}

/* sudo and su ask for the password of someone already logged in: a fallback there lets whoever
 * can block the network (or fail Kontist otherwise) use the local password instead. */
static void check_privileged_stacks(doctor *d, const char *dir)
{
    static const char *const services[] = {"sudo", "sudo-i", "su", "su-l"};

    for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++) {
        char where[PATH_MAX + 32];

        long timeout;

        if (find_kontist_auth(dir, services[i], 0, true, where, sizeof(where), &timeout))
            emit(d, "pam-stack", KT_DOCTOR_WARN, KT_OK,
                 "give this service a stack of its own that is Kontist or nothing ([success=done "
                 "ignore=ignore default=die] pam_kontist.so nouserok, as examples/pam.d/sudo "
                 "shows), or take the fallback out of the included line",
                 "%s/%s: pam_kontist.so at %s goes on to the next module when Kontist did not "
                 "succeed: %s then accepts the local password",
                 dir, services[i], where, services[i]);
    }
}

static void check_pam(doctor *d)
{
    const char *dir = d->o->pam_dir != NULL ? d->o->pam_dir : DEFAULT_PAM_DIR;
    struct dirent **names = NULL;
    int n, stacks = 0;

    n = scandir(dir, &names, NULL, alphasort);
    if (n < 0) {
        emit(d, "pam-stack", KT_DOCTOR_WARN, KT_OK, "install libpam-runtime", "cannot read %s: %s",
             dir, strerror(errno));
        return;
    }
    for (int i = 0; i < n; i++) {
        if (names[i]->d_name[0] != '.' && scan_stack(d, dir, names[i]->d_name) > 0)
            stacks++;
        free(names[i]);
    }
    free(names);
    check_privileged_stacks(d, dir);
    /* sshd's stack may reach the module only through an included file (common-auth with the
     * pam-auth-update profile): its settings matter all the same. */
    if (!d->sshd_stack) {
        char where[PATH_MAX + 32];
        long timeout = 0;

        if (find_kontist_auth(dir, "sshd", 0, false, where, sizeof(where), &timeout)) {
            d->sshd_stack = true;
            d->sshd_login_timeout = timeout;
        }
    }
    if (stacks == 0)
        emit(d, "pam-stack", KT_DOCTOR_WARN, KT_OK,
             "pam-auth-update --enable kontist, or add pam_kontist.so to a stack as "
             "pam_kontist(8) shows",
             "no stack in %s names pam_kontist.so", dir);
}

/* ---- sshd -------------------------------------------------------------------------------- */

typedef struct sshd_settings {
    char usepam[16];
    char kbd[16];
    char password[16];
    char grace[32];
    const char *source;
} sshd_settings;

long kt_doctor_sshd_time(const char *value)
{
    long total = 0, n = -1;

    if (value == NULL || value[0] == '\0')
        return -1;
    for (const char *p = value; *p != '\0'; p++) {
        long mult;

        if (isdigit((unsigned char)*p)) {
            n = (n < 0 ? 0 : n) * 10 + (*p - '0');
            if (n > 100000000)
                return -1;
            continue;
        }
        switch (tolower((unsigned char)*p)) {
        case 's':
            mult = 1;
            break;
        case 'm':
            mult = 60;
            break;
        case 'h':
            mult = 3600;
            break;
        case 'd':
            mult = 86400;
            break;
        case 'w':
            mult = 604800;
            break;
        default:
            return -1;
        }
        if (n < 0)
            return -1;
        total += n * mult;
        n = -1;
    }
    return n >= 0 ? total + n : total;
}

/* Keeps the first value of each setting, as sshd does. */
static void sshd_setting(sshd_settings *s, const char *key, const char *value)
{
    char *slot = NULL;
    size_t size = 0;

    if (strcasecmp(key, "usepam") == 0) {
        slot = s->usepam;
        size = sizeof(s->usepam);
    } else if (strcasecmp(key, "kbdinteractiveauthentication") == 0 ||
               strcasecmp(key, "challengeresponseauthentication") == 0) {
        slot = s->kbd;
        size = sizeof(s->kbd);
    } else if (strcasecmp(key, "passwordauthentication") == 0) {
        slot = s->password;
        size = sizeof(s->password);
    } else if (strcasecmp(key, "logingracetime") == 0) {
        slot = s->grace;
        size = sizeof(s->grace);
    }
    if (slot != NULL && slot[0] == '\0')
        snprintf(slot, size, "%s", value);
}

/* Parses sshd_config the way sshd reads it for the settings above: first value wins, Include
 * (globs, relative to /etc/ssh) read in place, everything from a file's first Match on belongs
 * to Match blocks and is left out, up to the end of that file only (a Match inside an Include'd
 * file does not reach back into the file that included it). Returns -1 when the file cannot be
 * read, 1 at a Match. */
static int sshd_parse_file(sshd_settings *s, const char *path, int depth)
{
    char line[4096];
    FILE *f;
    int rc = 0;

    if (depth > SSHD_INCLUDE_DEPTH || (f = fopen(path, "re")) == NULL)
        return -1;
    while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
        char *p = line, *key, *value, *end;

        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '#' || *p == '\0' || *p == '\n')
            continue;
        key = p;
        p += strcspn(p, " \t=\r\n");
        if (*p != '\0')
            *p++ = '\0';
        p += strspn(p, " \t=");
        value = p;
        end = value + strlen(value);
        while (end > value && isspace((unsigned char)end[-1]))
            *--end = '\0';
        if (strcasecmp(key, "match") == 0) {
            rc = 1;
        } else if (strcasecmp(key, "include") == 0) {
            char pattern[PATH_MAX], *save = NULL;
            glob_t g;

            for (char *tok = strtok_r(value, " \t", &save); tok != NULL && rc == 0;
                 tok = strtok_r(NULL, " \t", &save)) {
                snprintf(pattern, sizeof(pattern), "%s%s", tok[0] == '/' ? "" : "/etc/ssh/", tok);
                memset(&g, 0, sizeof(g));
                if (glob(pattern, 0, NULL, &g) == 0)
                    for (size_t i = 0; i < g.gl_pathc; i++)
                        /* A Match in an included file ends at that file's end: sshd
                         * restores the parent's state after an Include. */
                        (void)sshd_parse_file(s, g.gl_pathv[i], depth + 1);
                globfree(&g);
            }
        } else {
            sshd_setting(s, key, value);
        }
    }
    fclose(f);
    return rc;
}

/* `sshd -T -f CONFIG`: sshd's own reading of its configuration (defaults included), running
 * exec_path (binary when NULL). Returns 0 when it answered. */
static int sshd_ask(sshd_settings *s, const char *binary, const char *exec_path, const char *config)
{
    char bin[PATH_MAX], conf[PATH_MAX], opt_t[] = "-T", opt_f[] = "-f";
    char env_path[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin", env_lc[] = "LC_ALL=C";
    char *const argv[] = {bin, opt_t, opt_f, conf, NULL};
    char *const envp[] = {env_path, env_lc, NULL};
    posix_spawn_file_actions_t fa;
    char out[65536], *save = NULL;
    size_t used = 0;
    int pipefd[2], status = 0;
    pid_t pid;
    uint64_t deadline = kt_now_ms() + SSHD_T_TIMEOUT_MS;

    if (snprintf(bin, sizeof(bin), "%s", binary) >= (int)sizeof(bin) ||
        snprintf(conf, sizeof(conf), "%s", config) >= (int)sizeof(conf))
        return -1;
    if (exec_path == NULL)
        exec_path = binary;
    if (access(exec_path, X_OK) != 0 || pipe2(pipefd, O_CLOEXEC) != 0)
        return -1;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    if (posix_spawn(&pid, exec_path, &fa, NULL, argv, envp) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        close(pipefd[0]);
        close(pipefd[1]);
        return -1;
    }
    posix_spawn_file_actions_destroy(&fa);
    close(pipefd[1]);
    for (;;) {
        struct pollfd pfd = {pipefd[0], POLLIN, 0};
        uint64_t now = kt_now_ms();
        ssize_t r;

        if (now >= deadline || poll(&pfd, 1, (int)(deadline - now)) <= 0) {
            kill(pid, SIGKILL);
            break;
        }
        r = read(pipefd[0], out + used, sizeof(out) - 1 - used);
        if (r <= 0)
            break;
        used += (size_t)r;
        if (used == sizeof(out) - 1)
            break;
    }
    close(pipefd[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    out[used] = '\0';
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || used == 0)
        return -1;
    for (char *line = strtok_r(out, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char *sp = strchr(line, ' ');

        if (sp != NULL) {
            *sp = '\0';
            sshd_setting(s, line, sp + 1);
        }
    }
    return 0;
}

/* As root, the doctor runs sshd only when only root can have put it there: a root-owned
 * regular file nobody else may write. It is opened once and run through that descriptor
 * (/proc/self/fd), so the file checked is the file run even when a directory on the way can be
 * changed by someone else. Returns the descriptor, or -1 with why filled in. */
static int open_trusted_binary(const char *binary, char *why, size_t wsize)
{
    struct stat st;
    /* Not O_CLOEXEC: a script run through /proc/self/fd needs the descriptor after exec (sshd
     * inherits one read-only descriptor of its own file, nothing more). */
    int fd = open(binary, O_RDONLY | O_NOCTTY | O_NONBLOCK);

    if (fd < 0) {
        snprintf(why, wsize, "%s", strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, wsize, "not a regular file");
    } else if (st.st_uid != 0 || (st.st_mode & 022) != 0) {
        snprintf(why, wsize, "owned by uid %lu with mode %04o, not root's alone",
                 (unsigned long)st.st_uid, (unsigned)(st.st_mode & 07777));
    } else {
        return fd;
    }
    close(fd);
    return -1;
}

static void check_sshd(doctor *d)
{
    const char *config = d->o->sshd_config != NULL ? d->o->sshd_config : DEFAULT_SSHD_CONFIG;
    const char *binary = d->o->sshd_binary != NULL ? d->o->sshd_binary : DEFAULT_SSHD_BINARY;
    sshd_settings s;
    long grace, timeout;
    char fix[400], exec_path[64];
    int trusted_fd = -1;
    bool asked;

    memset(&s, 0, sizeof(s));
    if (!d->sshd_stack) {
        emit(d, "sshd", KT_DOCTOR_SKIP, KT_OK, NULL,
             "the sshd PAM stack does not use pam_kontist.so");
        return;
    }
    if (access(config, F_OK) != 0) {
        emit(d, "sshd", KT_DOCTOR_SKIP, KT_OK, NULL, "%s: %s (sshd not installed?)", config,
             strerror(errno));
        return;
    }
    if (binary[0] != '\0' && geteuid() == 0) {
        char why[128];

        if ((trusted_fd = open_trusted_binary(binary, why, sizeof(why))) < 0) {
            emit(d, "sshd", KT_DOCTOR_WARN, KT_OK,
                 "chown root:root the sshd binary and chmod go-w it, or pass --sshd ''",
                 "%s not run as root: %s; reading %s instead", binary, why, config);
            binary = "";
        } else {
            snprintf(exec_path, sizeof(exec_path), "/proc/self/fd/%d", trusted_fd);
        }
    }
    asked =
        binary[0] != '\0' && sshd_ask(&s, binary, trusted_fd >= 0 ? exec_path : NULL, config) == 0;
    if (trusted_fd >= 0)
        close(trusted_fd);
    if (asked) {
        s.source = "sshd -T";
    } else {
        memset(&s, 0, sizeof(s));
        if (sshd_parse_file(&s, config, 0) < 0) {
            emit(d, "sshd", KT_DOCTOR_WARN, KT_OK, "run the doctor as root", "cannot read %s: %s",
                 config, strerror(errno));
            return;
        }
        s.source = config;
    }
    /* OpenSSH's defaults for what the configuration leaves out. */
    if (s.usepam[0] == '\0')
        snprintf(s.usepam, sizeof(s.usepam), "no");
    if (s.kbd[0] == '\0')
        snprintf(s.kbd, sizeof(s.kbd), "yes");
    if (s.password[0] == '\0')
        snprintf(s.password, sizeof(s.password), "yes");
    if (s.grace[0] == '\0')
        snprintf(s.grace, sizeof(s.grace), "120");

    if (strcasecmp(s.usepam, "yes") != 0)
        emit(d, "sshd-usepam", KT_DOCTOR_FAIL, KT_ERR_CONFIG,
             "set UsePAM yes in sshd_config and reload sshd (systemctl reload ssh)",
             "UsePAM %s (%s): sshd never runs the PAM stack, so pam_kontist is not used", s.usepam,
             s.source);
    else
        emit(d, "sshd-usepam", KT_DOCTOR_OK, KT_OK, NULL, "UsePAM yes (%s)", s.source);

    if (strcasecmp(s.kbd, "yes") == 0)
        emit(d, "sshd-kbdinteractive", KT_DOCTOR_OK, KT_OK, NULL,
             "KbdInteractiveAuthentication yes (%s)", s.source);
    else if (strcasecmp(s.password, "yes") == 0)
        emit(d, "sshd-kbdinteractive", KT_DOCTOR_WARN, KT_OK,
             "set KbdInteractiveAuthentication yes (and PasswordAuthentication no) in "
             "sshd_config",
             "KbdInteractiveAuthentication %s (%s): the password reaches PAM only through "
             "sshd's own password authentication",
             s.kbd, s.source);
    else
        emit(d, "sshd-kbdinteractive", KT_DOCTOR_FAIL, KT_ERR_CONFIG,
             "set KbdInteractiveAuthentication yes in sshd_config and reload sshd",
             "KbdInteractiveAuthentication %s and PasswordAuthentication %s (%s): no password "
             "can reach the PAM stack",
             s.kbd, s.password, s.source);

    grace = kt_doctor_sshd_time(s.grace);
    timeout = d->sshd_login_timeout > 0 ? d->sshd_login_timeout : d->cfg.login_timeout;
    if (grace < 0) {
        emit(d, "sshd-logingracetime", KT_DOCTOR_WARN, KT_OK, "correct LoginGraceTime",
             "LoginGraceTime %s (%s) cannot be read", s.grace, s.source);
    } else if (grace == 0) {
        emit(d, "sshd-logingracetime", KT_DOCTOR_OK, KT_OK, NULL,
             "LoginGraceTime 0 (no limit, %s); login_timeout %ld s", s.source, timeout);
    } else if (timeout + SSHD_GRACE_MARGIN_S >= grace) {
        snprintf(fix, sizeof(fix),
                 "raise LoginGraceTime above %ld in sshd_config, or lower login_timeout= on the "
                 "sshd stack's pam_kontist line",
                 timeout + SSHD_GRACE_MARGIN_S);
        emit(d, "sshd-logingracetime", KT_DOCTOR_FAIL, KT_ERR_CONFIG, fix,
             "LoginGraceTime %ld s (%s) leaves no room for login_timeout %ld s: sshd cuts a slow "
             "login off before the module can answer",
             grace, s.source, timeout);
    } else {
        emit(d, "sshd-logingracetime", KT_DOCTOR_OK, KT_OK, NULL,
             "LoginGraceTime %ld s (%s) > login_timeout %ld s", grace, s.source, timeout);
    }
}

/* ---- all of it --------------------------------------------------------------------------- */

int kt_doctor_run(const kt_doctor_options *opts, kt_doctor_report_fn report, void *data,
                  kt_doctor_summary *summary)
{
    doctor d;
    kt_ctx *ctx = NULL;
    kt_error err = {KT_OK, ""};

    memset(summary, 0, sizeof(*summary));
    memset(&d, 0, sizeof(d));
    d.o = opts;
    d.report = report;
    d.data = data;
    d.sum = summary;
    kt_config_init(&d.cfg);

    check_config(&d);
    if (!d.cfg_ok) {
        emit(&d, "api", KT_DOCTOR_SKIP, KT_OK, NULL, "not checked: no usable configuration");
    } else if (!opts->network) {
        emit(&d, "api", KT_DOCTOR_SKIP, KT_OK, NULL, "not checked (--offline)");
    } else {
        check_dns_tcp(&d);
        ctx = kt_ctx_new(&d.cfg, NULL, &err);
        if (ctx == NULL) {
            emit(&d, "tls", KT_DOCTOR_FAIL, err.kind, "see the message", "%s", err.message);
        } else {
            kt_ctx_start_deadline(ctx);
            check_api(&d, ctx);
        }
    }
    check_cache(&d);
    check_device(&d, ctx);
    if (opts->system) {
        check_pam(&d);
        check_sshd(&d);
    }
    kt_ctx_free(ctx);
    kt_token_set_free(&d.tokens);
    kt_config_free(&d.cfg);
    return summary->fail == 0 ? 0 : -1;
}
