#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <openssl/evp.h>

#include "kt_http.h"
#include "kt_mock.h"

#define KT_PYTHON "/usr/bin/python3"
#define KT_MOCK_START_TIMEOUT_MS 20000

extern char **environ;

static test_dir kt_tls_dir;

void kt_mock_cleanup_shared(void)
{
    test_dir_remove(&kt_tls_dir);
}

static int kt_make_tmpdir(test_dir *d)
{
    if (test_dir_create(d, "unit") != 0) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

/* Reads the mock's one JSON line from fd within the start timeout. */
static char *kt_read_line(int fd)
{
    char buf[4096];
    size_t len = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};

    while (len + 1 < sizeof(buf)) {
        ssize_t n;
        if (poll(&p, 1, KT_MOCK_START_TIMEOUT_MS) <= 0)
            return NULL;
        n = read(fd, buf + len, 1);
        if (n <= 0)
            return NULL;
        if (buf[len] == '\n') {
            buf[len] = '\0';
            return strdup(buf);
        }
        len++;
    }
    return NULL;
}

static char *kt_json_member(json_object *obj, const char *key)
{
    json_object *v = NULL;

    if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return strdup(json_object_get_string(v));
}

static int kt_mock_spawn(kt_mock *m, const char *const *extra, int *out_fd)
{
    const char *srcdir = getenv("KT_TEST_SRCDIR");
    char mock_path[1024], state[1024];
    const char *argv[32];
    int n = 0, in_pipe[2], out_pipe[2], rc;
    posix_spawn_file_actions_t fa;

    if (srcdir == NULL) {
        fprintf(stderr, "KT_TEST_SRCDIR is not set\n");
        return -1;
    }
    snprintf(mock_path, sizeof(mock_path), "%s/mock/kontist-mock", srcdir);
    test_path(&m->tmpdir, "state", state, sizeof(state));
    argv[n++] = KT_PYTHON;
    argv[n++] = mock_path;
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--state-dir";
    argv[n++] = state;
    argv[n++] = "--tls-dir";
    argv[n++] = kt_tls_dir.path;
    argv[n++] = "--watch-stdin";
    for (; extra != NULL && *extra != NULL && n < 31; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;

    if (pipe2(in_pipe, O_CLOEXEC) != 0)
        return -1;
    if (pipe2(out_pipe, O_CLOEXEC) != 0) {
        close(in_pipe[0]);
        close(in_pipe[1]);
        return -1;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in_pipe[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
    rc = posix_spawn(&m->pid, KT_PYTHON, &fa, NULL, (char *const *)(void *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(in_pipe[0]);
    close(out_pipe[1]);
    if (rc != 0) {
        fprintf(stderr, "posix_spawn %s: %s\n", KT_PYTHON, strerror(rc));
        close(in_pipe[1]);
        close(out_pipe[0]);
        m->pid = 0;
        return -1;
    }
    m->stdin_fd = in_pipe[1];
    *out_fd = out_pipe[0];
    return 0;
}

int kt_mock_start(kt_mock *m, const char *const *extra_args)
{
    json_object *obj = NULL;
    char *line = NULL;
    int fd = -1, rc = -1;

    memset(m, 0, sizeof(*m));
    m->stdin_fd = -1;
    if (kt_tls_dir.path[0] == '\0' && kt_make_tmpdir(&kt_tls_dir) != 0)
        return -1;
    if (kt_make_tmpdir(&m->tmpdir) != 0)
        return -1;
    if (kt_mock_spawn(m, extra_args, &fd) != 0)
        goto out;
    line = kt_read_line(fd);
    if (line == NULL) {
        fprintf(stderr, "kontist-mock did not start\n");
        goto out;
    }
    obj = json_tokener_parse(line);
    m->url = obj != NULL ? kt_json_member(obj, "url") : NULL;
    m->ca_file = obj != NULL ? kt_json_member(obj, "ca_file") : NULL;
    m->state_dir = obj != NULL ? kt_json_member(obj, "state_dir") : NULL;
    if (m->url == NULL || m->ca_file == NULL || m->state_dir == NULL) {
        fprintf(stderr, "kontist-mock printed an unexpected line: %s\n", line);
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    json_object_put(obj);
    free(line);
    if (rc != 0)
        kt_mock_stop(m);
    return rc;
}

void kt_mock_stop(kt_mock *m)
{
    int status;

    int i;

    /* End of input stops the mock cleanly (--watch-stdin); SIGTERM only if it does not. */
    if (m->stdin_fd >= 0)
        close(m->stdin_fd);
    m->stdin_fd = -1;
    if (m->pid > 0) {
        for (i = 0; i < 100 && waitpid(m->pid, &status, WNOHANG) == 0; i++)
            usleep(50 * 1000);
        if (i == 100) {
            kill(m->pid, SIGTERM);
            waitpid(m->pid, &status, 0);
        }
        m->pid = 0;
    }
    free(m->url);
    free(m->ca_file);
    free(m->state_dir);
    m->url = m->ca_file = m->state_dir = NULL;
    test_dir_remove(&m->tmpdir);
}

void kt_test_config_set(char **field, const char *value)
{
    free(*field);
    *field = value != NULL ? strdup(value) : NULL;
}

void kt_test_config(kt_config *cfg, const kt_mock *m)
{
    memset(cfg, 0, sizeof(*cfg));
    kt_test_config_set(&cfg->base_url, m != NULL ? m->url : "https://127.0.0.1:1");
    kt_test_config_set(&cfg->ca_file, m != NULL ? m->ca_file : NULL);
    kt_test_config_set(&cfg->client_id, KT_DEMO_CLIENT_ID);
    kt_test_config_set(&cfg->client_secret, KT_DEMO_CLIENT_SECRET);
    kt_test_config_set(&cfg->scopes, KT_DEMO_SCOPES);
    cfg->connect_timeout = 5;
    cfg->timeout = 10;
    cfg->login_timeout = 30;
}

void kt_test_config_free(kt_config *cfg)
{
    free(cfg->base_url);
    free(cfg->client_id);
    free(cfg->client_secret);
    free(cfg->client_secret_file);
    free(cfg->scopes);
    free(cfg->ca_file);
    free(cfg->pinned_pubkey);
    free(cfg->proxy);
    free(cfg->username);
    memset(cfg, 0, sizeof(*cfg));
}

long kt_mock_control(const kt_mock *m, const char *method, const char *path, const char *body,
                     char **out)
{
    kt_config cfg;
    kt_http *http;
    kt_http_request req = {.method = method,
                           .path = path,
                           .content_type = body != NULL ? "application/json" : NULL,
                           .body = body,
                           .body_len = body != NULL ? strlen(body) : 0,
                           .auth = KT_AUTH_NONE};
    kt_http_response resp;
    kt_error err = {0};
    long status = -1;

    if (out != NULL)
        *out = NULL;
    kt_test_config(&cfg, m);
    http = kt_http_new(&cfg, &err);
    if (http != NULL && kt_http_send(http, &req, &resp, &err) == 0) {
        status = resp.status;
        if (out != NULL && resp.body != NULL)
            *out = strdup(resp.body);
        kt_http_response_free(&resp);
    } else {
        fprintf(stderr, "control %s %s: %s\n", method, path, err.message);
    }
    kt_http_free(http);
    kt_test_config_free(&cfg);
    return status;
}

int kt_mock_fault(const kt_mock *m, const char *spec)
{
    char *body = NULL;
    long status = kt_mock_control(m, "POST", "/__control/faults", spec, &body);

    if (status != 201)
        fprintf(stderr, "fault %s: HTTP %ld %s\n", spec, status, body != NULL ? body : "");
    free(body);
    return status == 201 ? 0 : -1;
}

/* Answers, through the control endpoint under path_prefix, the first entry of the state's list
 * (the first PENDING one when pending_only) as the person would: with status. */
static int answer_first(const kt_mock *m, const char *list_key, bool pending_only,
                        const char *path_prefix, const char *status)
{
    char *state = NULL, path[512], body[64];
    json_object *obj = NULL, *list = NULL;
    char *id = NULL;
    int rc = -1;

    if (kt_mock_control(m, "GET", "/__control/state", NULL, &state) != 200 || state == NULL)
        goto out;
    obj = json_tokener_parse(state);
    if (obj == NULL || !json_object_object_get_ex(obj, list_key, &list))
        goto out;
    for (size_t i = 0; i < json_object_array_length(list) && id == NULL; i++) {
        json_object *entry = json_object_array_get_idx(list, i);
        char *st = pending_only ? kt_json_member(entry, "status") : NULL;

        if (!pending_only || (st != NULL && strcmp(st, "PENDING") == 0))
            id = kt_json_member(entry, "id");
        free(st);
    }
    if (id == NULL)
        goto out;
    snprintf(path, sizeof(path), "%s/%s", path_prefix, id);
    snprintf(body, sizeof(body), "{\"status\": \"%s\"}", status);
    rc = kt_mock_control(m, "POST", path, body, NULL) == 200 ? 0 : -1;
out:
    free(id);
    json_object_put(obj);
    free(state);
    return rc;
}

int kt_mock_answer_binding(const kt_mock *m, const char *status)
{
    return answer_first(m, "binding_requests", false, "/__control/binding-requests", status);
}

int kt_mock_answer_push(const kt_mock *m, const char *status)
{
    return answer_first(m, "mfa_challenges", true, "/__control/mfa", status);
}

int kt_mock_pending_bindings(const kt_mock *m)
{
    char *state = NULL;
    json_object *obj, *list = NULL;
    int n = -1;

    if (kt_mock_control(m, "GET", "/__control/state", NULL, &state) != 200 || state == NULL) {
        free(state);
        return -1;
    }
    obj = json_tokener_parse(state);
    if (obj != NULL && json_object_object_get_ex(obj, "binding_requests", &list))
        n = (int)json_object_array_length(list);
    json_object_put(obj);
    free(state);
    return n;
}

int kt_mock_devices(const kt_mock *m)
{
    char *state = NULL;
    json_object *obj, *list = NULL;
    int n = -1;

    if (kt_mock_control(m, "GET", "/__control/state", NULL, &state) != 200 || state == NULL) {
        free(state);
        return -1;
    }
    obj = json_tokener_parse(state);
    if (obj != NULL && json_object_object_get_ex(obj, "devices", &list))
        n = (int)json_object_array_length(list);
    json_object_put(obj);
    free(state);
    return n;
}

/* Calls fn for every JSON line of STATE_DIR/name. */
static int kt_each_line(const kt_mock *m, const char *name, void (*fn)(json_object *, void *),
                        void *data)
{
    char path[1024];
    char *line = NULL;
    size_t cap = 0;
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", m->state_dir, name);
    f = fopen(path, "re");
    if (f == NULL)
        return -1;
    while (getline(&line, &cap, f) > 0) {
        json_object *obj = json_tokener_parse(line);
        if (obj != NULL)
            fn(obj, data);
        json_object_put(obj);
    }
    free(line);
    fclose(f);
    return 0;
}

static void kt_otp_line(json_object *obj, void *data)
{
    char **otp = data;
    char *v = kt_json_member(obj, "otp");

    if (v != NULL) {
        free(*otp);
        *otp = v;
    }
}

char *kt_mock_last_otp(const kt_mock *m)
{
    char *otp = NULL;

    kt_each_line(m, "sms.jsonl", kt_otp_line, &otp);
    return otp;
}

typedef struct kt_req_count {
    int requests;
    int conns[256];
    int nconns;
    long last_status;
} kt_req_count;

static void kt_request_line(json_object *obj, void *data)
{
    kt_req_count *c = data;
    json_object *v = NULL;
    int conn, i;

    c->requests++;
    c->last_status = json_object_object_get_ex(obj, "status", &v) ? json_object_get_int(v) : -1;
    if (!json_object_object_get_ex(obj, "conn", &v))
        return;
    conn = json_object_get_int(v);
    for (i = 0; i < c->nconns; i++)
        if (c->conns[i] == conn)
            return;
    if (c->nconns < 256)
        c->conns[c->nconns++] = conn;
}

int kt_mock_requests(const kt_mock *m, int *requests, int *connections)
{
    kt_req_count c;

    memset(&c, 0, sizeof(c));
    if (kt_each_line(m, "requests.jsonl", kt_request_line, &c) != 0)
        return -1;
    *requests = c.requests;
    *connections = c.nconns;
    return 0;
}

long kt_mock_last_status(const kt_mock *m)
{
    kt_req_count c;

    memset(&c, 0, sizeof(c));
    c.last_status = -1;
    if (kt_each_line(m, "requests.jsonl", kt_request_line, &c) != 0)
        return -1;
    return c.last_status;
}

typedef struct kt_grant_count {
    const char *grant_type;
    int count;
} kt_grant_count;

static void kt_grant_line(json_object *obj, void *data)
{
    kt_grant_count *c = data;
    json_object *v = NULL;

    if (json_object_object_get_ex(obj, "grant_type", &v) &&
        json_object_is_type(v, json_type_string) &&
        strcmp(json_object_get_string(v), c->grant_type) == 0)
        c->count++;
}

int kt_mock_grants(const kt_mock *m, const char *grant_type)
{
    kt_grant_count c = {.grant_type = grant_type, .count = 0};

    /* No log yet: the mock has answered nothing. */
    kt_each_line(m, "requests.jsonl", kt_grant_line, &c);
    return c.count;
}

void expect_kind(int rc, const kt_error *err, kt_err_kind kind)
{
    if (rc != -1 || err->kind != kind)
        fail_msg("rc %d, got %s (%s), want %s", rc, kt_err_kind_name(err->kind), err->message,
                 kt_err_kind_name(kind));
}

/* base64url without padding, malloc'd. */
static char *kt_b64url(const char *in)
{
    size_t len = strlen(in), size = 4 * ((len + 2) / 3) + 1, i, o = 0;
    unsigned char *std = malloc(size);
    char *out = malloc(size);

    assert_non_null(std);
    assert_non_null(out);
    EVP_EncodeBlock(std, (const unsigned char *)in, (int)len);
    for (i = 0; std[i] != '\0' && std[i] != '='; i++)
        out[o++] = std[i] == '+' ? '-' : std[i] == '/' ? '_' : (char)std[i];
    out[o] = '\0';
    free(std);
    return out;
}

char *kt_test_jwt(const char *claims)
{
    char *h = kt_b64url("{\"alg\":\"ES256\"}"), *p = kt_b64url(claims);
    size_t size = strlen(h) + strlen(p) + sizeof(".") + sizeof(".sig");
    char *jwt = malloc(size);

    assert_non_null(jwt);
    snprintf(jwt, size, "%s.%s.sig", h, p);
    free(h);
    free(p);
    return jwt;
}

const char *kt_demo(const char *field)
{
    static json_object *users_file;
    const char *srcdir = getenv("KT_TEST_SRCDIR");
    const char *list = strncmp(field, "client", 6) == 0 ? "clients" : "users";
    json_object *arr = NULL, *entry, *v = NULL;
    char path[1024];

    if (users_file == NULL) {
        if (srcdir == NULL) {
            fprintf(stderr, "KT_TEST_SRCDIR is not set\n");
            exit(99);
        }
        snprintf(path, sizeof(path), "%s/mock/demo-users.json", srcdir);
        users_file = json_object_from_file(path);
        if (users_file == NULL) {
            fprintf(stderr, "cannot read %s\n", path);
            exit(99);
        }
    }
    if (!json_object_object_get_ex(users_file, list, &arr) || json_object_array_length(arr) == 0 ||
        (entry = json_object_array_get_idx(arr, 0)) == NULL ||
        !json_object_object_get_ex(entry, field, &v) || !json_object_is_type(v, json_type_string)) {
        fprintf(stderr, "demo-users.json: no %s in the first of %s\n", field, list);
        exit(99);
    }
    return json_object_get_string(v);
}
