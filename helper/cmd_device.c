#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "exit_codes.h"
#include "options.h"
#include "waiting.h"

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

#define KA_CONFIRM_TIMEOUT_DEFAULT 300

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

/* Returns -1 to go on, or an exit code. */
static int parse_enroll(ka_app *app, int argc, char **argv, struct enroll_opts *o)
{
    static const ka_syntax syntax = {"device enroll", KA_IN_ENROLL, device_help, 0, false};
    kt_error err = {KT_OK, ""};
    ka_args a;
    int rc = ka_parse_args(app, &syntax, argc, argv, &a);

    if (rc >= 0)
        return rc;
    o->name = a.name;
    o->key = a.key;
    o->pkcs11 = a.pkcs11;
    o->tpm_handle = a.tpm_handle;
    o->tpm = a.tpm;
    o->generate = a.generate;
    o->otp_stdin = a.otp_stdin;
    o->force = a.force;
    if (a.confirm_timeout != 0)
        o->confirm_timeout = a.confirm_timeout;
    if ((o->key != NULL) + o->tpm + (o->pkcs11 != NULL) > 1)
        return ka_usage_error(app, "device enroll", "--key, --tpm and --pkcs11 exclude each other");
    if (o->generate && o->pkcs11 == NULL)
        return ka_usage_error(app, "device enroll", "--generate goes with --pkcs11 URI");
    if (o->tpm_handle != NULL && !o->tpm)
        return ka_usage_error(app, "device enroll", "--tpm-handle goes with --tpm");
    /* An existing token key is used like any other key reference. */
    if (o->pkcs11 != NULL && !o->generate)
        o->key = o->pkcs11;
    if (o->name != NULL && kt_enroll_check_name(o->name, &err) != 0)
        return ka_usage_error(app, "device enroll", "%s", err.message);
    return -1;
}

/* A scheme ("pkcs11:", "handle:", "file:") makes a key reference a URI; anything else is a path,
 * made absolute because the record is read later from another directory. */
static char *key_reference(const char *ref, kt_error *err)
{
    char *out;

    if (kt_uri_scheme_len(ref) == 0)
        return ka_absolute_path(ref, err);
    out = strdup(ref);
    if (out == NULL)
        kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    return out;
}

/* Ctrl-C and the other ways to end a process, while enrolling, are noted (ka_waiting) and acted
 * on by the core at its next step (a sleep or a prompt is cut short); once everything is cleaned
 * up the signal is delivered again, so that the process ends the way the signal says. */
static int enroll(ka_app *app, const struct enroll_opts *o, kt_enroll_outcome *outcome,
                  ka_waiting *waiting, kt_error *err)
{
    kt_conv conv;
    kt_conv_progress progress = ka_waiting_progress(waiting, app->prog);
    kt_enroll_request req;
    kt_ctx *ctx = NULL;
    char *key_ref = NULL, *handle = NULL;
    const char *generate_on = NULL;
    char key[512];
    int rc = -1;

    app->term.stdin_only = o->otp_stdin;
    app->term.stdin_option = "--otp-stdin";
    /* Refused before the bank sends an SMS: without a terminal the code could only be read from
     * standard input, which may be a terminal that echoes it (su -c). */
    if (!o->otp_stdin && ka_term_check(app->term.stdin_option, err) != 0)
        return -1;
    if (o->otp_stdin && ka_stdin_secret_check(app->term.stdin_option, err) != 0)
        return -1;
    if (ka_app_setup(app, err) != 0)
        return -1;
    /* A path is taken from this directory: the record is read later from another one. */
    if (o->key != NULL && (key_ref = key_reference(o->key, err)) == NULL)
        return -1;
    if (o->tpm && o->tpm_handle != NULL) {
        if (asprintf(&handle, "handle:%s", o->tpm_handle) < 0) {
            handle = NULL;
            kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
            goto out;
        }
        generate_on = handle;
    } else if (o->tpm) {
        generate_on = "tpm2";
    } else if (o->generate) {
        generate_on = o->pkcs11;
    }
    conv = ka_term_conv(&app->term);
    ctx = kt_ctx_new(&app->cfg, &conv, err);
    if (ctx == NULL)
        goto out;
    kt_ctx_set_progress(ctx, &progress);
    req = (kt_enroll_request){
        .paths = &app->paths,
        .owners = &app->user_owners,
        .name = o->name,
        .key_ref = key_ref,
        .generate_on = generate_on,
        .username = app->cfg.username,
        .force = o->force,
        .confirm_timeout_s = o->confirm_timeout,
    };
    if (kt_enroll(ctx, &req, outcome, err) != 0)
        goto out;
    ka_key_ref_display(outcome->rec.key_ref, key, sizeof(key));
    fprintf(stderr,
            "%s: enrolled device %s (\"%s\") for %s, key %s\n"
            "%s: log in again ('kontist-auth login') for a confirmed token\n",
            app->prog, outcome->rec.device_id, outcome->rec.name, outcome->rec.username, key,
            app->prog);
    rc = 0;
out:
    kt_ctx_free(ctx);
    free(key_ref);
    free(handle);
    return rc;
}

