/* SPDX-License-Identifier: BSD-2-Clause */
/* Reading lines that hold keys without leaving copies behind (secret_io). */
#include <string.h>
#include <stdlib.h>
#include <unistd.h>

#include "secret_io.h"
#include "testutil.h"

/* A reader over a pipe that already holds text and is closed. */
static void feed(secret_reader *r, const char *text, size_t len)
{
    int p[2];
    if (pipe(p) != 0)
        abort();
    /* A pipe holds 64 kB: enough for every text of this file. */
    CU_ASSERT_EQUAL(write(p[1], text, len), (ssize_t)len);
    close(p[1]);
    secret_reader_init(r, p[0]);
}

static int holds(const secret_reader *r, const char *s)
{
    return memmem(r->buf, sizeof r->buf, s, strlen(s)) != NULL;
}

static void test_lines_and_wiping(void)
{
    static secret_reader r;
    static const char text[] = "first-secret\nsecond\0secret\nlast-secret";
    feed(&r, text, sizeof text - 1);
    char line[64];
    CU_ASSERT_EQUAL(secret_read_line(&r, line, sizeof line), 12);
    CU_ASSERT_STRING_EQUAL(line, "first-secret");
    CU_ASSERT_FALSE(holds(&r, "first-secret"));
    CU_ASSERT_TRUE(holds(&r, "last-secret")); /* read ahead, not yet consumed */
    CU_ASSERT_EQUAL(secret_read_line(&r, line, sizeof line), 13);
    CU_ASSERT_EQUAL(memcmp(line, "second\0secret", 14), 0);
    CU_ASSERT_EQUAL(secret_read_line(&r, line, sizeof line), 11);
    CU_ASSERT_STRING_EQUAL(line, "last-secret");
    CU_ASSERT_FALSE(holds(&r, "secret"));
    CU_ASSERT_EQUAL(secret_read_line(&r, line, sizeof line), SECRET_LINE_EOF);
    close(r.fd);
}

static void test_long_lines(void)
{
    static secret_reader r;
    /* One line longer than the reader's buffer, one longer than the
     * caller's room, then a line that fits. */
    size_t big = sizeof r.buf * 3;
    char *text = malloc(big + 64);
    memset(text, 'k', big);
    memcpy(text, "12 ", 3);
    int n = snprintf(text + big, 64, "\n34 %s\nok\n", "0123456789abcdef");
    feed(&r, text, big + (size_t)n);
    char line[16];
    CU_ASSERT_EQUAL(secret_read_line(&r, line, sizeof line), SECRET_LINE_LONG);
    CU_ASSERT_EQUAL(strncmp(line, "12 kkk", 6), 0); /* its start, for the channel */
    CU_ASSERT_EQUAL(secret_read_line(&r, line, sizeof line), SECRET_LINE_LONG);
    CU_ASSERT_STRING_EQUAL(line, "34 0123456789ab");
    CU_ASSERT_EQUAL(secret_read_line(&r, line, sizeof line), 2);
    CU_ASSERT_STRING_EQUAL(line, "ok");
    CU_ASSERT_EQUAL(secret_read_line(&r, line, sizeof line), SECRET_LINE_EOF);
    CU_ASSERT_FALSE(holds(&r, "kkkk"));
    close(r.fd);
    free(text);
}

static void test_read_all(void)
{
    secret_reader r; /* only for its pipe */
    feed(&r, "abcdef", 6);
    char buf[4];
    CU_ASSERT_EQUAL(secret_read_all(r.fd, buf, sizeof buf), 4);
    CU_ASSERT_EQUAL(memcmp(buf, "abcd", 4), 0);
    CU_ASSERT_EQUAL(secret_read_all(r.fd, buf, sizeof buf), 2);
    CU_ASSERT_EQUAL(secret_read_all(r.fd, buf, sizeof buf), 0);
    close(r.fd);
    CU_ASSERT_EQUAL(secret_read_all(-1, buf, sizeof buf), -1);
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"lines leave no copy in the reader", test_lines_and_wiping},
        {"long lines are skipped whole, their start kept", test_long_lines},
        {"read_all reads to the end", test_read_all},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {{"secret_io", NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return tu_run(suites);
}
