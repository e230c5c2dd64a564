#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/auxv.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "kt_error.h"
#include "kt_curl.h"
#include "kt_dynbuf.h"
#include "kt_http.h"
#include "kt_json.h"
#include "kt_secret.h"

#define KT_USER_AGENT "kontist-auth/" PACKAGE_VERSION

#define KT_HTTP_DEFAULT_CONNECT_TIMEOUT 5L
#define KT_HTTP_DEFAULT_TIMEOUT 10L
#define KT_HTTP_MAX_MEDIA_TYPE 127
#define KT_HTTP_MAX_URL 2048

struct kt_http {
    const kt_config *cfg;
    /* Both NULL until the first request: a handle that is never used loads no libcurl. */
    const kt_curl_api *api;
    CURL *curl;
    uint64_t deadline_ms;
    long connections;
    char errbuf[CURL_ERROR_SIZE];
};

/* What the callbacks of one transfer fill in. */
typedef struct kt_xfer {
    kt_http_response *resp;
    kt_dynbuf body; /* capped at KT_HTTP_MAX_BODY */
    bool too_large;
} kt_xfer;

/* Joins up to four strings into one malloc'd buffer (memcpy: no format-truncation guesswork).
 * *len gets the allocation size so secret results can be wiped in full. */
static char *kt_join(const char *a, const char *b, const char *c, const char *d, size_t *len)
{
    const char *parts[4] = {a, b, c, d};
    size_t lens[4], total = 1, off = 0, i;
    char *s;

    for (i = 0; i < 4; i++) {
        lens[i] = parts[i] != NULL ? strlen(parts[i]) : 0;
        total += lens[i];
    }
    s = malloc(total);
    if (s == NULL)
        return NULL;
    for (i = 0; i < 4; i++) {
        if (lens[i] > 0)
            memcpy(s + off, parts[i], lens[i]);
        off += lens[i];
    }
    s[off] = '\0';
    if (len != NULL)
        *len = total;
    return s;
}

static bool kt_url_chars_ok(const char *s)
{
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c >= 0x7f)
            return false;
    }
    return true;
}

static int kt_http_check_base_url(const char *url, kt_error *err)
{
    if (url == NULL || *url == '\0')
        return kt_error_set(err, KT_ERR_CONFIG, "base_url is not set");
    if (strncasecmp(url, "https://", 8) != 0)
        return kt_error_set(err, KT_ERR_CONFIG, "base_url must start with https://");
    if (url[8] == '\0' || url[8] == '/')
        return kt_error_set(err, KT_ERR_CONFIG, "base_url has no host");
    if (!kt_url_chars_ok(url) || strlen(url) > KT_HTTP_MAX_URL / 2)
        return kt_error_set(err, KT_ERR_CONFIG, "base_url holds invalid characters");
    return 0;
}

/* Sets an option through the libcurl that `http` loaded. curl_easy_setopt takes the value as a
 * variadic argument: it must have the option's documented type (long, pointer, curl_off_t). */
#define KT_SETOPT(h, opt, val)                                                                     \
    do {                                                                                           \
        if (http->api->easy_setopt((h), (opt), (val)) != CURLE_OK)                                 \
            goto fail_opt;                                                                         \
    } while (0)