/* The message, and what to do next for the step that failed. */
static int enroll_report(const ka_app *app, const kt_enroll_outcome *s, const kt_error *err)
{
    const char *advice = NULL;

    if (err->kind == KT_ERR_RATE_LIMITED || s->step == KT_ENROLL_PREPARING ||
        (s->step == KT_ENROLL_DEVICE && err->kind != KT_ERR_MFA_FAILED))
        return ka_report(app->prog, err);
    fprintf(stderr, "%s: %s\n", app->prog, err->message);
    if (s->step == KT_ENROLL_BINDING && err->kind == KT_ERR_CONV)
        advice = "run 'kontist-auth device enroll' again and confirm the request in the Kontist "
                 "app or the email; --confirm-timeout SECONDS allows more time";
    else if (s->step == KT_ENROLL_BINDING && err->kind == KT_ERR_MFA_FAILED)
        advice =
            "if you rejected it by mistake, run 'kontist-auth device enroll' again; if you did "
            "not reject it, someone else did: check the devices and activity in your Kontist "
            "app";
    else if (s->step == KT_ENROLL_DEVICE && err->kind == KT_ERR_MFA_FAILED)
        advice = "nothing was enrolled: run 'kontist-auth device enroll' again";
    else if (s->step == KT_ENROLL_SAVING && s->rec.device_id != NULL)
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
    ka_waiting waiting;
    kt_enroll_outcome outcome;
    kt_error err = {KT_OK, ""};
    int rc = parse_enroll(app, argc, argv, &o), signo;

    if (rc >= 0)
        return rc;
    memset(&outcome, 0, sizeof(outcome));
    ka_waiting_catch(&waiting);
    rc = enroll(app, &o, &outcome, &waiting, &err);
    signo = ka_waiting_release(&waiting);
    if (rc != 0 && signo != 0)
        fprintf(stderr, "%s: stopped: nothing was enrolled\n", app->prog);
    else if (rc != 0)
        rc = enroll_report(app, &outcome, &err);
    kt_enroll_outcome_free(&outcome);
    if (rc != 0 && signo != 0) {
        /* Ends the process the way the signal would have (130 for Ctrl-C in a shell). */
        fflush(stderr);
        raise(signo);
        return KA_EXIT_USAGE;
    }
    return rc == 0 ? KA_EXIT_OK : rc;
}

static const ka_command device_commands[] = {
    {"enroll", cmd_enroll},
    {"list", ka_cmd_device_list},
    {"remove", ka_cmd_device_remove},
};

static const char device_overview[] =
    "Usage: kontist-auth device enroll|list|remove [OPTIONS]\n"
    "\n"
    "  device enroll                   bind this machine as a device (below)\n"
    "  device list [--json]            the devices bound to the account; marks this machine\n"
    "  device remove ID|--this [--yes] remove a bound device at the bank ('kontist-auth device\n"
    "                                  remove --help' says what goes here too)\n"
    "\n";

int ka_cmd_device(ka_app *app, int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(device_overview, stdout);
        fputs(device_help, stdout);
        fputs(ka_exit_codes_help, stdout);
        return KA_EXIT_OK;
    }
    return ka_dispatch(app, "device", device_commands,
                       sizeof(device_commands) / sizeof(device_commands[0]), argc - 1, argv + 1);
}
