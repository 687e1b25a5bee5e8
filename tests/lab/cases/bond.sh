# The netlink library's bonds on the real bonding driver: two namespaces joined
# by two veth pairs (two "switch ports" each), an 802.3ad bond made by
# bond_apply in each. LACP must negotiate one aggregator with both ports and see
# its partner; the alias and jumbo MTU must hold; a second apply changes nothing;
# a mode change goes through down + release + re-enslave.
. "$SANLAB_SRC/tests/lab/lib.sh"
bond=$SANLAB_BUILD/tests/bond_apply
nsx() { ip netns exec "$@"; }

setup() {
    ip netns add a && ip netns add b &&
        ip link add a0 netns a type veth peer name b0 netns b &&
        ip link add a1 netns a type veth peer name b1 netns b &&
        for ns in a b; do ip -n $ns link set lo up; done
}
check "two namespaces joined by two veth pairs" setup
check "bond_apply makes an 802.3ad bond in a" nsx a "$bond" apply san0 802.3ad a0,a1 mtu=9000 alias="iSCSI SAN" lacp_rate=fast
check "bond_apply makes an 802.3ad bond in b" nsx b "$bond" apply san0 802.3ad b0,b1 mtu=9000 alias="iSCSI SAN" lacp_rate=fast
check "addresses (set by hand here)" bash -c "ip -n a addr add 192.168.78.1/24 dev san0 && ip -n b addr add 192.168.78.2/24 dev san0"
lacp_ready() { nsx a "$bond" show san0 | grep -q 'ports 2 partner [0-9a-f:]*[1-9a-f]'; }
check "LACP negotiates one aggregator with two ports and a partner" wait_for 30 lacp_ready
nsx a "$bond" show san0
check "/proc/net/bonding agrees: 802.3ad, fast LACP, both ports up" bash -c "
    f=\$(ip netns exec a cat /proc/net/bonding/san0)
    grep -q 'Bonding Mode: IEEE 802.3ad' <<< \"\$f\" && grep -q 'LACP rate: fast' <<< \"\$f\" &&
    [[ \$(grep -c 'MII Status: up' <<< \"\$f\") -eq 3 ]]"
check "the MTU reached the bond and its ports" bash -c "[[ \$(ip -n a -o link show san0) == *'mtu 9000'* && \$(ip -n a -o link show a1) == *'mtu 9000'* ]]"
check "the alias is the description" bash -c "ip -n a -d link show san0 | grep -q 'alias iSCSI SAN'"
check "the bonded link carries traffic" wait_for 20 nsx a busybox ping -c 1 -W 1 192.168.78.2
check "a second apply plans no change" bash -c "ip netns exec a '$bond' plan san0 802.3ad a0,a1 mtu=9000 alias='iSCSI SAN' lacp_rate=fast | grep -qx 'changes: 0'"
check "a mode change goes down, releases, re-enslaves" bash -c "ip netns exec a '$bond' apply san0 active-backup a0,a1 mtu=9000 alias='iSCSI SAN' > /run/lab/mode.out && grep -q 'release a0' /run/lab/mode.out && ip netns exec a grep -q 'Bonding Mode: fault-tolerance (active-backup)' /proc/net/bonding/san0"
cat /run/lab/mode.out
check "after the mode change, both ports are back" bash -c "[[ \$(ip netns exec a grep -c '^Slave Interface' /proc/net/bonding/san0) -eq 2 ]]"
check "a bad slave name is reported with the kernel's words" bash -c "! ip netns exec b '$bond' apply san1 balance-alb nope0 2> /run/lab/bad.err; grep -q 'nope0' /run/lab/bad.err"
cat /run/lab/bad.err
check "and the bond it had made is gone again" bash -c "! ip -n b link show san1 2> /dev/null"
check "the kernel's own reason reaches the error (extended ack)" bash -c "! ip netns exec b '$bond' apply san2 balance-alb '' mtu=70000 2> /run/lab/mtu.err; grep -q 'kernel: ' /run/lab/mtu.err && ! ip -n b link show san2 2> /dev/null"
cat /run/lab/mtu.err
finish
