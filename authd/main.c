/* SPDX-License-Identifier: BSD-2-Clause */
/* apikey-authd: options, sockets, the two libmicrohttpd daemons, and the
 * main thread's loop over signals and changes of the configuration file.
 *
 * A reload opens a new generation (library context and settings) beside the
 * one in use and swaps it in under a lock; requests hold a reference to the
 * generation they started with, and the last one out closes it. Connections
 * are never touched by a reload. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "authd.h"

#ifndef APIKEY_VERSION
#define APIKEY_VERSION "unknown"
#endif
#ifndef APIKEY_DEFAULT_CONFIG
#define APIKEY_DEFAULT_CONFIG "/etc/apikey/apikey.conf"
#endif
#define DEFAULT_LISTEN "unix:/run/apikey/authd.sock"

const apikey_api *authd_api;
int authd_verbose;

static authd_generation *current;
static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static mode_t socket_mode = 0660;

authd_generation *authd_acquire(void)
{
    pthread_mutex_lock(&current_lock);
    authd_generation *g = current;
    g->refs++;
    pthread_mutex_unlock(&current_lock);
    return g;
}

void authd_release(authd_generation *g)
{
    pthread_mutex_lock(&current_lock);
    int last = --g->refs == 0;
    pthread_mutex_unlock(&current_lock);
    if (last) {
        authd_api->close(g->ctx);
        authd_settings_free(&g->settings);
        free(g);
    }
}

static authd_generation *open_generation(const char *config, char *err, size_t errlen)
{
    authd_generation *g = calloc(1, sizeof *g);
    if (!g) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    g->refs = 1; /* the reference of `current` */
    if (!(g->ctx = authd_api->open(config, err, errlen))) {
        free(g);
        return NULL;
    }
    char why[512];
    if (authd_settings_read(authd_api, g->ctx, &g->settings, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s: %s", config, why);
        authd_api->close(g->ctx);
        free(g);
        return NULL;
    }
    return g;
}

static void reload(const char *config)
{
    char err[1024];
    authd_generation *g = open_generation(config, err, sizeof err);
    authd_count_reload(g != NULL);
    if (!g) {
        fprintf(stderr, "apikey-authd: reload failed, the previous configuration stays: %s\n", err);
        return;
    }
    pthread_mutex_lock(&current_lock);
    authd_generation *old = current;
    current = g;
    pthread_mutex_unlock(&current_lock);
    authd_release(old);
    fprintf(stderr, "apikey-authd: configuration %s reloaded\n", config);
}

/* A Unix socket at path: a stale socket is replaced, a live one (another
 * daemon answers) or anything that is not a socket is refused. */
static int bind_unix(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    struct stat st;
    if (strlen(path) >= sizeof a.sun_path || path[0] != '/') {
        snprintf(err, errlen, "%s: not an absolute path of at most %zu bytes", path, sizeof a.sun_path - 1);
        return -1;
    }
    memcpy(a.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "%s exists and is not a socket; refusing it", path);
            goto fail;
        }
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
            snprintf(err, errlen, "%s: another process answers on it", path);
            goto fail;
        }
        close(fd);
        if (unlink(path) != 0 || (fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            return -1;
        }
    }
    /* Made 0600, then given the folder's group and --socket-mode (0660 by
     * default): who may connect is who may enter the folder and is of its
     * group, never every local user unless the operator says so. */
    char dir[sizeof a.sun_path];
    struct stat d;
    snprintf(dir, sizeof dir, "%s", path);
    mode_t old = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&a, sizeof a);
    umask(old);
    if (rc != 0 || stat(dirname(dir), &d) != 0 || chown(path, (uid_t)-1, d.st_gid) != 0 ||
        chmod(path, socket_mode) != 0 || listen(fd, 1024) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        if (rc == 0)
            unlink(path);
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return -1;
}

