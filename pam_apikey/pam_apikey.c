/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * pam_apikey - the PAM adapter: an API key typed as the password.
 *
 * It translates PAM to libapikey and back and nothing else: the verdict,
 * and every policy behind it, comes from apikey_verify(). The account phase
 * re-checks the key that authenticated, so an expiry or revocation between
 * the two phases is caught.
 *
 * libpam loads and unloads this module at every pam_start/pam_end; the
 * library is linked in with -z nodelete and initialises OpenSSL without an
 * atexit handler, so nothing is left behind by an unload.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <security/pam_ext.h>
#include <security/pam_modules.h>

#include "apikey.h"
#include "core.h"
#include "logvalue.h"

#define PAM_EXPORT __attribute__((visibility("default")))
#define DATA_KEY "pam_apikey_key"

typedef struct pam_args {
    const char *config;  /* NULL: the library's default */
    const char *service; /* NULL: PAM_SERVICE */
    int use_first_pass;
    int try_first_pass;
    int debug;
} pam_args;

static int parse_args(pam_handle_t *pamh, int argc, const char **argv, pam_args *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "config=", 7) == 0 && argv[i][7] == '/')
            a->config = argv[i] + 7;
        else if (strncmp(argv[i], "service=", 8) == 0 && argv[i][8])
            a->service = argv[i] + 8;
        else if (strcmp(argv[i], "use_first_pass") == 0)
            a->use_first_pass = 1;
        else if (strcmp(argv[i], "try_first_pass") == 0)
            a->try_first_pass = 1;
        else if (strcmp(argv[i], "debug") == 0)
            a->debug = 1;
        else {
            /* An option we do not know may be a security setting we would ignore. */
            pam_syslog(pamh, LOG_ERR, "unknown or malformed option '%s' (config= needs an absolute path)", argv[i]);
            return PAM_SERVICE_ERR;
        }
    }
    return PAM_SUCCESS;
}

static int to_pam(const apikey_result *res)
{
    switch (res->decision) {
    case APIKEY_ALLOWED: return PAM_SUCCESS;
    case APIKEY_REFUSED: return PAM_AUTH_ERR;
    case APIKEY_UNAVAILABLE: break;
    }
    switch (res->reason) {
    case APIKEY_REASON_NOMEM: return PAM_BUF_ERR;
    case APIKEY_REASON_CONFIG:
    case APIKEY_REASON_ARGUMENT: return PAM_SERVICE_ERR;
    default: return PAM_AUTHINFO_UNAVAIL;
    }
}

/* The one question, asked of libapikey, and its answer logged. */
static int check(pam_handle_t *pamh, const pam_args *a, const char *phase, const char *user,
                 const char *key)
{
    const char *service = a->service;
    if (!service && (pam_get_item(pamh, PAM_SERVICE, (const void **)&service) != PAM_SUCCESS || !service)) {
        pam_syslog(pamh, LOG_ERR, "no service name");
        return PAM_SERVICE_ERR;
    }
    /* The client's address as the server knows it (sshd, login -h, Dante):
     * the core checks it against the key's allowlist, if the key has one,
     * and refuses a host name, an empty or an unset one there. */
    const char *rhost = NULL;
    if (pam_get_item(pamh, PAM_RHOST, (const void **)&rhost) != PAM_SUCCESS)
        rhost = NULL;
    /* The user name is the client's (sshd takes it from the network), the
     * host name a resolver's, the service an application's: each is one
     * field of the log line, whatever it holds (common/logvalue.h). */
    char err[512], who[LOG_VALUE_LEN], from[LOG_VALUE_LEN], svc[LOG_VALUE_LEN];
    log_value(user, who, sizeof who);
    log_value(rhost, from, sizeof from);
    log_value(service, svc, sizeof svc);
    /* Kept open between logins of this process (see loader/ctx_cache.c);
     * every verify still reads the store of record. Privileged: su, login
     * and sshd run us as root in an environment the caller may have set. */
    apikey_ctx *ctx = ctx_cache_acquire(a->config, CORE_OPEN_PRIVILEGED, err, sizeof err);
    if (!ctx) {
        pam_syslog(pamh, LOG_ERR, "configuration: %s", err);
        return PAM_SERVICE_ERR;
    }
    apikey_verify_request q = {.size = sizeof q, .service = service, .account = user, .key = key,
                               .keylen = strlen(key), .client_addr = rhost};
    apikey_verdict v = {.size = sizeof v};
    /* The account phase checks again what auth let in: the key may have
     * been revoked since, but the login is one request of its rate limit. */
    core_verify_with(ctx, &q, &v, strcmp(phase, "account") == 0 ? CORE_VERIFY_NO_CELL : 0);
    ctx_cache_release(ctx);
    const apikey_result res = v.result;
    int rc = to_pam(&res);
    const char *id = res.key_id[0] ? res.key_id : "-";
    if (res.decision == APIKEY_ALLOWED)
        pam_syslog(pamh, LOG_NOTICE, "%s: allowed account=%s key=%s service=%s rhost=%s", phase, who,
                   id, svc, from);
    else if (res.decision == APIKEY_REFUSED)
        pam_syslog(pamh, LOG_NOTICE, "%s: refused account=%s key=%s service=%s rhost=%s reason=%s", phase,
                   who, id, svc, from, apikey_reason_string(res.reason));
    else
        pam_syslog(pamh, LOG_ERR, "%s: unavailable account=%s service=%s rhost=%s reason=%s%s%s", phase,
                   who, svc, from, apikey_reason_string(res.reason), v.error[0] ? ": " : "", v.error);
    if (res.decision != APIKEY_UNAVAILABLE && v.error[0]) /* a store's warning */
        pam_syslog(pamh, LOG_WARNING, "%s: %s", phase, v.error);
    if (a->debug)
        pam_syslog(pamh, LOG_DEBUG, "%s: config=%s pam=%s", phase, a->config ? a->config : "(default)",
                   pam_strerror(pamh, rc));
    return rc;
}

