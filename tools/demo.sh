#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# make demo: the key lifecycle on a private JSON store in a temporary folder,
# then logins through the real PAM stack (build/pam_try: libpam with a
# private service folder).
set -u
cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
T=$(mktemp -d /tmp/apikey-demo.XXXXXX)
trap 'rm -rf "$T"' EXIT
chmod 755 "$T"
cat > "$T/apikey.conf" <<CONF
store = json:$T/keys.json
key_prefix = ak
max_keys_per_account = 10
default_expiry = 90d

[services]
apikey-demo = proxies:read
billing = balance:read stats:read
CONF
chmod 644 "$T/apikey.conf"
export APIKEY_CONFIG="$T/apikey.conf"
A="$ROOT/build/apikey"
step() { printf '\n$ %s\n' "$*"; }
fail() { echo "demo: FAILED: $*" >&2; exit 1; }

step apikey create alice --name "CI deploy" --scopes proxies:read,geo:read --expires 30d
KEY=$($A create alice --name "CI deploy" --scopes proxies:read,geo:read --expires 30d) || fail create
echo "$KEY"
ID=$(echo "$KEY" | cut -c1-11)

step apikey list
$A list || fail list

step "echo KEY | apikey verify --service apikey-demo --account alice"
echo "$KEY" | $A verify --service apikey-demo --account alice || fail "verify of a good key"

step "echo KEY | apikey verify --service billing --account alice   (missing scope)"
echo "$KEY" | $A verify --service billing --account alice && fail "billing must be refused"

# The real PAM stack: libpam reads a private service folder (pam_start_confdir),
# as /etc/pam.d/apikey-demo would be read by sshd, Squid or Dante.
mkdir -p "$T/pam.d"
printf 'auth required %s/build/pam_apikey.so config=%s\naccount required %s/build/pam_apikey.so config=%s\n' \
    "$ROOT" "$T/apikey.conf" "$ROOT" "$T/apikey.conf" > "$T/pam.d/apikey-demo"
echo "auth required pam_deny.so" > "$T/pam.d/other"
echo; echo "# $T/pam.d/apikey-demo:"; sed 's/^/#   /' "$T/pam.d/apikey-demo"
pam() { echo "$1" | build/pam_try "$T/pam.d" apikey-demo alice; }

step "pam_try apikey-demo alice   (the key as password: pam_authenticate, pam_acct_mgmt)"
pam "$KEY" || fail "PAM login with a good key"
echo "=> PAM: the good key is let in"

step apikey revoke "$ID"
$A revoke "$ID" || fail revoke

step "echo KEY | apikey verify --service apikey-demo --account alice   (revoked)"
echo "$KEY" | $A verify --service apikey-demo --account alice && fail "a revoked key must be refused"

step "pam_try apikey-demo alice   (revoked)"
pam "$KEY" && fail "PAM login with a revoked key must fail"
echo "=> PAM: the revoked key is refused"

step "apikey list --all"
$A list --all
printf '\ndemo: OK\n'