/* HOST:PORT, [V6]:PORT. */
static int bind_tcp(const char *addr, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof host || !colon[1]) {
        snprintf(err, errlen, "%s: want unix:PATH or HOST:PORT", addr);
        return -1;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    char *h = host;
    size_t hn = strlen(h);
    if (h[0] == '[' && h[hn - 1] == ']')
        h[hn - 1] = '\0', h++;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *res;
    int e = getaddrinfo(h, colon + 1, &hints, &res);
    if (e != 0) {
        snprintf(err, errlen, "%s: %s", addr, gai_strerror(e));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
        snprintf(err, errlen, "%s: %s", addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static int bind_address(const char *addr, char *err, size_t errlen)
{
    return strncmp(addr, "unix:", 5) == 0 ? bind_unix(addr + 5, err, errlen) : bind_tcp(addr, err, errlen);
}

/* ---- One client cannot hold the daemon ----
 * --timeout closes a connection idle that long; a client that sends a byte
 * now and then is never idle. So every connection is listed with the time
 * its current request began (when it connected, or when its previous
 * request was answered), and the main loop shuts down any that has not
 * been answered within --deadline. libmicrohttpd then sees the end of the
 * stream and closes it. A connection leaves the list before
 * libmicrohttpd closes its descriptor, under the list's lock, so a
 * shutdown never reaches a descriptor reused by another. */
typedef struct tracked {
    int fd;
    _Atomic time_t since; /* CLOCK_MONOTONIC seconds */
    struct tracked *prev, *next;
} tracked;

static tracked *connections;
static pthread_mutex_t connections_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned deadline = 60;

static time_t now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

/* cls: 1 on the admin socket, whose peers are checked here, when they
 * connect: one that is not an admin is dropped before it can hold one of
 * the socket's connections. */
static void notify_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                              enum MHD_ConnectionNotificationCode code)
{
    tracked *t = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        if (!t)
            return;
        pthread_mutex_lock(&connections_lock);
        if (t->prev)
            t->prev->next = t->next;
        else
            connections = t->next;
        if (t->next)
            t->next->prev = t->prev;
        pthread_mutex_unlock(&connections_lock);
        free(t);
        *socket_context = NULL;
        return;
    }
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return;
    if (cls) {
        struct ucred peer = {0};
        int admin = authd_admin_peer(ci->connect_fd, &peer);
        if (admin != 1) {
            if (admin < 0)
                fprintf(stderr, "apikey-authd: admin socket: a peer without credentials; dropped\n");
            else
                fprintf(stderr, "apikey-authd: admin socket: uid %u is not an admin; dropped\n", (unsigned)peer.uid);
            shutdown(ci->connect_fd, SHUT_RDWR);
            return;
        }
    }
    if (!(t = calloc(1, sizeof *t))) {
        shutdown(ci->connect_fd, SHUT_RDWR);
        return;
    }
    t->fd = ci->connect_fd;
    t->since = now_s();
    pthread_mutex_lock(&connections_lock);
    t->next = connections;
    if (connections)
        connections->prev = t;
    connections = t;
    pthread_mutex_unlock(&connections_lock);
    *socket_context = t;
}

/* A request answered: the next one's clock starts. cls: the handler's own
 * callback, if any. */
static void request_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                              enum MHD_RequestTerminationCode toe)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (ci && ci->socket_context)
        ((tracked *)ci->socket_context)->since = now_s();
    if (cls)
        ((MHD_RequestCompletedCallback)cls)(NULL, c, con_cls, toe);
}

static void past_deadline(void)
{
    time_t now = now_s();
    pthread_mutex_lock(&connections_lock);
    for (tracked *t = connections; t; t = t->next)
        if (now - t->since >= (time_t)deadline)
            shutdown(t->fd, SHUT_RDWR);
    pthread_mutex_unlock(&connections_lock);
}

static struct MHD_Daemon *start(int fd, unsigned threads, unsigned connections_max, unsigned per_address,
                                unsigned timeout, MHD_AccessHandlerCallback handler,
                                MHD_RequestCompletedCallback completed, int admin)
{
    return MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0, NULL, NULL, handler,
                            NULL, MHD_OPTION_LISTEN_SOCKET, fd,
                            MHD_OPTION_NOTIFY_COMPLETED, request_completed, (void *)completed,
                            MHD_OPTION_NOTIFY_CONNECTION, notify_connection, admin ? (void *)1 : NULL,
                            MHD_OPTION_THREAD_POOL_SIZE, threads > 1 ? threads : 0,
                            MHD_OPTION_CONNECTION_LIMIT, connections_max,
                            /* Counted per IP address: a Unix socket's peers are not. */
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_address,
                            MHD_OPTION_CONNECTION_TIMEOUT, timeout,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768,
                            MHD_OPTION_END);
}

/* systemd's Type=notify, without libsystemd. */
static void notify_ready(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (!path || (path[0] != '/' && path[0] != '@') || strlen(path) >= sizeof a.sun_path)
        return;
    memcpy(a.sun_path, path, strlen(path));
    if (a.sun_path[0] == '@')
        a.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    (void)sendto(fd, "READY=1", 7, 0, (struct sockaddr *)&a,
                 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path)));
    close(fd);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: apikey-authd [--config FILE] [--listen ADDR] [--admin unix:PATH] [--threads N]\n"
               "                    [--dashboard ADDR] [--connections N] [--per-address N] [--timeout SECONDS]\n"
               "                    [--deadline SECONDS] [--socket-mode MODE] [--verbose]\n"
               "  ADDR: unix:PATH (default " DEFAULT_LISTEN ") or HOST:PORT\n");
}