static void wipe_key(pam_handle_t *pamh, void *data, int status)
{
    (void)pamh;
    (void)status;
    explicit_bzero(data, strlen(data));
    free(data);
}

/* The key: the earlier module's with use_first_pass (or try_first_pass when
 * there is one), else one echo-off prompt. */
static int get_key(pam_handle_t *pamh, const pam_args *a, const char **key)
{
    const void *item = NULL;
    if (a->use_first_pass || a->try_first_pass) {
        if (pam_get_item(pamh, PAM_AUTHTOK, &item) == PAM_SUCCESS && item) {
            *key = item;
            return PAM_SUCCESS;
        }
        if (a->use_first_pass) {
            pam_syslog(pamh, LOG_NOTICE, "use_first_pass: no password from an earlier module");
            return PAM_AUTH_ERR;
        }
    }
    int rc = pam_get_authtok(pamh, PAM_AUTHTOK, key, NULL);
    /* libpam reports a conversation that failed or gave no answer as
     * PAM_AUTHTOK_ERR, a password-change code that no auth stack expects. */
    if (rc == PAM_AUTHTOK_ERR)
        return PAM_CONV_ERR;
    if (rc != PAM_SUCCESS)
        return rc;
    return *key ? PAM_SUCCESS : PAM_CONV_ERR;
}

PAM_EXPORT int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    (void)flags;
    pam_args a;
    int rc = parse_args(pamh, argc, argv, &a);
    if (rc != PAM_SUCCESS)
        return rc;
    const char *user = NULL, *key = NULL;
    rc = pam_get_user(pamh, &user, NULL);
    if (rc != PAM_SUCCESS)
        return rc == PAM_CONV_AGAIN ? PAM_INCOMPLETE : rc;
    if (!user || !*user)
        return PAM_AUTH_ERR;
    rc = get_key(pamh, &a, &key);
    if (rc != PAM_SUCCESS)
        return rc;
    rc = check(pamh, &a, "auth", user, key);
    if (rc == PAM_SUCCESS) {
        /* For the account phase: a private copy, wiped when the transaction ends. */
        char *copy = strdup(key);
        if (!copy || pam_set_data(pamh, DATA_KEY, copy, wipe_key) != PAM_SUCCESS) {
            if (copy)
                wipe_key(pamh, copy, 0);
            return PAM_BUF_ERR;
        }
    }
    return rc;
}

PAM_EXPORT int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    (void)pamh;
    (void)flags;
    (void)argc;
    (void)argv;
    return PAM_SUCCESS; /* an API key carries no credentials to establish */
}

PAM_EXPORT int pam_sm_acct_mgmt(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    (void)flags;
    pam_args a;
    int rc = parse_args(pamh, argc, argv, &a);
    if (rc != PAM_SUCCESS)
        return rc;
    const void *key = NULL;
    const char *user = NULL;
    /* No key authenticated in this transaction (say, an SSH public key did):
     * nothing to re-check, and nothing granted on our account either. */
    if (pam_get_data(pamh, DATA_KEY, &key) != PAM_SUCCESS || !key)
        return PAM_IGNORE;
    if (pam_get_item(pamh, PAM_USER, (const void **)&user) != PAM_SUCCESS || !user || !*user)
        return PAM_AUTH_ERR;
    return check(pamh, &a, "account", user, key);
}
