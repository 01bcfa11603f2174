/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ngx_http_apikey_module - nginx asks libapikey "may this key use service S?"
 * in the access phase (ngx_http_apikey_module(8)).
 *
 *   apikey_config FILE;          http, server, location
 *   apikey_service NAME | off;   http, server, location
 *   apikey_header NAME;          http, server, location (default X-API-Key)
 *   $apikey_account $apikey_key_id $apikey_reason
 *
 * The client address of per-key allowlists (apikey(1)) is
 * $remote_addr: what the realip module leaves in the connection, so
 * set_real_ip_from and real_ip_header decide it as for allow/deny.
 *
 * A host of libapikey like any other: it knows only include/apikey.h and
 * loads libapikey.so.1 at run time through its versioned entry symbol, so
 * nginx never links OpenSSL, SQLite or libpq on our behalf.
 *
 * Each apikey_config file is opened once per worker (init_process) and shared
 * by the locations naming it; `nginx -s reload` starts workers that open it
 * anew. A store that may block (anything but json: and sqlite:) is checked
 * in nginx's thread pool "default", as `aio threads` reads files, so the
 * worker's event loop never waits on PostgreSQL; the context is thread-safe.
 *
 * Refusals keep nginx's own error path (the access phase returns 401, 403 or
 * 503), so `satisfy any`, `allow` and `error_page` work as for auth_basic;
 * a header and a body filter then swap nginx's HTML page for the short JSON
 * body of the man page's ANSWERS. No key is logged or answered, and the copy we
 * made of it is wiped once checked.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <dlfcn.h>
#include <stdio.h>

#include "apikey.h"
#include "credential.h"
#include "libload.h"


#ifndef NGX_APIKEY_LIBDIR
#define NGX_APIKEY_LIBDIR  "/usr/local/lib"
#endif


/* One apikey_config file: shared by every location that names it. */
typedef struct {
    ngx_str_t                    path;      /* NUL-terminated */
    apikey_ctx                  *ctx;       /* this worker's, opened in
                                               init_process; NULL: 503 */
    ngx_flag_t                   blocking;  /* the store may block: check in
                                               the thread pool */
    ngx_array_t                  services;  /* ngx_keyval_t: service -> its
                                               scopes, for scope="" */
} ngx_http_apikey_conf_file_t;


typedef struct {
    ngx_array_t                  files;     /* ngx_http_apikey_conf_file_t *,
                                               one per path */
#if (NGX_THREADS)
    ngx_thread_pool_t           *pool;
#endif
} ngx_http_apikey_main_conf_t;


typedef struct {
    ngx_http_apikey_conf_file_t *file;
    ngx_str_t                    service;   /* "" when off */
    ngx_str_t                    header;
    ngx_str_t                    scopes;    /* what the service requires, for
                                               RFC 6750's scope="" */
} ngx_http_apikey_loc_conf_t;


/* One check, as it goes to libapikey: on the stack, or the thread task's. */
typedef struct {
    apikey_ctx                  *ctx;
    const char                  *service;
    credential                   cred;      /* the key, and the account when
                                               Basic gave one */
    /*
     * $remote_addr, copied: a check in the thread pool outlives nothing of
     * the request's. "unix:" on a Unix socket, which no allowlist admits.
     */
    char                         client_addr[NGX_SOCKADDR_STRLEN + 1];
    /*
     * Written by libapikey in place: the result, the store's line for the
     * error log, the key's rate limit (all 0 from a library before 1.5,
     * which zeroes what it does not know).
     */
    apikey_verdict               v;
} ngx_http_apikey_check_t;


/* Per request. */
typedef struct {
    apikey_result                result;
    uint32_t                     rate_limit;
    uint32_t                     rate_remaining;
    uint32_t                     retry_after;
    ngx_uint_t                   status;    /* 0 until decided */
    unsigned                     waiting:1; /* a check runs in the thread
                                               pool */
    unsigned                     replace:1; /* ours is the refusal being
                                               sent: answer JSON */
    unsigned                     body_sent:1;
    ngx_str_t                    body;
    ngx_http_apikey_check_t     *pending;
} ngx_http_apikey_req_t;


/* What nginx itself needs of apikey.conf, gathered by the library's reader. */
typedef struct {
    ngx_conf_t                  *cf;
    ngx_array_t                 *services;
    ngx_flag_t                   nomem;
} ngx_http_apikey_hints_t;


enum {
    NGX_APIKEY_VAR_ACCOUNT,
    NGX_APIKEY_VAR_KEY_ID,
    NGX_APIKEY_VAR_REASON
};


