#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kt_ctx.h"
#include "kt_secret.h"

kt_ctx *kt_ctx_new(const kt_config *cfg, const kt_conv *conv, kt_error *err)
{
    kt_ctx *ctx;

    if (cfg == NULL) {
        kt_error_set(err, KT_ERR_INTERNAL, "no configuration");
        return NULL;
    }
    ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL) {
        kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    ctx->cfg = cfg;
    if (conv != NULL)
        ctx->conv = *conv;
    ctx->http = kt_http_new(cfg, err);
    if (ctx->http == NULL) {
        free(ctx);
        return NULL;
    }
    return ctx;
}

void kt_ctx_free(kt_ctx *ctx)
{
    if (ctx == NULL)
        return;
    kt_http_free(ctx->http);
    free(ctx);
}

void kt_ctx_start_deadline(kt_ctx *ctx)
{
    long secs;

    if (ctx == NULL)
        return;
    /* A flow always has a deadline: a config without one gets the per-request timeouts' worth. */
    secs = ctx->cfg->login_timeout > 0 ? ctx->cfg->login_timeout : 30;
    ctx->deadline_ms = kt_now_ms() + (uint64_t)secs * 1000u;
    kt_http_set_deadline(ctx->http, ctx->deadline_ms);
}

void kt_ctx_instruct(kt_ctx *ctx, const char *instruction, long seconds_left)
{
    if (ctx == NULL)
        return;
    if (seconds_left < 0)
        seconds_left = 0;
    if (ctx->progress.instruct != NULL)
        ctx->progress.instruct(ctx->progress.data, instruction, seconds_left);
    else
        kt_ctx_info(ctx, "%s (%ld:%02ld left)", instruction, seconds_left / 60, seconds_left % 60);
}

int kt_ctx_prompt(kt_ctx *ctx, const char *message, int echo, char **answer, kt_error *err)
{
    char *a = NULL;

    if (answer == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "no answer buffer");
    *answer = NULL;
    if (ctx == NULL || ctx->conv.prompt == NULL)
        return kt_error_set(err, KT_ERR_CONV, "nobody can be asked: %s", message);
    if (ctx->conv.prompt(ctx->conv.data, message, echo != 0, &a) != 0 || a == NULL) {
        kt_secret_free(a);
        return kt_error_set(err, KT_ERR_CONV, "no answer to: %s", message);
    }
    *answer = a;
    return 0;
}

static void kt_ctx_vsay(void (*say)(void *, const char *), void *data, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void kt_ctx_vsay(void (*say)(void *, const char *), void *data, const char *fmt, va_list ap)
{
    char msg[512];

    if (say == NULL)
        return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    say(data, msg);
}

void kt_ctx_info(kt_ctx *ctx, const char *fmt, ...)
{
    va_list ap;

    if (ctx == NULL)
        return;
    va_start(ap, fmt);
    kt_ctx_vsay(ctx->conv.info, ctx->conv.data, fmt, ap);
    va_end(ap);
}

void kt_ctx_set_progress(kt_ctx *ctx, const kt_conv_progress *progress)
{
    if (ctx == NULL)
        return;
    if (progress != NULL)
        ctx->progress = *progress;
    else
        memset(&ctx->progress, 0, sizeof(ctx->progress));
}

bool kt_ctx_cancelled(const kt_ctx *ctx)
{
    return ctx != NULL && ctx->progress.cancelled != NULL &&
           ctx->progress.cancelled(ctx->progress.data);
}

static long kt_ctx_elapsed_s(uint64_t started_ms)
{
    uint64_t now = kt_now_ms();

    return now > started_ms ? (long)((now - started_ms) / 1000u) : 0;
}

#define KT_WAIT_SLICE_MS 250u

int kt_ctx_wait(kt_ctx *ctx, uint64_t until_ms, const char *message, uint64_t started_ms,
                kt_error *err)
{
    for (;;) {
        uint64_t now = kt_now_ms(), slice;
        struct timespec ts;

        if (kt_ctx_cancelled(ctx))
            return kt_error_set(err, KT_ERR_CONV, "cancelled");
        if (ctx != NULL && ctx->progress.waiting != NULL && message != NULL)
            ctx->progress.waiting(ctx->progress.data, message, kt_ctx_elapsed_s(started_ms));
        if (now >= until_ms)
            return 0;
        slice = until_ms - now < KT_WAIT_SLICE_MS ? until_ms - now : KT_WAIT_SLICE_MS;
        ts.tv_sec = (time_t)(slice / 1000u);
        ts.tv_nsec = (long)(slice % 1000u) * 1000000L;
        /* A signal (Ctrl-C) ends the slice early; the loop then asks whether to stop. */
        if (nanosleep(&ts, NULL) != 0 && errno != EINTR)
            return kt_error_set(err, KT_ERR_INTERNAL, "nanosleep: %s", strerror(errno));
    }
}

void kt_ctx_wait_done(kt_ctx *ctx, uint64_t started_ms)
{
    if (ctx != NULL && ctx->progress.waiting != NULL)
        ctx->progress.waiting(ctx->progress.data, NULL, kt_ctx_elapsed_s(started_ms));
}

long kt_ctx_connections(const kt_ctx *ctx)
{
    return ctx != NULL ? kt_http_connections(ctx->http) : 0;
}
