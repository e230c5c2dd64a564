/* A small PAM application for the module's tests, run under pam_wrapper:
 *
 *   pam_driver [options] SERVICE USER[,USER...]
 *
 * Options: --ops auth,setcred-establish,... (auth, setcred-establish|reinit|refresh|delete, open,
 * close, acct, chauthtok, setuser:NAME, leak, free-secrets), --expect CODE,... (one PAM code
 * name per op), --password-file FILE (answer to hidden prompts), --pin-file FILE (answer to
 * "PIN for token" prompts), --conv answer|fail|empty,
 * --rhost HOST, --silent, --repeat N, --threads N, --result FILE.
 *
 * It runs a sequence of PAM calls (--ops) on one handle, optionally many times (--repeat) in
 * several threads at once (--threads), each thread with its own handles, and writes what
 * happened as JSON to --result. It never writes to stdout or stderr itself unless its own
 * arguments are wrong, so anything found there came from the module.
 *
 * Its own copies of the password are wiped before they are freed, so that a check of freed memory
 * (tests/pam/freescan.c) finds only what libpam and the module leave behind.
 *
 * It also stands in for syslog: when KT_TEST_SYSLOG names a file, every syslog call of the
 * process (libpam's pam_syslog included; run with PAM_WRAPPER_USE_SYSLOG=1 and
 * PAM_WRAPPER_DISABLE_DEEPBIND=1) appends "<priority> message" to that file instead of going to
 * /dev/log. The driver is linked with -export-dynamic so libpam binds to these definitions. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <security/pam_appl.h>

#define MAX_OPS 16
#define MAX_RECORDS 32
#define MAX_THREADS 64

/* --- syslog stand-in ------------------------------------------------------------------------- */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void openlog(const char *ident, int option, int facility);
void closelog(void);
void syslog(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void vsyslog(int priority, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
void __syslog_chk(int priority, int flag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void __vsyslog_chk(int priority, int flag, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

void openlog(const char *ident, int option, int facility)
{
}

void closelog(void)
{
}

void vsyslog(int priority, const char *fmt, va_list ap)
{
    const char *path = getenv("KT_TEST_SYSLOG");
    char line[2048];
    int fd, n, m;

    if (path == NULL)
        return;
    n = snprintf(line, sizeof(line), "%d ", priority);
    m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    if (m < 0)
        return;
    n += m < (int)(sizeof(line) - (size_t)n - 1) ? m : (int)(sizeof(line) - (size_t)n - 2);
    line[n++] = '\n';
    pthread_mutex_lock(&log_lock);
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) {
        if (write(fd, line, (size_t)n) < 0) {
            /* nothing sensible to do in a test logger */
        }
        close(fd);
    }
    pthread_mutex_unlock(&log_lock);
}

void syslog(int priority, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsyslog(priority, fmt, ap);
    va_end(ap);
}

void __vsyslog_chk(int priority, int flag, const char *fmt, va_list ap)
{
    vsyslog(priority, fmt, ap);
}

void __syslog_chk(int priority, int flag, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsyslog(priority, fmt, ap);
    va_end(ap);
}

/* --- options --------------------------------------------------------------------------------- */

typedef enum conv_mode { CONV_ANSWER, CONV_FAIL, CONV_EMPTY } conv_mode;

typedef struct options {
    const char *service;
    int nusers;
    char *users[MAX_THREADS]; /* thread t logs in as users[t % nusers] */
    const char *rhost;
    const char *result;
    char *password; /* NULL: no answer to password prompts */
    char *pin;      /* answer to "PIN for token" prompts; NULL: the password is the answer */
    conv_mode conv;
    int silent;
    int nops;
    char *ops[MAX_OPS];
    int nexpect;
    int expect[MAX_OPS];
    long repeat;
    int threads;
} options;

static const struct {
    const char *name;
    int code;
} code_names[] = {
    {"PAM_SUCCESS", PAM_SUCCESS},
    {"PAM_OPEN_ERR", PAM_OPEN_ERR},
    {"PAM_SYMBOL_ERR", PAM_SYMBOL_ERR},
    {"PAM_SERVICE_ERR", PAM_SERVICE_ERR},
    {"PAM_SYSTEM_ERR", PAM_SYSTEM_ERR},
    {"PAM_BUF_ERR", PAM_BUF_ERR},
    {"PAM_PERM_DENIED", PAM_PERM_DENIED},
    {"PAM_AUTH_ERR", PAM_AUTH_ERR},
    {"PAM_CRED_INSUFFICIENT", PAM_CRED_INSUFFICIENT},
    {"PAM_AUTHINFO_UNAVAIL", PAM_AUTHINFO_UNAVAIL},
    {"PAM_USER_UNKNOWN", PAM_USER_UNKNOWN},
    {"PAM_MAXTRIES", PAM_MAXTRIES},
    {"PAM_NEW_AUTHTOK_REQD", PAM_NEW_AUTHTOK_REQD},
    {"PAM_ACCT_EXPIRED", PAM_ACCT_EXPIRED},
    {"PAM_SESSION_ERR", PAM_SESSION_ERR},
    {"PAM_CRED_UNAVAIL", PAM_CRED_UNAVAIL},
    {"PAM_CRED_EXPIRED", PAM_CRED_EXPIRED},
    {"PAM_CRED_ERR", PAM_CRED_ERR},
    {"PAM_NO_MODULE_DATA", PAM_NO_MODULE_DATA},
    {"PAM_CONV_ERR", PAM_CONV_ERR},
    {"PAM_AUTHTOK_ERR", PAM_AUTHTOK_ERR},
    {"PAM_AUTHTOK_RECOVERY_ERR", PAM_AUTHTOK_RECOVERY_ERR},
    {"PAM_AUTHTOK_LOCK_BUSY", PAM_AUTHTOK_LOCK_BUSY},
    {"PAM_AUTHTOK_DISABLE_AGING", PAM_AUTHTOK_DISABLE_AGING},
    {"PAM_TRY_AGAIN", PAM_TRY_AGAIN},
    {"PAM_IGNORE", PAM_IGNORE},
    {"PAM_ABORT", PAM_ABORT},
    {"PAM_AUTHTOK_EXPIRED", PAM_AUTHTOK_EXPIRED},
    {"PAM_MODULE_UNKNOWN", PAM_MODULE_UNKNOWN},
    {"PAM_BAD_ITEM", PAM_BAD_ITEM},
    {"PAM_CONV_AGAIN", PAM_CONV_AGAIN},
    {"PAM_INCOMPLETE", PAM_INCOMPLETE},
};

static const char *code_name(int code)
{
    for (size_t i = 0; i < sizeof(code_names) / sizeof(code_names[0]); i++)
        if (code_names[i].code == code)
            return code_names[i].name;
    return "PAM_UNKNOWN_CODE";
}

static int code_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof(code_names) / sizeof(code_names[0]); i++)
        if (strcmp(code_names[i].name, name) == 0)
            return code_names[i].code;
    return -1;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("pam_driver: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static char *read_password(const char *path)
{
    char buf[4096];
    char *copy;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        die("cannot open %s: %s", path, strerror(errno));
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n < 0)
        die("cannot read %s", path);
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    copy = strdup(buf);
    explicit_bzero(buf, sizeof(buf));
    return copy;
}

static int split_list(char *list, char **items, int max)
{
    int n = 0;

    for (char *tok = strtok(list, ","); tok != NULL; tok = strtok(NULL, ",")) {
        if (n == max)
            die("too many list items");
        items[n++] = tok;
    }
    return n;
}

static void parse_options(options *o, int argc, char **argv)
{
    char *expect[MAX_OPS];
    int i;

    memset(o, 0, sizeof(*o));
    o->repeat = 1;
    o->threads = 1;
    for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        const char *opt = argv[i];
        char *val = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(opt, "--silent") == 0) {
            o->silent = 1;
            continue;
        }
        if (val == NULL)
            die("%s needs a value", opt);
        i++;
        if (strcmp(opt, "--password-file") == 0)
            o->password = read_password(val);
        else if (strcmp(opt, "--pin-file") == 0)
            o->pin = read_password(val);
        else if (strcmp(opt, "--conv") == 0)
            o->conv = strcmp(val, "fail") == 0    ? CONV_FAIL
                      : strcmp(val, "empty") == 0 ? CONV_EMPTY
                                                  : CONV_ANSWER;
        else if (strcmp(opt, "--rhost") == 0)
            o->rhost = val;
        else if (strcmp(opt, "--result") == 0)
            o->result = val;
        else if (strcmp(opt, "--ops") == 0)
            o->nops = split_list(val, o->ops, MAX_OPS);
        else if (strcmp(opt, "--expect") == 0) {
            o->nexpect = split_list(val, expect, MAX_OPS);
            for (int k = 0; k < o->nexpect; k++)
                if ((o->expect[k] = code_from_name(expect[k])) < 0)
                    die("unknown code %s", expect[k]);
        } else if (strcmp(opt, "--repeat") == 0)
            o->repeat = strtol(val, NULL, 10);
        else if (strcmp(opt, "--threads") == 0)
            o->threads = (int)strtol(val, NULL, 10);
        else
            die("unknown option %s", opt);
    }
    if (argc - i != 2)
        die("usage: pam_driver [options] SERVICE USER[,USER...]");
    o->service = argv[i];
    o->nusers = split_list(argv[i + 1], o->users, MAX_THREADS);
    if (o->nusers == 0)
        die("no user");
    if (o->nops == 0) {
        static char auth[] = "auth";

        o->ops[0] = auth;
        o->nops = 1;
    }
    if (o->nexpect != 0 && o->nexpect != o->nops)
        die("--expect needs one code per op");
    if (o->repeat < 1 || o->threads < 1 || o->threads > MAX_THREADS)
        die("bad --repeat or --threads");
}

