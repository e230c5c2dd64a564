#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "exit_codes.h"

static const char device_help[] =
    "Usage: kontist-auth device enroll [--name NAME] [--key PATH|URI | --tpm [--tpm-handle H] |\n"
    "                                  --pkcs11 URI [--generate]] [--otp-stdin]\n"
    "                                  [--confirm-timeout SECONDS] [--force]\n"
    "\n"
    "Binds this machine to the logged-in Kontist user as a device, the way the bank asks for it:\n"
    "  1. A device binding request for NAME goes to Kontist. Confirm it in the Kontist app on\n"
    "     your phone, or with the link in the email Kontist sends you. Meanwhile the request is\n"
    "     checked every 3 seconds (on a terminal a spinner shows the time waited); it ends when\n"
    "     you confirm or reject it, after --confirm-timeout, or with Ctrl-C.\n"
    "  2. Once it is confirmed, within 3 minutes: an ECDSA P-256 key is generated (or the --key\n"
    "     one used), its public key registered, and the code the bank sends by SMS asked for\n"
    "     (the prompt shows the time left), signed and verified.\n"
    "The device record (user, device id, key, name) then goes to ~/.config/kontist/device.json\n"
    "and a generated key to ~/.config/kontist/device-key.pem. A rejection, a timeout, Ctrl-C or\n"
    "any other failure leaves neither behind here (a device created at the bank but not verified,\n"
    "after Ctrl-C at the code prompt, stays there unverified). Log in first ('kontist-auth "
    "login'); log in again\n"
    "afterwards for a confirmed token. The code is asked on the terminal without echo; with\n"
    "--otp-stdin it is one line of standard input instead. Without a terminal and without\n"
    "--otp-stdin it refuses before anything is read or sent.\n"
    "\n"
    "Options:\n"
    "  -n, --name NAME   device name shown in the bank's list and in the binding request\n"
    "                    (default: kontist-auth on HOST)\n"
    "  -k, --key REF     use this key instead of generating one: a PEM file (mode 0600) or an\n"
    "                    OpenSSL store URI served by a provider (handle:0x81000001)\n"
    "      --tpm         generate the key inside this machine's TPM; its TSS2 key blob (useless\n"
    "                    without this TPM) goes to ~/.config/kontist/device-key.tss2\n"
    "      --tpm-handle HANDLE\n"
    "                    with --tpm: keep the key persistent in the TPM at HANDLE\n"
    "                    (0x81000000 to 0x81ffffff) instead of a blob file\n"
    "      --pkcs11 URI  use the P-256 private key on a PKCS#11 token that the RFC 7512 URI names\n"
    "                    (token=, object=, id=, module-path= or module-name=,\n"
    "                    pin-source=file:...); the PIN is asked on the terminal when the token\n"
    "                    needs one and the URI has no pin-source\n"
    "      --generate    with --pkcs11: generate the key on the token (not extractable)\n"
    "      --otp-stdin   read the SMS code from standard input\n"
    "      --confirm-timeout SECONDS\n"
    "                    how long to wait for the binding request to be confirmed, 1 to 3600\n"
    "                    (default 300)\n"
    "      --force       enroll even though a device is already enrolled (replaces the record)\n"
    "      --config FILE read only FILE as configuration\n"
    "  -h, --help        show this help\n"
    "\n";

#define KA_DEVICE_NAME_MAX 100
#define KA_CONFIRM_TIMEOUT_DEFAULT 300
#define KA_CONFIRM_TIMEOUT_MAX 3600

struct enroll_opts {
    const char *name;
    const char *key;
    const char *pkcs11;     /* --pkcs11 URI: with --generate, where the key is made */
    const char *tpm_handle; /* --tpm-handle: the persistent handle for the --tpm key */
    bool tpm, generate;
    bool otp_stdin;
    bool force;
    long confirm_timeout;
};

enum {
    OPT_OTP_STDIN = 0x200,
    OPT_FORCE,
    OPT_CONFIRM_TIMEOUT,
    OPT_TPM,
    OPT_PKCS11,
    OPT_GENERATE,
    OPT_TPM_HANDLE
};

