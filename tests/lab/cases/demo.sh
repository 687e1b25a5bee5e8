# ./run demo: a storage node's kernel as sanagent sees it. Grows into the
# paper's whole deployment as the features land (see README.md).
. "$SANLAB_SRC/tests/lab/lib.sh"
sanctl=$SANLAB_BUILD/agent/sanctl
step() { echo; echo "### $*"; }

step "a fresh guest: Debian's kernel $(uname -r), nothing configured"
mount_configfs && load_modules target_core_mod iscsi_target_mod target_core_file target_core_iblock dm_thin_pool bonding
"$sanctl" observe

step "an admin's hand-made iSCSI target and a thin pool on /dev/vda"
start_udev
make_fileio_target iqn.2026-11.org.example:hp-boulder:demo iqn.2026-11.org.example:xenserver-01 > /dev/null
make_thin_pool /dev/vda sanpool > /dev/null 2>&1
ip link add san0 type bond mode balance-alb 2> /dev/null && ip link set san0 alias "iSCSI SAN" && ip link set san0 up
"$sanctl" observe
step "the same, as the tools the admin trusts see it"
lvs sanpool
cat /proc/net/bonding/san0 | head -5
