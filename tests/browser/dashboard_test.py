# SPDX-License-Identifier: BSD-2-Clause
"""apikey-authd's dashboard driven in headless Chromium (Selenium), behind
the nginx that tests/integration/dashboard.sh starts. It prints one
"ok - ..." or "not ok - ..." line per check and never prints a key.

Environment: DASH_URL (the dashboard through the proxy, whose /protected/
needs a key), SINGLE_URL (a single-key account's dashboard), EVIL_URL
(another origin), SHOTS (where the screenshots go), SOLO_ID (the id of
the single-key account's key), ACCOUNT (the signed-in account)."""
import datetime
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

DASH = os.environ["DASH_URL"]
SINGLE = os.environ["SINGLE_URL"]
EVIL = os.environ["EVIL_URL"]
SHOTS = os.environ["SHOTS"]
SOLO_ID = os.environ["SOLO_ID"]
ACCOUNT = os.environ["ACCOUNT"]
KEY_RE = re.compile(r"ak_[A-Za-z0-9]{46}")
fails = 0


def ok(cond, what):
    global fails
    print(("ok - " if cond else "not ok - ") + "browser: " + what, flush=True)
    if not cond:
        fails += 1
    return cond


def status(key):
    req = urllib.request.Request(DASH + "protected/index.txt", headers={"X-API-Key": key})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def protected(key):
    """The status of a request with key through the nginx module."""
    return status(key)


def verify_at_authd(key):
    """/verify on apikey-authd, which (as root) records the last use; the
    nginx workers, user proxy, read the store only."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(os.environ["AUTHD_SOCK"])
        s.sendall(("GET /verify/%s HTTP/1.0\r\nX-API-Key: %s\r\n\r\n" % (os.environ["SVC"], key)).encode())
        return s.recv(64).split(b" ")[1].decode()


PROFILE = tempfile.mkdtemp(prefix="apikey-chromium-")
opts = Options()
for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
          "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
          "--window-size=1280,900", "--user-data-dir=" + PROFILE):
    opts.add_argument(a)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
wait = WebDriverWait(driver, 15)
S = lambda sel: driver.find_element(By.CSS_SELECTOR, sel)  # noqa: E731


def visible(sel):
    return wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, sel)))


def gone(sel):
    return wait.until(EC.invisibility_of_element_located((By.CSS_SELECTOR, sel)))


def load(url=DASH):
    driver.get(url)
    wait.until(lambda d: d.execute_script("return document.getElementById('loading').hidden"))


def rows():
    """(name, prefix, row element) of the rows shown."""
    out = []
    for tr in driver.find_elements(By.CSS_SELECTOR, "#keys tbody tr"):
        out.append((tr.find_element(By.CSS_SELECTOR, ".name").text, tr.find_element(By.CSS_SELECTOR, ".prefix").text, tr))
    return out


def row_named(name):
    for n, _, tr in rows():
        if n == name:
            return tr
    return None


def api(method, path, body=None):
    """A request from the page's own origin, as the page makes it."""
    return driver.execute_async_script(
        """const [m, p, b, done] = arguments;
        const init = {method: m, headers: {'X-Apikey-Dashboard': '1'}};
        if (b !== null) { init.headers['Content-Type'] = 'application/json'; init.body = JSON.stringify(b); }
        fetch(p, init).then(async r => done([r.status, await r.text()])).catch(e => done([0, String(e)]));""",
        method, path, body)


def read_new_key():
    visible("#key-dialog")
    key = S("#new-key").text
    ok(KEY_RE.fullmatch(key) is not None, "the new key is shown whole in its dialog")
    return key


def done_with_key(key):
    S("#done").click()
    gone("#key-dialog")
    ok(S("#new-key").text == "" and key not in driver.page_source, "after Done the key is gone from the page")


def storage_clean(key):
    found = driver.execute_script(
        "return JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage), document.cookie, location.href])")
    return key not in found


def create(name, scopes, expires="90d", allow="", shot=None):
    S("#create").click()
    visible("#create-dialog")
    S("#name").clear()
    S("#name").send_keys(name)
    for s in scopes:
        S("#scope-groups input[value='%s']" % s).click()
    Select(S("#expires")).select_by_value(expires)
    if allow:
        S("#allow").send_keys(allow)
    if shot:
        driver.save_screenshot(os.path.join(SHOTS, shot))
    S("#create-form button[type=submit]").click()
    return read_new_key()


