/* JSON on json-c, in one place for the whole core: strict parsing with limits (kt_json_parse_doc),
 * typed getters that check what a member holds (kt_json_string, kt_json_int64, kt_json_bool), one
 * writer (kt_json_writer) and reading the server's words out of an error body.
 *
 * Secrets (tokens, passwords, signatures, key references) pass through all of it, so every copy
 * is wiped before it is freed. json-c has no allocator hook: its copies are wiped where they are
 * (the string values of an object tree, the tokener's scratch buffer and the half-built values
 * of a failed parse). json-c's own serialiser grows its buffer with realloc, which frees old
 * blocks unwiped, so the core does not use it: kt_json_writer writes into a kt_dynbuf, which
 * wipes every block it leaves behind. */
#ifndef KT_JSON_H
#define KT_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kt_dynbuf.h"
#include "kt_error.h"

/* The longest JSON text the core parses: what an HTTP answer may carry (KT_HTTP_MAX_BODY). */
#define KT_JSON_MAX_TEXT (64 * 1024)

struct json_object;
struct json_tokener;

/* Longest server text (code, description or message) copied into an error message. */
#define KT_JSON_SERVER_TEXT_MAX 200

/* Checks status 2xx and media type application/json, then parses strictly (kt_json_parse_text).
 * Returns a json_object to be freed with kt_json_put_wiped. */
struct json_object *kt_json_parse_response(long status, const char *content_type, const char *body,
                                           size_t len, const char *what, kt_error *err);
/* The same without the status check. */
struct json_object *kt_json_parse_body(const char *content_type, const char *body, size_t len,
                                       const char *what, kt_error *err);
/* kt_json_parse_doc of an API answer, whatever a Content-Type said: what names it (NULL:
 * "response"), at most KT_HTTP_MAX_BODY bytes, errors are KT_ERR_PROTOCOL. */
struct json_object *kt_json_parse_text(const char *body, size_t len, const char *what,
                                       kt_error *err);
/* True for "application/json", in any case, with or without parameters ("; charset=utf-8"). */
bool kt_json_media_type(const char *content_type);

/* A document the core reads, and how: its name in messages ("token response", "device record"),
 * the kind of every error about its content, and the limits it is parsed with. */
typedef struct kt_json_doc {
    const char *what;
    kt_err_kind kind;
    size_t max_size; /* longer texts are refused before parsing (kt_json_parse_doc only) */
    int max_depth;   /* json-c's tokener depth: 2 for an object of scalars, 1 more a level */
} kt_json_doc;

/* A strict parse of a whole text into one JSON object: not empty, at most doc->max_size bytes,
 * no NUL bytes, valid UTF-8, nothing outside strings but JSON's own tokens (json-c's strict mode
 * still takes single quotes and NaN), at most doc->max_depth deep, nothing but whitespace after
 * the value. Errors are doc->kind and start with doc->what. Free the result with
 * kt_json_put_wiped. */
struct json_object *kt_json_parse_doc(const kt_json_doc *doc, const char *text, size_t len,
                                      kt_error *err);

/* Flags of the typed getters. */
#define KT_JSON_REQUIRED 0x1u  /* an absent member is an error */
#define KT_JSON_NULLABLE 0x2u  /* a JSON null counts as absent (API answers); else a wrong type */
#define KT_JSON_PRINTABLE 0x4u /* a string may hold no control characters */
#define KT_JSON_MAY_BE_EMPTY 0x8u /* "" is a value, not an error */

/* The typed getters read member key of obj. An absent member is an error with KT_JSON_REQUIRED
 * and otherwise returns 0 with *out untouched (kt_json_string: NULL). A member of another type, or
 * a value the checks refuse, is an error of doc->kind naming doc->what and key. */

/* A malloc'd copy of a string member (free it with kt_secret_free if it may be a secret):
 * not "" (unless KT_JSON_MAY_BE_EMPTY), no NUL byte, no control characters with
 * KT_JSON_PRINTABLE, at most max_len bytes unless max_len is 0. */
int kt_json_string(const kt_json_doc *doc, struct json_object *obj, const char *key, unsigned flags,
                   size_t max_len, char **out, kt_error *err);
/* An integer member within [min, max]. json-c saturates numbers beyond int64 to INT64_MIN and
 * INT64_MAX, so those two are always out of range. */
int kt_json_int64(const kt_json_doc *doc, struct json_object *obj, const char *key, unsigned flags,
                  int64_t min, int64_t max, int64_t *out, kt_error *err);
/* A boolean member (true or false, nothing that merely converts to one). */
int kt_json_bool(const kt_json_doc *doc, struct json_object *obj, const char *key, unsigned flags,
                 bool *out, kt_error *err);
/* A required non-empty string member of an API answer (KT_ERR_PROTOCOL, what as its name). */
int kt_json_get_string(struct json_object *obj, const char *key, char **out, const char *what,
                       kt_error *err);

