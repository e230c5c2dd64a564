/* The context every flow runs on: configuration, conversation, one HTTPS connection, the deadline.
 * No global mutable state: a PAM handle or a helper process owns its own context. */
#ifndef KT_CTX_H
#define KT_CTX_H

#include <stdbool.h>
#include <stdint.h>

#include "kt_config.h"
#include "kontist.h"
#include "kt_error.h"
#include "kt_http.h"

struct kt_ctx {
    const kt_config *cfg; /* borrowed */
    kt_conv conv;
    kt_http *http;
    kt_conv_progress progress; /* all NULL unless kt_ctx_set_progress */
    uint64_t deadline_ms;      /* the flow deadline (kt_now_ms), 0 before the first flow */
};

/* Starts the flow deadline: now + cfg->login_timeout seconds. */
void kt_ctx_start_deadline(kt_ctx *ctx);
/* Tells the person to act elsewhere now: the progress instruct callback, else conversation info
 * with the time left. */
void kt_ctx_instruct(kt_ctx *ctx, const char *instruction, long seconds_left);

/* Conversation wrappers that cope with missing callbacks. kt_ctx_prompt returns -1 with
 * KT_ERR_CONV when nobody can answer. */
int kt_ctx_prompt(kt_ctx *ctx, const char *message, int echo, char **answer, kt_error *err);
void kt_ctx_info(kt_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Sleeps until the CLOCK_MONOTONIC time until_ms (kt_now_ms), in slices of at most 250 ms,
 * reporting `message` and the seconds since started_ms to the waiting callback after each. Returns
 * 0, or -1 with KT_ERR_CONV "cancelled" as soon as the cancelled callback says so (a signal that
 * interrupts the sleep is noticed at once). */
int kt_ctx_wait(kt_ctx *ctx, uint64_t until_ms, const char *message, uint64_t started_ms,
                kt_error *err);
/* Ends a wait for the front end (the waiting callback with message NULL). */
void kt_ctx_wait_done(kt_ctx *ctx, uint64_t started_ms);
/* True when the person asked to stop. */
bool kt_ctx_cancelled(const kt_ctx *ctx);

#endif