static const struct option enroll_options[] = {
    {"name", required_argument, NULL, 'n'},
    {"key", required_argument, NULL, 'k'},
    {"otp-stdin", no_argument, NULL, OPT_OTP_STDIN},
    {"tpm", no_argument, NULL, OPT_TPM},
    {"pkcs11", required_argument, NULL, OPT_PKCS11},
    {"generate", no_argument, NULL, OPT_GENERATE},
    {"tpm-handle", required_argument, NULL, OPT_TPM_HANDLE},
    {"confirm-timeout", required_argument, NULL, OPT_CONFIRM_TIMEOUT},
    {"force", no_argument, NULL, OPT_FORCE},
    {"config", required_argument, NULL, KA_OPT_CONFIG},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int show_help(void)
{
    fputs(device_help, stdout);
    fputs(ka_exit_codes_help, stdout);
    return KA_EXIT_OK;
}

/* Returns -1 to go on, or an exit code. */
static int parse_enroll(ka_app *app, int argc, char **argv, struct enroll_opts *o)
{
    int c;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":n:k:h", enroll_options, NULL)) != -1) {
        switch (c) {
        case 'n':
            o->name = optarg;
            break;
        case 'k':
            o->key = optarg;
            break;
        case OPT_OTP_STDIN:
            o->otp_stdin = true;
            break;
        case OPT_TPM:
            o->tpm = true;
            break;
        case OPT_PKCS11:
            if (strncasecmp(optarg, "pkcs11:", 7) != 0)
                return ka_usage_error(app, "device enroll", "--pkcs11 takes a pkcs11: URI");
            o->pkcs11 = optarg;
            break;
        case OPT_GENERATE:
            o->generate = true;
            break;
        case OPT_TPM_HANDLE:
            o->tpm_handle = optarg;
            break;
        case OPT_FORCE:
            o->force = true;
            break;
        case OPT_CONFIRM_TIMEOUT: {
            char *end = NULL;

            errno = 0;
            o->confirm_timeout = strtol(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' || !isdigit((unsigned char)*optarg) ||
                o->confirm_timeout < 1 || o->confirm_timeout > KA_CONFIRM_TIMEOUT_MAX)
                return ka_usage_error(app, "device enroll",
                                      "--confirm-timeout must be a number of seconds from 1 to %d",
                                      KA_CONFIRM_TIMEOUT_MAX);
            break;
        }
        case KA_OPT_CONFIG:
            app->config_path = optarg;
            break;
        case 'h':
            return show_help();
        default:
            return ka_bad_option(app, "device enroll", c, argv);
        }
    }
    if (optind < argc)
        return ka_usage_error(app, "device enroll", "unexpected argument '%s'", argv[optind]);
    if ((o->key != NULL) + o->tpm + (o->pkcs11 != NULL) > 1)
        return ka_usage_error(app, "device enroll", "--key, --tpm and --pkcs11 exclude each other");
    if (o->generate && o->pkcs11 == NULL)
        return ka_usage_error(app, "device enroll", "--generate goes with --pkcs11 URI");
    if (o->tpm_handle != NULL && !o->tpm)
        return ka_usage_error(app, "device enroll", "--tpm-handle goes with --tpm");
    if (o->tpm_handle != NULL) {
        char *end = NULL;
        unsigned long h;

        errno = 0;
        h = strtoul(o->tpm_handle, &end, 16);
        if (errno != 0 || strncasecmp(o->tpm_handle, "0x", 2) != 0 || *end != '\0' ||
            h < 0x81000000ul || h > 0x81fffffful)
            return ka_usage_error(app, "device enroll",
                                  "--tpm-handle takes a persistent handle, 0x81000000 to "
                                  "0x81ffffff");
    }
    /* An existing token key is used like any other key reference. */
    if (o->pkcs11 != NULL && !o->generate)
        o->key = o->pkcs11;
    if (o->name != NULL) {
        size_t len = strlen(o->name);

        if (len == 0 || len > KA_DEVICE_NAME_MAX)
            return ka_usage_error(app, "device enroll", "the name must have 1 to %d characters",
                                  KA_DEVICE_NAME_MAX);
        for (size_t i = 0; i < len; i++) {
            if (iscntrl((unsigned char)o->name[i]))
                return ka_usage_error(app, "device enroll",
                                      "the name must not contain control characters");
        }
    }
    return -1;
}

/* A scheme ("pkcs11:", "handle:", "file:") makes a key reference a URI; anything else is a path,
 * made absolute because the record is read later from another directory. */
static bool is_uri(const char *ref)
{
    size_t i = 0;

    if (!isalpha((unsigned char)ref[0]))
        return false;
    while (isalnum((unsigned char)ref[i]) || ref[i] == '+' || ref[i] == '-' || ref[i] == '.')
        i++;
    return ref[i] == ':';
}

static char *key_reference(const char *ref, kt_error *err)
{
    char *out;

    if (!is_uri(ref))
        return ka_absolute_path(ref, err);
    out = strdup(ref);
    if (out == NULL)
        kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    return out;
}

