/* SPDX-License-Identifier: BSD-2-Clause */
/* The HTTP hosts' credential rules (common/credential.c), called directly:
 * what the nginx module and apikey-authd read as a key, what they refuse,
 * the RFC 6750 challenge and the service names they echo. Both servers are
 * driven with the same odd inputs in tests/integration/credentials.sh. */
#include <string.h>

#include "credential.h"
#include "testutil.h"

#define KEY "ak_20fe9a1c_0123456789abcdefghijklmnopqrstuv"

static credential cred;

/* The answer for an Authorization value and key-header values (NULL:
 * absent; "\n" separates two lines of the key header). */
static apikey_reason read2(const char *auth, size_t authlen, const char *keyh)
{
    credential_header a = {auth, auth ? authlen : 0, auth ? 1 : 0}, k = {NULL, 0, 0};
    if (keyh) {
        const char *nl = strchr(keyh, '\n');
        k.value = keyh;
        k.len = nl ? (size_t)(nl - keyh) : strlen(keyh);
        k.count = nl ? 2 : 1;
    }
    return credential_read(&a, &k, &cred);
}

static apikey_reason read1(const char *auth, const char *keyh)
{
    return read2(auth, auth ? strlen(auth) : 0, keyh);
}

/* Authorization: Basic base64(plain, n bytes). */
static apikey_reason basic(const char *plain, size_t n)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char auth[2048] = "Basic ";
    size_t o = strlen(auth);
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned char)plain[i] << 16;
        if (i + 1 < n)
            v |= (unsigned char)plain[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)plain[i + 2];
        auth[o++] = b64[(v >> 18) & 63];
        auth[o++] = b64[(v >> 12) & 63];
        auth[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        auth[o++] = i + 2 < n ? b64[v & 63] : '=';
    }
    auth[o] = '\0';
    return read1(auth, NULL);
}

static int wiped(void)
{
    static const credential zero;
    return memcmp(&cred, &zero, sizeof cred) == 0;
}

static void test_sources(void)
{
    CU_ASSERT_EQUAL(read1("Bearer " KEY, NULL), APIKEY_REASON_NONE);
    CU_ASSERT_STRING_EQUAL(cred.key, KEY);
    CU_ASSERT_EQUAL(cred.keylen, strlen(KEY));
    CU_ASSERT_STRING_EQUAL(cred.account, "");
    /* The scheme in any case; blanks around the key dropped. */
    CU_ASSERT_EQUAL(read1("bEARER   " KEY "  ", NULL), APIKEY_REASON_NONE);
    CU_ASSERT_STRING_EQUAL(cred.key, KEY);
    CU_ASSERT_EQUAL(read1(NULL, " " KEY "\t"), APIKEY_REASON_NONE);
    CU_ASSERT_STRING_EQUAL(cred.key, KEY);
    /* Bearer first, then the key header, then Basic. */
    CU_ASSERT_EQUAL(read1("Bearer " KEY, "other"), APIKEY_REASON_NONE);
    CU_ASSERT_STRING_EQUAL(cred.key, KEY);
    CU_ASSERT_EQUAL(read1("Basic YWxpY2U6b3RoZXI=", KEY), APIKEY_REASON_NONE);
    CU_ASSERT_STRING_EQUAL(cred.key, KEY);
    CU_ASSERT_STRING_EQUAL(cred.account, "");
    /* An Authorization of another scheme is no credential: the key header
     * is read, else nothing was given. */
    CU_ASSERT_EQUAL(read1("Digest username=\"a\"", KEY), APIKEY_REASON_NONE);
    CU_ASSERT_EQUAL(read1("Digest username=\"a\"", NULL), APIKEY_REASON_MISSING);
    CU_ASSERT_EQUAL(read1(NULL, NULL), APIKEY_REASON_MISSING);
    CU_ASSERT(wiped());
    /* "Bearer" alone (a server drops the trailing blank) is no Bearer. */
    CU_ASSERT_EQUAL(read1("Bearer", NULL), APIKEY_REASON_MISSING);
    CU_ASSERT_EQUAL(read1("Bearer ", NULL), APIKEY_REASON_MALFORMED);
}

