#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt_device.h"
#include "kt_flow.h"
#include "kt_keys.h"
#include "kt_mfa.h"
#include "kt_oauth.h"
#include "kt_secret.h"

/* SMS one-time passwords are short digit strings; anything else is a typo or a paste accident. */
#define KT_OTP_MIN 4
#define KT_OTP_MAX 12

static int kt_dup(char **dst, const char *src, kt_error *err)
{
    *dst = NULL;
    if (src == NULL)
        return 0;
    *dst = strdup(src);
    return *dst == NULL ? kt_error_set(err, KT_ERR_INTERNAL, "out of memory") : 0;
}

/* A confirmed set must be the password login's person, confirmed by the factor that was used:
 * an answer naming another subject, or another device than the one whose key signed, would let
 * this machine's MFA stand for someone else's. The subject must match when the login's token
 * names one; cnf.kid is compared when present (the bank's tokens name what confirmed them). */
int kt_flow_check_confirmed(const char *login_token, const kt_token_set *conf,
                            const char *device_id, kt_error *err)
{
    kt_jwt_claims was, now;
    kt_error jerr = {KT_OK, ""};

    if (kt_jwt_read(conf->access_token, &now, &jerr) != 0)
        return kt_error_set(err, KT_ERR_MFA_FAILED, "the confirmed token does not read: %s",
                            jerr.message);
    if (login_token != NULL && kt_jwt_read(login_token, &was, &jerr) == 0 && was.sub[0] != '\0') {
        if (strcmp(was.sub, now.sub) != 0)
            return kt_error_set(err, KT_ERR_MFA_FAILED,
                                "the confirmed token names another subject than the password "
                                "login");
    } else if (device_id == NULL) {
        /* Push names no device: the subject is all that ties the approval to this login. */
        return kt_error_set(err, KT_ERR_MFA_FAILED,
                            "the password login's token names no subject to check the push "
                            "approval against");
    }
    if (device_id != NULL && now.kid[0] != '\0' && strcmp(now.kid, device_id) != 0)
        return kt_error_set(err, KT_ERR_MFA_FAILED,
                            "the token was confirmed by device %.64s, not by %s", now.kid,
                            device_id);
    return 0;
}

/* create challenge -> sign stringToSign -> verify, without touching the deadline. */
static int kt_confirm_steps(kt_ctx *ctx, const char *access_token, const char *device_id,
                            EVP_PKEY *key, kt_token_set *out, kt_error *err)
{
    char *challenge_id = NULL, *to_sign = NULL, *sig = NULL;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (key == NULL)
        return kt_error_set(err, KT_ERR_KEY_UNUSABLE, "no device key");
    if (kt_device_challenge_create(ctx, access_token, device_id, &challenge_id, &to_sign, err) != 0)
        goto out;
    /* The exact bytes the server sent: no trimming, no re-encoding. */
    if (kt_key_sign_hex(key, to_sign, strlen(to_sign), &sig, err) != 0)
        goto out;
    if (kt_device_challenge_verify(ctx, access_token, device_id, challenge_id, sig, out, err) != 0)
        goto out;
    if (!out->confirmed) {
        kt_error_set(err, KT_ERR_MFA_FAILED, "verify challenge: the token is not confirmed");
        goto out;
    }
    if (kt_flow_check_confirmed(access_token, out, device_id, err) != 0 ||
        kt_dup(&out->device_id, device_id, err) != 0)
        goto out;
    out->mfa = KT_MFA_DEVICE;
    rc = 0;
out:
    /* Nothing of a set that failed a check leaves this function. */
    if (rc != 0)
        kt_token_set_free(out);
    free(challenge_id);
    free(to_sign);
    free(sig);
    return rc;
}

/* The pause before the next check of a push challenge: the bank's Retry-After when it sent one
 * (within bounds), else KT_PUSH_POLL_S, doubled for each failure in a row. */
static uint64_t kt_push_interval_ms(long retry_after, int failures)
{
    long secs = KT_PUSH_POLL_S;

    if (retry_after >= 0) {
        secs = retry_after < 1                    ? 1
               : retry_after > KT_PUSH_POLL_MAX_S ? KT_PUSH_POLL_MAX_S
                                                  : retry_after;
    } else {
        for (int i = 0; i < failures && secs < KT_PUSH_POLL_MAX_S; i++)
            secs *= 2;
        if (secs > KT_PUSH_POLL_MAX_S)
            secs = KT_PUSH_POLL_MAX_S;
    }
    return (uint64_t)secs * 1000u;
}