/* Where a generated key goes: the default file, unless the current record still uses it (a
 * forced re-enrollment must not destroy the working key before the new device is verified). */
static char *new_key_path(const ka_app *app, const kt_device_record *old, kt_error *err)
{
    char *out = NULL;

    if (old->key_ref == NULL || strcmp(old->key_ref, app->paths.key_file) != 0)
        out = strdup(app->paths.key_file);
    else if (asprintf(&out, "%s/device-key-%lld.pem", app->paths.config_dir,
                      (long long)time(NULL)) < 0)
        out = NULL;
    if (out == NULL)
        kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    return out;
}

/* The reference of a TPM key blob: tpm2:CONFIG_DIR/device-key.tss2, or a new name while the
 * current record still uses that one. */
static char *new_tpm_ref(const ka_app *app, const kt_device_record *old, kt_error *err)
{
    char *out = NULL;

    if (asprintf(&out, "tpm2:%s/device-key.tss2", app->paths.config_dir) >= 0 &&
        old->key_ref != NULL && strcmp(old->key_ref, out) == 0) {
        free(out);
        if (asprintf(&out, "tpm2:%s/device-key-%lld.tss2", app->paths.config_dir,
                     (long long)time(NULL)) < 0)
            out = NULL;
    }
    if (out == NULL)
        kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    return out;
}

