/* SPDX-License-Identifier: BSD-2-Clause */
/* Address allowlists: entries, client addresses and the match (cidr.c). */
#include <string.h>

#include "cidr.h"
#include "testutil.h"

static int matches(const char *entry, const char *client)
{
    cidr_range c;
    cidr_addr a;
    char why[128];
    CU_ASSERT_EQUAL_FATAL(cidr_parse(entry, &c, why, sizeof why), 0);
    if (addr_parse(client, &a) != 0)
        return -1;
    return cidr_match(&c, &a);
}

static void test_match(void)
{
    CU_ASSERT_EQUAL(matches("127.0.0.1", "127.0.0.1"), 1);
    CU_ASSERT_EQUAL(matches("127.0.0.1", "127.0.0.2"), 0);
    CU_ASSERT_EQUAL(matches("10.0.0.0/8", "10.255.1.2"), 1);
    CU_ASSERT_EQUAL(matches("10.0.0.0/8", "11.0.0.1"), 0);
    CU_ASSERT_EQUAL(matches("192.168.4.0/22", "192.168.7.255"), 1);
    CU_ASSERT_EQUAL(matches("192.168.4.0/22", "192.168.8.0"), 0);
    CU_ASSERT_EQUAL(matches("0.0.0.0/0", "8.8.8.8"), 1);
    CU_ASSERT_EQUAL(matches("0.0.0.0/0", "::1"), 0); /* families never mix */
    CU_ASSERT_EQUAL(matches("::1", "::1"), 1);
    CU_ASSERT_EQUAL(matches("::1", "::2"), 0);
    CU_ASSERT_EQUAL(matches("2001:db8::/32", "2001:db8:ffff::1"), 1);
    CU_ASSERT_EQUAL(matches("2001:db8::/33", "2001:db8:8000::1"), 0);
    CU_ASSERT_EQUAL(matches("::/0", "2001:db8::1"), 1);
    /* A dual-stack listener reports IPv4 clients in the mapped form. */
    CU_ASSERT_EQUAL(matches("127.0.0.1", "::ffff:127.0.0.1"), 1);
    CU_ASSERT_EQUAL(matches("127.0.0.0/8", "::ffff:127.1.2.3"), 1);
    CU_ASSERT_EQUAL(matches("::ffff:10.0.0.0/104", "10.9.9.9"), 1);
    CU_ASSERT_EQUAL(matches("::ffff:10.0.0.0/104", "11.9.9.9"), 0);
    CU_ASSERT_EQUAL(matches("::ffff:0:0/96", "1.2.3.4"), 1);
    /* Not numeric: no match is possible, the caller refuses. */
    CU_ASSERT_EQUAL(matches("127.0.0.1", "localhost"), -1);
    CU_ASSERT_EQUAL(matches("127.0.0.1", ""), -1);
    CU_ASSERT_EQUAL(matches("fe80::/10", "fe80::1%eth0"), -1);
    CU_ASSERT_EQUAL(matches("127.0.0.1", " 127.0.0.1"), -1);
}

static void test_refused_entries(void)
{
    static const char *bad[] = {
        "", "/8", "10.0.0.1/8", "10.0.0.0/33", "::/129", "::1/-1", "10.0.0.0/08", "10.0.0.0/",
        "10.0.0.0/8x", "10.0.0", "example.com", "10.0.0.0/8/8", "::ffff:10.0.0.0/95",
        "2001:db8::1/32", "1.2.3.4 ", "fe80::1%eth0",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cidr_range c;
        char why[128] = "";
        CU_ASSERT_EQUAL(cidr_parse(bad[i], &c, why, sizeof why), -1);
        CU_ASSERT(why[0] != '\0');
    }
    char why[128];
    cidr_range c;
    CU_ASSERT_EQUAL(cidr_parse("10.0.0.1/8", &c, why, sizeof why), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "network address"));
    CU_ASSERT_EQUAL(cidr_parse("10.0.0.0/33", &c, why, sizeof why), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "at most 32"));
}

