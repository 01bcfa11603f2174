# SPDX-License-Identifier: BSD-2-Clause
# free_port: a TCP port on loopback that nothing uses, for a server a test
# starts. It is drawn below the kernel's ephemeral range: a port drawn inside
# it can be taken, between the draw and the server's bind(), by the local end
# of any client connection (a load test opens tens of thousands), and nginx
# then fails with "Address already in use". Every TCP state counts as used,
# not only LISTEN. No python on a fresh machine: ss is in iproute2.
free_port() {
    lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null)
    [ "${lo:-0}" -gt 11024 ] 2>/dev/null || lo=32768
    while :; do
        p=$(( $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % (lo - 10024) + 10024 ))
        ss -Htan "sport = :$p" | grep -q . || { echo "$p"; return; }
    done
}