/* --- one worker: its handles, what the conversation saw, what libpam asked to delay ----------- */

typedef struct record {
    int style;
    char msg[160];
} record;

typedef struct worker {
    const options *o;
    const char *user;
    pthread_t thread;
    int nprompts;
    record prompts[MAX_RECORDS];
    int ndelays;
    int delay_status[MAX_RECORDS];
    unsigned delay_usec[MAX_RECORDS];
    int rc[MAX_OPS]; /* codes of the last run */
    long runs;
    long mismatches;
    int first_bad_op;
    int first_bad_rc;
} worker;

static char *answer_for(const worker *w, int style, const char *msg)
{
    if (w->o->conv == CONV_EMPTY)
        return strdup("");
    if (style == PAM_PROMPT_ECHO_OFF && w->o->pin != NULL && msg != NULL &&
        strncmp(msg, "PIN for token", 13) == 0)
        return strdup(w->o->pin);
    if (style == PAM_PROMPT_ECHO_OFF)
        return w->o->password != NULL ? strdup(w->o->password) : NULL;
    if (style == PAM_PROMPT_ECHO_ON)
        return strdup(w->user);
    return NULL;
}

static int conversation(int n, const struct pam_message **msg, struct pam_response **resp,
                        void *appdata)
{
    worker *w = appdata;
    struct pam_response *r;

    for (int i = 0; i < n; i++) {
        if (w->nprompts < MAX_RECORDS) {
            w->prompts[w->nprompts].style = msg[i]->msg_style;
            snprintf(w->prompts[w->nprompts].msg, sizeof(w->prompts[0].msg), "%s",
                     msg[i]->msg != NULL ? msg[i]->msg : "");
            w->nprompts++;
        }
    }
    if (w->o->conv == CONV_FAIL)
        return PAM_CONV_ERR;
    r = calloc((size_t)n, sizeof(*r));
    if (r == NULL)
        return PAM_BUF_ERR;
    for (int i = 0; i < n; i++) {
        int style = msg[i]->msg_style;

        if (style == PAM_PROMPT_ECHO_OFF || style == PAM_PROMPT_ECHO_ON) {
            r[i].resp = answer_for(w, style, msg[i]->msg);
            if (r[i].resp == NULL) {
                for (int k = 0; k < i; k++) {
                    explicit_bzero(r[k].resp, strlen(r[k].resp));
                    free(r[k].resp);
                }
                free(r);
                return PAM_CONV_ERR;
            }
        }
    }
    *resp = r;
    return PAM_SUCCESS;
}

