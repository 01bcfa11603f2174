#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""One client of tests/integration/ratelimit.sh: asks with one key, through
one host, at most RATE times a second until DEADLINE (Unix time), and
prints one JSON line: the Unix times of the answers that let it in, how
many it asked and how many answers came in each millisecond (Unix time),
and any answer that was neither "in" nor "rate limited".

usage: rate_driver.py MODE RATE DEADLINE ARGS...   (the key on stdin)
  helper HELPER CONFIG SERVICE ACCOUNT   lines to one basic_apikey_auth
  pam    PAM_TRY CONFDIR SERVICE ACCOUNT  one forked pam_try per login
  http   PORT PATH                        GET with a Bearer key, keep-alive
"""
import http.client
import json
import subprocess
import sys
import time


def main():
    mode, rate, deadline = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    args = sys.argv[4:]
    key = sys.stdin.readline().strip()
    allowed, other, asked, answered_ms = [], {}, 0, {}

    def note(what):
        other[what] = other.get(what, 0) + 1

    if mode == "helper":
        proc = subprocess.Popen([args[0], "--config", args[1], "--service", args[2]],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        line = "%s %s\n" % (args[3], key)

        def ask():
            proc.stdin.write(line)
            proc.stdin.flush()
            got = proc.stdout.readline().strip()
            if got == "OK":
                return True
            if got != "ERR message=\"rate limited\"":
                note(got)
            return False
    elif mode == "pam":
        def ask():
            r = subprocess.run([args[0], args[1], args[2], args[3]], input=key + "\n",
                               capture_output=True, text=True)
            if r.returncode == 0:
                return True
            if r.returncode != 1:
                note("pam_try exit %d" % r.returncode)
            return False
    elif mode == "http":
        conn = http.client.HTTPConnection("127.0.0.1", int(args[0]), timeout=10)
        headers = {"Authorization": "Bearer " + key}

        def number(r, name):
            """The header's value when it is a plain decimal number, else None."""
            v = r.getheader(name) or ""
            return int(v) if v.isdigit() and str(int(v)) == v else None

        def ask():
            conn.request("GET", args[1], headers=headers)
            r = conn.getresponse()
            r.read()
            if r.status == 200:
                if not number(r, "X-RateLimit-Limit") or number(r, "X-RateLimit-Remaining") is None:
                    note("200 without X-RateLimit headers of a number")
                return True
            if r.status != 429:
                note("HTTP %d" % r.status)
            elif not number(r, "Retry-After") or not number(r, "X-RateLimit-Limit") \
                    or number(r, "X-RateLimit-Remaining") != 0:
                note("429 without Retry-After, or its X-RateLimit headers wrong")
            return False
    else:
        sys.exit("unknown mode " + mode)

    start = time.time()
    while True:
        now = time.time()
        if now >= deadline:
            break
        # Paced: the n-th request not before start + n / rate.
        due = start + asked / rate
        if due > now:
            time.sleep(min(due - now, deadline - now))
            continue
        asked += 1
        got = ask()
        ms = int(time.time() * 1000)
        answered_ms[ms] = answered_ms.get(ms, 0) + 1
        if got:
            allowed.append(time.time())
    if mode == "helper":
        proc.stdin.close()
        proc.wait()
    print(json.dumps({"mode": mode, "asked": asked, "allowed": allowed, "other": other,
                      "answered_ms": sorted(answered_ms.items())}))


main()
