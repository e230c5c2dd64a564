#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "exit_codes.h"

static const char device_help[] =
    "Usage: kontist-auth device enroll [--name NAME] [--key PATH|URI] [--otp-stdin] [--force]\n"
    "\n"
    "Binds this machine to the logged-in Kontist user as a device: generates an ECDSA P-256 key\n"
    "(or uses the given one), registers its public key, asks for the one-time code the bank sends\n"
    "by SMS, signs it and verifies the device. The device record (user, device id, key, name) is\n"
    "written to ~/.config/kontist/device.json. Log in first ('kontist-auth login'); log in again\n"
    "afterwards for a confirmed token. The code is asked on the terminal without echo; with\n"
    "--otp-stdin it is one line of standard input instead. Without a terminal and without\n"
    "--otp-stdin it refuses before anything is read or sent.\n"
    "\n"
    "Options:\n"
    "  -n, --name NAME   device name shown in the bank's list (default: kontist-auth on HOST)\n"
    "  -k, --key REF     use this key instead of generating one: a PEM file (mode 0600) or an\n"
    "                    OpenSSL store URI served by a provider (handle:0x81000001)\n"
    "      --otp-stdin   read the SMS code from standard input\n"
    "      --force       enroll even though a device is already enrolled (replaces the record)\n"
    "      --config FILE read only FILE as configuration\n"
    "  -h, --help        show this help\n"
    "\n";

#define KA_DEVICE_NAME_MAX 100

struct enroll_opts {
    const char *name;
    const char *key;
    bool otp_stdin;
    bool force;
};

enum { OPT_OTP_STDIN = 0x200, OPT_FORCE };

static const struct option enroll_options[] = {
    {"name", required_argument, NULL, 'n'},
    {"key", required_argument, NULL, 'k'},
    {"otp-stdin", no_argument, NULL, OPT_OTP_STDIN},
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
        case OPT_FORCE:
            o->force = true;
            break;
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

struct enroll_state {
    kt_device_record old;
    kt_device_record rec;
    kt_token_set t;
    EVP_PKEY *key;
    bool generated;
    kt_ctx *ctx;
};

static int prepare_key(ka_app *app, const struct enroll_opts *o, struct enroll_state *s,
                       kt_error *err)
{
    s->rec.key_ref = o->key != NULL ? key_reference(o->key, err) : new_key_path(app, &s->old, err);
    if (s->rec.key_ref == NULL)
        return -1;
    if (o->key != NULL) {
        s->key = kt_key_load(s->rec.key_ref, &app->user_owners, err);
        return s->key == NULL ? -1 : 0;
    }
    s->key = kt_key_generate(err);
    if (s->key == NULL || kt_key_save_pem(s->key, s->rec.key_ref, err) != 0)
        return -1;
    s->generated = true;
    return 0;
}

static int enroll(ka_app *app, const struct enroll_opts *o, struct enroll_state *s, kt_error *err)
{
    kt_conv conv;
    char key[512];

    app->term.stdin_only = o->otp_stdin;
    app->term.stdin_option = "--otp-stdin";
    /* Refused before the bank sends an SMS: without a terminal the code could only be read from
     * standard input, which may be a terminal that echoes it (su -c). */
    if (!o->otp_stdin && ka_term_check(app->term.stdin_option, err) != 0)
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
    if (kt_dir_ensure_private(app->paths.config_dir, err) != 0 || prepare_key(app, o, s, err) != 0)
        return -1;
    if (kt_flow_enroll(s->ctx, s->t.access_token, s->rec.name, s->key, &s->rec.device_id, err) != 0)
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

static int cmd_enroll(ka_app *app, int argc, char **argv)
{
    struct enroll_opts o = {NULL, NULL, false, false};
    struct enroll_state s;
    kt_error err = {KT_OK, ""};
    int rc = parse_enroll(app, argc, argv, &o);

    if (rc >= 0)
        return rc;
    memset(&s, 0, sizeof(s));
    if (enroll(app, &o, &s, &err) != 0 && s.generated && s.rec.device_id == NULL) {
        /* A key no device was verified with is of no use; leave nothing private lying about. */
        kt_file_remove(s.rec.key_ref, NULL);
    }
    kt_ctx_free(s.ctx);
    EVP_PKEY_free(s.key);
    kt_token_set_free(&s.t);
    kt_record_free(&s.rec);
    kt_record_free(&s.old);
    return err.kind == KT_OK ? KA_EXIT_OK : ka_report(app->prog, &err);
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