try:
    # ---- The list, and creating a key in the dialog ----
    load()
    ok(S("#many").is_displayed() and ACCOUNT in S("#who").text, "the page lists the signed-in account's keys")
    ok(driver.find_elements(By.CSS_SELECTOR, "#keys tbody tr") == [] and S("#empty").is_displayed(),
       "an account without keys sees 'No API keys yet'")
    S("#create").click()
    visible("#create-dialog")
    groups = [g.get_attribute("textContent") for g in driver.find_elements(By.CSS_SELECTOR, "#scope-groups legend")]
    ok(groups[:2] == ["proxies", "geo"], "permissions grouped by area: %s" % groups)
    desc = [d.text for d in driver.find_elements(By.CSS_SELECTOR, "#scope-groups .scope-desc")]
    ok("List and retrieve proxy details and configuration" in desc, "each permission has its description")
    ok("proxies:write does not include proxies:read" in S("#perms-hint").text, "the dialog says write does not include read")
    ok([o.text for o in Select(S("#expires")).options] == ["30 days", "90 days", "6 months", "1 year", "No expiration"],
       "expiration: 30 days, 90 days, 6 months, 1 year, No expiration")
    unlabelled = driver.execute_script(
        "return [...document.querySelectorAll('#create-dialog input, #create-dialog select')]"
        ".filter(e => !e.labels || !e.labels.length).length")
    ok(unlabelled == 0, "every field of the dialog has a label")
    S("#create-form button[type=submit]").click()
    ok("name" in S("#create-form .error").text, "an empty name is refused in words")
    S("#create-dialog .cancel").click()
    gone("#create-dialog")

    key = create("CI pipeline", ["proxies:read", "geo:read"], expires="30d", shot="dashboard-create.png")
    ok("will not be shown again" in S("#key-warning").text, "the dialog warns the key will not be shown again")
    driver.execute_cdp_cmd("Browser.grantPermissions", {
        "origin": DASH.rstrip("/"), "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
    S("#copy").click()
    wait.until(lambda d: S("#copied").text != "")
    clip = driver.execute_async_script(
        "navigator.clipboard.readText().then(arguments[0]).catch(e => arguments[0]('!' + e))")
    ok(clip == key, "Copy put the key on the clipboard")
    driver.save_screenshot(os.path.join(SHOTS, "dashboard-new-key.png"))
    ok(storage_clean(key), "the key is in no storage, cookie or URL while shown")
    done_with_key(key)
    ok(storage_clean(key), "nor after Done")
    load()
    ok(key not in driver.page_source, "nor after a reload")
    tr = row_named("CI pipeline")
    ok(tr is not None and tr.find_element(By.CSS_SELECTOR, ".prefix").text == key[:11] + "...",
       "the row shows the prefix only (ak_xxxxxxxx...)")
    in30 = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=30)).strftime("%Y-%m-%d")
    ok(tr is not None and tr.find_element(By.CSS_SELECTOR, ".expires").text == in30, "Expires is 30 days from now")
    ok(tr is not None and tr.find_element(By.CSS_SELECTOR, ".used").text == "Never", "Last used: Never")
    ok(protected(key) == 200, "the new key opens a request through the nginx module")
    ok(verify_at_authd(key) == "200", "and one through apikey-authd's /verify")
    load()
    tr = row_named("CI pipeline")
    ok(tr is not None and tr.find_element(By.CSS_SELECTOR, ".used").text != "Never", "Last used is set once used")

    # ---- A name that is markup is shown as text ----
    xss = "<img src=x onerror=alert(1)>"
    done_with_key(create(xss, ["geo:read"]))
    ok(row_named(xss) is not None, "a name of markup is rendered as its characters")
    ok(driver.find_elements(By.CSS_SELECTOR, "#keys img") == [], "and makes no element")
    try:
        driver.switch_to.alert
        ok(False, "no script ran (an alert opened)")
    except NoAlertPresentException:
        ok(True, "no script ran")

    # ---- Rotate, with a key made by the page's own API call ----
    st, text = api("POST", "api/change/keys", {"name": "rotate me", "scopes": ["proxies:read"], "expires": "1y"})
    old = json.loads(text)["key"] if st == 201 else ""
    ok(st == 201 and protected(old) == 200, "a key made through the page's API works")
    load()
    driver.save_screenshot(os.path.join(SHOTS, "dashboard-list.png"))
    row_named("rotate me").find_element(By.CSS_SELECTOR, ".rotate").click()
    visible("#rotate-dialog")
    Select(S("#grace")).select_by_value("")
    S("#rotate-dialog .confirm").click()
    new = read_new_key()
    done_with_key(new)
    ok(protected(new) == 200 and protected(old) == 401, "rotate without grace: the new key works, the old one is 401")

    # ---- Revoke ----
    row_named("CI pipeline").find_element(By.CSS_SELECTOR, ".revoke").click()
    visible("#revoke-dialog")
    ok("CI pipeline" in S("#revoke-dialog .what").text, "the confirmation names the key")
    S("#revoke-dialog .confirm").click()
    gone("#revoke-dialog")
    wait.until(lambda d: row_named("CI pipeline") is None)
    ok(protected(key) == 401, "revoked: the next request through nginx is 401")
    S("#show-old").click()
    tr = row_named("CI pipeline")
    ok(tr is not None and tr.find_element(By.CSS_SELECTOR, ".badge").text == "Revoked", "the toggle shows it as Revoked")
    S("#show-old").click()

    # ---- The limit: 10 active keys ----
    active = sum(1 for n, _, _ in rows())
    for i in range(10 - active):
        st, _ = api("POST", "api/change/keys", {"name": "filler %d" % i, "scopes": ["geo:read"]})
        ok(st == 201, "filler key %d" % i)
    load()
    ok(len(rows()) == 10, "ten active keys listed")
    ok(not S("#create").is_enabled(), "at the limit Create is disabled")
    ok(S("#limit").is_displayed() and "Revoke a key" in S("#limit").text, "and the page says to revoke a key first")
    st, text = api("POST", "api/change/keys", {"name": "eleventh", "scopes": ["geo:read"]})
    ok(st == 409, "an 11th create is refused by the server too (409)")

    # ---- An error in words: the key is revoked elsewhere while its rotate dialog is open ----
    tr = row_named("filler 0")
    tr.find_element(By.CSS_SELECTOR, ".rotate").click()
    visible("#rotate-dialog")
    st, _ = api("DELETE", "api/change/keys/" + tr.get_attribute("data-id"))
    S("#rotate-dialog .confirm").click()
    err = visible("#rotate-dialog .error").text
    ok(st == 204 and err.startswith("This cannot be done now") and "409" not in err,
       "an API error is shown in words: %r" % err)
    S("#rotate-dialog .cancel").click()
    gone("#rotate-dialog")
    load()
    ok(row_named("filler 0") is None and S("#create").is_enabled(), "below the limit again, Create is enabled")

    # ---- Keyboard, and a phone's width ----
    S("#create").send_keys(Keys.ENTER)
    visible("#create-dialog")
    ok(driver.switch_to.active_element == S("#name"), "Enter on Create opens the dialog with the focus on Name")
    driver.switch_to.active_element.send_keys(Keys.ESCAPE)
    gone("#create-dialog")
    ok(True, "Escape closes it")
    driver.set_window_size(375, 800)
    load()
    width = driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    ok(width[0] <= width[1], "the list fits a 375-pixel-wide window (%d <= %d)" % tuple(width))
    driver.save_screenshot(os.path.join(SHOTS, "dashboard-phone.png"))
    driver.set_window_size(1280, 900)

    # ---- A cross-origin page cannot change anything ----
    driver.get(EVIL)
    res = driver.execute_async_script(
        """const [url, done] = arguments, out = [];
        const body = JSON.stringify({name: 'csrf', scopes: ['geo:read']});
        fetch(url + 'api/change/keys', {method: 'POST', credentials: 'include',
              headers: {'X-Apikey-Dashboard': '1', 'Content-Type': 'application/json'}, body})
          .then(r => out.push('read ' + r.status)).catch(e => out.push('blocked'))
          .then(() => fetch(url + 'api/change/keys', {method: 'POST', mode: 'no-cors', credentials: 'include',
                                                       headers: {'Content-Type': 'text/plain'}, body}))
          .then(() => out.push('sent'), () => out.push('failed')).then(() => done(out));""", DASH)
    ok(res[0] == "blocked", "a cross-origin fetch with the page's header is blocked (%s)" % res)
    load()
    ok(row_named("csrf") is None, "a cross-origin POST created nothing")

    # ---- Single-key mode ----
    load(SINGLE)
    ok(S("#single").is_displayed() and not S("#many").is_displayed(), "max_keys_per_account = 1: the single-key page")
    ok(S("#single-prefix").text == SOLO_ID + "...", "it shows the one key's prefix")
    S("#regenerate").click()
    visible("#regen-dialog")
    ok("stops working at once" in S("#regen-dialog").text, "Revoke & Regenerate asks, saying the old key stops at once")
    S("#regen-dialog .confirm").click()
    fresh = read_new_key()
    done_with_key(fresh)
    wait.until(lambda d: S("#single-prefix").text != SOLO_ID + "...")
    ok(S("#single-prefix").text == fresh[:11] + "...", "the page shows the new key's prefix")
    ok(protected(fresh) == 200, "the regenerated key works through nginx")
    ok(storage_clean(fresh), "the regenerated key is in no storage")

    # ---- The console holds no key and no violation ----
    logs = [e["message"] for e in driver.get_log("browser")]
    ok(not any(KEY_RE.search(m) for m in logs), "the browser's console holds no key")
    ok(not any("Content Security Policy" in m for m in logs),
       "no Content-Security-Policy violation: %s" % [m for m in logs if "Content Security" in m][:1])
except Exception as e:  # a step that never happened is a failure, said once
    ok(False, "stopped at %s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else ""))
finally:
    driver.quit()
    shutil.rmtree(PROFILE, ignore_errors=True)
sys.exit(1 if fails else 0)
