#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# needs: servers
# A real sshd on loopback, run as "sshd-apikey..." so that it reads that PAM
# service, from etc/pam.d/sshd-apikey and etc/sshd_config-apikey: ssh logins
# (sshpass, running `true`) in password and in keyboard-interactive mode.
NAME=sshd
SVC=sshd-apikeytest$$
. "$(dirname "$0")/lib/servers.sh"

install_pam_service etc/pam.d/sshd-apikey "$SVC"
mkdir -p /run/sshd && chmod 755 /run/sshd   # sshd's privilege separation folder
ssh-keygen -q -t ed25519 -N '' -f "$T/host_key" || exit 2
ln -s "$(command -v sshd)" "$T/$SVC"
PORT=$(free_port)

# sshd_config from the example, made private to this run, in one MODE.
sshd_config() { # password|keyboard-interactive [UseDNS]
    if [ "$1" = password ]; then kbd=no pw=yes; else kbd=yes pw=no; fi
    sed -e "s#^Port .*#Port $PORT#" -e "s#^PidFile .*#PidFile $T/sshd.pid#" \
        -e "s#^KbdInteractiveAuthentication .*#KbdInteractiveAuthentication $kbd#" \
        -e "s#^PasswordAuthentication .*#PasswordAuthentication $pw#" \
        -e "s#^UseDNS .*#UseDNS ${2:-no}#" \
        etc/sshd_config-apikey > "$T/sshd_config"
    printf 'ListenAddress 127.0.0.1\nHostKey %s/host_key\nLogLevel VERBOSE\n' "$T" >> "$T/sshd_config"
    ! have_ipv6 || echo "ListenAddress ::1" >> "$T/sshd_config"
}
start_sshd() {
    "$T/$SVC" -t -f "$T/sshd_config" || { not_ok "sshd -t refuses the config"; finish; }
    bg "$T/$SVC" -D -f "$T/sshd_config" -E "$LOG"
    SSHD=$!
    wait_port "$PORT" || { not_ok "sshd did not listen"; finish; }
}
stop_sshd() { kill "$SSHD"; wait "$SSHD" 2>/dev/null; }

login() { # USER KEY, the key through sshpass's environment, not argv
    SSHPASS=$2 sshpass -e ssh -F /dev/null -p "$PORT" -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=5 \
        -o PubkeyAuthentication=no -o PreferredAuthentications="$MODE" \
        -o NumberOfPasswordPrompts=1 ${FROM:+-b "$FROM"} "$1@$(server_addr)" true < /dev/null 2> "$T/ssh.err" && return 0
    grep -q "Permission denied" "$T/ssh.err" && return 1
    sed 's/^/#   ssh: /' "$T/ssh.err"
    return 2
}

for MODE in password keyboard-interactive; do
    LOG=$T/sshd-$MODE.log
    sshd_config "$MODE"
    start_sshd
    matrix "$MODE"
    # PAM_RHOST: sshd's numeric client address (UseDNS no, its default).
    address_matrix "$MODE" v6
    stop_sshd
    # The logins went the way meant: sshd says which method let them in.
    if grep -q "Accepted $MODE.* for $U1 " "$LOG"; then ok "$MODE: sshd logged the method"
    else not_ok "$MODE: sshd's log shows no 'Accepted $MODE'"; fi
done
# UseDNS yes: PAM_RHOST is the client's name (localhost), not an address,
# and a key with a list is refused: fail closed, as pam_apikey(8) says.
pinned_keys
# pam_exec shows what sshd put there (it exports PAM_RHOST to the script).
printf '#!/bin/sh\necho "rhost=$PAM_RHOST" >> %s/rhost.log\n' "$T" > "$T/rhost.sh"
chmod 755 "$T/rhost.sh"
sed -i "1i auth optional pam_exec.so $T/rhost.sh" "/etc/pam.d/$SVC"
MODE=password
LOG=$T/sshd-usedns.log
sshd_config password yes
start_sshd
FROM=127.0.0.1
want_out "UseDNS yes: a key pinned to 127.0.0.1/32, from 127.0.0.1" "$U1" "$PINNED"
want_in "UseDNS yes: a key without a list" "$U1" "$GOOD"
FROM=""
stop_sshd
if [ "$(sort -u "$T/rhost.log")" = rhost=localhost ]; then ok "UseDNS yes: PAM_RHOST was the name localhost"
else not_ok "UseDNS yes: PAM_RHOST was not localhost: $(sort -u "$T/rhost.log" | tr '\n' ' ')"; fi
finish
