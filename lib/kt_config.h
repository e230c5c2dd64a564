/* The configuration file: `key = value` lines, strict parsing.
 *
 * `#` starts a comment: at the start of a line, or after a blank following a value
 * (`key = value   # comment`). A `#` inside a value (`a#b`) is an error, never part of the value:
 * a literal `#` is written `\#`, or the whole value is put in double quotes
 * (`key = "a # b"`, where `\"` and `\\` stand for a quote and a backslash).
 * Every error names the file and the line. */
#ifndef KT_CONFIG_H
#define KT_CONFIG_H

#include <stdbool.h>
#include <sys/types.h>

#include "kt_error.h"

/* Reads cfg->client_secret_file (if set) into cfg->client_secret: the file must be owned as
 * `owners` allows and readable by its owner only (0600/0400); one trailing newline is dropped.
 * kt_config_load_file calls this for files that set client_secret_file; front ends call it after
 * kt_config_set("client_secret_file", ...). Errors are KT_ERR_CONFIG. */
int kt_config_load_secret(kt_config *cfg, const kt_owner_policy *owners, kt_error *err);
/* Parses a buffer; `name` is used in messages ("name:LINE: ..."). Does not read the secret file. */
int kt_config_parse(kt_config *cfg, const char *name, const char *text, size_t len, kt_error *err);
/* Sets one key from a string exactly as a config line would (used for module arguments and
 * command-line overrides). */
int kt_config_set(kt_config *cfg, const char *key, const char *value, kt_error *err);
/* "FILE:LINE" of the line that set `key` (a key name such as "ca_file"), or NULL. */
const char *kt_config_origin(const kt_config *cfg, const char *key);

#endif