/* When the wait for the person ends, on this machine's monotonic clock: at the challenge's
 * expiresAt (its lifetime counted on the bank's clock, against the answer's Date, so a clock
 * that is off here changes nothing) or, sooner, with enough of the flow deadline left to fetch
 * the token. *by_expiry says which of the two it is. */
static uint64_t kt_push_give_up(const kt_ctx *ctx, const kt_push_challenge *ch, uint64_t started,
                                bool *by_expiry)
{
    time_t ref = ch->server_date > 0 ? ch->server_date : time(NULL);
    long lifetime = (long)(ch->expires_at - ref);
    uint64_t expiry = started + (uint64_t)(lifetime > 0 ? lifetime : 0) * 1000u;
    uint64_t deadline = started;

    if (ctx->deadline_ms > started + KT_PUSH_FETCH_RESERVE_MS)
        deadline = ctx->deadline_ms - KT_PUSH_FETCH_RESERVE_MS;
    *by_expiry = expiry <= deadline;
    return *by_expiry ? expiry : deadline;
}

/* Push MFA: create the challenge, tell the person, poll until it is answered or over, then fetch
 * the confirmed tokens once. */
static int kt_push_steps(kt_ctx *ctx, const char *access_token, kt_token_set *out, kt_error *err)
{
    kt_push_challenge ch;
    kt_error last = {KT_OK, ""}; /* the failed check the wait is going on after, if any */
    long retry_after = -1;
    int failures = 0, rc = -1;
    uint64_t started, give_up;
    bool by_expiry = false;

    memset(out, 0, sizeof(*out));
    started = kt_now_ms();
    if (kt_mfa_push_create(ctx, access_token, &ch, &retry_after, err) != 0)
        return -1;
    give_up = kt_push_give_up(ctx, &ch, started, &by_expiry);
    if (ch.state == KT_PUSH_PENDING)
        kt_ctx_instruct(ctx, "Confirm the login in the Kontist app",
                        (long)((give_up - started) / 1000u));
    while (ch.state == KT_PUSH_PENDING) {
        kt_push_challenge fresh;
        kt_error local = {KT_OK, ""};
        uint64_t now = kt_now_ms(), next;

        if (now >= give_up) {
            /* Still failing when time ran out: the outage or rate limit is the reason, not the
             * person (a rate limit must stay what it is, never look like anything else). */
            if (last.kind != KT_OK)
                kt_error_set(err, last.kind, "%s", last.message);
            else if (by_expiry)
                kt_error_set(err, KT_ERR_MFA_EXPIRED,
                             "the push challenge expired before it was approved in the Kontist "
                             "app");
            else
                kt_error_set(err, KT_ERR_MFA_EXPIRED,
                             "the login was not approved in the Kontist app within the login "
                             "timeout (%ld s)",
                             ctx->cfg->login_timeout);
            goto out;
        }
        next = now + kt_push_interval_ms(retry_after, failures);
        if (next > give_up)
            next = give_up;
        if (kt_ctx_wait(ctx, next, "waiting for your confirmation in the Kontist app", started,
                        err) != 0)
            goto out;
        if (kt_mfa_push_get(ctx, access_token, ch.id, &fresh, &retry_after, &local) != 0) {
            /* The person may be approving right now: a passing outage or rate limit is waited
             * out (Retry-After honoured), but it stays what it is if it lasts. */
            if ((local.kind == KT_ERR_UNAVAILABLE || local.kind == KT_ERR_RATE_LIMITED) &&
                ++failures <= KT_PUSH_MAX_FAILURES && kt_now_ms() < give_up) {
                last = local;
                continue;
            }
            kt_error_set(err, local.kind, "%s", local.message);
            goto out;
        }
        failures = 0;
        kt_error_clear(&last);
        /* An answer about another challenge says nothing about this one. */
        if (strcmp(fresh.id, ch.id) != 0) {
            kt_push_challenge_free(&fresh);
            kt_error_set(err, KT_ERR_MFA_FAILED,
                         "the bank answered about another push challenge: not approved");
            goto out;
        }
        ch.state = fresh.state;
        kt_push_challenge_free(&fresh);
    }
    if (ch.state == KT_PUSH_DENIED) {
        kt_error_set(err, KT_ERR_MFA_FAILED, "the login was denied in the Kontist app");
        goto out;
    }
    if (kt_mfa_push_token(ctx, access_token, ch.id, out, err) != 0)
        goto out;
    if (!out->confirmed) {
        kt_token_set_free(out);
        kt_error_set(err, KT_ERR_MFA_FAILED, "push challenge token: the token is not confirmed");
        goto out;
    }
    out->mfa = KT_MFA_PUSH;
    rc = 0;
out:
    kt_ctx_wait_done(ctx, started);
    kt_push_challenge_free(&ch);
    return rc;
}