static const apikey_api *ngx_http_apikey_load(ngx_conf_t *cf);
static void ngx_http_apikey_verify(ngx_http_apikey_check_t *chk);
static int ngx_http_apikey_add_service(const char *name, const char *scopes,
    void *arg);
static ngx_int_t ngx_http_apikey_read_hints(ngx_conf_t *cf,
    ngx_http_apikey_conf_file_t *f, apikey_ctx *probe);
static void *ngx_http_apikey_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_apikey_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_apikey_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_apikey_config(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_apikey_init_process(ngx_cycle_t *cycle);
static void ngx_http_apikey_exit_process(ngx_cycle_t *cycle);
static apikey_reason ngx_http_apikey_read_key(ngx_http_request_t *r,
    ngx_http_apikey_loc_conf_t *lcf, ngx_http_apikey_check_t *chk);
static ngx_int_t ngx_http_apikey_number_header(ngx_http_request_t *r,
    const ngx_str_t *name, uint32_t n);
static ngx_int_t ngx_http_apikey_plain(const char *s);
static ngx_int_t ngx_http_apikey_answer(ngx_http_request_t *r,
    ngx_http_apikey_loc_conf_t *lcf, ngx_http_apikey_req_t *rq);
static void ngx_http_apikey_take(ngx_http_request_t *r,
    ngx_http_apikey_req_t *rq, ngx_http_apikey_check_t *chk);
#if (NGX_THREADS)
static void ngx_http_apikey_thread(void *data, ngx_log_t *log);
static void ngx_http_apikey_thread_done(ngx_event_t *ev);
#endif
static ngx_int_t ngx_http_apikey_handler(ngx_http_request_t *r);
static ngx_http_apikey_req_t *ngx_http_apikey_replacing(ngx_http_request_t *r);
static ngx_int_t ngx_http_apikey_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_apikey_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_apikey_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_apikey_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_apikey_postconfiguration(ngx_conf_t *cf);


static ngx_command_t  ngx_http_apikey_commands[] = {

    { ngx_string("apikey_config"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_apikey_config,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("apikey_service"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_loc_conf_t, service),
      NULL },

    { ngx_string("apikey_header"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_loc_conf_t, header),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_apikey_module_ctx = {
    ngx_http_apikey_preconfiguration,      /* preconfiguration */
    ngx_http_apikey_postconfiguration,     /* postconfiguration */

    ngx_http_apikey_create_main_conf,      /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_apikey_create_loc_conf,       /* create location configuration */
    ngx_http_apikey_merge_loc_conf         /* merge location configuration */
};


ngx_module_t  ngx_http_apikey_module = {
    NGX_MODULE_V1,
    &ngx_http_apikey_module_ctx,           /* module context */
    ngx_http_apikey_commands,              /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_apikey_init_process,          /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_apikey_exit_process,          /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_variable_t  ngx_http_apikey_vars[] = {

    { ngx_string("apikey_account"), NULL, ngx_http_apikey_variable,
      NGX_APIKEY_VAR_ACCOUNT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("apikey_key_id"), NULL, ngx_http_apikey_variable,
      NGX_APIKEY_VAR_KEY_ID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("apikey_reason"), NULL, ngx_http_apikey_variable,
      NGX_APIKEY_VAR_REASON, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static const apikey_api               *ngx_http_apikey_api;

static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


/* --- libapikey, loaded at run time ------------------------------------ */

/*
 * libapikey.so.1 beside this module, in the build folder above it (make's
 * build/nginx/), in the installed library folder, then the loader's path.
 * The first two are as trusted as the module file itself.
 */
static const apikey_api *
ngx_http_apikey_load(ngx_conf_t *cf)
{
    char               dir[NGX_MAX_PATH], beside[NGX_MAX_PATH + 32],
                       above[NGX_MAX_PATH + 32], err[512];
    const char        *paths[3];
    const apikey_api  *api;
    Dl_info            self;
    ngx_uint_t         n;

    n = 0;

    if (ngx_http_apikey_api) {
        return ngx_http_apikey_api;
    }

    /*
     * Beside the module or one folder up (build/ when run in place), then
     * where make install put it; each checked and loaded by its descriptor,
     * as libapikey loads a store (common/libload.h).
     */
    if (dladdr((void *) &ngx_http_apikey_module, &self) && self.dli_fname
        && strrchr(self.dli_fname, '/'))
    {
        ngx_cpystrn((u_char *) dir, (u_char *) self.dli_fname, sizeof(dir));
        *strrchr(dir, '/') = '\0';
        ngx_snprintf((u_char *) beside, sizeof(beside),
                     "%s/libapikey.so.1%Z", dir);
        ngx_snprintf((u_char *) above, sizeof(above),
                     "%s/../libapikey.so.1%Z", dir);
        paths[n++] = beside;
        paths[n++] = above;
    }

    paths[n++] = NGX_APIKEY_LIBDIR "/libapikey.so.1";

    api = libload_apikey(paths, n, err, sizeof(err));
    if (api == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "apikey: cannot load libapikey.so.1: %s", err);
        return NULL;
    }

    ngx_http_apikey_api = api;

    return api;
}


/*
 * The one call into libapikey. Runs in the worker or in a pool thread; wipes
 * its copy of the key either way.
 */
static void
ngx_http_apikey_verify(ngx_http_apikey_check_t *chk)
{
    apikey_verify_request  q;

    /*
     * Unavailable until the library writes the verdict (every field, in
     * place or cut to size): one that wrote nothing never has the stack's
     * old bytes taken for an answer (APIKEY_ALLOWED is 0).
     */
    chk->v.size = sizeof(chk->v);
    chk->v.result.decision = APIKEY_UNAVAILABLE;
    chk->v.result.reason = APIKEY_REASON_ARGUMENT;
    chk->v.result.key_id[0] = '\0';
    chk->v.result.account[0] = '\0';
    chk->v.error[0] = '\0';
    chk->v.rate_limit = 0;
    chk->v.rate_remaining = 0;
    chk->v.retry_after = 0;

    if (chk->ctx == NULL) {
        /* The worker could not open the configuration: cannot tell. */
        chk->v.result.reason = APIKEY_REASON_CONFIG;

    } else if (APIKEY_API_HAS(ngx_http_apikey_api, verify_with)) {
        /*
         * A library older than 1.4 answers REASON_ARGUMENT: the address is
         * never silently dropped, so allowlists never silently stop.
         */
        q = (apikey_verify_request) {
            .size = sizeof(q),
            .service = chk->service,
            .account = chk->cred.account[0] ? chk->cred.account : NULL,
            .key = chk->cred.key,
            .keylen = chk->cred.keylen,
            .client_addr = chk->client_addr
        };

        ngx_http_apikey_api->verify_with(chk->ctx, &q, &chk->v);

    } else {
        /* Before 1.2 there is no call that takes the address. */
        ngx_cpystrn((u_char *) chk->v.error,
                    (u_char *) "libapikey has no verify_with (older than 1.2)",
                    sizeof(chk->v.error));
    }

    credential_wipe(&chk->cred);
}


/* --- what nginx itself needs of apikey.conf ---------------------------- */

static int
ngx_http_apikey_add_service(const char *name, const char *scopes, void *arg)
{
    ngx_http_apikey_hints_t  *h = arg;

    ngx_keyval_t  *kv;

    kv = ngx_array_push(h->services);
    if (kv == NULL) {
        h->nomem = 1;
        return 1;
    }

    kv->key.len = ngx_strlen(name);
    kv->key.data = ngx_pnalloc(h->cf->pool, kv->key.len + 1);
    kv->value.len = ngx_strlen(scopes);
    kv->value.data = ngx_pnalloc(h->cf->pool, kv->value.len + 1);
    if (kv->key.data == NULL || kv->value.data == NULL) {
        h->nomem = 1;
        return 1;
    }

    ngx_cpystrn(kv->key.data, (u_char *) name, kv->key.len + 1);
    ngx_cpystrn(kv->value.data, (u_char *) scopes, kv->value.len + 1);

    return 0;
}


/*
 * Whether the store may block, and each service's scopes for the 403's
 * scope="", asked of the context that libapikey opened from the file: one
 * reading, by the library's rules (the scopes space-separated, each once).
 */
static ngx_int_t
ngx_http_apikey_read_hints(ngx_conf_t *cf, ngx_http_apikey_conf_file_t *f,
    apikey_ctx *probe)
{
    char                     err[512];
    ngx_http_apikey_hints_t  h;

    h.cf = cf;
    h.services = &f->services;
    h.nomem = 0;

    if (ngx_array_init(&f->services, cf->pool, 8, sizeof(ngx_keyval_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /*
     * An older library cannot say: the thread pool, which is safe for any
     * store, and no scope="" (its checks answer 503 anyway, see below).
     */
    f->blocking = 1;

    if (!APIKEY_API_HAS(ngx_http_apikey_api, section)) {
        return NGX_OK;
    }

    if (ngx_http_apikey_api->services(probe, ngx_http_apikey_add_service, &h,
                                      err, sizeof(err))
        != APIKEY_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "apikey: %s", err);
        return NGX_ERROR;
    }

    if (h.nomem) {
        return NGX_ERROR;
    }

    f->blocking = ngx_http_apikey_api->store_may_block(probe);

    return NGX_OK;
}


/* --- configuration ----------------------------------------------------- */

static void *
ngx_http_apikey_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_apikey_main_conf_t  *mcf;

    mcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_apikey_main_conf_t));
    if (mcf == NULL
        || ngx_array_init(&mcf->files, cf->pool, 2,
                          sizeof(ngx_http_apikey_conf_file_t *))
           != NGX_OK)
    {
        return NULL;
    }

    return mcf;
}


static void *
ngx_http_apikey_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_apikey_loc_conf_t  *lcf;

    lcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_apikey_loc_conf_t));
    if (lcf == NULL) {
        return NULL;
    }

    lcf->file = NGX_CONF_UNSET_PTR;

    return lcf;
}


static char *
ngx_http_apikey_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_apikey_loc_conf_t *prev = parent;
    ngx_http_apikey_loc_conf_t *conf = child;

    ngx_uint_t     i;
    ngx_keyval_t  *kv;

    ngx_conf_merge_ptr_value(conf->file, prev->file, NULL);
    ngx_conf_merge_str_value(conf->service, prev->service, "off");
    ngx_conf_merge_str_value(conf->header, prev->header, "X-API-Key");

    /* Merged once per level: "off" becomes "", which stays off below. */
    if (conf->service.len == 0
        || (conf->service.len == 3
            && ngx_strncmp(conf->service.data, "off", 3) == 0))
    {
        conf->service.len = 0;
        return NGX_CONF_OK;
    }

    /* It is the realm="" of every answer: a name apikey.conf can map. */
    if (!credential_service_ok((char *) conf->service.data,
                               conf->service.len))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "apikey_service \"%V\": a service name holds 1 "
                           "to %d letters, digits and . _ - @ +",
                           &conf->service, CREDENTIAL_SERVICE_MAX);
        return NGX_CONF_ERROR;
    }

    if (conf->file == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "apikey_service \"%V\" needs an apikey_config",
                           &conf->service);
        return NGX_CONF_ERROR;
    }

    ngx_str_null(&conf->scopes);

    kv = conf->file->services.elts;
    for (i = 0; i < conf->file->services.nelts; i++) {
        if (kv[i].key.len == conf->service.len
            && ngx_strncmp(kv[i].key.data, conf->service.data,
                           conf->service.len)
               == 0)
        {
            conf->scopes = kv[i].value;
        }
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_apikey_config(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_apikey_loc_conf_t *lcf = conf;

    char                          err[512];
    ngx_str_t                    *value, path;
    ngx_uint_t                    i;
    apikey_ctx                   *probe;
    ngx_http_apikey_conf_file_t **files, *f;
    ngx_http_apikey_main_conf_t  *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_apikey_module);
    value = cf->args->elts;
    path = value[1];

    if (lcf->file != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    files = mcf->files.elts;
    for (i = 0; i < mcf->files.nelts; i++) {
        if (files[i]->path.len == path.len
            && ngx_strncmp(files[i]->path.data, path.data, path.len) == 0)
        {
            lcf->file = files[i];
            return NGX_CONF_OK;
        }
    }

    if (ngx_http_apikey_load(cf) == NULL) {
        return NGX_CONF_ERROR;
    }

    f = ngx_pcalloc(cf->pool, sizeof(ngx_http_apikey_conf_file_t));
    files = ngx_array_push(&mcf->files);
    if (f == NULL || files == NULL) {
        return NGX_CONF_ERROR;
    }

    *files = f;

    f->path.len = path.len;
    f->path.data = ngx_pnalloc(cf->pool, path.len + 1);
    if (f->path.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_cpystrn(f->path.data, path.data, path.len + 1);

    /*
     * nginx -t and a reload refuse a configuration libapikey refuses; the
     * store itself is first opened by a worker's first check.
     */
    probe = ngx_http_apikey_api->open((char *) f->path.data, err, sizeof(err));
    if (probe == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "apikey: %s", err);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_apikey_read_hints(cf, f, probe) != NGX_OK) {
        ngx_http_apikey_api->close(probe);
        return NGX_CONF_ERROR;
    }

    ngx_http_apikey_api->close(probe);

    if (f->blocking) {
#if (NGX_THREADS)
        mcf->pool = ngx_thread_pool_add(cf, NULL);
        if (mcf->pool == NULL) {
            return NGX_CONF_ERROR;
        }
#else
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "apikey: the store of \"%V\" may block: "
                           "nginx must be built --with-threads", &f->path);
        return NGX_CONF_ERROR;
#endif
    }

    lcf->file = f;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_apikey_init_process(ngx_cycle_t *cycle)
{
    char                          err[512];
    ngx_uint_t                    i;
    ngx_http_apikey_conf_file_t **files;
    ngx_http_apikey_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_apikey_module);
    if (mcf == NULL) {
        return NGX_OK;
    }

    files = mcf->files.elts;
    for (i = 0; i < mcf->files.nelts; i++) {
        files[i]->ctx = ngx_http_apikey_api->open((char *) files[i]->path.data,
                                                  err, sizeof(err));
        if (files[i]->ctx == NULL) {
            /*
             * Not fatal for the worker: its other locations still answer;
             * this configuration's answer 503.
             */
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0, "apikey: %s", err);
        }
    }

    return NGX_OK;
}