static void test_basic(void)
{
    CU_ASSERT_EQUAL(basic("alice:" KEY, strlen("alice:" KEY)), APIKEY_REASON_NONE);
    CU_ASSERT_STRING_EQUAL(cred.account, "alice");
    CU_ASSERT_STRING_EQUAL(cred.key, KEY);
    /* The first colon splits: a key never holds one, an account never. */
    CU_ASSERT_EQUAL(basic("alice:a:b", 9), APIKEY_REASON_NONE);
    CU_ASSERT_STRING_EQUAL(cred.account, "alice");
    CU_ASSERT_STRING_EQUAL(cred.key, "a:b");
    /* Padded or not; the scheme in any case. */
    CU_ASSERT_EQUAL(read1("Basic YWxpY2U6a2V5", NULL), APIKEY_REASON_NONE);
    CU_ASSERT_STRING_EQUAL(cred.key, "key");
    CU_ASSERT_EQUAL(read1("basic  YWxpY2U6a2V5", NULL), APIKEY_REASON_NONE);
    char longest[300];
    memset(longest, 'a', 255);
    memcpy(longest + 255, ":k", 3);
    CU_ASSERT_EQUAL(basic(longest, 257), APIKEY_REASON_NONE);
    CU_ASSERT_EQUAL(strlen(cred.account), 255);
}

/* What apikey-authd took and nginx refused: alice\0evil:KEY as alice, the
 * first of two X-API-Key lines, Bearer<TAB>KEY. */
static void test_refused(void)
{
    CU_ASSERT_EQUAL(basic("alice\0evil:" KEY, strlen("alice") + 1 + strlen("evil:" KEY)), APIKEY_REASON_MALFORMED);
    CU_ASSERT(wiped());
    CU_ASSERT_EQUAL(read1(NULL, KEY "\n" KEY), APIKEY_REASON_MALFORMED);
    CU_ASSERT(wiped());
    CU_ASSERT_EQUAL(read1("Bearer\t" KEY, NULL), APIKEY_REASON_MISSING);
    CU_ASSERT_EQUAL(read1("Bearer\t" KEY, KEY), APIKEY_REASON_NONE); /* not a Bearer: the header's */
    /* Two Authorization lines: neither. */
    credential_header two = {"Bearer " KEY, strlen("Bearer " KEY), 2}, none = {NULL, 0, 0};
    CU_ASSERT_EQUAL(credential_read(&two, &none, &cred), APIKEY_REASON_MALFORMED);
    /* A key with a blank or a control character inside, empty, too long. */
    CU_ASSERT_EQUAL(read1(NULL, "hello world"), APIKEY_REASON_MALFORMED);
    CU_ASSERT_EQUAL(read1(NULL, "ak_\x01x"), APIKEY_REASON_MALFORMED);
    CU_ASSERT_EQUAL(read2("Bearer ak_\0x", 12, NULL), APIKEY_REASON_MALFORMED);
    CU_ASSERT_EQUAL(read1(NULL, "  "), APIKEY_REASON_MALFORMED);
    CU_ASSERT_EQUAL(read1(NULL, ""), APIKEY_REASON_MALFORMED);
    char big[CREDENTIAL_KEY_MAX + 1];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CU_ASSERT_EQUAL(read1(NULL, big), APIKEY_REASON_MALFORMED);
    big[sizeof big - 2] = '\0';
    CU_ASSERT_EQUAL(read1(NULL, big), APIKEY_REASON_NONE); /* 511 bytes: the longest */
    /* Basic: no colon, no account, no key, a control character, an account
     * of 256 bytes, not base64, padding in the middle or too much of it,
     * bits left over. */
    CU_ASSERT_EQUAL(basic(KEY, strlen(KEY)), APIKEY_REASON_MALFORMED);
    CU_ASSERT(wiped());
    CU_ASSERT_EQUAL(basic(":" KEY, strlen(":" KEY)), APIKEY_REASON_MALFORMED);
    CU_ASSERT_EQUAL(basic("alice:", 6), APIKEY_REASON_MALFORMED);
    CU_ASSERT_EQUAL(basic("ali\tce:" KEY, strlen("ali\tce:" KEY)), APIKEY_REASON_MALFORMED);
    CU_ASSERT_EQUAL(basic("alice:k\x7f", 8), APIKEY_REASON_MALFORMED);
    char longer[300];
    memset(longer, 'a', 256);
    memcpy(longer + 256, ":k", 3);
    CU_ASSERT_EQUAL(basic(longer, 258), APIKEY_REASON_MALFORMED);
    CU_ASSERT(wiped());
    CU_ASSERT_EQUAL(read1("Basic", NULL), APIKEY_REASON_MISSING);
    CU_ASSERT_EQUAL(read1("Basic ", NULL), APIKEY_REASON_MALFORMED);
    CU_ASSERT_EQUAL(read1("Basic !!!!", NULL), APIKEY_REASON_MALFORMED);
    CU_ASSERT_EQUAL(read1("Basic YWxp Y2U6a2V5", NULL), APIKEY_REASON_MALFORMED);
    CU_ASSERT_EQUAL(read1("Basic YWxpY2U6a2V5=garbage", NULL), APIKEY_REASON_MALFORMED);
    CU_ASSERT_EQUAL(read1("Basic YWxpY2U6a2V5==", NULL), APIKEY_REASON_MALFORMED);
    CU_ASSERT_EQUAL(read1("Basic YWxpY2U6a2V=", NULL), APIKEY_REASON_MALFORMED); /* "alice:ke" + stray bits */
    CU_ASSERT_EQUAL(read1("Basic YWxpY2U6a2U=", NULL), APIKEY_REASON_NONE);
    CU_ASSERT_EQUAL(read1("Basic Y", NULL), APIKEY_REASON_MALFORMED);
    /* Longer than any account:key. */
    char huge[2100] = "Basic ";
    memset(huge + 6, 'Q', 2000);
    huge[2006] = '\0';
    CU_ASSERT_EQUAL(read1(huge, NULL), APIKEY_REASON_MALFORMED);
}

