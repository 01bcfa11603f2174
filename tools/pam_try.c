/* SPDX-License-Identifier: BSD-2-Clause */
/* pam_try: logins through the real libpam with a private service folder
 * (pam_start_confdir), as a server runs them: pam_start, pam_authenticate,
 * pam_acct_mgmt when that succeeded, pam_end. For make demo and the
 * valgrind test; pamtester can only read /etc/pam.d.
 *
 * usage: pam_try [-n COUNT | -l] CONFDIR SERVICE USER
 * The password is the first line of standard input, never an argument:
 * arguments are visible to every user in ps.
 * Prints each phase's answer for one login, a count for many. Exits 0 when
 * every login was let in, 1 when any was refused, 2 on a usage error.
 * With -l, a long-lived host (bench/fleet.sh): a login for each line of
 * standard input, answered "let in" or "refused" on a line of its own. */
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int conv(int n, const struct pam_message **msg, struct pam_response **resp, void *data)
{
    struct pam_response *r = calloc((size_t)n, sizeof *r);
    if (!r)
        return PAM_BUF_ERR;
    for (int i = 0; i < n; i++)
        if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF && !(r[i].resp = strdup(data))) {
            for (int j = 0; j < i; j++)
                free(r[j].resp);
            free(r);
            return PAM_BUF_ERR;
        }
    *resp = r;
    return PAM_SUCCESS;
}

/* One login; auth and acct get each phase's answer (acct -1 when not run). */
static void login(char **argv, char *password, int *auth, int *acct)
{
    struct pam_conv c = {conv, password};
    pam_handle_t *pamh = NULL;
    *acct = -1;
    *auth = pam_start_confdir(argv[1], argv[2], &c, argv[0], &pamh);
    if (*auth != PAM_SUCCESS)
        return;
    *auth = pam_authenticate(pamh, 0);
    if (*auth == PAM_SUCCESS)
        *acct = pam_acct_mgmt(pamh, 0);
    pam_end(pamh, *acct == -1 ? *auth : *acct);
}

int main(int argc, char **argv)
{
    long count = 1;
    int opt, lines = 0;
    while ((opt = getopt(argc, argv, "n:l")) != -1) {
        if (opt == 'l')
            lines = 1;
        else if (opt != 'n' || (count = strtol(optarg, NULL, 10)) < 1)
            argc = 0;
    }
    if (argc - optind != 3) {
        fprintf(stderr, "usage: pam_try [-n COUNT | -l] CONFDIR SERVICE USER   (password on stdin)\n");
        return 2;
    }
    char *password = NULL;
    size_t cap = 0;
    int auth = 0, acct = 0;
    while (lines && getline(&password, &cap, stdin) >= 0) {
        password[strcspn(password, "\n")] = '\0';
        login(argv + optind, password, &auth, &acct);
        printf("%s\n", acct == PAM_SUCCESS ? "let in" : "refused");
        fflush(stdout);
    }
    if (lines) {
        if (password)
            explicit_bzero(password, cap);
        free(password);
        return 0;
    }
    ssize_t len = getline(&password, &cap, stdin);
    if (len < 0) {
        fprintf(stderr, "pam_try: no password on standard input\n");
        return 2;
    }
    password[strcspn(password, "\n")] = '\0';
    long let_in = 0;
    for (long i = 0; i < count; i++) {
        login(argv + optind, password, &auth, &acct);
        let_in += acct == PAM_SUCCESS;
    }
    if (count == 1) {
        printf("pam_authenticate: %s\n", pam_strerror(NULL, auth));
        if (acct != -1)
            printf("pam_acct_mgmt: %s\n", pam_strerror(NULL, acct));
        printf("%s\n", let_in ? "let in" : "refused");
    } else {
        printf("%ld of %ld logins let in\n", let_in, count);
    }
    explicit_bzero(password, cap);
    free(password);
    return let_in == count ? 0 : 1;
}