static void
ngx_http_apikey_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                    i;
    ngx_http_apikey_conf_file_t **files;
    ngx_http_apikey_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_apikey_module);
    if (mcf == NULL) {
        return;
    }

    files = mcf->files.elts;
    for (i = 0; i < mcf->files.nelts; i++) {
        if (files[i]->ctx) {
            ngx_http_apikey_api->close(files[i]->ctx);
            files[i]->ctx = NULL;
        }
    }
}


/* --- the key ------------------------------------------------------------ */

/*
 * Bearer, else the key header, else Basic account:key, by the rules the
 * HTTP hosts share (common/credential.h). nginx itself answers 400 to a
 * second Authorization line; a second key header is ours to refuse.
 */
static apikey_reason
ngx_http_apikey_read_key(ngx_http_request_t *r,
    ngx_http_apikey_loc_conf_t *lcf, ngx_http_apikey_check_t *chk)
{
    ngx_uint_t          i;
    ngx_list_part_t    *part;
    ngx_table_elt_t    *auth, *h;
    credential_header   a, k;

    auth = r->headers_in.authorization;
    part = &r->headers_in.headers.part;
    a = (credential_header) { NULL, 0, 0 };
    k = (credential_header) { NULL, 0, 0 };

    if (auth) {
        a.value = (const char *) auth->value.data;
        a.len = auth->value.len;
        a.count = 1;
    }

    for (h = part->elts, i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == lcf->header.len
            && ngx_strncasecmp(h[i].key.data, lcf->header.data,
                               lcf->header.len)
               == 0
            && k.count++ == 0)
        {
            k.value = (const char *) h[i].value.data;
            k.len = h[i].value.len;
        }
    }

    return credential_read(&a, &k, &chk->cred);
}