/* Options that hold for every request on this handle. */
static int kt_http_setup(kt_http *http, kt_error *err)
{
    const kt_config *cfg = http->cfg;
    CURL *h = http->curl;
    long connect_timeout =
        cfg->connect_timeout > 0 ? cfg->connect_timeout : KT_HTTP_DEFAULT_CONNECT_TIMEOUT;

    KT_SETOPT(h, CURLOPT_ERRORBUFFER, http->errbuf);
    KT_SETOPT(h, CURLOPT_PROTOCOLS_STR, "https");
    KT_SETOPT(h, CURLOPT_REDIR_PROTOCOLS_STR, "https");
    KT_SETOPT(h, CURLOPT_FOLLOWLOCATION, 0L);
    KT_SETOPT(h, CURLOPT_MAXREDIRS, 0L);
    KT_SETOPT(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    KT_SETOPT(h, CURLOPT_SSL_VERIFYPEER, 1L);
    KT_SETOPT(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (cfg->ca_file != NULL && *cfg->ca_file != '\0')
        KT_SETOPT(h, CURLOPT_CAINFO, cfg->ca_file);
    if (cfg->pinned_pubkey != NULL && *cfg->pinned_pubkey != '\0')
        KT_SETOPT(h, CURLOPT_PINNEDPUBLICKEY, cfg->pinned_pubkey);
    /* An unset proxy means "no proxy", not "whatever http(s)_proxy says": a login path in a PAM
     * stack must not be redirected through a proxy the administrator never configured, and
     * environment variables of a PAM host may come from the person logging in. */
    KT_SETOPT(h, CURLOPT_PROXY, cfg->proxy != NULL ? cfg->proxy : "");
    /* For the same reason no_proxy must not exempt the API from a proxy that is configured: an
     * empty list (unlike an unset one) keeps libcurl from reading the variable. */
    KT_SETOPT(h, CURLOPT_NOPROXY, "");
    /* No signals: PAM hosts are multi-threaded and own their signal handlers. */
    KT_SETOPT(h, CURLOPT_NOSIGNAL, 1L);
    /* A request that times out while the name is still being resolved must not then wait for
     * the resolver thread (as long as the system resolver likes): the deadline is the deadline.
     * The thread is left to finish on its own. */
    KT_SETOPT(h, CURLOPT_QUICK_EXIT, 1L);
    KT_SETOPT(h, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout * 1000L);
    KT_SETOPT(h, CURLOPT_USERAGENT, KT_USER_AGENT);
    return 0;

fail_opt:
    return kt_error_set(err, KT_ERR_INTERNAL, "libcurl rejected an option");
}

int kt_http_check_environment(bool privileged, kt_error *err)
{
    /* libcurl reads it with plain getenv, not secure_getenv. */
    const char *keylog = getenv("SSLKEYLOGFILE");

    if (privileged && keylog != NULL && keylog[0] != '\0')
        return kt_error_set(err, KT_ERR_CONFIG,
                            "SSLKEYLOGFILE is set in a privileged process: refusing TLS that would "
                            "write its secrets to that file");
    return 0;
}

kt_http *kt_http_new(const kt_config *cfg, kt_error *err)
{
    kt_http *http = NULL;

    if (cfg == NULL) {
        kt_error_set(err, KT_ERR_INTERNAL, "no configuration");
        return NULL;
    }
    if (kt_http_check_base_url(cfg->base_url, err) != 0)
        return NULL;
    /* Checked before every handle, not only before curl_global_init: the host or another module
     * may have initialised libcurl already, and the key log is written per connection. */
    if (kt_http_check_environment(getauxval(AT_SECURE) != 0, err) != 0)
        return NULL;
    http = calloc(1, sizeof(*http));
    if (http == NULL) {
        kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    http->cfg = cfg;
    return http;
}

/* Loads libcurl and creates the handle on the first request (kt_curl.h says why). */
static int kt_http_open(kt_http *http, kt_error *err)
{
    const kt_curl_api *api;

    if (http->curl != NULL)
        return 0;
    api = kt_curl_get(err);
    if (api == NULL)
        return -1;
    http->api = api;
    http->curl = api->easy_init();
    if (http->curl == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "libcurl handle creation failed");
    if (kt_http_setup(http, err) != 0) {
        api->easy_cleanup(http->curl);
        http->curl = NULL;
        return -1;
    }
    return 0;
}

void kt_http_free(kt_http *http)
{
    if (http == NULL)
        return;
    if (http->curl != NULL)
        http->api->easy_cleanup(http->curl);
    free(http);
}

void kt_http_set_deadline(kt_http *http, uint64_t deadline_ms)
{
    if (http != NULL)
        http->deadline_ms = deadline_ms;
}

long kt_http_connections(const kt_http *http)
{
    return http == NULL ? 0 : http->connections;
}

void kt_http_response_free(kt_http_response *resp)
{
    if (resp == NULL)
        return;
    if (resp->body != NULL) {
        kt_wipe(resp->body, resp->body_len);
        free(resp->body);
    }
    free(resp->content_type);
    memset(resp, 0, sizeof(*resp));
    resp->retry_after = -1;
}

/* The body may hold tokens: kt_dynbuf wipes every block it leaves behind. */
static size_t kt_http_write_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
    kt_xfer *x = userdata;
    size_t n = size * nmemb;

    switch (kt_dynbuf_add(&x->body, data, n)) {
    case KT_DYNBUF_OK:
        return n;
    case KT_DYNBUF_TOO_LARGE:
        x->too_large = true;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    default:
        return 0;
    }
}

static void kt_parse_content_type(kt_http_response *resp, const char *v, const char *end)
{
    const char *semi = memchr(v, ';', (size_t)(end - v));
    size_t len, i;
    char *ct;

    if (semi != NULL)
        end = semi;
    kt_trim_span(&v, &end);
    len = (size_t)(end - v);
    free(resp->content_type);
    resp->content_type = NULL;
    if (len == 0 || len > KT_HTTP_MAX_MEDIA_TYPE)
        return;
    ct = malloc(len + 1);
    if (ct == NULL)
        return;
    for (i = 0; i < len; i++)
        ct[i] = (char)tolower((unsigned char)v[i]);
    ct[len] = '\0';
    resp->content_type = ct;
}

/* Retry-After as delta-seconds only; an HTTP-date is ignored (-1). */
static void kt_parse_retry_after(kt_http_response *resp, const char *v, const char *end)
{
    long secs = 0;

    kt_trim_span(&v, &end);
    resp->retry_after = -1;
    if (v == end || end - v > 9)
        return;
    for (; v < end; v++) {
        if (*v < '0' || *v > '9')
            return;
        secs = secs * 10 + (*v - '0');
    }
    resp->retry_after = secs;
}

/* Date as IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), the only form RFC 9110 lets a server
 * send; anything else leaves 0. Only `kontist-auth doctor` reads it, to measure clock skew. */
static void kt_parse_date(kt_http_response *resp, const char *v, const char *end)
{
    char text[40];
    struct tm tm;
    const char *rest;

    kt_trim_span(&v, &end);
    resp->date = 0;
    if (end - v >= (long)sizeof(text))
        return;
    memcpy(text, v, (size_t)(end - v));
    text[end - v] = '\0';
    memset(&tm, 0, sizeof(tm));
    rest = strptime(text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (rest != NULL && *rest == '\0')
        resp->date = timegm(&tm);
}

static bool kt_header_is(const char *line, size_t len, const char *name)
{
    size_t n = strlen(name);

    return len > n && line[n] == ':' && strncasecmp(line, name, n) == 0;
}

static size_t kt_http_header_cb(char *line, size_t size, size_t nmemb, void *userdata)
{
    kt_xfer *x = userdata;
    size_t n = size * nmemb;
    const char *end = line + n;

    /* A new status line starts a new header block (after 1xx responses): forget the old one. */
    if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        free(x->resp->content_type);
        x->resp->content_type = NULL;
        x->resp->retry_after = -1;
        x->resp->date = 0;
    } else if (kt_header_is(line, n, "date")) {
        kt_parse_date(x->resp, line + 5, end);
    } else if (kt_header_is(line, n, "content-type")) {
        kt_parse_content_type(x->resp, line + 13, end);
    } else if (kt_header_is(line, n, "retry-after")) {
        kt_parse_retry_after(x->resp, line + 12, end);
    }
    return n;
}

/* Wipes every header line curl copied (one may hold client credentials or a token). */
static void kt_slist_free_wiped(const kt_curl_api *api, struct curl_slist *list)
{
    struct curl_slist *l;

    if (list == NULL)
        return;
    for (l = list; l != NULL; l = l->next)
        if (l->data != NULL)
            kt_wipe(l->data, strlen(l->data));
    api->slist_free_all(list);
}

static bool kt_header_value_ok(const char *s)
{
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

/* Appends a header whose text may be secret; the local copy is wiped. */
static int kt_append_header(const kt_curl_api *api, struct curl_slist **list, const char *name,
                            const char *v1, const char *v2, kt_error *err)
{
    size_t len = 0;
    char *line = kt_join(name, ": ", v1, v2, &len);
    struct curl_slist *n;

    if (line == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    n = api->slist_append(*list, line);
    kt_wipe(line, len);
    free(line);
    if (n == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    *list = n;
    return 0;
}

/* Authorization: Basic base64(client_id ":" client_secret), as the Kontist SDK sends it. */
static int kt_append_basic_auth(const kt_curl_api *api, struct curl_slist **list,
                                const kt_config *cfg, kt_error *err)
{
    const char *secret = cfg->client_secret != NULL ? cfg->client_secret : "";
    size_t plain_len, b64_len;
    char *plain = NULL;
    unsigned char *b64 = NULL;
    int rc = -1;

    if (cfg->client_id == NULL || *cfg->client_id == '\0')
        return kt_error_set(err, KT_ERR_CONFIG, "client_id is not set");
    /* Basic authentication cannot carry a colon in the user part. */
    if (strchr(cfg->client_id, ':') != NULL)
        return kt_error_set(err, KT_ERR_CONFIG, "client_id must not contain ':'");
    plain_len = strlen(cfg->client_id) + 1 + strlen(secret);
    if (plain_len > 4096)
        return kt_error_set(err, KT_ERR_CONFIG, "client credentials are too long");
    b64_len = 4 * ((plain_len + 2) / 3) + 1;
    plain = kt_join(cfg->client_id, ":", secret, NULL, NULL);
    b64 = malloc(b64_len);
    if (plain == NULL || b64 == NULL) {
        kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
        goto out;
    }
    EVP_EncodeBlock(b64, (const unsigned char *)plain, (int)plain_len);
    rc = kt_append_header(api, list, "Authorization", "Basic ", (const char *)b64, err);
out:
    if (plain != NULL)
        kt_wipe(plain, plain_len + 1);
    if (b64 != NULL)
        kt_wipe(b64, b64_len);
    free(plain);
    free(b64);
    return rc;
}

static int kt_build_headers(const kt_http *http, const kt_http_request *req,
                            struct curl_slist **list, kt_error *err)
{
    const kt_curl_api *api = http->api;

    if (kt_append_header(api, list, "Accept", "application/json", "", err) != 0)
        return -1;
    /* No "Expect: 100-continue" round trip; and no default form Content-Type on a bodiless POST. */
    if (kt_append_header(api, list, "Expect", "", "", err) != 0)
        return -1;
    if (req->content_type != NULL) {
        if (!kt_header_value_ok(req->content_type))
            return kt_error_set(err, KT_ERR_INTERNAL, "bad content type");
        if (kt_append_header(api, list, "Content-Type", req->content_type, "", err) != 0)
            return -1;
    } else if (kt_append_header(api, list, "Content-Type", "", "", err) != 0) {
        return -1;
    }
    switch (req->auth) {
    case KT_AUTH_NONE:
        return 0;
    case KT_AUTH_BASIC_CLIENT:
        return kt_append_basic_auth(api, list, http->cfg, err);
    case KT_AUTH_BEARER:
        if (req->bearer == NULL || *req->bearer == '\0')
            return kt_error_set(err, KT_ERR_LOGIN_REQUIRED, "no access token");
        if (!kt_url_chars_ok(req->bearer))
            return kt_error_set(err, KT_ERR_PROTOCOL, "access token holds invalid characters");
        return kt_append_header(api, list, "Authorization", "Bearer ", req->bearer, err);
    }
    return kt_error_set(err, KT_ERR_INTERNAL, "unknown authentication mode");
}

/* Per-request timeout, shortened to what is left of the flow deadline. */
static int kt_http_timeout(const kt_http *http, long *timeout_ms, bool *by_deadline, kt_error *err)
{
    long t = (http->cfg->timeout > 0 ? http->cfg->timeout : KT_HTTP_DEFAULT_TIMEOUT) * 1000L;
    uint64_t now;

    *by_deadline = false;
    if (http->deadline_ms != 0) {
        now = kt_now_ms();
        if (now >= http->deadline_ms)
            return kt_error_set(err, KT_ERR_UNAVAILABLE, "deadline passed before the request");
        if (http->deadline_ms - now < (uint64_t)t) {
            t = (long)(http->deadline_ms - now);
            *by_deadline = true;
        }
    }
    *timeout_ms = t;
    return 0;
}

static char *kt_http_url(const kt_http *http, const char *path, kt_error *err)
{
    char *url;

    if (path == NULL || path[0] != '/' || !kt_url_chars_ok(path)) {
        kt_error_set(err, KT_ERR_INTERNAL, "bad request path");
        return NULL;
    }
    if (strlen(http->cfg->base_url) + strlen(path) + 1 > KT_HTTP_MAX_URL) {
        kt_error_set(err, KT_ERR_INTERNAL, "request URL too long");
        return NULL;
    }
    url = kt_join(http->cfg->base_url, path, NULL, NULL, NULL);
    if (url == NULL)
        kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    return url;
}

static int kt_http_set_request(kt_http *http, const kt_http_request *req, const char *url,
                               long timeout_ms, struct curl_slist *headers, kt_xfer *x,
                               kt_error *err)
{
    CURL *h = http->curl;
    bool post = strcmp(req->method, "POST") == 0;

    if (!post && strcmp(req->method, "GET") != 0)
        return kt_error_set(err, KT_ERR_INTERNAL, "unsupported method %s", req->method);
    if (!post && req->body != NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "GET request with a body");
    KT_SETOPT(h, CURLOPT_URL, url);
    KT_SETOPT(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    KT_SETOPT(h, CURLOPT_HTTPHEADER, headers);
    KT_SETOPT(h, CURLOPT_WRITEFUNCTION, kt_http_write_cb);
    KT_SETOPT(h, CURLOPT_WRITEDATA, x);
    KT_SETOPT(h, CURLOPT_HEADERFUNCTION, kt_http_header_cb);
    KT_SETOPT(h, CURLOPT_HEADERDATA, x);
    if (post) {
        /* POSTFIELDS borrows the body: no extra unwiped copy of a password inside curl. */
        KT_SETOPT(h, CURLOPT_POST, 1L);
        KT_SETOPT(h, CURLOPT_POSTFIELDSIZE_LARGE,
                  (curl_off_t)(req->body != NULL ? req->body_len : 0));
        KT_SETOPT(h, CURLOPT_POSTFIELDS, req->body != NULL ? req->body : "");
    } else {
        KT_SETOPT(h, CURLOPT_HTTPGET, 1L);
    }
    return 0;

fail_opt:
    return kt_error_set(err, KT_ERR_INTERNAL, "libcurl rejected an option");
}

/* Drops the per-request pointers so the handle never refers to freed memory. */
static void kt_http_reset_request(kt_http *http)
{
    if (http->curl == NULL)
        return;
    http->api->easy_setopt(http->curl, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
    http->api->easy_setopt(http->curl, CURLOPT_POSTFIELDS, (const char *)NULL);
    http->api->easy_setopt(http->curl, CURLOPT_WRITEDATA, (void *)NULL);
    http->api->easy_setopt(http->curl, CURLOPT_HEADERDATA, (void *)NULL);
    http->api->easy_setopt(http->curl, CURLOPT_HTTPGET, 1L);
}

/* Whether the operating system refused the transfer a local resource (CURLINFO_OS_ERRNO). */
static bool kt_http_local_failure(kt_http *http)
{
    long os_errno = 0;

    if (http->api->easy_getinfo(http->curl, CURLINFO_OS_ERRNO, &os_errno) != CURLE_OK)
        return false;
    return os_errno == EMFILE || os_errno == ENFILE || os_errno == ENOMEM || os_errno == ENOBUFS;
}

static int kt_http_curl_error(kt_http *http, CURLcode rc, const kt_xfer *x, bool deadline_cut,
                              kt_error *err)
{
    const char *detail = http->errbuf[0] != '\0' ? http->errbuf : http->api->easy_strerror(rc);

    if (x->too_large)
        return kt_error_set(err, KT_ERR_PROTOCOL, "response too large (over %d bytes)",
                            KT_HTTP_MAX_BODY);
    /* Only the network may count as unavailable. A failure of this machine (no descriptors, no
     * memory: limits a local user may have set on the process) is not an outage, or whoever set
     * them could open a stack's fallback. */
    if (kt_http_local_failure(http))
        return kt_error_set(err, KT_ERR_INTERNAL, "local failure: %s", detail);
    switch (rc) {
    case CURLE_OUT_OF_MEMORY:
    case CURLE_WRITE_ERROR:
    case CURLE_FAILED_INIT:
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory reading the response");
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CRL_BADFILE:
        return kt_error_set(err, KT_ERR_CONFIG, "ca_file cannot be used: %s", detail);
    case CURLE_OPERATION_TIMEDOUT:
        if (deadline_cut)
            return kt_error_set(err, KT_ERR_UNAVAILABLE, "login deadline reached: %s", detail);
        return kt_error_set(err, KT_ERR_UNAVAILABLE, "request timed out: %s", detail);
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return kt_error_set(err, KT_ERR_CONFIG, "bad URL: %s", detail);
    default:
        return kt_error_set(err, KT_ERR_UNAVAILABLE, "network error: %s", detail);
    }
}

int kt_http_send(kt_http *http, const kt_http_request *req, kt_http_response *resp, kt_error *err)
{
    struct curl_slist *headers = NULL;
    kt_xfer x;
    char *url = NULL;
    long timeout_ms = 0, status = 0, conns = 0;
    bool by_deadline = false;
    CURLcode rc;
    int ret = -1;

    if (http == NULL || req == NULL || req->method == NULL || resp == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "bad HTTP request");
    memset(resp, 0, sizeof(*resp));
    resp->retry_after = -1;
    memset(&x, 0, sizeof(x));
    x.resp = resp;
    kt_dynbuf_init(&x.body, KT_HTTP_MAX_BODY);
    http->errbuf[0] = '\0';

    if (kt_http_timeout(http, &timeout_ms, &by_deadline, err) != 0)
        goto out;
    if (kt_http_open(http, err) != 0)
        goto out;
    if ((url = kt_http_url(http, req->path, err)) == NULL)
        goto out;
    if (kt_build_headers(http, req, &headers, err) != 0)
        goto out;
    if (kt_http_set_request(http, req, url, timeout_ms, headers, &x, err) != 0)
        goto out;

    rc = http->api->easy_perform(http->curl);
    if (http->api->easy_getinfo(http->curl, CURLINFO_NUM_CONNECTS, &conns) == CURLE_OK && conns > 0)
        http->connections += conns;
    if (rc != CURLE_OK) {
        kt_http_curl_error(http, rc, &x, by_deadline, err);
        goto out;
    }
    http->api->easy_getinfo(http->curl, CURLINFO_RESPONSE_CODE, &status);
    resp->body = kt_dynbuf_take(&x.body, &resp->body_len);
    if (resp->body == NULL) {
        kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
        goto out;
    }
    resp->status = status;
    ret = 0;

out:
    kt_http_reset_request(http);
    kt_slist_free_wiped(http->api, headers);
    free(url);
    kt_dynbuf_free(&x.body);
    if (ret != 0)
        kt_http_response_free(resp);
    return ret;
}

int kt_http_answer_error(long status, const char *body, size_t body_len, long retry_after,
                         const char *what, kt_err_kind refused_kind, kt_error *err)
{
    char words[KT_JSON_SERVER_TEXT_MAX + 1] = "";
    const char *sep;

    if (what == NULL)
        what = "request";
    kt_json_server_words(body, body_len, words, sizeof(words));
    sep = words[0] != '\0' ? ": " : "";
    if (status == 429)
        return kt_error_set_rate_limited(err, what, retry_after, words);
    /* Many rate limiters answer 503 (or another 5xx) with Retry-After rather than 429: a server
     * error that says when to come back is a rate limit, which anyone can provoke, not an outage
     * that could open a fallback. */
    if (status >= 500 && status <= 599 && retry_after >= 0)
        return kt_error_set_rate_limited(err, what, retry_after, words);
    if (status >= 500 && status <= 599)
        return kt_error_set(err, KT_ERR_UNAVAILABLE, "%s: server unavailable (HTTP %ld)%s%s", what,
                            status, sep, words);
    /* Every other 4xx is the bank answering on purpose: a refusal, never an outage. */
    if (status >= 400 && status <= 499)
        return kt_error_set(err, refused_kind, "%s: refused (HTTP %ld)%s%s", what, status, sep,
                            words);
    /* 1xx, 2xx the caller does not take, 3xx (redirects are never followed): not an answer of
     * this API. */
    return kt_error_set(err, KT_ERR_PROTOCOL, "%s: unexpected HTTP status %ld", what, status);
}

int kt_http_status_error(const kt_http_response *resp, const char *what, kt_err_kind refused_kind,
                         kt_error *err)
{
    char words[KT_JSON_SERVER_TEXT_MAX + 1] = "";

    if (resp == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "%s: no response",
                            what != NULL ? what : "request");
    if (resp->status == 401) {
        kt_json_server_words(resp->body, resp->body_len, words, sizeof(words));
        return kt_error_set(err, KT_ERR_LOGIN_REQUIRED, "%s: access token rejected (HTTP 401)%s%s",
                            what != NULL ? what : "request", words[0] != '\0' ? ": " : "", words);
    }
    return kt_http_answer_error(resp->status, resp->body, resp->body_len, resp->retry_after, what,
                                refused_kind, err);
}
