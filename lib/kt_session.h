/* A user's session with the bank: the token lifecycle from a login to its last refresh. It owns
 * everything that happens to a token set between the network flows (kt_flow) and the file that
 * keeps it (kt_cache): what a refresh carries over, that only one process refreshes, that a
 * rotated refresh token is never lost, and that the tokens are the ones the cache is for. */
#ifndef KT_SESSION_H
#define KT_SESSION_H

#include <stdbool.h>

#include "kt_config.h"
#include "kt_ctx.h"
#include "kontist.h"
#include "kt_token.h"

/* Checks that a set's tokens belong together and to what it is cached for: every JWT in it names
 * the same `sub`, and a confirmed token's cnf.kid names the set's device. Opaque (non-JWT) tokens
 * carry nothing to check. Returns -1 with KT_ERR_PROTOCOL, naming what differs. */
int kt_session_check(const kt_token_set *t, kt_error *err);

/* What a refresh answer does not repeat is carried over from the set it renewed, here and nowhere
 * else: the refresh token (when none was sent, the old one stays valid), username, device, scope,
 * client and the time of the login. The new tokens must name the old set's `sub`. */
int kt_session_carry_over(kt_token_set *fresh, const kt_token_set *old, const char *client_id,
                          kt_error *err);

/* Removes the cache under its lock when its tokens were confirmed by device_id (the set's device,
 * or a token's cnf.kid names it), with any temporary copy a crash left: tokens a removed device
 * confirmed are of no use and must not linger. *removed (may be NULL) says whether a cache went.
 * A cache confirmed by another device, an unconfirmed one or a corrupt one stays. */
int kt_session_forget_device(const kt_paths *paths, const char *device_id, bool *removed,
                             kt_error *err);

#endif
