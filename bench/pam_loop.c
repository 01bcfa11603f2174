/* SPDX-License-Identifier: BSD-2-Clause */
/* One PAM transaction after another in one process: pam_start_confdir,
 * pam_authenticate, pam_acct_mgmt, pam_end, as a server does per login.
 * usage: pam_loop CONFDIR SERVICE USER PASSWORD ITERATIONS
 * Prints the microseconds per transaction; exits 1 if any was refused.
 * With PAM_LOOP_PER_CPU=1, microseconds of this process's CPU time: on
 * shared cores, time spent waiting for one is not the transaction's cost
 * (for a store behind a server, the server's work is then not counted:
 * those rows keep the wall clock). */
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int conv(int n, const struct pam_message **msg, struct pam_response **resp, void *data)
{
    struct pam_response *r = calloc((size_t)n, sizeof *r);
    if (!r)
        return PAM_BUF_ERR;
    for (int i = 0; i < n; i++)
        if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF || msg[i]->msg_style == PAM_PROMPT_ECHO_ON)
            r[i].resp = strdup(data);
    *resp = r;
    return PAM_SUCCESS;
}

static clockid_t clock_id = CLOCK_MONOTONIC;

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(clock_id, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int one(const char *dir, const char *service, const char *user, char *password)
{
    struct pam_conv c = {conv, password};
    pam_handle_t *pamh = NULL;
    int rc = pam_start_confdir(service, user, &c, dir, &pamh);
    if (rc == PAM_SUCCESS)
        rc = pam_authenticate(pamh, 0);
    if (rc == PAM_SUCCESS)
        rc = pam_acct_mgmt(pamh, 0);
    pam_end(pamh, rc);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: pam_loop CONFDIR SERVICE USER PASSWORD ITERATIONS\n");
        return 2;
    }
    int n = atoi(argv[5]);
    const char *per_cpu = getenv("PAM_LOOP_PER_CPU");
    if (per_cpu && strcmp(per_cpu, "1") == 0)
        clock_id = CLOCK_PROCESS_CPUTIME_ID;
    /* Warm up: the first transaction loads the modules and libraries. */
    if (one(argv[1], argv[2], argv[3], argv[4]) != PAM_SUCCESS) {
        fprintf(stderr, "pam_loop: the first transaction was refused\n");
        return 1;
    }
    double t0 = now_us();
    for (int i = 0; i < n; i++)
        if (one(argv[1], argv[2], argv[3], argv[4]) != PAM_SUCCESS) {
            fprintf(stderr, "pam_loop: transaction %d refused\n", i);
            return 1;
        }
    printf("%.2f\n", (now_us() - t0) / n);
    return 0;
}
