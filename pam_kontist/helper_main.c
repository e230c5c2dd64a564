/* kontist-pam-helper: the part of a pam_kontist login that talks to the bank.
 *
 * pam_kontist.so starts it for every login (see spawn.c for why a process of its own), as root,
 * with an empty environment and one socket as standard input and output. It reads the request
 * (wire.h), finds root's pin for the user, runs the password grant and the device challenge,
 * writes the confirmed tokens into the user's cache with the user's identity, and answers with
 * the outcome. A key on a PKCS#11 token is opened only after the password grant succeeded; a
 * PIN it needs is asked for through the module, once (ask_for_pin). Run by anyone else it can do
 * only what that user could do anyway.
 *
 * It is not meant to be started by hand: it says so and exits 2 when its input is a terminal. */
#include <config.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "pam_helper.h"
#include "wire.h"

/* Past its own flow deadline the helper ends itself, whatever it is stuck in (a slow token, a
 * cache lock): the module must never wait for it beyond login_timeout. */
#define SELF_DEADLINE_MARGIN 3
/* How long the helper waits for the module's answer to a PIN question: the person is typing, and
 * the host bounds that (sshd's LoginGraceTime is 120 s); this is only the helper's own limit. */
#define PIN_WAIT_SECONDS 120

typedef struct request {
    char *buf; /* the whole request; holds the password, wiped at exit */
    size_t len;
    const char *password; /* inside buf */
    char op[16], user[256], home[PATH_MAX], config[PATH_MAX], authfile[PATH_MAX];
    char mfa[16];
    uid_t uid;
    gid_t gid;
    long login_timeout;
    bool authfile_given, nocache;
} request;

typedef struct answer {
    kt_error err;
    bool pinned;
    const char *kontist_user;
    const char *device_id;
    const char *cache; /* "written", "failed", "skipped" */
    kt_error cache_err;
    long connections;
    const char *factor;    /* the factor the login used */
    char passed_over[384]; /* why a device was passed over for push */
} answer;

/* No core file, no ptrace by the user the helper acts for, whatever the system's defaults. */
static void harden(void)
{
    struct rlimit none = {0, 0};

    setrlimit(RLIMIT_CORE, &none);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    signal(SIGPIPE, SIG_IGN);
}

/* The module resets the resource limits before the exec, but where root lacks CAP_SYS_RESOURCE
 * (some containers) a hard limit a user lowered stays lowered. A request that fails for want of
 * descriptors or memory must not look like an outage (a stack's fallback): below these limits
 * the helper does not try at all, and says it is a local failure. */
static int check_limits(kt_error *err)
{
    static const struct {
        int resource;
        const char *name;
        rlim_t min;
    } mins[] = {
        {RLIMIT_NOFILE, "open files", 64},
        {RLIMIT_AS, "address space", (rlim_t)1 << 30},
        {RLIMIT_DATA, "data size", (rlim_t)1 << 30},
        {RLIMIT_STACK, "stack size", (rlim_t)1 << 20},
        {RLIMIT_FSIZE, "file size", (rlim_t)1 << 20},
        {RLIMIT_CPU, "CPU time", 300},
    };

    for (size_t i = 0; i < sizeof(mins) / sizeof(mins[0]); i++) {
        struct rlimit rl;

        if (getrlimit(mins[i].resource, &rl) != 0)
            return kt_error_set(err, KT_ERR_INTERNAL, "cannot read the %s limit", mins[i].name);
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < mins[i].min &&
            rl.rlim_max != rl.rlim_cur) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(mins[i].resource, &rl);
        }
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < mins[i].min)
            return kt_error_set(err, KT_ERR_INTERNAL, "resource limit too low: %s", mins[i].name);
    }
    return 0;
}

/* Whether the module that started the helper is still waiting for it: when it is gone (its host
 * gave up on the login), nothing may be written for that login. The module shut down only its
 * writing side; a hang-up means it closed the socket altogether. */
static bool module_gone(void)
{
    struct pollfd pfd = {.fd = STDOUT_FILENO, .events = 0};

    return poll(&pfd, 1, 0) != 0 && (pfd.revents & (POLLHUP | POLLERR | POLLNVAL)) != 0;
}