/* --- the answer --------------------------------------------------------- */

/*
 * One header of a number: X-RateLimit-Limit, X-RateLimit-Remaining,
 * Retry-After. Digits written by hand, as limit_req's are cheap:
 * ngx_sprintf's generic formatting was most of these headers' cost.
 */
static ngx_int_t
ngx_http_apikey_number_header(ngx_http_request_t *r, const ngx_str_t *name,
    uint32_t n)
{
    u_char           *p, *end;
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    p = ngx_pnalloc(r->pool, NGX_INT32_LEN);
    if (h == NULL || p == NULL) {
        return NGX_ERROR;
    }

    end = p + NGX_INT32_LEN;
    p = end;
    do {
        *--p = (u_char) ('0' + n % 10);
        n /= 10;
    } while (n);

    h->hash = 1;
    h->key = *name;
    h->value.data = p;
    h->value.len = end - p;

    return NGX_OK;
}


static ngx_str_t  ngx_http_apikey_limit = ngx_string("X-RateLimit-Limit");
static ngx_str_t  ngx_http_apikey_left = ngx_string("X-RateLimit-Remaining");
static ngx_str_t  ngx_http_apikey_retry = ngx_string("Retry-After");


/*
 * Only what the store made, and only characters that need no escaping in a
 * header, a log line or JSON.
 */