/* libpam calls this instead of sleeping when the application sets PAM_FAIL_DELAY. */
static void record_delay(int status, unsigned usec, void *appdata)
{
    worker *w = appdata;

    if (w->ndelays < MAX_RECORDS) {
        w->delay_status[w->ndelays] = status;
        w->delay_usec[w->ndelays] = usec;
        w->ndelays++;
    }
}

static int run_op(pam_handle_t *pamh, const char *op, int silent, const char *password)
{
    int f = silent ? PAM_SILENT : 0;

    if (strcmp(op, "auth") == 0)
        return pam_authenticate(pamh, f);
    if (strcmp(op, "setcred-establish") == 0)
        return pam_setcred(pamh, f | PAM_ESTABLISH_CRED);
    if (strcmp(op, "setcred-reinit") == 0)
        return pam_setcred(pamh, f | PAM_REINITIALIZE_CRED);
    if (strcmp(op, "setcred-refresh") == 0)
        return pam_setcred(pamh, f | PAM_REFRESH_CRED);
    if (strcmp(op, "setcred-delete") == 0)
        return pam_setcred(pamh, f | PAM_DELETE_CRED);
    if (strcmp(op, "open") == 0)
        return pam_open_session(pamh, f);
    if (strcmp(op, "close") == 0)
        return pam_close_session(pamh, f);
    if (strcmp(op, "acct") == 0)
        return pam_acct_mgmt(pamh, f);
    if (strcmp(op, "chauthtok") == 0)
        return pam_chauthtok(pamh, f);
    /* Loses memory on purpose: the tests check that the leak checkers they rely on see it. */
    if (strcmp(op, "leak") == 0) {
        static void *volatile sink;

        sink = malloc(4096);
        memset(sink, 1, 4096);
        sink = NULL;
        return PAM_SUCCESS;
    }
    /* Frees the password and a JWT-looking string unwiped, each in a block of its own: the
     * tests check that the freed-memory check (tests/pam/freescan.c) sees them. They sit past
     * the start of their blocks, where the allocator keeps its own data once a block is free. */
    if (strcmp(op, "free-secrets") == 0) {
        static const char jwt[] = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0."
                                  "eyJzdWIiOiJmcmVlc2Nhbi1zZWxmLXRlc3QifQ.";
        char *block = malloc(1000);

        if (block == NULL)
            return PAM_BUF_ERR;
        memset(block, '-', 1000);
        snprintf(block + 100, 900, "password=%s", password != NULL ? password : "");
        free(block);
        block = malloc(600);
        if (block == NULL)
            return PAM_BUF_ERR;
        memset(block, '-', 600);
        snprintf(block + 100, 500, "token=%s", jwt);
        free(block);
        return PAM_SUCCESS;
    }
    /* What sudo does between pam_authenticate and pam_setcred: switch to the target user. */
    if (strncmp(op, "setuser:", 8) == 0)
        return pam_set_item(pamh, PAM_USER, op + 8);
    return -1;
}