/* The server's own words in an error body, for a message: from a JSON object (whatever the
 * Content-Type says) the string members "error" into code and "error_description", else
 * "message", into text; failing those, from a GraphQL "errors" array the messages of the first
 * three errors (joined with "; ") into text and the first extensions.code into code. Anything
 * else (an HTML page, plain text, an empty body) gives "" in both:
 * such bodies are never copied. Both come out as printable ASCII (other bytes, and the quote and
 * backslash that would confuse a log line, become '?'), cut to the size given, at most
 * KT_JSON_SERVER_TEXT_MAX characters, with "..." when cut. code or text may be NULL. */
void kt_json_server_text(const char *body, size_t len, char *code, size_t code_size, char *text,
                         size_t text_size);
/* Any text from the server (a device name, an address) made fit for a message the same way:
 * printable ASCII, '?' for anything else and for quotes and backslashes, at most
 * KT_JSON_SERVER_TEXT_MAX characters with "..." when cut. NULL gives "". */
void kt_json_sanitize(const char *in, char *out, size_t size);
/* "CODE: TEXT", "CODE" or "TEXT" from kt_json_server_text, at most KT_JSON_SERVER_TEXT_MAX
 * characters; "" when the body has no words for us. out needs KT_JSON_SERVER_TEXT_MAX + 1. */
void kt_json_server_words(const char *body, size_t len, char *out, size_t size);

/* Wipes every string value in obj's tree (object members, array elements), in place. */
void kt_json_wipe(struct json_object *obj);
/* Wipes every string in obj (tokens) and puts it; NULL is fine. */
void kt_json_put_wiped(struct json_object *obj);
/* json_tokener_new_ex with flags set; free it with kt_json_tokener_free_wiped. */
struct json_tokener *kt_json_tokener_new(int max_depth, int flags);
/* Wipes the tokener's scratch buffer (every string of the text passed through it) and the
 * values a failed or unfinished parse left half-built; the tokener stays usable. */
void kt_json_tokener_wipe(struct json_tokener *tok);
/* kt_json_tokener_wipe, then json_tokener_free. NULL is fine. */
void kt_json_tokener_free_wiped(struct json_tokener *tok);
/* The one JSON writer: objects of strings, integers, booleans and nested objects, written
 * straight into a kt_dynbuf (no copy is left unwiped when it grows). Calls after a failure (out
 * of memory, the cap, unbalanced objects) do nothing; kt_json_writer_finish reports it.
 *
 *     kt_json_writer w;
 *     kt_json_writer_init(&w, 0, KT_JSON_STYLE_COMPACT);
 *     kt_json_open(&w, NULL);
 *     kt_json_put_string(&w, "refresh_token", t->refresh_token);
 *     kt_json_close(&w);
 *     text = kt_json_writer_finish(&w, NULL);   // kt_secret_free(text) later
 */
typedef struct kt_json_writer {
    kt_dynbuf out;
    unsigned depth;       /* objects open */
    uint32_t has_members; /* bit d: the object at depth d has a member already */
    unsigned style;       /* KT_JSON_STYLE_* */
    bool failed;
} kt_json_writer;

#define KT_JSON_STYLE_COMPACT 0x0u /* one line, no spaces: request bodies */
#define KT_JSON_STYLE_PRETTY 0x1u  /* one member a line, indented by two spaces a level */
#define KT_JSON_STYLE_FILE 0x2u    /* ends with a newline, as a text file does */

/* An empty writer; max caps the text's size (0: no cap); style is KT_JSON_STYLE_* or'd. */
void kt_json_writer_init(kt_json_writer *w, size_t max, unsigned style);
/* Opens an object: the top-level one with key NULL, a member object with its key. */
void kt_json_open(kt_json_writer *w, const char *key);
void kt_json_close(kt_json_writer *w);
/* A member; a NULL value writes nothing (an absent optional member). Strings are escaped as
 * JSON needs; UTF-8 passes unchanged. */
void kt_json_put_string(kt_json_writer *w, const char *key, const char *value);
void kt_json_put_int64(kt_json_writer *w, const char *key, int64_t value);
void kt_json_put_bool(kt_json_writer *w, const char *key, bool value);
/* String members from a NULL-terminated list of key, value pairs; a NULL value where a pair
 * expects one fails the writer (a caller's mistake, not an absent member). */
void kt_json_put_pairs(kt_json_writer *w, const char *const *pairs);
/* The text (malloc'd, NUL-terminated, its length in *len if len is not NULL), or NULL after any
 * failure or with an object still open. The writer is left empty either way; its buffer is
 * wiped. Free the text with kt_secret_free. */
char *kt_json_writer_finish(kt_json_writer *w, size_t *len);
/* Wipes and drops what the writer holds (on a path that does not finish it). */
void kt_json_writer_discard(kt_json_writer *w);

/* {"k1":"v1",...} from a NULL-terminated list of key, value pairs (a NULL value where a pair
 * expects one is an error): free the result with kt_secret_free (values may be secrets). */
char *kt_json_build(const char *const *pairs);

#endif