/* Whether buf (len bytes) holds a whole request: the fields, the separator line and as many
 * bytes of password as password_len says. */
static bool request_complete(const char *buf, size_t len)
{
    const char *sep = strstr(buf, "\n" KT_WIRE_PASSWORD_LINE);
    char value[16], *end = NULL;
    size_t head, want;
    unsigned long n;

    if (sep == NULL)
        return false;
    head = (size_t)(sep - buf) + 1;
    if (!kt_wire_get(buf, head, "password_len", value, sizeof(value)))
        return true; /* malformed: parse_request says so */
    errno = 0;
    n = strtoul(value, &end, 10);
    if (errno != 0 || *end != '\0' || n > KT_WIRE_MAX)
        return true;
    want = head + strlen(KT_WIRE_PASSWORD_LINE) + (size_t)n;
    return len >= want;
}

/* The module keeps its end open for the PIN question (ask_for_pin): the request is read up to its
 * own length, not to the end of the stream. */
static int read_request(request *rq, kt_error *err)
{
    size_t cap = KT_WIRE_MAX;

    rq->buf = calloc(1, cap + 1);
    if (rq->buf == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    while (!request_complete(rq->buf, rq->len)) {
        ssize_t n = read(STDIN_FILENO, rq->buf + rq->len, cap - rq->len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return kt_error_set(err, KT_ERR_INTERNAL, "reading the request: %s", strerror(errno));
        if (n == 0)
            break;
        rq->len += (size_t)n;
        rq->buf[rq->len] = '\0';
        if (rq->len == cap)
            return kt_error_set(err, KT_ERR_INTERNAL, "request too long");
    }
    rq->buf[rq->len] = '\0';
    return 0;
}

static bool get_number(const char *text, size_t len, const char *key, long min, long max, long *out)
{
    char value[32], *end = NULL;
    long v;

    if (!kt_wire_get(text, len, key, value, sizeof(value)) || value[0] == '\0')
        return false;
    errno = 0;
    v = strtol(value, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static int parse_request(request *rq, kt_error *err)
{
    const char *sep = strstr(rq->buf, "\n" KT_WIRE_PASSWORD_LINE);
    size_t head;
    long uid, gid, flag = 0, password_len = 0;
    char given[4] = "", nocache[4] = "", version[8] = "";
    bool ok;

    if (sep == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "malformed request");
    head = (size_t)(sep - rq->buf) + 1;
    rq->password = sep + 1 + strlen(KT_WIRE_PASSWORD_LINE);
    /* A module from another build may mean something else by the same lines: refuse it. */
    if (!kt_wire_get(rq->buf, head, "version", version, sizeof(version)) ||
        strcmp(version, KT_WIRE_VERSION) != 0)
        return kt_error_set(err, KT_ERR_CONFIG, "the module and kontist-pam-helper do not match");
    ok = kt_wire_get(rq->buf, head, "op", rq->op, sizeof(rq->op)) &&
         kt_wire_get(rq->buf, head, "user", rq->user, sizeof(rq->user)) &&
         kt_wire_get(rq->buf, head, "home", rq->home, sizeof(rq->home)) &&
         kt_wire_get(rq->buf, head, "config", rq->config, sizeof(rq->config)) &&
         kt_wire_get(rq->buf, head, "authfile", rq->authfile, sizeof(rq->authfile)) &&
         kt_wire_get(rq->buf, head, "authfile_given", given, sizeof(given)) &&
         kt_wire_get(rq->buf, head, "mfa", rq->mfa, sizeof(rq->mfa)) &&
         kt_wire_get(rq->buf, head, "nocache", nocache, sizeof(nocache)) &&
         /* (uid_t)-1 and (gid_t)-1 mean "unchanged" to setresuid: never a user. */
         get_number(rq->buf, head, "uid", 0, (long)UINT32_MAX - 1, &uid) &&
         get_number(rq->buf, head, "gid", 0, (long)UINT32_MAX - 1, &gid) &&
         get_number(rq->buf, head, "login_timeout", 0, 3600, &flag) &&
         get_number(rq->buf, head, "password_len", 0, KT_WIRE_MAX, &password_len);
    if (!ok || rq->user[0] == '\0' || rq->home[0] != '/' || rq->config[0] != '/' ||
        rq->authfile[0] != '/')
        return kt_error_set(err, KT_ERR_INTERNAL, "malformed request");
    /* Exactly password_len bytes of password, nothing after them, no NUL inside. */
    if ((size_t)password_len != rq->len - (size_t)(rq->password - rq->buf) ||
        memchr(rq->password, '\0', (size_t)password_len) != NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "malformed request");
    rq->uid = (uid_t)uid;
    rq->gid = (gid_t)gid;
    rq->login_timeout = flag;
    rq->authfile_given = strcmp(given, "1") == 0;
    rq->nocache = strcmp(nocache, "1") == 0;
    return 0;
}

static int load_config(const request *rq, kt_config *cfg, kt_error *err)
{
    kt_owner_policy owners;

    kt_pam_trusted_owners(&owners);
    if (kt_config_load_file(cfg, rq->config, &owners, false, NULL, err) == 0) {
        kt_error verr = {KT_OK, ""};

        if (rq->login_timeout > 0)
            cfg->login_timeout = rq->login_timeout;
        /* The module's own bound holds whatever the file says: sshd's LoginGraceTime is 120 s. */
        if (cfg->login_timeout > 110)
            cfg->login_timeout = 110;
        /* A file the configuration names that cannot be read (a CA file that is not there) is
         * the configuration's fault, not an outage: it must not open a stack's fallback. */
        if (kt_config_validate(cfg, &verr) != 0)
            kt_error_set(err, verr.kind, "%s: %s", rq->config, verr.message);
        else if (kt_config_check_files(cfg, err) == 0)
            return 0;
    }
    /* Whatever went wrong with the file (content, owner, mode, missing), the service is
     * misconfigured. */
    if (err->kind != KT_ERR_INTERNAL)
        err->kind = KT_ERR_CONFIG;
    return -1;
}

/* The module's conversation is not available here: device MFA needs none, and nothing the core
 * would say could reach the person in time under sshd anyway. */
/* The push wait notice (wire.h): written at once, ahead of the answer, so that the module can tell
 * the person while this process polls the challenge. */
static void announce_push_wait(void *data, const char *instruction, long seconds_left)
{
    char line[64];
    int n;

    (void)data;
    (void)instruction; /* the module words its own prompt */
    n = snprintf(line, sizeof(line), "%s=%ld\n", KT_WIRE_PUSH_WAIT, seconds_left);
    if (n > 0 && (size_t)n < sizeof(line))
        (void)kt_wire_send_all(STDOUT_FILENO, line, (size_t)n);
}

/* A module that has gone away (its host gave up on the login) stops the wait for the app. */
static bool module_gave_up(void *data)
{
    (void)data;
    return module_gone();
}

static int no_prompt(void *data, const char *message, bool echo, char **reply)
{
    (void)data;
    (void)message;
    (void)echo;
    *reply = NULL;
    return -1;
}

static void no_message(void *data, const char *message)
{
    (void)data;
    (void)message;
}

typedef struct login_to_save {
    kt_ctx *ctx;
    kt_token_set *tokens;
} login_to_save;

/* Where a token's PIN comes from here: the module asks the person, in the PAM conversation, once
 * the bank has accepted the password (wire.h), and only once per login. */
typedef struct pin_asker {
    long login_timeout;
    bool asked;
} pin_asker;

static int read_exactly(int fd, char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = read(fd, buf, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The module's answer: a line `pin_len=N`, then N bytes of PIN (0: the conversation gave none). */
static int read_pin_answer(char *pin, size_t size, kt_error *err)
{
    char line[32], *end = NULL;
    size_t n = 0;
    unsigned long len;

    for (;;) {
        if (n + 1 >= sizeof(line) || read_exactly(STDIN_FILENO, line + n, 1) != 0)
            return kt_error_set(err, KT_ERR_INTERNAL, "no PIN answer from the module");
        if (line[n] == '\n')
            break;
        n++;
    }
    line[n] = '\0';
    if (strncmp(line, "pin_len=", 8) != 0)
        return kt_error_set(err, KT_ERR_INTERNAL, "malformed PIN answer from the module");
    errno = 0;
    len = strtoul(line + 8, &end, 10);
    if (errno != 0 || *end != '\0' || line[8] == '\0' || len > KT_WIRE_PIN_MAX || len >= size)
        return kt_error_set(err, KT_ERR_INTERNAL, "malformed PIN answer from the module");
    if (len == 0)
        return kt_error_set(err, KT_ERR_CONV, "no PIN from the conversation");
    if (read_exactly(STDIN_FILENO, pin, len) != 0) {
        kt_wipe(pin, size);
        return kt_error_set(err, KT_ERR_INTERNAL, "no PIN answer from the module");
    }
    pin[len] = '\0';
    if (memchr(pin, '\0', len) != NULL) {
        kt_wipe(pin, size);
        return kt_error_set(err, KT_ERR_INTERNAL, "malformed PIN answer from the module");
    }
    return 0;
}

static int ask_for_pin(void *data, const char *token, char *pin, size_t size, kt_error *err)
{
    pin_asker *asker = data;
    char question[128];
    size_t len = 0;
    int rc;

    /* A token counts failed PINs: one question per login, whatever asks again. */
    if (asker->asked)
        return kt_error_set(err, KT_ERR_KEY_UNUSABLE, "token \"%s\" needs a PIN again", token);
    asker->asked = true;
    if (!kt_wire_add(question, sizeof(question), &len, "ask_pin", token) ||
        kt_wire_send_all(STDOUT_FILENO, question, len) != 0)
        return kt_error_set(err, KT_ERR_INTERNAL, "cannot ask the module for the PIN");
    /* The person types now: the helper's own bound is the PIN wait, then its flow bound again. */
    alarm(PIN_WAIT_SECONDS);
    rc = read_pin_answer(pin, size, err);
    alarm((unsigned)(asker->login_timeout + SELF_DEADLINE_MARGIN));
    if (rc != 0 && err->kind == KT_ERR_CONV)
        kt_error_set(err, KT_ERR_CONV, "no PIN for token \"%s\" from the conversation", token);
    return rc;
}

typedef struct hardware_key_loader {
    kt_pam_user *u;
    pin_asker asker;
} hardware_key_loader;

static EVP_PKEY *load_hardware_key(void *data, kt_error *err)
{
    hardware_key_loader *l = data;

    return kt_pam_user_load_hardware_key(l->u, ask_for_pin, &l->asker, err);
}

static int store_tokens(const kt_pam_user *u, void *data, kt_error *err)
{
    login_to_save *save = data;

    return kt_session_save_login(save->ctx, &u->paths, save->tokens, err);
}

static int erase_tokens(const kt_pam_user *u, void *data, kt_error *err)
{
    (void)data;
    return kt_session_logout(&u->paths, false, err);
}

/* Only root's pin, read as root: no key, no configuration, nothing the user controls. */
static int user_is_pinned(const request *rq, kt_error *err)
{
    kt_device_record rec;
    int rc = kt_pam_authfile_lookup(rq->authfile, !rq->authfile_given, rq->user, &rec, err);

    if (rc == 0)
        kt_record_free(&rec);
    return rc;
}

/* Which factor the login uses: the module's order, with the user's device when it is there and
 * its key loads. Loading fails over to push only where kt_mfa_decide allows it (no device, a key
 * that does not load); a token's PIN is never involved before this choice (it comes after the
 * password), and a wrong one later is the token's answer, never a reason for another factor. */
static int choose_factor(kt_pam_user *u, const kt_mfa_order *order, int load_rc,
                         const kt_error *load_err, kt_mfa_decision *dec, answer *ans)
{
    kt_device_selection sel;
    int rc;

    memset(&sel, 0, sizeof(sel));
    /* kt_pam_user_load has already applied root's pin and the record's identity: what is left
     * to decide is whether the device is usable. A token or TPM key is opened only after the
     * password: it counts as usable, and one that fails then ends the login. */
    sel.choice =
        load_rc == 0 && (u->key != NULL || u->key_after_password) ? KT_DEVICE_USE : KT_DEVICE_NONE;
    sel.key = u->key;
    sel.key_after_password = u->key_after_password;
    rc = kt_mfa_decide(order, &sel, load_rc, load_err, dec, &ans->err);
    if (rc == 0 && dec->factor == KT_MFA_PUSH)
        snprintf(ans->passed_over, sizeof(ans->passed_over), "%s", dec->passed_over);
    return rc;
}

static bool order_has(const kt_mfa_order *order, kt_mfa_factor f)
{
    for (unsigned i = 0; i < order->count; i++)
        if (order->factor[i] == f)
            return true;
    return false;
}

static int run_login(const request *rq, kt_pam_user *u, answer *ans)
{
    kt_conv conv = {no_prompt, no_message, NULL};
    hardware_key_loader loader = {u, {0, false}};
    kt_conv_progress progress = {NULL, module_gave_up, NULL, announce_push_wait};
    kt_token_set tokens;
    kt_config cfg;
    kt_ctx *ctx = NULL;
    kt_mfa_order order;
    kt_mfa_decision dec;
    kt_error load_err = {KT_OK, ""};
    bool device;
    int rc = -1, load_rc;

    memset(&tokens, 0, sizeof(tokens));
    memset(&dec, 0, sizeof(dec));
    kt_config_init(&cfg);
    /* The module's mfa= decides, never a file: the configuration's `mfa` is for kontist-auth. */
    if (kt_mfa_order_parse(rq->mfa, true, &order, &ans->err) != 0) {
        ans->err.kind = KT_ERR_CONFIG;
        goto out;
    }
    device = order_has(&order, KT_MFA_DEVICE);
    /* Root's pin first, the configuration after: a user nobody pinned is not enrolled whatever
     * state the configuration is in, so a broken or missing kontist.conf cannot turn every
     * account's login (root's too, under default=die) into a service error. */
    if (user_is_pinned(rq, &ans->err) != 0)
        goto out;
    if (load_config(rq, &cfg, &ans->err) != 0)
        goto out;
    /* The alarm bounds loading the key too: a token that hangs (a slow card, a module stuck on
     * a reader) ends the helper, and the module has its answer within login_timeout. */
    alarm((unsigned)(cfg.login_timeout + SELF_DEADLINE_MARGIN));
    loader.asker.login_timeout = cfg.login_timeout;
    /* Only root's configuration says where the TPM is: the helper's environment is empty, and
     * would be ignored if it were not. No TSS fallback to a TCP port anyone could listen on. */
    if (kt_key_set_tpm_tcti(cfg.tpm_tcti, false, &ans->err) != 0)
        goto out;
    /* Nor may a user's record make this process load a module root did not name. */
    if (kt_key_set_pkcs11_modules(cfg.pkcs11_modules, false, &ans->err) != 0)
        goto out;
    /* No PIN can be asked for here: a token or TPM key is left out (key_after_password) and
     * opened only once the bank has accepted the password (load_hardware_key). */
    kt_key_set_pin_prompt(NULL, NULL);
    load_rc = kt_pam_user_load(u, rq->authfile, !rq->authfile_given, device, &load_err);
    /* Reported even when loading failed: a pinned user stays pinned (no nouserok) whatever
     * went wrong with their device. */
    ans->pinned = u->pinned;
    ans->kontist_user = u->rec.username;
    ans->device_id = device ? u->rec.device_id : NULL;
    /* Only a pinned user whose identity is settled may go on to another factor: an unpinned
     * user, another identity in the record, an unsafe file stop here (kt_mfa_decide). */
    if (load_rc != 0 && (!u->pinned || load_err.kind != KT_ERR_KEY_UNUSABLE)) {
        kt_error_set(&ans->err, load_err.kind, "%s", load_err.message);
        goto out;
    }
    if (choose_factor(u, &order, load_rc, &load_err, &dec, ans) != 0)
        goto out;
    ans->factor = kt_mfa_factor_name(dec.factor);
    ans->device_id = dec.factor == KT_MFA_DEVICE ? u->rec.device_id : NULL;
    ctx = kt_ctx_new(&cfg, &conv, &ans->err);
    if (ctx == NULL)
        goto out;
    kt_ctx_set_progress(ctx, &progress);
    {
        kt_login_params params = {
            .username = u->rec.username,
            .password = rq->password,
            .device_id = dec.factor == KT_MFA_DEVICE ? u->rec.device_id : NULL,
            .key = dec.factor == KT_MFA_DEVICE ? u->key : NULL,
            .load_key =
                dec.factor == KT_MFA_DEVICE && u->key_after_password ? load_hardware_key : NULL,
            .load_key_data = &loader,
            .push = dec.factor == KT_MFA_PUSH,
        };

        rc = kt_flow_login(ctx, &params, &tokens, &ans->err);
    }
    ans->connections = kt_ctx_connections(ctx);
    if (rc == 0 && dec.factor != KT_MFA_NONE && !tokens.confirmed)
        rc = kt_error_set(&ans->err, KT_ERR_PROTOCOL,
                          "the MFA step was accepted but the token is not confirmed");
    if (rc == 0 && tokens.access_token == NULL)
        rc = kt_error_set(&ans->err, KT_ERR_PROTOCOL, "the login gave no access token");
    if (rc != 0)
        goto out;
    if (module_gone())
        rc = kt_error_set(&ans->err, KT_ERR_INTERNAL, "the module is gone: nothing written");
    else if (rq->nocache)
        ans->cache = "skipped";
    else {
        login_to_save save = {ctx, &tokens};

        ans->cache =
            kt_pam_as_user(u, store_tokens, &save, &ans->cache_err) == 0 ? "written" : "failed";
    }
out:
    kt_ctx_free(ctx);
    kt_token_set_free(&tokens);
    kt_config_free(&cfg);
    return rc;
}

static int run_logout(kt_pam_user *u, answer *ans)
{
    return kt_pam_as_user(u, erase_tokens, NULL, &ans->err);
}

static void send_answer(const answer *ans)
{
    char buf[KT_WIRE_MAX], num[32];
    size_t len = 0;

    buf[0] = '\0';
    snprintf(num, sizeof(num), "%ld", ans->connections);
    kt_wire_add(buf, sizeof(buf), &len, "kind", kt_err_kind_name(ans->err.kind));
    kt_wire_add(buf, sizeof(buf), &len, "pinned", ans->pinned ? "1" : "0");
    kt_wire_add(buf, sizeof(buf), &len, "kontist_user", ans->kontist_user);
    kt_wire_add(buf, sizeof(buf), &len, "device_id", ans->device_id);
    kt_wire_add(buf, sizeof(buf), &len, "cache", ans->cache);
    kt_wire_add(buf, sizeof(buf), &len, "cache_reason", ans->cache_err.message);
    kt_wire_add(buf, sizeof(buf), &len, "connections", num);
    kt_wire_add(buf, sizeof(buf), &len, "reason", ans->err.message);
    kt_wire_add(buf, sizeof(buf), &len, "factor", ans->factor);
    kt_wire_add(buf, sizeof(buf), &len, "passed_over", ans->passed_over);
    (void)kt_wire_send_all(STDOUT_FILENO, buf, len);
}

int main(int argc, char **argv)
{
    request rq;
    answer ans;
    kt_pam_user u;

    (void)argv;
    harden();
    if (argc > 1 || isatty(STDIN_FILENO)) {
        fprintf(stderr, "kontist-pam-helper: run by pam_kontist.so only\n");
        return 2;
    }
    memset(&rq, 0, sizeof(rq));
    memset(&ans, 0, sizeof(ans));
    memset(&u, 0, sizeof(u));
    if (check_limits(&ans.err) == 0 && read_request(&rq, &ans.err) == 0 &&
        parse_request(&rq, &ans.err) == 0) {
        u.name = rq.user;
        u.parent = getppid();
        u.uid = rq.uid;
        u.gid = rq.gid;
        if (kt_paths_for_home(&u.paths, rq.home, &ans.err) == 0) {
            if (strcmp(rq.op, "login") == 0)
                run_login(&rq, &u, &ans);
            else if (strcmp(rq.op, "logout") == 0)
                run_logout(&u, &ans);
            else
                kt_error_set(&ans.err, KT_ERR_INTERNAL, "unknown operation");
        }
    }
    send_answer(&ans);
    kt_pam_user_free(&u);
    if (rq.buf != NULL) {
        kt_wipe(rq.buf, rq.len);
        free(rq.buf);
    }
    return ans.err.kind == KT_OK ? 0 : 1;
}
