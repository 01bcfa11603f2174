#!/bin/sh
# make demo: the key lifecycle on a private JSON store in a temporary folder,
# then a login through the real PAM stack (pam_wrapper + pamtester).
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

if [ -f build/pam_apikey.so ] && command -v pamtester >/dev/null && [ -e /usr/lib/x86_64-linux-gnu/libpam_wrapper.so ]; then
    mkdir -p "$T/pam.d"
    printf 'auth required %s/build/pam_apikey.so config=%s\naccount required %s/build/pam_apikey.so config=%s\n' \
        "$ROOT" "$T/apikey.conf" "$ROOT" "$T/apikey.conf" > "$T/pam.d/apikey-demo"
    echo "auth required pam_deny.so" > "$T/pam.d/other"
    pam() {
        echo "$1" | LD_PRELOAD=libpam_wrapper.so PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR="$T/pam.d" \
            pamtester apikey-demo alice authenticate acct_mgmt
    }
    step "pamtester apikey-demo alice authenticate acct_mgmt   (the key as password, real libpam)"
    pam "$KEY" || fail "PAM login with a good key"
fi

step apikey revoke "$ID"
$A revoke "$ID" || fail revoke

step "echo KEY | apikey verify --service apikey-demo --account alice   (revoked)"
echo "$KEY" | $A verify --service apikey-demo --account alice && fail "a revoked key must be refused"

if [ -f "$T/pam.d/apikey-demo" ]; then
    step "pamtester apikey-demo alice authenticate   (revoked)"
    pam "$KEY" && fail "PAM login with a revoked key must fail"
fi

step "apikey list --all"
$A list --all
printf '\ndemo: OK\n'