static long number(const char *what, const char *v, long lo, long hi)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (!*v || *end || n < lo || n > hi) {
        fprintf(stderr, "apikey-authd: %s must be a number from %ld to %ld\n", what, lo, hi);
        exit(2);
    }
    return n;
}

/* Octal, read and write bits only: a socket is connected to, never run. */
static mode_t socket_mode_arg(const char *v)
{
    char *end;
    unsigned long m = strtoul(v, &end, 8);
    if (!*v || *end || (m & ~0666UL)) {
        fprintf(stderr, "apikey-authd: --socket-mode must be octal, of the bits 0666 (such as 0660)\n");
        exit(2);
    }
    return (mode_t)m;
}

typedef struct options {
    const char *config, *listen_at, *admin_at, *dashboard_at;
    unsigned threads, connections_max, per_address, timeout;
} options;

/* -1 to go on; otherwise the status to exit with. */
static int read_options(int argc, char **argv, options *o)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    *o = (options){.listen_at = DEFAULT_LISTEN, .threads = cpus > 0 ? (unsigned)cpus : 1,
                   .connections_max = 4096, .per_address = 256, .timeout = 30};
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},  {"listen", required_argument, NULL, 'l'},
        {"admin", required_argument, NULL, 'a'},   {"threads", required_argument, NULL, 't'},
        {"connections", required_argument, NULL, 'n'}, {"timeout", required_argument, NULL, 'T'},
        {"per-address", required_argument, NULL, 'p'}, {"deadline", required_argument, NULL, 'D'},
        {"socket-mode", required_argument, NULL, 'm'},
        {"verbose", no_argument, NULL, 'v'},       {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},       {"dashboard", required_argument, NULL, 'd'},
        {NULL, 0, NULL, 0},
    };
    for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        switch (c) {
        case 'c': o->config = optarg; break;
        case 'l': o->listen_at = optarg; break;
        case 'a': o->admin_at = optarg; break;
        case 'd': o->dashboard_at = optarg; break;
        case 't': o->threads = (unsigned)number("--threads", optarg, 1, 256); break;
        case 'n': o->connections_max = (unsigned)number("--connections", optarg, 1, 1000000); break;
        case 'p': o->per_address = (unsigned)number("--per-address", optarg, 1, 1000000); break;
        case 'T': o->timeout = (unsigned)number("--timeout", optarg, 1, 3600); break;
        case 'D': deadline = (unsigned)number("--deadline", optarg, 1, 3600); break;
        case 'm': socket_mode = socket_mode_arg(optarg); break;
        case 'v': authd_verbose = 1; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("apikey-authd %s\n", APIKEY_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (o->admin_at && strncmp(o->admin_at, "unix:", 5) != 0) {
        fprintf(stderr, "apikey-authd: --admin takes unix:PATH: the management API is never on the network\n");
        return 2;
    }
    if (!o->config && !(o->config = secure_getenv("APIKEY_CONFIG")))
        o->config = APIKEY_DEFAULT_CONFIG;
    return -1;
}

typedef struct sockets {
    int listen, admin, dashboard;
} sockets;

/* All three bound, or none left behind. */
static int open_sockets(const options *o, sockets *s)
{
    char err[1024];
    s->listen = bind_address(o->listen_at, err, sizeof err), s->admin = -1, s->dashboard = -1;
    if (s->listen < 0 || (o->admin_at && (s->admin = bind_unix(o->admin_at + 5, err, sizeof err)) < 0) ||
        (o->dashboard_at && (s->dashboard = bind_address(o->dashboard_at, err, sizeof err)) < 0)) {
        fprintf(stderr, "apikey-authd: %s\n", err);
        if (s->listen >= 0 && strncmp(o->listen_at, "unix:", 5) == 0)
            unlink(o->listen_at + 5);
        return -1;
    }
    return 0;
}

/* Each connection is a descriptor: allow as many as the hard limit. */
static void raise_descriptor_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Signals go to the main loop, never to a server thread: a signalfd. */
static int take_signals(void)
{
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    return signalfd(-1, &sigs, SFD_CLOEXEC);
}

/* An inotify descriptor on the configuration's folder, or -1 (then only
 * SIGHUP reloads). */
static int watch_config(const char *config)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", config);
    int ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (ifd >= 0 && inotify_add_watch(ifd, dirname(dir), IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_ATTRIB) < 0)
        fprintf(stderr, "apikey-authd: not watching %s (%s); SIGHUP reloads\n", config, strerror(errno));
    return ifd;
}