static void test_lists_and_format(void)
{
    cidr_range list[APIKEY_ALLOW_ENTRIES];
    char why[128], text[APIKEY_CIDR_TEXT_MAX];
    CU_ASSERT_EQUAL(cidr_parse_list("", list, APIKEY_ALLOW_ENTRIES, why, sizeof why), 0);
    CU_ASSERT_EQUAL(cidr_parse_list("10.0.0.0/8,::1, 2001:DB8:0::/48", list, APIKEY_ALLOW_ENTRIES, why,
                                    sizeof why), 3);
    cidr_format(&list[0], text);
    CU_ASSERT_STRING_EQUAL(text, "10.0.0.0/8");
    cidr_format(&list[1], text);
    CU_ASSERT_STRING_EQUAL(text, "::1/128");
    cidr_format(&list[2], text);
    CU_ASSERT_STRING_EQUAL(text, "2001:db8::/48");
    CU_ASSERT_EQUAL(cidr_parse_list("::ffff:10.0.0.0/104", list, 1, why, sizeof why), 1);
    cidr_format(&list[0], text);
    CU_ASSERT_STRING_EQUAL(text, "10.0.0.0/8");
    /* 16 entries fit, a 17th is refused; one bad entry refuses the list. */
    char many[17 * 16] = "";
    for (int i = 0; i < 17; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "10.0.%d.0/24,", i);
    CU_ASSERT_EQUAL(cidr_parse_list(many, list, APIKEY_ALLOW_ENTRIES, why, sizeof why), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "more than 16"));
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "'10.0.16.0/24'"));
    *strstr(many, ",10.0.16.0") = '\0'; /* drop the 17th */
    CU_ASSERT_EQUAL(cidr_parse_list(many, list, APIKEY_ALLOW_ENTRIES, why, sizeof why), 16);
    CU_ASSERT_EQUAL(cidr_parse_list("10.0.0.0/8,bogus", list, APIKEY_ALLOW_ENTRIES, why, sizeof why), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "bogus"));
    /* Blanks alone are no entry; an empty entry between commas, or at
     * either end, is refused, naming its place. */
    CU_ASSERT_EQUAL(cidr_parse_list("  ", list, APIKEY_ALLOW_ENTRIES, why, sizeof why), 0);
    CU_ASSERT_EQUAL(cidr_parse_list(" 10.0.0.0/8 ,  ::1 ", list, APIKEY_ALLOW_ENTRIES, why, sizeof why), 2);
    static const char *const empty[] = {"10.0.0.0/8,,::1", "10.0.0.0/8, ,::1", ",10.0.0.0/8",
                                        "10.0.0.0/8,", "10.0.0.0/8 , ", ","};
    static const char *const place[] = {"entry 2 ", "entry 2 ", "entry 1 ", "entry 2 ", "entry 2 ", "entry 1 "};
    for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
        why[0] = '\0';
        CU_ASSERT_EQUAL(cidr_parse_list(empty[i], list, APIKEY_ALLOW_ENTRIES, why, sizeof why), -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(why, place[i]));
        CU_ASSERT_PTR_NOT_NULL(strstr(why, "empty"));
    }
}

/* What the core stores at create, and the decision it takes at verify. */
static void test_canonical_and_allows(void)
{
    char text[APIKEY_ALLOW_FROM_MAX], why[128];
    CU_ASSERT_EQUAL(cidr_canonical_list(NULL, text, why, sizeof why), 0);
    CU_ASSERT_STRING_EQUAL(text, "");
    CU_ASSERT_EQUAL(cidr_canonical_list("10.0.0.0/8, 192.0.2.7,2001:DB8::/32 ::ffff:127.0.0.1", text,
                                        why, sizeof why), 0);
    CU_ASSERT_STRING_EQUAL(text, "10.0.0.0/8 192.0.2.7/32 2001:db8::/32 127.0.0.1/32");
    CU_ASSERT_EQUAL(cidr_canonical_list("10.0.0.1/8", text, why, sizeof why), -1);
    /* 16 IPv6 entries fit the record's text. */
    char many[APIKEY_ALLOW_FROM_MAX + 64] = "";
    for (int i = 0; i < APIKEY_ALLOW_ENTRIES; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many),
                 "%sffff:ffff:ffff:ffff:ffff:ffff:ffff:ff%02x/128", i ? "," : "", i);
    CU_ASSERT_EQUAL(cidr_canonical_list(many, text, why, sizeof why), 0);
    CU_ASSERT(strlen(text) < sizeof text);
    CU_ASSERT_EQUAL(cidr_allows(text, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff0f"), 1);

    CU_ASSERT_EQUAL(cidr_allows("127.0.0.1/32", "127.0.0.1"), 1);
    CU_ASSERT_EQUAL(cidr_allows("127.0.0.1/32", "::ffff:127.0.0.1"), 1);
    CU_ASSERT_EQUAL(cidr_allows("127.0.0.1/32", "127.0.0.2"), 0);
    CU_ASSERT_EQUAL(cidr_allows("127.0.0.1/32", "::1"), 0);
    CU_ASSERT_EQUAL(cidr_allows("::1/128", "::1"), 1);
    CU_ASSERT_EQUAL(cidr_allows("10.0.0.0/8 ::1/128", "10.200.3.4"), 1);
    /* Unknown, empty, a host name: refused. */
    CU_ASSERT_EQUAL(cidr_allows("127.0.0.1/32", NULL), 0);
    CU_ASSERT_EQUAL(cidr_allows("127.0.0.1/32", ""), 0);
    CU_ASSERT_EQUAL(cidr_allows("127.0.0.1/32", "localhost"), 0);
    /* A list that does not parse is a corrupt record, not "any address". */
    CU_ASSERT_EQUAL(cidr_allows("127.0.0.1/33", "127.0.0.1"), -1);
    CU_ASSERT_EQUAL(cidr_allows("nonsense", "127.0.0.1"), -1);
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"matches, families, mapped addresses, non-numeric clients", test_match},
        {"malformed entries, host bits and prefixes refused", test_refused_entries},
        {"lists of up to 16, canonical text", test_lists_and_format},
        {"the stored text and the decision", test_canonical_and_allows},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {{"cidr", NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return tu_run(suites);
}