/* Every byte value at every place of keys of 1 to 48 bytes: the check
 * goes 16 bytes at a time, its last block overlapping the one before, so
 * a bad byte in any place of any length must be seen. */
static void test_every_place(void)
{
    char key[49];
    int missed = 0, refused_good = 0;
    for (size_t n = 1; n < sizeof key; n++) {
        memset(key, 'a', n);
        key[n] = '\0';
        if (read1(NULL, key) != APIKEY_REASON_NONE || cred.keylen != n)
            refused_good++;
        for (size_t at = 0; at < n; at++) {
            for (int c = 1; c < 256; c++) {
                key[at] = (char)c;
                int bad = c <= ' ' || c == 0x7f;
                /* A blank at either end is trimmed, not refused. */
                int trimmed = (c == ' ' || c == '\t') && (at == 0 || at == n - 1);
                apikey_reason why = read1(NULL, key);
                if (bad && !trimmed && why != APIKEY_REASON_MALFORMED)
                    missed++;
                if (!bad && why != APIKEY_REASON_NONE)
                    refused_good++;
            }
            key[at] = 'a';
        }
    }
    CU_ASSERT_EQUAL(missed, 0);
    CU_ASSERT_EQUAL(refused_good, 0);
}

static void test_challenge(void)
{
    char out[256];
    CU_ASSERT_EQUAL(credential_challenge(out, sizeof out, 401, "web", 0, NULL), strlen(out));
    CU_ASSERT_STRING_EQUAL(out, "Bearer realm=\"web\"");
    credential_challenge(out, sizeof out, 401, "web", 1, "x:read");
    CU_ASSERT_STRING_EQUAL(out, "Bearer realm=\"web\", error=\"invalid_token\"");
    credential_challenge(out, sizeof out, 403, "web", 1, " a:read,b:write\tc:x  d\"e ");
    CU_ASSERT_STRING_EQUAL(out, "Bearer realm=\"web\", error=\"insufficient_scope\", scope=\"a:read b:write c:x d e\"");
    credential_challenge(out, sizeof out, 403, "web", 1, "");
    CU_ASSERT_STRING_EQUAL(out, "Bearer realm=\"web\", error=\"insufficient_scope\", scope=\"\"");
    credential_challenge(out, sizeof out, 403, "web", 1, NULL);
    CU_ASSERT_STRING_EQUAL(out, "Bearer realm=\"web\", error=\"insufficient_scope\"");
    /* A name that is not a service's is never echoed. */
    credential_challenge(out, sizeof out, 401, "a\"b, error=x", 0, NULL);
    CU_ASSERT_STRING_EQUAL(out, "Bearer realm=\"apikey\"");
    CU_ASSERT_EQUAL(credential_challenge(out, sizeof out, 200, "web", 1, NULL), 0);
    CU_ASSERT_EQUAL(credential_challenge(out, sizeof out, 503, "web", 1, NULL), 0);
    /* Too small: 0, never a cut header. */
    CU_ASSERT_EQUAL(credential_challenge(out, 10, 401, "web", 0, NULL), 0);
    CU_ASSERT_EQUAL(credential_challenge(out, 60, 403, "web", 1, "a:read b:read c:read"), 0);
    /* Exactly as long as it needs, as nginx allocates it. */
    const char *exact[] = {"Bearer realm=\"web\", error=\"insufficient_scope\", scope=\"a:read b:write\"",
                           "Bearer realm=\"web\", error=\"insufficient_scope\", scope=\"\"",
                           "Bearer realm=\"web\", error=\"invalid_token\""};
    const char *scopes[] = {"a:read,b:write", "", NULL};
    for (int i = 0; i < 3; i++) {
        size_t want = strlen(exact[i]);
        int status = i < 2 ? 403 : 401;
        CU_ASSERT_EQUAL(credential_challenge(out, want + 1, status, "web", 1, scopes[i]), want);
        CU_ASSERT_STRING_EQUAL(out, exact[i]);
        CU_ASSERT_EQUAL(credential_challenge(out, want, status, "web", 1, scopes[i]), 0);
    }
}