int kt_flow_login(kt_ctx *ctx, const kt_login_params *params, kt_token_set *out, kt_error *err)
{
    kt_token_set pw, conf;
    int rc = -1;

    if (ctx == NULL || params == NULL || out == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "bad arguments");
    memset(out, 0, sizeof(*out));
    memset(&pw, 0, sizeof(pw));
    memset(&conf, 0, sizeof(conf));
    kt_ctx_start_deadline(ctx);
    if (kt_oauth_password_grant(ctx, params->username, params->password, &pw, err) != 0)
        goto out;
    if (params->device_id == NULL && !params->push) {
        *out = pw;
        memset(&pw, 0, sizeof(pw));
    } else {
        EVP_PKEY *key = params->key;

        /* Only now, with the password accepted, may a token be opened and its PIN asked for. */
        if (params->device_id != NULL && key == NULL && params->load_key != NULL) {
            key = params->load_key(params->load_key_data, err);
            if (key == NULL)
                goto out;
            /* The person may have taken their time typing a PIN: the challenge gets a fresh
             * deadline, as the SMS code of an enrollment does. */
            kt_ctx_start_deadline(ctx);
        }
        if (params->device_id != NULL
                ? kt_confirm_steps(ctx, pw.access_token, params->device_id, key, &conf, err) != 0
                : (kt_push_steps(ctx, pw.access_token, &conf, err) != 0 ||
                   kt_flow_check_confirmed(pw.access_token, &conf, NULL, err) != 0))
            goto out;
        /* The confirmed set replaces the unconfirmed one entirely: an unconfirmed refresh token
         * would quietly renew unconfirmed access tokens. The scope is what was granted. */
        if (conf.scope == NULL && kt_dup(&conf.scope, pw.scope, err) != 0)
            goto out;
        *out = conf;
        memset(&conf, 0, sizeof(conf));
    }
    if (kt_dup(&out->username, params->username, err) != 0)
        goto out;
    rc = 0;
out:
    if (rc != 0)
        kt_token_set_free(out);
    kt_token_set_free(&pw);
    kt_token_set_free(&conf);
    return rc;
}

int kt_flow_refresh(kt_ctx *ctx, const char *refresh_token, kt_token_set *out, kt_error *err)
{
    if (ctx == NULL || out == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "bad arguments");
    memset(out, 0, sizeof(*out));
    if (refresh_token == NULL || *refresh_token == '\0')
        return kt_error_set(err, KT_ERR_LOGIN_REQUIRED, "no refresh token");
    kt_ctx_start_deadline(ctx);
    return kt_oauth_refresh_grant(ctx, refresh_token, out, err);
}

/* Trims surrounding blanks and checks the OTP is digits only, of a plausible length. */
static int kt_otp_check(char *otp, kt_error *err)
{
    size_t len, start = 0, i;

    len = strlen(otp);
    while (start < len && (otp[start] == ' ' || otp[start] == '\t'))
        start++;
    while (len > start && (otp[len - 1] == ' ' || otp[len - 1] == '\t' || otp[len - 1] == '\n' ||
                           otp[len - 1] == '\r'))
        len--;
    memmove(otp, otp + start, len - start);
    kt_wipe(otp + (len - start), strlen(otp + (len - start)));
    otp[len - start] = '\0';
    len -= start;
    if (len < KT_OTP_MIN || len > KT_OTP_MAX)
        return kt_error_set(err, KT_ERR_MFA_FAILED, "the SMS code must have %d to %d digits",
                            KT_OTP_MIN, KT_OTP_MAX);
    for (i = 0; i < len; i++)
        if (otp[i] < '0' || otp[i] > '9')
            return kt_error_set(err, KT_ERR_MFA_FAILED, "the SMS code must be digits only");
    return 0;
}

void kt_binding_free(kt_binding *b)
{
    if (b == NULL)
        return;
    kt_binding_request_free(&b->request);
    b->window_end_ms = 0;
}

