/* Test support for the network tests: runs tests/mock/kontist-mock as a child process and talks
 * to it, and holds the small helpers those tests share. The helpers that check results use cmocka
 * (a failure ends the running test). */
#ifndef KT_MOCK_H
#define KT_MOCK_H

#include <stdbool.h>
#include <sys/types.h>

#include "kt_config.h"
#include "kt_error.h"
#include "test_util.h"

/* The demo account and client are the mock's defaults, read from tests/mock/demo-users.json
 * (its first user and first client): "username", "password", "client_id" or "client_secret".
 * A file that cannot be read or lacks the field ends the test program. */
const char *kt_demo(const char *field);
#define KT_DEMO_USER kt_demo("username")
#define KT_DEMO_PASSWORD kt_demo("password")
#define KT_DEMO_CLIENT_ID kt_demo("client_id")
#define KT_DEMO_CLIENT_SECRET kt_demo("client_secret")
/* The scopes the tests ask for (a request's choice, not the mock's). */
#define KT_DEMO_SCOPES "accounts offline users"

typedef struct kt_mock {
    pid_t pid;
    int stdin_fd; /* the mock runs with --watch-stdin: it stops when this closes */
    char *url;
    char *ca_file;
    char *state_dir;
    test_dir tmpdir; /* owned temporary directory holding state/ */
} kt_mock;

/* Starts a mock with extra command-line arguments (NULL-terminated list, may be NULL). TLS files
 * are shared by every mock of the process (one directory, made once). Returns 0 or -1 (with a
 * message on stderr). */
int kt_mock_start(kt_mock *m, const char *const *extra_args);
void kt_mock_stop(kt_mock *m);
/* Sends METHOD PATH with a JSON body (may be NULL) to the mock; returns the HTTP status or -1,
 * with the body in *out (malloc'd) when out is not NULL. */
long kt_mock_control(const kt_mock *m, const char *method, const char *path, const char *body,
                     char **out);
/* Adds a fault through the control endpoint; spec is a JSON object. */
int kt_mock_fault(const kt_mock *m, const char *spec);
/* The person answers the oldest pending device binding request: "CONFIRMED" or "REJECTED".
 * Returns 0, or -1 when none is pending. */
int kt_mock_answer_binding(const kt_mock *m, const char *status);
/* The person answers the oldest pending push MFA challenge: "VERIFIED" or "DENIED". Returns 0,
 * or -1 when none is pending. */
int kt_mock_answer_push(const kt_mock *m, const char *status);
/* Pending device binding requests, and devices (verified or not) at the mock; -1 on failure. */
int kt_mock_pending_bindings(const kt_mock *m);
int kt_mock_devices(const kt_mock *m);
/* The OTP of the last SMS the mock sent (malloc'd), or NULL. */
char *kt_mock_last_otp(const kt_mock *m);
/* Number of requests logged in requests.jsonl, and of distinct connections among them. */
int kt_mock_requests(const kt_mock *m, int *requests, int *connections);
/* Status logged for the last request, or -1. */
long kt_mock_last_status(const kt_mock *m);
/* Number of token requests with this grant_type ("password", "refresh_token") the mock has
 * logged; 0 before its first request. */
int kt_mock_grants(const kt_mock *m, const char *grant_type);

/* A configuration pointing at the mock with the demo client (all strings malloc'd). */
void kt_test_config(kt_config *cfg, const kt_mock *m);
void kt_test_config_set(char **field, const char *value);
void kt_test_config_free(kt_config *cfg);
/* Removes the temporary TLS directory shared by the mocks (call once at the end). */
void kt_mock_cleanup_shared(void);

/* Fails the running test unless the call returned -1 with an error of this kind. */
void expect_kind(int rc, const kt_error *err, kt_err_kind kind);
/* A malloc'd unsigned JWT "HEADER.PAYLOAD.sig" with header {"alg":"ES256"} and the given claims
 * (any text, encoded as it is), for feeding the token parsers. */
char *kt_test_jwt(const char *claims);

#endif