static char *default_name(kt_error *err)
{
    char host[256];
    char *out = NULL;

    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = '\0';
    if (asprintf(&out, "kontist-auth on %.60s", host) < 0) {
        kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    return out;
}

/* The current record; missing is fine, and a broken one only matters without --force. */
static int check_existing(ka_app *app, const struct enroll_opts *o, kt_device_record *old,
                          kt_error *err)
{
    kt_error local = {KT_OK, ""};
    int e = 0;

    if (kt_record_load(app->paths.record_file, &app->user_owners, old, &e, &local) != 0) {
        if (e == ENOENT || (o->force && local.kind == KT_ERR_CONFIG))
            return 0;
        return kt_error_set(err, local.kind, "%s", local.message);
    }
    if (old->device_id != NULL && !o->force)
        return kt_error_set(err, KT_ERR_CONFIG,
                            "this machine is already enrolled as device %s for %s; "
                            "--force enrolls a new device",
                            old->device_id, old->username != NULL ? old->username : "(unknown)");
    return 0;
}

/* Where enrollment stopped, for the advice after a failure. */
enum enroll_phase { PHASE_SETUP, PHASE_BINDING, PHASE_DEVICE, PHASE_SAVE };

struct enroll_state {
    kt_device_record old;
    kt_device_record rec;
    kt_token_set t;
    EVP_PKEY *key;
    bool generated; /* the key was made here (not --key): saved once the device is verified */
    kt_binding binding;
    kt_ctx *ctx;
    enum enroll_phase phase;
};

/* A given key is loaded (and so checked) before the bank is asked anything. */
static int load_key(ka_app *app, const struct enroll_opts *o, struct enroll_state *s, kt_error *err)
{
    s->rec.key_ref = key_reference(o->key, err);
    if (s->rec.key_ref == NULL)
        return -1;
    s->key = kt_key_load(s->rec.key_ref, &app->user_owners, err);
    return s->key == NULL ? -1 : 0;
}

/* A key made in the TPM or on a token, before the bank is asked anything, so that a missing TPM
 * or token, a wrong PIN or a locked one stops at once. Until the device is verified only the
 * TPM's transient copy (no blob file yet) or the token object (removed again on failure) exist. */
static int generate_hardware_key(ka_app *app, const struct enroll_opts *o, struct enroll_state *s,
                                 kt_error *err)
{
    char *where = NULL;

    if (o->tpm && o->tpm_handle != NULL) {
        if (asprintf(&where, "handle:%s", o->tpm_handle) < 0)
            where = NULL;
    } else {
        where = o->tpm ? new_tpm_ref(app, &s->old, err) : strdup(o->pkcs11);
    }

    if (where == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    s->key = kt_key_generate_on(where, &app->user_owners, &s->rec.key_ref, err);
    free(where);
    s->generated = s->key != NULL;
    return s->key == NULL ? -1 : 0;
}

/* A new key exists only once the binding request is confirmed, and only in memory until the bank
 * has verified the device: no failure, Ctrl-C or kill leaves a key behind. */
static int generate_key(ka_app *app, struct enroll_state *s, kt_error *err)
{
    s->rec.key_ref = new_key_path(app, &s->old, err);
    if (s->rec.key_ref == NULL)
        return -1;
    s->key = kt_key_generate(err);
    return s->key == NULL ? -1 : 0;
}

/* Ctrl-C and the other ways to end a process, while enrolling: noted here and acted on by the core
 * at its next step (a sleep or a prompt is cut short); once everything is cleaned up the signal is
 * delivered again, so that the process ends the way the signal says. */
static volatile sig_atomic_t enroll_signo;
static const int enroll_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
#define ENROLL_NSIGNALS (sizeof(enroll_signals) / sizeof(enroll_signals[0]))

static void on_enroll_signal(int signo)
{
    enroll_signo = signo;
}

static void catch_signals(struct sigaction *old)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_enroll_signal;
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: a sleep between checks must end at once. */
    for (size_t i = 0; i < ENROLL_NSIGNALS; i++) {
        sigaction(enroll_signals[i], NULL, &old[i]);
        if (old[i].sa_handler != SIG_IGN)
            sigaction(enroll_signals[i], &sa, NULL);
    }
}

static void release_signals(const struct sigaction *old)
{
    for (size_t i = 0; i < ENROLL_NSIGNALS; i++)
        sigaction(enroll_signals[i], &old[i], NULL);
}

static bool enroll_cancelled(void *data)
{
    (void)data;
    return enroll_signo != 0;
}

struct waiting_line {
    const char *prog;
    bool tty; /* standard error is a terminal: show the spinner there */
    bool shown;
    unsigned tick;
};

static void show_waiting(void *data, const char *message, long elapsed_s)
{
    static const char spin[] = "|/-\\";
    struct waiting_line *w = data;

    if (!w->tty)
        return;
    if (message == NULL) {
        if (w->shown)
            fputs("\r\033[K", stderr);
        w->shown = false;
    } else {
        fprintf(stderr, "\r\033[K%s: %c %s... %ld:%02ld (Ctrl-C to stop)", w->prog,
                spin[w->tick++ % 4], message, elapsed_s / 60, elapsed_s % 60);
        w->shown = true;
    }
    fflush(stderr);
}

static int enroll(ka_app *app, const struct enroll_opts *o, struct enroll_state *s,
                  struct waiting_line *line, kt_error *err)
{
    kt_conv conv;
    kt_conv_progress progress = {show_waiting, enroll_cancelled, line};
    char key[512];

    app->term.stdin_only = o->otp_stdin;
    app->term.stdin_option = "--otp-stdin";
    /* Refused before the bank sends an SMS: without a terminal the code could only be read from
     * standard input, which may be a terminal that echoes it (su -c). */
    if (!o->otp_stdin && ka_term_check(app->term.stdin_option, err) != 0)
        return -1;
    if (o->otp_stdin && ka_stdin_secret_check(app->term.stdin_option, err) != 0)
        return -1;
    if (ka_app_setup(app, err) != 0 || check_existing(app, o, &s->old, err) != 0)
        return -1;
    conv = ka_term_conv(&app->term);
    s->ctx = kt_ctx_new(&app->cfg, &conv, err);
    if (s->ctx == NULL ||
        kt_cache_get_valid(s->ctx, &app->paths, &app->user_owners, &s->t, err) != 0)
        return -1;
    s->rec.username = kt_strdup_or_null(s->t.username != NULL ? s->t.username : app->cfg.username);
    if (s->rec.username == NULL)
        return kt_error_set(err, KT_ERR_CONFIG,
                            "the cached login names no Kontist user: log in "
                            "again with 'kontist-auth login --user USERNAME'");
    s->rec.name = o->name != NULL ? strdup(o->name) : default_name(err);
    if (s->rec.name == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    if (kt_dir_ensure_private(app->paths.config_dir, err) != 0 ||
        (o->key != NULL && load_key(app, o, s, err) != 0) ||
        ((o->tpm || o->generate) && generate_hardware_key(app, o, s, err) != 0))
        return -1;
    kt_ctx_set_progress(s->ctx, &progress);
    /* Stopped before the bank was asked anything. */
    if (enroll_signo != 0)
        return kt_error_set(err, KT_ERR_CONV, "cancelled");

    s->phase = PHASE_BINDING;
    if (kt_flow_bind(s->ctx, s->t.access_token, s->rec.name, o->confirm_timeout, &s->binding,
                     err) != 0)
        return -1;
    s->phase = PHASE_DEVICE;
    if (s->key == NULL && generate_key(app, s, err) != 0)
        return -1;
    s->generated = s->generated || o->key == NULL;
    if (kt_flow_enroll(s->ctx, s->t.access_token, s->rec.name, s->key, &s->binding,
                       &s->rec.device_id, err) != 0)
        return -1;
    s->phase = PHASE_SAVE;
    if (s->generated && kt_key_save(s->key, s->rec.key_ref, err) != 0)
        return -1;
    if (kt_record_save(app->paths.record_file, &s->rec, err) != 0)
        return -1;
    ka_key_ref_display(s->rec.key_ref, key, sizeof(key));
    fprintf(stderr,
            "%s: enrolled device %s (\"%s\") for %s, key %s\n"
            "%s: log in again ('kontist-auth login') for a confirmed token\n",
            app->prog, s->rec.device_id, s->rec.name, s->rec.username, key, app->prog);
    return 0;
}

/* The message, and what to do next for the step that failed. */
static int enroll_report(const ka_app *app, const struct enroll_state *s, const kt_error *err)
{
    const char *advice = NULL;

    if (err->kind == KT_ERR_RATE_LIMITED || s->phase == PHASE_SETUP ||
        (s->phase == PHASE_DEVICE && err->kind != KT_ERR_MFA_FAILED))
        return ka_report(app->prog, err);
    fprintf(stderr, "%s: %s\n", app->prog, err->message);
    if (s->phase == PHASE_BINDING && err->kind == KT_ERR_CONV)
        advice = "run 'kontist-auth device enroll' again and confirm the request in the Kontist "
                 "app or the email; --confirm-timeout SECONDS allows more time";
    else if (s->phase == PHASE_BINDING && err->kind == KT_ERR_MFA_FAILED)
        advice =
            "if you rejected it by mistake, run 'kontist-auth device enroll' again; if you did "
            "not reject it, someone else did: check the devices and activity in your Kontist "
            "app";
    else if (s->phase == PHASE_DEVICE && err->kind == KT_ERR_MFA_FAILED)
        advice = "nothing was enrolled: run 'kontist-auth device enroll' again";
    else if (s->phase == PHASE_SAVE && s->rec.device_id != NULL)
        fprintf(stderr,
                "%s: device %s is verified at the bank but was not saved here: remove it in the "
                "Kontist app and run 'kontist-auth device enroll' again\n",
                app->prog, s->rec.device_id);
    else
        return ka_exit_code(err->kind);
    if (advice != NULL)
        fprintf(stderr, "%s: %s\n", app->prog, advice);
    return ka_exit_code(err->kind);
}

static int cmd_enroll(ka_app *app, int argc, char **argv)
{
    struct enroll_opts o = {.confirm_timeout = KA_CONFIRM_TIMEOUT_DEFAULT};
    struct sigaction old[ENROLL_NSIGNALS];
    struct waiting_line line = {app->prog, isatty(STDERR_FILENO) == 1, false, 0};
    struct enroll_state s;
    kt_error err = {KT_OK, ""};
    int rc = parse_enroll(app, argc, argv, &o), signo;

    if (rc >= 0)
        return rc;
    memset(&s, 0, sizeof(s));
    enroll_signo = 0;
    catch_signals(old);
    rc = enroll(app, &o, &s, &line, &err);
    /* A key made on a token for an enrollment that failed is removed again. */
    if (rc != 0 && s.generated)
        kt_key_discard(s.key, s.rec.key_ref);
    release_signals(old);
    signo = enroll_signo;
    if (rc != 0 && signo != 0)
        fprintf(stderr, "%s: stopped: nothing was enrolled\n", app->prog);
    else if (rc != 0)
        rc = enroll_report(app, &s, &err);
    kt_ctx_free(s.ctx);
    EVP_PKEY_free(s.key);
    kt_binding_free(&s.binding);
    kt_token_set_free(&s.t);
    kt_record_free(&s.rec);
    kt_record_free(&s.old);
    if (rc != 0 && signo != 0) {
        /* Ends the process the way the signal would have (130 for Ctrl-C in a shell). */
        fflush(stderr);
        raise(signo);
        return KA_EXIT_USAGE;
    }
    return rc == 0 ? KA_EXIT_OK : rc;
}

int ka_cmd_device(ka_app *app, int argc, char **argv)
{
    if (argc < 2)
        return ka_usage_error(app, "device", "no subcommand given (enroll)");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
        return show_help();
    if (strcmp(argv[1], "enroll") == 0)
        return cmd_enroll(app, argc - 1, argv + 1);
    return ka_usage_error(app, "device", "unknown subcommand '%s' (enroll)", argv[1]);
}