/* What the person has to do, in plain words, with what the bank knows about the request. */
static void kt_tell_person(kt_ctx *ctx, const kt_binding_request *r, const char *name,
                           long timeout_s)
{
    char ip[KT_JSON_SERVER_TEXT_MAX + 1], where[KT_JSON_SERVER_TEXT_MAX + 1];

    kt_json_sanitize(r->ip_address, ip, sizeof(ip));
    kt_json_sanitize(r->address, where, sizeof(where));
    kt_ctx_info(ctx,
                "Kontist asks you to confirm the new device \"%s\": confirm it in the Kontist "
                "app on your phone, or with the link in the email Kontist sent you",
                name);
    kt_ctx_info(ctx, "(device binding request %s%s%s%s%s; waiting up to %ld:%02ld)", r->id,
                ip[0] != '\0' ? " from " : "", ip, where[0] != '\0' ? ", " : "", where,
                timeout_s / 60, timeout_s % 60);
}

/* The pause before the next check: the bank's Retry-After when it sent one (within bounds), else
 * KT_BINDING_POLL_S, doubled for each failure in a row. */
static uint64_t kt_poll_interval_ms(long retry_after, int failures)
{
    long secs = KT_BINDING_POLL_S;

    if (retry_after >= 0) {
        secs = retry_after < KT_BINDING_POLL_MIN_S   ? KT_BINDING_POLL_MIN_S
               : retry_after > KT_BINDING_POLL_MAX_S ? KT_BINDING_POLL_MAX_S
                                                     : retry_after;
    } else {
        for (int i = 0; i < failures && secs < KT_BINDING_POLL_MAX_S; i++)
            secs *= 2;
        if (secs > KT_BINDING_POLL_MAX_S)
            secs = KT_BINDING_POLL_MAX_S;
    }
    return (uint64_t)secs * 1000u;
}

/* Outages and rate limits while checking are waited out this many times in a row. */
#define KT_BINDING_MAX_FAILURES 5

int kt_flow_bind(kt_ctx *ctx, const char *access_token, const char *name, long timeout_s,
                 kt_binding *out, kt_error *err)
{
    uint64_t started, give_up, sent, last_pending;
    long retry_after = -1;
    int failures = 0;

    if (ctx == NULL || out == NULL || name == NULL || timeout_s <= 0)
        return kt_error_set(err, KT_ERR_INTERNAL, "bad arguments");
    memset(out, 0, sizeof(*out));
    started = kt_now_ms();
    give_up = started + (uint64_t)timeout_s * 1000u;
    kt_ctx_start_deadline(ctx);
    sent = kt_now_ms();
    if (kt_binding_create(ctx, access_token, name, &out->request, &retry_after, err) != 0)
        return -1;
    last_pending = sent;
    if (out->request.state == KT_BINDING_PENDING)
        kt_tell_person(ctx, &out->request, name, timeout_s);
    while (out->request.state == KT_BINDING_PENDING) {
        kt_binding_request fresh;
        kt_error local = {KT_OK, ""};
        uint64_t next = kt_now_ms() + kt_poll_interval_ms(retry_after, failures);

        if (next > give_up)
            next = give_up;
        if (kt_ctx_wait(ctx, next, "waiting for your confirmation", started, err) != 0)
            goto fail;
        kt_ctx_start_deadline(ctx);
        sent = kt_now_ms();
        if (kt_binding_get(ctx, access_token, out->request.id, &fresh, &retry_after, &local) != 0) {
            /* The person may be confirming right now: a passing outage must not lose that. */
            if ((local.kind == KT_ERR_UNAVAILABLE || local.kind == KT_ERR_RATE_LIMITED) &&
                ++failures <= KT_BINDING_MAX_FAILURES && kt_now_ms() < give_up)
                continue;
            kt_error_set(err, local.kind, "%s", local.message);
            goto fail;
        }
        failures = 0;
        /* An answer about another request confirms nothing about this one. */
        if (fresh.id == NULL || out->request.id == NULL || strcmp(fresh.id, out->request.id) != 0) {
            kt_binding_request_free(&fresh);
            kt_error_set(err, KT_ERR_PROTOCOL,
                         "the bank answered about another device binding request");
            goto fail;
        }
        kt_binding_request_free(&out->request);
        out->request = fresh;
        if (out->request.state != KT_BINDING_PENDING)
            break;
        last_pending = sent;
        if (kt_now_ms() >= give_up) {
            kt_error_set(err, KT_ERR_CONV,
                         "the device binding request was not confirmed within %ld:%02ld; nothing "
                         "was enrolled",
                         timeout_s / 60, timeout_s % 60);
            goto fail;
        }
    }
    kt_ctx_wait_done(ctx, started);
    if (out->request.state == KT_BINDING_REJECTED) {
        kt_error_set(err, KT_ERR_MFA_FAILED,
                     "the device binding request was rejected (in the Kontist app or the email); "
                     "nothing was enrolled");
        kt_binding_free(out);
        return -1;
    }
    out->window_end_ms = last_pending + (uint64_t)KT_BINDING_WINDOW_S * 1000u;
    kt_ctx_info(ctx,
                "confirmed: the device is created now and has to be verified within %d "
                "minutes",
                KT_BINDING_WINDOW_S / 60);
    return 0;
fail:
    kt_ctx_wait_done(ctx, started);
    kt_binding_free(out);
    return -1;
}