static ngx_int_t
ngx_http_apikey_plain(const char *s)
{
    for ( /* void */ ; *s; s++) {
        if (*s <= ' ' || *s == '"' || *s == '\\' || *s == 0x7f) {
            return 0;
        }
    }

    return 1;
}


static ngx_int_t
ngx_http_apikey_answer(ngx_http_request_t *r, ngx_http_apikey_loc_conf_t *lcf,
    ngx_http_apikey_req_t *rq)
{
    size_t            len;
    u_char           *p;
    ngx_uint_t        level;
    const char       *why, *id;
    apikey_result    *res;
    ngx_table_elt_t  *h;

    res = &rq->result;
    rq->status = (ngx_uint_t) ngx_http_apikey_api->http_status(res);

    /*
     * A key with a limit: what is left on an allowed answer, as the peers
     * send it; when to come back on a 429 (RFC 6585).
     */
    if (rq->status == NGX_HTTP_OK) {
        if (rq->rate_limit
            && (ngx_http_apikey_number_header(r, &ngx_http_apikey_limit,
                                              rq->rate_limit)
                != NGX_OK
                || ngx_http_apikey_number_header(r, &ngx_http_apikey_left,
                                                 rq->rate_remaining)
                   != NGX_OK))
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return NGX_OK;
    }

    if (rq->status == NGX_HTTP_TOO_MANY_REQUESTS) {
        if (ngx_http_apikey_number_header(r, &ngx_http_apikey_retry,
                                          rq->retry_after)
            != NGX_OK
            || ngx_http_apikey_number_header(r, &ngx_http_apikey_limit,
                                             rq->rate_limit)
               != NGX_OK
            || ngx_http_apikey_number_header(r, &ngx_http_apikey_left, 0)
               != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

    } else if (rq->status != NGX_HTTP_UNAUTHORIZED
               && rq->status != NGX_HTTP_FORBIDDEN)
    {
        rq->status = NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    /* A refusal's words: an allowed request never needs them. */
    why = credential_reason_string(ngx_http_apikey_api, res->reason);
    id = res->key_id[0] && ngx_http_apikey_plain(res->key_id)
         ? res->key_id : NULL;

    level = rq->status == NGX_HTTP_SERVICE_UNAVAILABLE ? NGX_LOG_ERR
                                                       : NGX_LOG_INFO;
    ngx_log_error(level, r->connection->log, 0,
                  "apikey: service \"%V\": %d %s, key %s",
                  &lcf->service, (int) rq->status, why, id ? id : "-");

    len = sizeof("{\"error\": \"\", \"key_id\": \"\"}\n") + ngx_strlen(why)
          + (id ? ngx_strlen(id) : 4);

    rq->body.data = ngx_pnalloc(r->pool, len);
    if (rq->body.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (id) {
        p = ngx_snprintf(rq->body.data, len,
                         "{\"error\": \"%s\", \"key_id\": \"%s\"}\n", why, id);

    } else {
        p = ngx_snprintf(rq->body.data, len,
                         "{\"error\": \"%s\", \"key_id\": null}\n", why);
    }

    rq->body.len = p - rq->body.data;
    rq->replace = 1;

    if (rq->status == NGX_HTTP_SERVICE_UNAVAILABLE
        || rq->status == NGX_HTTP_TOO_MANY_REQUESTS)
    {
        return rq->status;
    }

    /* RFC 6750 section 3. */
    len = sizeof("Bearer realm=\"\", error=\"insufficient_scope\", scope=\"\"")
          + lcf->service.len + lcf->scopes.len;

    h = ngx_list_push(&r->headers_out.headers);
    p = ngx_pnalloc(r->pool, len);
    if (h == NULL || p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->value.len = credential_challenge((char *) p, len, (int) rq->status,
                                        (char *) lcf->service.data,
                                        res->reason != APIKEY_REASON_MISSING,
                                        lcf->scopes.len
                                        ? (char *) lcf->scopes.data : "");
    if (h->value.len == 0) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "WWW-Authenticate");
    h->value.data = p;
    r->headers_out.www_authenticate = h;

    return rq->status;
}


/*
 * A check's answer, back in the worker: the library logs nothing itself,
 * so what the store said goes to the error log here. A library too old for
 * the client address fails every check alike: said once per worker.
 */
static void
ngx_http_apikey_take(ngx_http_request_t *r, ngx_http_apikey_req_t *rq,
    ngx_http_apikey_check_t *chk)
{
    static ngx_uint_t  too_old_said;

    /*
     * The strings up to their NUL (rq is zeroed): a copy of the whole
     * result was 330 bytes written a request, nearly all of them zeros;
     * ngx_cpystrn's byte loop, 200 instructions more than libc's.
     */
    rq->result.decision = chk->v.result.decision;
    rq->result.reason = chk->v.result.reason;
    ngx_memcpy(rq->result.key_id, chk->v.result.key_id,
               strnlen(chk->v.result.key_id, sizeof(rq->result.key_id) - 1));
    ngx_memcpy(rq->result.account, chk->v.result.account,
               strnlen(chk->v.result.account, sizeof(rq->result.account) - 1));
    rq->rate_limit = chk->v.rate_limit;
    rq->rate_remaining = chk->v.rate_remaining;
    rq->retry_after = chk->v.retry_after;

    if (chk->v.result.reason == APIKEY_REASON_ARGUMENT) {
        if (!too_old_said) {
            too_old_said = 1;
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "apikey: libapikey cannot take the client address "
                          "that allowlists need (%s): every check answers "
                          "503 until libapikey 1.4 or later is installed",
                          chk->v.error);
        }

    } else if (chk->v.error[0]) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "apikey: %s",
                      chk->v.error);
    }
}