static void test_names_and_reasons(void)
{
    CU_ASSERT(credential_service_ok("proxies-api", 11));
    CU_ASSERT(credential_service_ok("a.b_c-d@e+f9", 12));
    CU_ASSERT(!credential_service_ok("", 0));
    CU_ASSERT(!credential_service_ok("a b", 3));
    CU_ASSERT(!credential_service_ok("a\"b", 3));
    CU_ASSERT(!credential_service_ok("a/b", 3));
    CU_ASSERT(!credential_service_ok("a\0b", 3));
    char name[CREDENTIAL_SERVICE_MAX + 1];
    memset(name, 's', sizeof name);
    CU_ASSERT(credential_service_ok(name, CREDENTIAL_SERVICE_MAX));
    CU_ASSERT(!credential_service_ok(name, CREDENTIAL_SERVICE_MAX + 1));

    /* The library's own text, and "missing key" whatever the library. */
    const apikey_api *api = apikey_api_v1();
    CU_ASSERT_STRING_EQUAL(api->reason_string(APIKEY_REASON_MISSING), "missing key");
    CU_ASSERT_STRING_EQUAL(credential_reason_string(api, APIKEY_REASON_MISSING), "missing key");
    CU_ASSERT_STRING_EQUAL(credential_reason_string(api, APIKEY_REASON_REVOKED), "revoked");
    apikey_result res = {.decision = APIKEY_REFUSED, .reason = APIKEY_REASON_MISSING};
    CU_ASSERT_EQUAL(api->http_status(&res), 401);
    apikey_api older = *api;
    older.reason_string = NULL; /* never asked for this reason */
    CU_ASSERT_STRING_EQUAL(credential_reason_string(&older, APIKEY_REASON_MISSING), "missing key");
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"Bearer, then the key header, then Basic; another scheme is none", test_sources},
        {"Basic account:key", test_basic},
        {"what is refused, and wiped", test_refused},
        {"a control character or a space anywhere in a key of any length", test_every_place},
        {"the RFC 6750 challenge", test_challenge},
        {"service names and the missing key's text", test_names_and_reasons},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {{"credential", NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return tu_run(suites);
}
