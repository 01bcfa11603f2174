# SPDX-License-Identifier: BSD-2-Clause
"""A provider's web backend talking to apikey-authd, with Python's standard
library only: http.client over the admin Unix socket ($ADMIN) and over the
listen socket ($SOCK) for /verify/$SVC. Used by tests/integration/authd_admin.sh:

    admin_client.py flow ACCOUNT      the dashboard flow
    admin_client.py bad               bad requests
    admin_client.py allowlist ACCOUNT a key with an address allowlist
    admin_client.py forbidden         as a user who is not an admin
    admin_client.py scoped A B        ?account=A on another account's key
    admin_client.py utf8              bytes that are not UTF-8, cut characters
    admin_client.py createloop FILE   create keys until the daemon goes away;
                                      each key whose 201 arrived goes to FILE
    admin_client.py verifyall FILE WHAT  every key of FILE verifies
    admin_client.py expect STATUS METHOD PATH [BODY]

It prints TAP lines ("ok - ..." / "not ok - ...") and exits 1 when one
failed. Keys never reach argv or standard output."""
import datetime
import http.client
import json
import os
import re
import socket
import subprocess
import sys

NAME = os.environ.get("NAME", "authd_admin")
failed = 0


def check(cond, what):
    global failed
    print("%s - %s: %s" % ("ok" if cond else "not ok", NAME, what), flush=True)
    if not cond:
        failed += 1
    return cond


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, unix_path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = unix_path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def remember(key):
    """Keys seen go to $SEEN (0600), for the test to look for in the logs."""
    if os.environ.get("SEEN"):
        fd = os.open(os.environ["SEEN"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.write(fd, (key + "\n").encode())
        os.close(fd)


class Admin:
    """One keep-alive connection, as a backend keeps to its daemon."""

    def __init__(self):
        self.conn = UnixConnection(os.environ["ADMIN"])

    def call(self, method, path, body=None, raw=None, headers=None):
        """(status, parsed JSON or None, raw body text)."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        hdrs = dict(headers or {})
        if data is not None and "Transfer-Encoding" not in hdrs:
            hdrs["Content-Type"] = "application/json"
        try:
            self.conn.request(method, path, body=data, headers=hdrs,
                              encode_chunked="Transfer-Encoding" in hdrs)
        except BrokenPipeError:
            # The daemon answered (a 403 before the body) and closed while
            # the body was still being sent: its answer is there to read.
            pass
        r = self.conn.getresponse()
        text = r.read().decode()
        if r.getheader("Connection", "").lower() == "close":
            self.conn.close()
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("key"), str):
            remember(parsed["key"])
        return r.status, parsed, text


def verify(key, service=None):
    """(status, X-Apikey-Account, X-Apikey-Key-Id, X-Apikey-Reason) of /verify."""
    c = UnixConnection(os.environ["SOCK"])
    c.request("GET", "/verify/" + (service or os.environ["SVC"]), headers={"Authorization": "Bearer " + key})
    r = c.getresponse()
    r.read()
    c.close()
    return r.status, r.getheader("X-Apikey-Account"), r.getheader("X-Apikey-Key-Id"), r.getheader("X-Apikey-Reason")


COLUMNS = ["id", "account", "name", "scopes", "created", "expires", "last_used", "status", "allow_from", "rate"]
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def cli_list(account, all_keys=False):
    """What `apikey list --json` prints for account, to compare with."""
    cmd = os.environ["APIKEY"].split() + ["list", "--json"] + (["--all"] if all_keys else []) + [account]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def iso(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")


def one_error(status, parsed, text):
    """An error answer: a JSON object with one one-line "error"."""
    return (isinstance(parsed, dict) and list(parsed) == ["error"] and isinstance(parsed["error"], str)
            and parsed["error"] and "\n" not in parsed["error"])


def flow(account):
    a = Admin()
    status, cat, _ = a.call("GET", "/v1/scopes")
    check(status == 200 and any(s["scope"] == "proxies:read" for s in cat), "GET /v1/scopes: 200, the catalogue")

    req = {"account": account, "name": "dashboard", "scopes": ["proxies:read", "geo:read"], "expires": "30d"}
    status, rec, text = a.call("POST", "/v1/keys", req)
    if not check(status == 201 and isinstance(rec, dict) and "key" in rec, "POST /v1/keys: 201 with the key"):
        print("#   %d %s" % (status, rec.get("error") if isinstance(rec, dict) else ""))
        return
    key, kid = rec["key"], rec["id"]
    check(list(rec) == COLUMNS + ["key"], "the 201 holds every column of list --json, then key")
    check(rec["account"] == account and rec["name"] == "dashboard" and rec["scopes"] == ["proxies:read", "geo:read"]
          and rec["status"] == "active" and rec["last_used"] is None and ISO.match(rec["created"])
          and ISO.match(rec["expires"]) and rec["expires"] > rec["created"] and key.startswith(kid)
          and rec["allow_from"] == [],
          "the created record: account, name, scopes, an expiry 30 days on, never used, any address")

    status, got, text = a.call("GET", "/v1/keys/" + kid)
    check(status == 200 and "key" not in got and key not in text, "GET /v1/keys/ID: 200, never the key again")
    check({k: v for k, v in rec.items() if k != "key"} == got, "GET /v1/keys/ID: the same record")

    status, listed, text = a.call("GET", "/v1/keys?account=" + account)
    check(status == 200 and key not in text and all("key" not in r for r in listed), "GET /v1/keys: never a key")
    check(listed == cli_list(account), "GET /v1/keys?account=A is what apikey list --json A prints")
    check(len(listed) == 1 and list(listed[0]) == COLUMNS, "the list has the key with every column")

    code, acct, vid, _ = verify(key)
    check((code, acct, vid) == (200, account, kid), "the key verifies through /verify: 200, account and id")
    status, listed, _ = a.call("GET", "/v1/keys?account=" + account)
    check(listed == cli_list(account), "after a verify the list still matches apikey list --json")

    # Up to the limit (10 active keys), then 409.
    made = [kid]
    for i in range(2, 11):
        status, rec2, _ = a.call("POST", "/v1/keys", {"account": account, "name": "k%d" % i, "scopes": ["geo:read"]})
        if status != 201:
            break
        made.append(rec2["id"])
    check(len(made) == 10, "ten keys of one account are created")
    status, err, text = a.call("POST", "/v1/keys", {"account": account, "name": "eleventh", "scopes": ["geo:read"]})
    check(status == 409 and one_error(status, err, text) and "limit" in err["error"],
          "the 11th key of the account: 409 with the limit named (%d %s)" % (status, text.strip()))
    status, listed, _ = a.call("GET", "/v1/keys?account=" + account)
    check(len(listed) == 10, "the refused 11th key was not stored")

    # Room for a rotation: revoke the last one made.
    status, _, text = a.call("DELETE", "/v1/keys/" + made.pop())
    check(status == 204 and text == "", "DELETE /v1/keys/ID: 204, no body")

    # Rotate without grace: the new key works, the old is refused now.
    status, rot, text = a.call("POST", "/v1/keys/%s/rotate" % kid)
    if not check(status == 201 and "key" in rot, "POST /v1/keys/ID/rotate without a body: 201 with the new key"):
        print("#   %d %s" % (status, text))
        return
    check(rot["id"] != kid and rot["account"] == account and rot["name"] == "dashboard"
          and rot["scopes"] == ["proxies:read", "geo:read"] and list(rot) == COLUMNS + ["key"],
          "the new key keeps account, name and scopes")
    check(verify(rot["key"])[0] == 200, "rotate: the new key verifies")
    code, _, _, why = verify(key)
    check((code, why) == (401, "revoked"), "rotate without grace: the old key is refused (401 revoked)")
    key, kid = rot["key"], rot["id"]

    # Rotate with a grace: both work until it ends.
    status, rot, text = a.call("POST", "/v1/keys/%s/rotate" % kid, {"grace": "24h"})
    if not check(status == 201 and "key" in rot, "rotate with {\"grace\": \"24h\"}: 201"):
        print("#   %d %s" % (status, text))
        return
    check(verify(rot["key"])[0] == 200 and verify(key)[0] == 200, "rotate with a grace: the new and the old key both verify")
    status, old, _ = a.call("GET", "/v1/keys/" + kid)
    grace = iso(old["expires"]) - iso(rot["created"]) if old["expires"] else None
    check(status == 200 and old["status"] == "active" and grace is not None
          and datetime.timedelta(hours=23) < grace <= datetime.timedelta(hours=24, minutes=1),
          "the old key stays active and now expires at the end of the grace (%s)" % grace)

    # Revoke: the next verify is refused.
    status, _, _ = a.call("DELETE", "/v1/keys/" + rot["id"])
    check(status == 204, "DELETE the rotated key: 204")
    code, _, _, why = verify(rot["key"])
    check((code, why) == (401, "revoked"), "the revoked key gets 401 at the next verify")
    status, _, _ = a.call("DELETE", "/v1/keys/" + rot["id"])
    check(status == 204, "DELETE of a key already revoked: 204 again")
    status, got, _ = a.call("GET", "/v1/keys/" + rot["id"])
    check(status == 200 and got["status"] == "revoked", "GET of a revoked key: 200, status revoked")
    status, err, text = a.call("POST", "/v1/keys/%s/rotate" % rot["id"])
    check(status == 409 and one_error(status, err, text), "rotate of a revoked key: 409 (%d %s)" % (status, text.strip()))
    status, err, text = a.call("POST", "/v1/keys/%s/rotate" % kid, {"grace": "forever"})
    check(status == 400 and one_error(status, err, text), "rotate with a bad grace: 400 (%d %s)" % (status, text.strip()))
    status, active, _ = a.call("GET", "/v1/keys?account=" + account)
    status2, every, _ = a.call("GET", "/v1/keys?account=%s&all=1" % account)
    check(rot["id"] not in [r["id"] for r in active] and rot["id"] in [r["id"] for r in every],
          "the list leaves the revoked key out; all=1 shows it")
    check(every == cli_list(account, True), "GET /v1/keys?account=A&all=1 is what apikey list --json --all A prints")
    status, everyone, _ = a.call("GET", "/v1/keys")
    check(status == 200 and {r["account"] for r in everyone} > {account}, "GET /v1/keys without account=: every account's keys")
    for r in every:  # leave room for the other tests
        a.call("DELETE", "/v1/keys/" + r["id"])


def bad():
    def fresh(method, path, body=None, raw=None, headers=None):
        return Admin().call(method, path, body, raw, headers)

    good = {"account": "badinput", "name": "n", "scopes": ["geo:read"]}
    cases = [
        ("bad JSON", 400, ("POST", "/v1/keys", None, b'{"account": "a",')),
        ("JSON that is not an object", 400, ("POST", "/v1/keys", ["a"])),
        ("an empty body", 400, ("POST", "/v1/keys", None, b"")),
        ("an unknown field", 400, ("POST", "/v1/keys", dict(good, admin=True))),
        ("a duplicated field", 400, ("POST", "/v1/keys", None, b'{"account":"a","account":"b","name":"n","scopes":["geo:read"]}')),
        ("account as a number", 400, ("POST", "/v1/keys", dict(good, account=7))),
        ("name as null", 400, ("POST", "/v1/keys", dict(good, name=None))),
        ("scopes as a string", 400, ("POST", "/v1/keys", dict(good, scopes="geo:read"))),
        ("scopes holding a number", 400, ("POST", "/v1/keys", dict(good, scopes=[1]))),
        ("a scope with a space", 400, ("POST", "/v1/keys", dict(good, scopes=["geo:read proxies:read"]))),
        ("expires as a number", 400, ("POST", "/v1/keys", dict(good, expires=30))),
        ("an expiry in the past", 400, ("POST", "/v1/keys", dict(good, expires="2001-01-01"))),
        ("an unknown scope", 400, ("POST", "/v1/keys", dict(good, scopes=["root:all"]))),
        ("no account", 400, ("POST", "/v1/keys", {"name": "n", "scopes": ["geo:read"]})),
        ("no name", 400, ("POST", "/v1/keys", {"account": "a", "scopes": ["geo:read"]})),
        ("no scopes", 400, ("POST", "/v1/keys", {"account": "a", "name": "n"})),
        ("allow_from as a string", 400, ("POST", "/v1/keys", dict(good, allow_from="192.0.2.0/24"))),
        ("allow_from holding a number", 400, ("POST", "/v1/keys", dict(good, allow_from=["192.0.2.0/24", 7]))),
        ("allow_from holding an empty string", 400, ("POST", "/v1/keys", dict(good, allow_from=[""]))),
        ("allow_from: two entries in one string", 400, ("POST", "/v1/keys", dict(good, allow_from=["192.0.2.0/24,::1"]))),
        ("allow_from with 17 entries", 400, ("POST", "/v1/keys", dict(good, allow_from=["10.0.0.%d" % i for i in range(17)]))),
        ("allow_from with host bits set", 400, ("POST", "/v1/keys", dict(good, allow_from=["10.0.0.1/8"]))),
        ("allow_from with a prefix above 128", 400, ("POST", "/v1/keys", dict(good, allow_from=["2001:db8::/129"]))),
        ("allow_from with a host name", 400, ("POST", "/v1/keys", dict(good, allow_from=["db.example.com"]))),
        ("an oversized body", 413, ("POST", "/v1/keys", None, b'{"name": "' + b"x" * 20000 + b'"}')),
        ("an oversized chunked body", 413, ("POST", "/v1/keys", None, iter([b"{" + b" " * 9000, b" " * 9000 + b"}"]),
                                           {"Transfer-Encoding": "chunked"})),
        ("grace as a number", 400, ("POST", "/v1/keys/ak_00000000/rotate", {"grace": 24})),
        ("an unknown field of rotate", 400, ("POST", "/v1/keys/ak_00000000/rotate", {"grace": "1h", "x": 1})),
        ("an unknown id: GET", 404, ("GET", "/v1/keys/ak_00000000")),
        ("an unknown id: DELETE", 404, ("DELETE", "/v1/keys/ak_00000000")),
        ("an unknown id: rotate", 404, ("POST", "/v1/keys/ak_00000000/rotate")),
        ("a malformed id", 400, ("GET", "/v1/keys/not-an-id")),
        ("an unknown parameter", 400, ("GET", "/v1/keys?acount=a")),
        ("all=yes", 400, ("GET", "/v1/keys?all=yes")),
        ("a GET with a body", 400, ("GET", "/v1/keys", {"account": "a"})),
        ("PUT /v1/keys", 405, ("PUT", "/v1/keys", good)),
        ("POST /v1/keys/ID", 405, ("POST", "/v1/keys/ak_00000000", good)),
        ("DELETE /v1/scopes", 405, ("DELETE", "/v1/scopes")),
        ("an unknown path", 404, ("GET", "/v1/keyz")),
        ("a path under an id", 404, ("GET", "/v1/keys/ak_00000000/x")),
    ]
    for what, want, args in cases:
        status, parsed, text = fresh(*args)
        check(status == want and one_error(status, parsed, text),
              "%s: %d with one JSON error line (got %d %s)" % (what, want, status, text.strip()[:100]))
    # What the allowlist refusals say: which field, which entry.
    for body, said in [(dict(good, allow_from="::1"), "allow_from must be an array of addresses"),
                       (dict(good, allow_from=[7]), "element 1 is not one"),
                       (dict(good, allow_from=["10.0.0.%d" % i for i in range(17)]), "allow_from holds 17 entries, more than 16"),
                       (dict(good, allow_from=["::1", "10.0.0.1/8"]), "'10.0.0.1/8' has bits set beyond its prefix"),
                       (dict(good, allow_from=["db.example.com"]), "'db.example.com' is not an address")]:
        status, parsed, text = fresh("POST", "/v1/keys", body)
        check(status == 400 and one_error(status, parsed, text) and said in parsed["error"],
              "allow_from %s: 400 saying \"%s\" (got %d %s)" % (json.dumps(body["allow_from"])[:40], said, status, text.strip()[:120]))
    status, listed, _ = fresh("GET", "/v1/keys?account=badinput")
    check(status == 200 and listed == [], "no bad request stored a key")
    status, rec, _ = fresh("POST", "/v1/keys", dict(good, allow_from=[], expires=None))
    check(status == 201, "an empty allow_from and a null expires are accepted (201)")
    if status == 201:
        fresh("DELETE", "/v1/keys/" + rec["id"])


def allowlist(account):
    a = Admin()
    req = {"account": account, "name": "ci", "scopes": ["proxies:read"], "allow_from": ["10.0.0.0/8", "2001:DB8::/32"]}
    status, rec, text = a.call("POST", "/v1/keys", req)
    if not check(status == 201 and isinstance(rec, dict) and "key" in rec, "POST /v1/keys with allow_from: 201"):
        print("#   %d %s" % (status, text.strip()))
        return
    canonical = ["10.0.0.0/8", "2001:db8::/32"]
    check(list(rec) == COLUMNS + ["key"] and rec["allow_from"] == canonical,
          "the 201 holds the list, canonical (%s)" % rec["allow_from"])
    status, got, _ = a.call("GET", "/v1/keys/" + rec["id"])
    check(status == 200 and got.get("allow_from") == canonical, "GET /v1/keys/ID: the store kept the list (%s)" % got.get("allow_from"))
    status, listed, _ = a.call("GET", "/v1/keys?account=" + account)
    check(listed == cli_list(account), "GET /v1/keys?account=A with a list is what apikey list --json A prints")
    # The admin socket's client is no address: the key is refused at /verify.
    code, _, _, why = verify(rec["key"])
    check((code, why) == (401, "address not allowed"),
          "a key with a list, from a client with no address: 401 address not allowed (%s %s)" % (code, why))
    status, rot, text = a.call("POST", "/v1/keys/%s/rotate" % rec["id"])
    check(status == 201 and rot.get("allow_from") == canonical, "rotate keeps the list (%d %s)" % (status, rot.get("allow_from") if rot else text))
    if status == 201:
        status, got, _ = a.call("GET", "/v1/keys/" + rot["id"])
        check(got.get("allow_from") == canonical, "GET of the rotated key: the list is stored with it")
    status, rec, _ = a.call("POST", "/v1/keys", dict(req, allow_from=None, name="open"))
    check(status == 201 and rec["allow_from"] == [], "allow_from null: any address, []")
    status, every, _ = a.call("GET", "/v1/keys?account=%s&all=1" % account)
    for r in every:
        a.call("DELETE", "/v1/keys/" + r["id"])


def ratelimit(account):
    a = Admin()
    rate = {"limit": 2, "per": "1h", "burst": 2}
    req = {"account": account, "name": "limited", "scopes": ["proxies:read"], "rate": rate}
    status, rec, text = a.call("POST", "/v1/keys", req)
    if not check(status == 201 and isinstance(rec, dict) and rec.get("rate") == rate,
                 "POST /v1/keys with rate: 201, the rate in the record"):
        print("#   %d %s" % (status, text.strip()))
        return
    status, got, _ = a.call("GET", "/v1/keys/" + rec["id"])
    check(got.get("rate") == rate, "GET /v1/keys/ID: the store kept the rate (%s)" % got.get("rate"))
    answers = []
    for _ in range(3):
        c = UnixConnection(os.environ["SOCK"])
        c.request("GET", "/verify/" + os.environ["SVC"], headers={"Authorization": "Bearer " + rec["key"]})
        r = c.getresponse()
        r.read()
        answers.append((r.status, r.getheader("X-RateLimit-Limit"), r.getheader("X-RateLimit-Remaining"),
                        r.getheader("Retry-After"), r.getheader("X-Apikey-Reason")))
        c.close()
    check(answers[0][:3] == (200, "2", "1") and answers[1][:3] == (200, "2", "0"),
          "/verify: 200 with X-RateLimit-Limit 2 and X-RateLimit-Remaining 1, then 0 (%s)" % answers[:2])
    check(answers[2][0] == 429 and answers[2][4] == "rate limited" and (answers[2][3] or "").isdigit()
          and 1700 <= int(answers[2][3]) <= 1800,
          "/verify over the limit: 429, rate limited, Retry-After about 1800 s (%s)" % (answers[2],))
    status, rot, _ = a.call("POST", "/v1/keys/%s/rotate" % rec["id"])
    check(status == 201 and rot.get("rate") == rate, "rotate keeps the rate")
    status, rec2, _ = a.call("POST", "/v1/keys", dict(req, name="open", rate=None))
    check(status == 201 and rec2.get("rate") is None, "rate null: no limit")
    c = UnixConnection(os.environ["SOCK"])
    c.request("GET", "/verify/" + os.environ["SVC"], headers={"Authorization": "Bearer " + rec2["key"]})
    r = c.getresponse()
    r.read()
    c.close()
    check(r.status == 200 and r.getheader("X-RateLimit-Limit") is None
          and r.getheader("X-RateLimit-Remaining") is None and r.getheader("Retry-After") is None,
          "/verify of a key without a limit: 200, no X-RateLimit or Retry-After header (%d)" % r.status)
    for bad in [{"limit": 0, "per": "1s"}, {"limit": 5, "per": "1d"}, {"limit": 5, "per": "1s", "burst": 0},
                {"limit": 5, "per": "1s", "extra": 1}, "5/s", [5]]:
        status, parsed, text = a.call("POST", "/v1/keys", dict(req, rate=bad))
        check(status == 400 and one_error(status, parsed, text), "rate %s: 400" % json.dumps(bad))
    status, every, _ = a.call("GET", "/v1/keys?account=%s&all=1" % account)
    for r in every:
        a.call("DELETE", "/v1/keys/" + r["id"])


def forbidden():
    """A user who is not an admin is dropped as it connects: no answer."""
    for method, path, body in [("GET", "/v1/keys", None),
                               ("POST", "/v1/keys", {"account": "intruder", "name": "n", "scopes": ["geo:read"]}),
                               ("DELETE", "/v1/keys/ak_00000000", None)]:
        try:
            status, _, text = Admin().call(method, path, body)
            check(False, "a user who is not an admin: %s %s is answered %d" % (method, path, status))
        except (OSError, http.client.HTTPException):
            check(True, "a user who is not an admin: %s %s is dropped unanswered" % (method, path))


def scoped(account, other):
    """?account=A on GET, DELETE and rotate of an id: another account's key
    is 404 and nothing changes; the account's own key is served."""
    a = Admin()
    keys = {}
    for acct in (account, other):
        status, rec, _ = a.call("POST", "/v1/keys", {"account": acct, "name": "scoped", "scopes": ["proxies:read"]})
        if not check(status == 201, "scoped: a key for %s" % acct):
            return
        keys[acct] = rec
    theirs = keys[other]["id"]
    for method, path in [("GET", "/v1/keys/%s"), ("DELETE", "/v1/keys/%s"), ("POST", "/v1/keys/%s/rotate")]:
        status, parsed, text = a.call(method, (path % theirs) + "?account=" + account)
        check(status == 404 and one_error(status, parsed, text) and account not in text,
              "%s %s?account=<another account>: 404 (got %d %s)" % (method, path, status, text.strip()[:80]))
    status, rec, _ = a.call("GET", "/v1/keys/" + theirs)
    listed = cli_list(other, all_keys=True)
    check(status == 200 and rec["status"] == "active" and len(listed) == 1,
          "the other account's key is untouched: active, not rotated (%s, %d keys)" % (rec.get("status"), len(listed)))
    check(verify(keys[other]["key"])[0] == 200, "the other account's key still verifies")
    mine = keys[account]["id"]
    status, rec, _ = a.call("GET", "/v1/keys/%s?account=%s" % (mine, account))
    check(status == 200 and rec["id"] == mine, "GET of the account's own key with ?account=: 200")
    status, rot, _ = a.call("POST", "/v1/keys/%s/rotate?account=%s" % (mine, account))
    check(status == 201 and rot["account"] == account, "rotate of the account's own key with ?account=: 201")
    status, _, _ = a.call("DELETE", "/v1/keys/%s?account=%s" % (rot["id"], account))
    check(status == 204, "DELETE of the account's own key with ?account=: 204")
    for q in ["?account=", "?acount=" + account, "?account=%s&account=%s" % (account, other), "?all=1"]:
        status, parsed, text = a.call("GET", "/v1/keys/%s%s" % (mine, q))
        check(status == 400 and one_error(status, parsed, text), "GET /v1/keys/ID%s: 400 (got %d)" % (q, status))
    for acct in (account, other):
        for r in cli_list(acct, all_keys=True):
            a.call("DELETE", "/v1/keys/" + r["id"])


def utf8():
    """A client's bytes that are not UTF-8, or an error line that would cut
    a character: 400 with one JSON error line, never 503."""
    cases = [
        ("a parameter name %ff", "GET", "/v1/keys?%ff=1", None),
        ("a parameter value %ff", "GET", "/v1/keys?account=%ff", None),
        ("an id %ff", "GET", "/v1/keys/%ff", None),
        ("an id %ff%fe, with ?account=", "DELETE", "/v1/keys/ak_%ff%fe?account=a", None),
        ("an id of two-byte characters, quoted cut", "GET", "/v1/keys/ak_x" + "%C3%A9" * 5, None),
        ("an unknown field of two-byte characters, quoted cut", "POST", "/v1/keys",
         ('{"a' + "\u00e9" * 40 + '": 1}').encode()),
        ("an unknown parameter of two-byte characters", "GET", "/v1/keys?a" + "%C3%A9" * 40 + "=1", None),
    ]
    for what, method, path, raw in cases:
        status, parsed, text = Admin().call(method, path, raw=raw)
        check(status in (400, 404) and one_error(status, parsed, text),
              "%s: 400 with one JSON error line (got %d %s)" % (what, status, text.strip()[:80]))


def createloop(path):
    """Creates keys until the daemon is gone; every key whose 201 arrived is
    written to path (0600) before the next request."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    a, n = Admin(), 0
    while True:
        try:
            status, rec, _ = a.call("POST", "/v1/keys", {"account": "loop%d" % (n // 10), "name": "k%d" % n,
                                                          "scopes": ["proxies:read"]})
        except (OSError, http.client.HTTPException):
            break
        if status != 201:
            print("#   create loop: %d" % status)
            break
        os.write(fd, (rec["key"] + "\n").encode())
        n += 1
    os.close(fd)
    print("# %d keys acknowledged" % n)


def verifyall(path, what):
    keys = open(path).read().split()
    bad_ones = sum(verify(k)[0] != 200 for k in keys)
    check(keys and bad_ones == 0, "%s: each of the %d keys verifies (%d do not)" % (what, len(keys), bad_ones))


def main():
    cmd = sys.argv[1]
    if cmd == "flow":
        flow(sys.argv[2])
    elif cmd == "bad":
        bad()
    elif cmd == "allowlist":
        allowlist(sys.argv[2])
    elif cmd == "ratelimit":
        ratelimit(sys.argv[2])
    elif cmd == "forbidden":
        forbidden()
    elif cmd == "scoped":
        scoped(sys.argv[2], sys.argv[3])
    elif cmd == "utf8":
        utf8()
    elif cmd == "createloop":
        createloop(sys.argv[2])
    elif cmd == "verifyall":
        verifyall(sys.argv[2], sys.argv[3])
    elif cmd == "expect":
        body = json.loads(sys.argv[5]) if len(sys.argv) > 5 else None
        status, parsed, text = Admin().call(sys.argv[3], sys.argv[4], body)
        ok = status == int(sys.argv[2]) and (status < 400 or one_error(status, parsed, text))
        if not ok:
            print("#   %s %s: %d %s" % (sys.argv[3], sys.argv[4], status, text.strip()[:200]))
        sys.exit(0 if ok else 1)
    sys.exit(1 if failed else 0)


main()