typedef struct daemons {
    struct MHD_Daemon *pub, *adm, *dash;
} daemons;

static int start_daemons(const options *o, const sockets *s, daemons *d)
{
    d->pub = start(s->listen, o->threads, o->connections_max, o->per_address, o->timeout, authd_serve_public,
                   NULL, 0);
    d->adm = s->admin >= 0 ? start(s->admin, 1, 64, o->per_address, o->timeout, authd_serve_admin,
                                   authd_body_completed, 1)
                           : NULL;
    /* Its customers all come through the sign-in proxy's address: no
     * per-address limit there. */
    d->dash = NULL;
    if ((authd_dashboard_fd = s->dashboard) >= 0)
        d->dash = start(s->dashboard, 2, 256, 0, o->timeout, authd_serve_dashboard, authd_body_completed, 0);
    if (!d->pub || (s->admin >= 0 && !d->adm) || (s->dashboard >= 0 && !d->dash)) {
        fprintf(stderr, "apikey-authd: libmicrohttpd did not start\n");
        return -1;
    }
    return 0;
}

/* Whether the events waiting on ifd name the file base. */
static int config_changed(int ifd, const char *base)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t got;
    int changed = 0;
    while ((got = read(ifd, buf, sizeof buf)) > 0)
        for (char *e = buf; e < buf + got; e += sizeof(struct inotify_event) + ((struct inotify_event *)e)->len) {
            const struct inotify_event *ev = (const struct inotify_event *)e;
            if (ev->len && strcmp(ev->name, base) == 0)
                changed = 1;
        }
    return changed;
}

/* Until SIGTERM or SIGINT: reloads on SIGHUP and on changes of the file,
 * and cuts requests past their deadline. */
static void run(const char *config, int sfd, int ifd)
{
    const char *base = strrchr(config, '/') ? strrchr(config, '/') + 1 : config;
    int pending = 0;
    for (;;) {
        struct pollfd p[2] = {{.fd = sfd, .events = POLLIN}, {.fd = ifd, .events = POLLIN}};
        /* Editors write in several steps: reload once the file is quiet.
         * Each second, requests past their deadline are cut. */
        int n = poll(p, ifd >= 0 ? 2 : 1, pending ? 200 : 1000);
        if (n < 0 && errno != EINTR)
            break;
        past_deadline();
        if (n == 0 && pending) {
            pending = 0;
            reload(config);
            continue;
        }
        if ((p[1].revents & POLLIN) && config_changed(ifd, base))
            pending = 1;
        if (p[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) != sizeof si)
                continue;
            if (si.ssi_signo == SIGHUP) {
                reload(config);
                continue;
            }
            break;
        }
    }
}

static void stop(const options *o, const daemons *d)
{
    fprintf(stderr, "apikey-authd: stopping\n");
    MHD_stop_daemon(d->pub);
    if (d->adm)
        MHD_stop_daemon(d->adm);
    if (d->dash)
        MHD_stop_daemon(d->dash);
    if (strncmp(o->listen_at, "unix:", 5) == 0)
        unlink(o->listen_at + 5);
    if (o->admin_at)
        unlink(o->admin_at + 5);
    if (o->dashboard_at && strncmp(o->dashboard_at, "unix:", 5) == 0)
        unlink(o->dashboard_at + 5);
}

int main(int argc, char **argv)
{
    options o;
    int rc = read_options(argc, argv, &o);
    if (rc >= 0)
        return rc;

    char err[1024];
    if (!(authd_api = authd_load_library(err, sizeof err)) || !(current = open_generation(o.config, err, sizeof err))) {
        fprintf(stderr, "apikey-authd: %s\n", err);
        return 2;
    }
    if (o.dashboard_at && !current->settings.dashboard_header[0]) {
        fprintf(stderr, "apikey-authd: --dashboard needs dashboard_account_header in [authd] of %s\n", o.config);
        return 2;
    }
    sockets s;
    if (open_sockets(&o, &s) != 0)
        return 2;

    raise_descriptor_limit();
    int sfd = take_signals();
    int ifd = watch_config(o.config);
    daemons d;
    if (start_daemons(&o, &s, &d) != 0)
        return 2;
    fprintf(stderr, "apikey-authd: listening on %s with %u threads%s%s%s%s\n", o.listen_at, o.threads,
            o.admin_at ? ", admin on " : "", o.admin_at ? o.admin_at : "", o.dashboard_at ? ", dashboard on " : "",
            o.dashboard_at ? o.dashboard_at : "");
    notify_ready();

    run(o.config, sfd, ifd);
    stop(&o, &d);
    authd_release(current);
    return 0;
}
