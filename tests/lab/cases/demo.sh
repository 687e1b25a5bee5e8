# ./run demo: a storage node of the paper's setup, built by sanagent from its
# drop-in config inside a real kernel, then checked with the admin's own tools.
# Grows into the whole deployment (two nodes, hosts, replication) as the
# features land; see README.md.
. "$SANLAB_SRC/tests/lab/lib.sh"
bin=$SANLAB_BUILD/agent
conf=/run/lab/demo/etc
step() { echo; echo "### $*"; }
mkdir -p $conf/conf.d /run/lab/demo

step "a fresh guest: Debian's kernel $(uname -r); what sanagent sees before any config"
mount_configfs && load_modules target_core_mod iscsi_target_mod target_core_iblock dm_thin_pool bonding
start_udev
"$bin/sanctl" observe | sed -n '/^LIO/,$p'

# Two "switch ports" for the SAN bond: a veth pair each, peers left in a
# namespace standing in for the switch.
ip netns add switch
ip link add eth2 type veth peer name sw2 netns switch
ip link add eth3 type veth peer name sw3 netns switch
ip -n switch link set sw2 up
ip -n switch link set sw3 up

cat > $conf/sanagent.conf << 'CONF'
[agent]
state_dir = "/run/lab/demo/state"
control_socket = "/run/lab/demo/control.sock"

[node]
name = "v8.1-01"
roles = ["storage"]
target_dbroot = "/run/lab/demo/target"

portals = ["10.0.10.11:3260"]

[group]
name = "hp-boulder"
iqn_prefix = "iqn.2026-11.org.example"

[server.xenserver-01]
iqn = "iqn.2026-11.org.example:xenserver-01"
chap_user = "xs01"
chap_secret_file = "/run/lab/demo/secrets/xs01"
CONF
mkdir -p /run/lab/demo/secrets && chmod 700 /run/lab/demo/secrets
printf 'xs01-secret-0123\n' > /run/lab/demo/secrets/xs01 && chmod 600 /run/lab/demo/secrets/xs01
cat > $conf/conf.d/10-network.conf << 'CONF'
[bond.san0]
mode = "balance-alb"
slaves = ["eth2", "eth3"]
mtu = 9000
addresses = ["10.0.10.11/24"]
description = "iSCSI SAN"
CONF
cat > $conf/conf.d/20-storage.conf << 'CONF'
[pool.default]
vg = "sanpool"
devices = ["/dev/vda"]
thin_pool_size = "60%"        # the rest holds full volumes

[volume.xpsp2-01]
size = "10G"
provisioning = "thin"
servers = ["xenserver-01"]

[volume.xpsp2-02]
size = "10G"
clone = { from = "xpsp2-01" }
servers = ["xenserver-01"]

[volume.sql-01]
size = "256M"
provisioning = "full"
servers = ["xenserver-01"]
CONF
step "the admin's drop-ins, as sanctl merges them (sanctl config check --explain)"
"$bin/sanctl" config check --explain --config-dir $conf | grep -v '^#' | grep -v '^$' | head -40

step "sanctl plan: what the agent would do"
"$bin/sanctl" plan --direct --config-dir $conf

step "sanctl apply"
"$bin/sanctl" apply --direct --config-dir $conf | tail -3

step "sanctl status"
"$bin/sanctl" status --direct --config-dir $conf

step "a second apply changes nothing"
"$bin/sanctl" apply --direct --config-dir $conf | tail -1

step "the same, as the tools the admin trusts see it"
lvs -o lv_name,lv_attr,lv_size,pool_lv,origin,data_percent,lv_tags sanpool
grep -E 'Bonding Mode|MII Status|Slave Interface' /proc/net/bonding/san0
ip -br addr show san0
mkdir -p /run/dbus && dbus-daemon --system --fork 2> /dev/null
targetcli ls /iscsi 2> /dev/null | head -30

step "a host (xenserver-01) discovers and logs in over the SAN bond with CHAP"
echo "InitiatorName=iqn.2026-11.org.example:xenserver-01" > /etc/iscsi/initiatorname.iscsi
modprobe sd_mod
mkdir -p /run/lock/iscsi
iscsid -f > /dev/null 2>&1 &
sleep 1
iscsiadm -m discovery -t st -p 10.0.10.11
iqn=iqn.2026-11.org.example:hp-boulder:xpsp2-01
iscsiadm -m node -T $iqn -p 10.0.10.11 -o update -n node.session.auth.authmethod -v CHAP
iscsiadm -m node -T $iqn -p 10.0.10.11 -o update -n node.session.auth.username -v xs01
iscsiadm -m node -T $iqn -p 10.0.10.11 -o update -n node.session.auth.password -v xs01-secret-0123
iscsiadm -m node -T $iqn -p 10.0.10.11 --login
sleep 2
iscsiadm -m session -P 3 | grep -E 'Target:|Attached scsi disk|Current Portal'
iscsiadm -m node --logoutall=all > /dev/null