/* Seconds of the binding's window left (negative once it is over). */
static long kt_window_left_s(const kt_binding *binding)
{
    uint64_t now = kt_now_ms();

    if (now >= binding->window_end_ms)
        return -(long)((now - binding->window_end_ms) / 1000u) - 1;
    return (long)((binding->window_end_ms - now) / 1000u);
}

/* A refusal once the window is (about to be) over is most likely the window: say so, so that the
 * person starts again instead of hunting for another cause. */
static int kt_window_refusal(const kt_binding *binding, kt_error *local, kt_error *err)
{
    if (binding != NULL && local->kind == KT_ERR_MFA_FAILED &&
        kt_window_left_s(binding) < KT_BINDING_POLL_S + 2)
        return kt_error_set(err, local->kind,
                            "%s [more than %d minutes passed since the device binding request "
                            "was confirmed: start the enrollment again]",
                            local->message, KT_BINDING_WINDOW_S / 60);
    return kt_error_set(err, local->kind, "%s", local->message);
}

int kt_flow_enroll(kt_ctx *ctx, const char *access_token, const char *name, EVP_PKEY *key,
                   const kt_binding *binding, char **device_id, kt_error *err)
{
    char pub[KT_PUBKEY_HEX_LEN + 1];
    char prompt[64];
    char *dev = NULL, *challenge_id = NULL, *otp = NULL, *sig = NULL;
    kt_error local = {KT_OK, ""};
    int rc = -1;

    if (ctx == NULL || device_id == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "bad arguments");
    *device_id = NULL;
    if (key == NULL)
        return kt_error_set(err, KT_ERR_KEY_UNUSABLE, "no device key");
    kt_ctx_start_deadline(ctx);
    if (kt_key_public_hex(key, pub, err) != 0)
        goto out;
    if (kt_device_create(ctx, access_token, name, pub, &dev, &challenge_id, &local) != 0) {
        kt_window_refusal(binding, &local, err);
        goto out;
    }
    if (kt_ctx_cancelled(ctx)) {
        kt_error_set(err, KT_ERR_CONV, "cancelled");
        goto out;
    }
    if (binding != NULL) {
        long left = kt_window_left_s(binding);

        if (left < 0)
            left = 0;
        snprintf(prompt, sizeof(prompt), "SMS code (%ld:%02ld left): ", left / 60, left % 60);
    } else {
        snprintf(prompt, sizeof(prompt), "SMS code: ");
    }
    if (kt_ctx_prompt(ctx, prompt, 1, &otp, err) != 0)
        goto out;
    if (kt_otp_check(otp, err) != 0)
        goto out;
    /* The person took their time reading the SMS; the remaining requests get a fresh deadline. */
    kt_ctx_start_deadline(ctx);
    if (kt_key_sign_hex(key, otp, strlen(otp), &sig, err) != 0)
        goto out;
    if (kt_device_verify(ctx, access_token, dev, challenge_id, sig, &local) != 0) {
        kt_window_refusal(binding, &local, err);
        goto out;
    }
    *device_id = dev;
    dev = NULL;
    rc = 0;
out:
    kt_secret_free(otp);
    free(dev);
    free(challenge_id);
    free(sig);
    return rc;
}

int kt_flow_device_confirm(kt_ctx *ctx, const char *access_token, const char *device_id,
                           EVP_PKEY *key, kt_token_set *out, kt_error *err)
{
    return kt_confirm_steps(ctx, access_token, device_id, key, out, err);
}