static int run_once(worker *w)
{
    const options *o = w->o;
    struct pam_conv conv = {conversation, w};
    pam_handle_t *pamh = NULL;
    int rc, last = PAM_SUCCESS;

    rc = pam_start(o->service, w->user, &conv, &pamh);
    if (rc != PAM_SUCCESS)
        return rc;
    if (o->rhost != NULL)
        pam_set_item(pamh, PAM_RHOST, o->rhost);
    pam_set_item(pamh, PAM_FAIL_DELAY, (const void *)record_delay);
    for (int i = 0; i < o->nops; i++) {
        rc = run_op(pamh, o->ops[i], o->silent, o->password);
        w->rc[i] = rc;
        if (o->nexpect > 0 && rc != o->expect[i]) {
            if (w->mismatches == 0) {
                w->first_bad_op = i;
                w->first_bad_rc = rc;
            }
            w->mismatches++;
        }
        last = rc;
    }
    pam_end(pamh, last);
    return PAM_SUCCESS;
}

static void *worker_main(void *arg)
{
    worker *w = arg;

    for (long i = 0; i < w->o->repeat; i++) {
        if (run_once(w) != PAM_SUCCESS)
            w->mismatches++;
        w->runs++;
    }
    return NULL;
}

/* --- result ---------------------------------------------------------------------------------- */

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void write_result(const options *o, const worker *ws, size_t heap_before, size_t heap_after)
{
    const worker *w = &ws[0];
    long runs = 0, mismatches = 0;
    FILE *f;

    if (o->result == NULL)
        return;
    f = fopen(o->result, "w");
    if (f == NULL)
        die("cannot write %s", o->result);
    for (int t = 0; t < o->threads; t++) {
        runs += ws[t].runs;
        mismatches += ws[t].mismatches;
    }
    fprintf(f, "{\"runs\": %ld, \"mismatches\": %ld, \"ops\": [", runs, mismatches);
    for (int i = 0; i < o->nops; i++) {
        fprintf(f, "%s{\"op\": ", i ? ", " : "");
        json_string(f, o->ops[i]);
        fprintf(f, ", \"rc\": %d, \"name\": \"%s\"}", w->rc[i], code_name(w->rc[i]));
    }
    fprintf(f, "], \"prompts\": [");
    for (int i = 0; i < w->nprompts; i++) {
        fprintf(f, "%s{\"style\": %d, \"msg\": ", i ? ", " : "", w->prompts[i].style);
        json_string(f, w->prompts[i].msg);
        fputc('}', f);
    }
    fprintf(f, "], \"delays\": [");
    for (int i = 0; i < w->ndelays; i++)
        fprintf(f, "%s{\"status\": %d, \"usec\": %u}", i ? ", " : "", w->delay_status[i],
                w->delay_usec[i]);
    fprintf(f, "], \"first_mismatch\": ");
    for (int t = 0; t < o->threads; t++) {
        if (ws[t].mismatches > 0) {
            fprintf(f, "{\"op\": %d, \"rc\": \"%s\"}", ws[t].first_bad_op,
                    code_name(ws[t].first_bad_rc));
            break;
        }
        if (t == o->threads - 1)
            fputs("null", f);
    }
    /* The identity the process is left with: the module must restore what it dropped. */
    fprintf(f, ", \"euid\": %lu, \"egid\": %lu, \"ngroups\": %d", (unsigned long)geteuid(),
            (unsigned long)getegid(), getgroups(0, NULL));
    fprintf(f, ", \"heap_before\": %zu, \"heap_after\": %zu}\n", heap_before, heap_after);
    fclose(f);
}