#if (NGX_THREADS)

static void
ngx_http_apikey_thread(void *data, ngx_log_t *log)
{
    ngx_http_apikey_verify(data);
}


/* Back in the worker: run the phases again; the handler answers. */
static void
ngx_http_apikey_thread_done(ngx_event_t *ev)
{
    ngx_connection_t       *c;
    ngx_http_request_t     *r;
    ngx_http_apikey_req_t  *rq;

    r = ev->data;
    c = r->connection;
    rq = ngx_http_get_module_ctx(r, ngx_http_apikey_module);

    ngx_http_set_log_request(c->log, r);

    ngx_http_apikey_take(r, rq, rq->pending);
    rq->pending = NULL;
    rq->waiting = 0;

    r->main->blocked--;
    r->aio = 0;

    r->write_event_handler(r);

    ngx_http_run_posted_requests(c);
}

#endif


static ngx_int_t
ngx_http_apikey_handler(ngx_http_request_t *r)
{
    size_t                        len;
    apikey_reason                 why;
    ngx_http_apikey_req_t        *rq;
    ngx_http_apikey_check_t       local, *chk;
    ngx_http_apikey_loc_conf_t   *lcf;
#if (NGX_THREADS)
    ngx_thread_task_t            *task;
    ngx_http_apikey_main_conf_t  *mcf;
#endif

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_apikey_module);
    chk = &local;

    if (lcf->service.len == 0) {
        return NGX_DECLINED;
    }

    rq = ngx_http_get_module_ctx(r, ngx_http_apikey_module);

    if (rq) {
        if (rq->waiting) {
            return NGX_AGAIN;
        }

        if (rq->status == 0) {
            return ngx_http_apikey_answer(r, lcf, rq);
        }

        return rq->status == NGX_HTTP_OK ? NGX_OK : (ngx_int_t) rq->status;
    }

    rq = ngx_pcalloc(r->pool, sizeof(ngx_http_apikey_req_t));
    if (rq == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_set_ctx(r, rq, ngx_http_apikey_module);

#if (NGX_THREADS)
    task = NULL;

    /*
     * A pgsql: store with a replica answers locally while the replica is
     * trusted: asked per check, as a thread hop costs more than the check.
     */
    if (lcf->file->blocking
        && (!APIKEY_API_HAS(ngx_http_apikey_api, check_may_block)
            || ngx_http_apikey_api->check_may_block(lcf->file->ctx)))
    {
        task = ngx_thread_task_alloc(r->pool, sizeof(ngx_http_apikey_check_t));
        if (task == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        chk = task->ctx;
    }
#endif

    /*
     * Field by field, not the whole 2.5 KiB: the credential is reset by
     * its reader and the verdict written by the check.
     */
    chk->ctx = lcf->file->ctx;
    /* NUL-terminated by the parser */
    chk->service = (const char *) lcf->service.data;
    len = ngx_min(r->connection->addr_text.len, sizeof(chk->client_addr) - 1);
    ngx_memcpy(chk->client_addr, r->connection->addr_text.data, len);
    chk->client_addr[len] = '\0';

    why = ngx_http_apikey_read_key(r, lcf, chk);
    if (why != APIKEY_REASON_NONE) {
        rq->result.decision = APIKEY_REFUSED;
        rq->result.reason = why;
        return ngx_http_apikey_answer(r, lcf, rq);
    }

#if (NGX_THREADS)
    if (task) {
        mcf = ngx_http_get_module_main_conf(r, ngx_http_apikey_module);

        task->handler = ngx_http_apikey_thread;
        task->event.handler = ngx_http_apikey_thread_done;
        task->event.data = r;

        if (ngx_thread_task_post(mcf->pool, task) != NGX_OK) {
            ngx_explicit_memzero(chk, sizeof(ngx_http_apikey_check_t));
            rq->result.decision = APIKEY_UNAVAILABLE;
            rq->result.reason = APIKEY_REASON_NOMEM;
            return ngx_http_apikey_answer(r, lcf, rq);
        }

        /* As aio threads: the request is not freed while the check runs. */
        rq->pending = chk;
        rq->waiting = 1;
        r->main->blocked++;
        r->aio = 1;

        return NGX_AGAIN;
    }
#endif

    ngx_http_apikey_verify(chk);
    ngx_http_apikey_take(r, rq, chk);

    return ngx_http_apikey_answer(r, lcf, rq);
}


/* --- the JSON body of a refusal ----------------------------------------- */

static ngx_http_apikey_req_t *
ngx_http_apikey_replacing(ngx_http_request_t *r)
{
    ngx_http_apikey_req_t  *rq;

    rq = r == r->main ? ngx_http_get_module_ctx(r, ngx_http_apikey_module)
                      : NULL;

    return rq && rq->replace ? rq : NULL;
}


static ngx_int_t
ngx_http_apikey_header_filter(ngx_http_request_t *r)
{
    ngx_http_apikey_req_t  *rq;

    rq = ngx_http_apikey_replacing(r);

    /*
     * Ours is the status sent: not allow's 200 after `satisfy any`, not an
     * error_page (an internal redirect drops our context).
     */
    if (rq && r->headers_out.status == rq->status) {
        ngx_str_set(&r->headers_out.content_type, "application/json");
        r->headers_out.content_type_len = r->headers_out.content_type.len;
        r->headers_out.content_type_lowcase = NULL;
        r->headers_out.charset.len = 0;
        r->headers_out.content_length_n = rq->body.len;

        if (r->headers_out.content_length) {
            r->headers_out.content_length->hash = 0;
            r->headers_out.content_length = NULL;
        }

    } else if (rq) {
        rq->replace = 0;
    }

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_apikey_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_buf_t              *b;
    ngx_chain_t            *cl, out;
    ngx_http_apikey_req_t  *rq;

    rq = ngx_http_apikey_replacing(r);

    if (rq == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    for (cl = in; cl; cl = cl->next) {
        /* nginx's page: in memory, not sent */
        cl->buf->pos = cl->buf->last;

        if (cl->buf->in_file) {
            cl->buf->file_pos = cl->buf->file_last;
        }
    }

    if (rq->body_sent) {
        return ngx_http_next_body_filter(r, NULL);
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = rq->body.data;
    b->last = rq->body.data + rq->body.len;
    b->memory = 1;
    b->last_buf = 1;

    out.buf = b;
    out.next = NULL;

    rq->body_sent = 1;

    return ngx_http_next_body_filter(r, &out);
}


/* --- variables ---------------------------------------------------------- */

static ngx_int_t
ngx_http_apikey_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    ngx_uint_t              allowed;
    const char             *s;
    ngx_http_apikey_req_t  *rq;

    rq = ngx_http_get_module_ctx(r, ngx_http_apikey_module);
    s = NULL;

    if (rq && !rq->waiting) {
        /*
         * A refused key confers no identity, also when satisfy any and
         * allow let the request through anyway: who it names stays in the
         * refusal's JSON body and the error log only.
         */
        allowed = rq->status == NGX_HTTP_OK
                  && rq->result.decision == APIKEY_ALLOWED;

        switch (data) {

        case NGX_APIKEY_VAR_ACCOUNT:
            s = allowed ? rq->result.account : NULL;
            break;

        case NGX_APIKEY_VAR_KEY_ID:
            s = allowed ? rq->result.key_id : NULL;
            break;

        default:
            s = credential_reason_string(ngx_http_apikey_api,
                                         rq->result.reason);
        }
    }

    /* Headers and logs take it as is: only what needs no escaping. */
    if (s == NULL || *s == '\0'
        || (data != NGX_APIKEY_VAR_REASON && !ngx_http_apikey_plain(s)))
    {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = (u_char *) s;
    v->len = ngx_strlen(s);
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_preconfiguration(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_apikey_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_apikey_handler;

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_apikey_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_apikey_body_filter;

    return NGX_OK;
}
