# The storage network as an admin meets it: sanctl apply makes an 802.3ad bond
# from [bond.san0] in each of two namespaces joined by two veth pairs (two
# switch ports each); LACP negotiates and status reports it; a port going down
# keeps traffic flowing and turns status degraded naming the port; a rebuild
# is refused while a portal uses the bond; bad ports are refused; a bond made
# by hand is left alone.
. "$SANLAB_SRC/tests/lab/lib.sh"
sanctl=$SANLAB_BUILD/agent/sanctl
base=/run/lab/net
nsx() { ip netns exec "$@"; }

setup() {
    ip netns add a && ip netns add b &&
        ip link add a0 netns a type veth peer name b0 netns b &&
        ip link add a1 netns a type veth peer name b1 netns b &&
        ip link add a2 netns a type veth peer name b2 netns b &&
        ip -n a addr add 192.168.80.1/24 dev a2 && ip -n a link set a2 up
}
check "two namespaces joined by veth pairs" setup

config() {  # config NS ADDRESS [MODE]
    mkdir -p $base/$1/conf $base/$1/fake-target
    cat > $base/$1/conf/sanagent.conf << CONF
[agent]
state_dir = "$base/$1/state"
control_socket = "$base/$1/control.sock"
target_root = "$base/$1/fake-target"
[node]
name = "node-$1"
roles = ["host"]
[bond.san0]
mode = "${3:-802.3ad}"
slaves = ["${1}0", "${1}1"]
mtu = 9000
addresses = ["$2"]
description = "iSCSI SAN"
CONF
}
apply() { nsx "$1" "$sanctl" apply --direct --config-dir $base/$1/conf; }
status() { nsx "$1" "$sanctl" status --direct --config-dir $base/$1/conf; }
config a 192.168.79.1/24
config b 192.168.79.2/24
check "the config is valid" "$sanctl" config check --config-dir $base/a/conf
check "sanctl plan shows the bond being made" bash -c "ip netns exec a '$sanctl' plan --direct --config-dir $base/a/conf | grep -q 'create bond san0 mode 802.3ad miimon 100ms lacp_rate fast'"
check "apply in a" apply a
check "apply in b" apply b
lacp_ok() { status a | grep -E '^ok  bond/san0' | grep -q 'aggregator [0-9]* with 2 port(s), partner [0-9a-f:]*[1-9a-f]'; }
check "LACP negotiates and status reports it" wait_for 30 lacp_ok
status a
check "the address, MTU and alias are in place" bash -c "ip -n a -d addr show san0 | grep -q 'inet 192.168.79.1/24' && ip -n a link show san0 | grep -q 'mtu 9000' && ip -n a -d link show san0 | grep -q 'alias iSCSI SAN'"
check "traffic crosses the bond" wait_for 20 nsx a busybox ping -c 1 -W 1 192.168.79.2
check "a second apply changes nothing" bash -c "$(declare -f nsx apply); sanctl=$sanctl base=$base; apply a | tail -1 | grep -qx 'ok: 0 change(s)'"

check "a port goes down" ip -n a link set a1 down
degraded() { status a | grep -E '^degraded  bond/san0' | grep -q 'port a1 lost its link'; }
check "status turns degraded and names the port" wait_for 20 degraded
check "traffic still crosses" bash -c "ip netns exec a busybox ping -c 3 -W 1 192.168.79.2 > /dev/null"
check "the port comes back" ip -n a link set a1 up
check "status is ok again" wait_for 30 lacp_ok