static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();

    return mi.uordblks + mi.hblkhd;
}

int main(int argc, char **argv)
{
    options o;
    worker *ws;
    size_t before = 0, after;

    parse_options(&o, argc, argv);
    ws = calloc((size_t)o.threads, sizeof(*ws));
    if (ws == NULL)
        die("out of memory");
    for (int t = 0; t < o.threads; t++) {
        ws[t].o = &o;
        ws[t].user = o.users[t % o.nusers];
    }
    /* A warm-up run fills one-time caches (libcurl, OpenSSL, NSS) so the heap comparison after
     * the repeated runs shows only what the runs themselves keep. */
    if (o.repeat > 1) {
        worker warm = {.o = &o, .user = o.users[0]};

        run_once(&warm);
        before = heap_in_use();
    }
    for (int t = 0; t < o.threads; t++)
        if (pthread_create(&ws[t].thread, NULL, worker_main, &ws[t]) != 0)
            die("cannot start thread");
    for (int t = 0; t < o.threads; t++)
        pthread_join(ws[t].thread, NULL);
    after = heap_in_use();
    write_result(&o, ws, before, after);
    free(ws);
    if (o.password != NULL) {
        explicit_bzero(o.password, strlen(o.password));
        free(o.password);
    }
    if (o.pin != NULL) {
        explicit_bzero(o.pin, strlen(o.pin));
        free(o.pin);
    }
    return 0;
}