sed -i 's/^\[agent\]/[agent]\ninterval = "1h"/' $base/a/conf/sanagent.conf
ip netns exec a "$SANLAB_BUILD/agent/sanagentd" --config-dir $base/a/conf 2> $base/daemon.log &
daemon=$!
check "sanagentd runs in a (timer: 1 hour)" wait_for 20 test -S $base/a/control.sock
check "it logs the bond's health once" wait_for 20 grep -q 'bond/san0: ok' $base/daemon.log
ip -n a link set a1 down
check "a port losing its link is logged at once, from the netlink event" wait_for 20 grep -q 'bond/san0: ok -> degraded (port a1 lost its link)' $base/daemon.log
ip -n a link set a1 up
check "and its return too" wait_for 30 grep -q 'bond/san0: degraded -> ok' $base/daemon.log
check "each change is logged once" bash -c "[[ \$(grep -c 'bond/san0: ok -> degraded' $base/daemon.log) -eq 1 ]]"
kill $daemon; wait $daemon 2> /dev/null

mkdir -p "$base/a/fake-target/iscsi/iqn.2026-11.org.example:g:v1/tpgt_1/np/192.168.79.1:3260"
config a 192.168.79.1/24 active-backup
check "a mode change is refused while a portal listens on the bond" bash -c "$(declare -f nsx apply); sanctl=$sanctl base=$base; ! apply a > $base/rebuild.out 2>&1; grep -q 'while iSCSI portal 192.168.79.1 listens on it' $base/rebuild.out"
check "and the bond was not touched" bash -c "ip netns exec a grep -q 'IEEE 802.3ad' /proc/net/bonding/san0"
rm -r "$base/a/fake-target/iscsi"
check "without the portal it is rebuilt as active-backup" bash -c "$(declare -f nsx apply); sanctl=$sanctl base=$base; apply a > /dev/null && ip netns exec a grep -q 'fault-tolerance (active-backup)' /proc/net/bonding/san0 && [[ \$(ip netns exec a grep -c '^Slave Interface' /proc/net/bonding/san0) -eq 2 ]]"

config b 192.168.79.2/24 active-backup
check "b follows to active-backup" bash -c "$(declare -f nsx apply); sanctl=$sanctl base=$base; apply b > /dev/null && ip netns exec b grep -q 'fault-tolerance (active-backup)' /proc/net/bonding/san0"
check "active-backup carries traffic" wait_for 20 nsx a busybox ping -c 1 -W 1 192.168.79.2
active=$(ip netns exec a sed -n 's/^Currently Active Slave: //p' /proc/net/bonding/san0)
check "the active port ($active) goes down" ip -n a link set "$active" down
check "active-backup fails over and traffic still crosses" wait_for 20 nsx a busybox ping -c 1 -W 1 192.168.79.2
check "status names the lost port" bash -c "$(declare -f nsx status); sanctl=$sanctl base=$base; status a | grep -E '^degraded  bond/san0' | grep -q 'port $active lost its link'"
ip -n a link set "$active" up

cat >> $base/b/conf/sanagent.conf << CONF
[bond.san1]
slaves = ["b2"]
CONF
check "a port carrying its own address is refused" bash -c "ip -n b addr add 192.168.80.2/24 dev b2; ! ip netns exec b '$sanctl' apply --direct --config-dir $base/b/conf > $base/mgmt.out 2>&1; grep -q 'b2 carries 192.168.80.2/24' $base/mgmt.out && ! ip -n b link show san1 2> /dev/null"
sed -i 's/slaves = \["b2"\]/slaves = ["nope0"]/' $base/b/conf/sanagent.conf
check "a port that does not exist is named" bash -c "! ip netns exec b '$sanctl' apply --direct --config-dir $base/b/conf > $base/nope.out 2>&1; grep -q 'no interface nope0' $base/nope.out"
sed -i '/^\[bond.san1\]/,$d' $base/b/conf/sanagent.conf

check "a bond made by hand" bash -c "ip -n b link add man0 type bond mode active-backup"
cat >> $base/b/conf/sanagent.conf << CONF
[bond.man0]
mode = "balance-alb"
CONF
check "is reported foreign and left alone" bash -c "$(declare -f nsx apply status); sanctl=$sanctl base=$base; apply b > /dev/null; status b | grep -q '^foreign  bond/man0' && ip netns exec b grep -q 'active-backup' /proc/net/bonding/man0"
status b
finish
