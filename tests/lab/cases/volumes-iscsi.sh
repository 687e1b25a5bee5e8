# Volumes of a thin pool exported over iSCSI, as an admin meets them, in one
# guest: a thin and a full volume used by an initiator (written, read back;
# the thin one's writes show in the pool's data% and an UNMAP from the
# initiator gives the space back); rollback of a volume to a snapshot, refused
# while the initiator is logged in, its content back byte for byte through the
# LUN with the same serial; then sanagentd: a pool crossing warn_at runs the
# alert command exactly once over many passes, and a snapshot schedule makes
# and prunes automatic snapshots while a manual one stays.
. "$SANLAB_SRC/tests/lab/lib.sh"
bin=$SANLAB_BUILD/agent
sanctl=$bin/sanctl
t=/sys/kernel/config/target
w=/run/lab/vi
conf=$w/conf
prefix=iqn.2026-11.org.sanagent.lab
me=$prefix:$(hostname)
MiB=1048576
mkdir -p $conf/conf.d $w
# The initiator runs in the same guest as the target: lvm (sanctl's, the
# daemon's, the checks') must scan only the pool's disk, never the iSCSI disks
# (a LUN whose session is being dropped blocks I/O for the initiator's
# replacement_timeout). A storage node that exports LVs needs the same
# global_filter for the hosts' own VGs inside them; see docs/volumes.md.
export LVM_SYSTEM_DIR=$w/lvm
mkdir -p $LVM_SYSTEM_DIR
printf 'devices {\n\tglobal_filter = [ "a|^/dev/vda$|", "r|.*|" ]\n}\n' > $LVM_SYSTEM_DIR/lvm.conf

check "configfs, LIO, dm-thin and udev" bash -c "$(declare -f mount_configfs load_modules start_udev); mount_configfs && load_modules target_core_mod iscsi_target_mod target_core_iblock dm_thin_pool && start_udev"
check "iscsid starts" start_iscsid

cat > $w/alert.sh << 'SH'
#!/bin/sh
echo "$SANAGENT_POOL $SANAGENT_LEVEL $SANAGENT_METRIC $SANAGENT_PERCENT $SANAGENT_THRESHOLD" >> /run/lab/vi/alerts.txt
SH
chmod 755 $w/alert.sh
cat > $conf/sanagent.conf << CONF
[agent]
state_dir = "$w/state"
control_socket = "$w/control.sock"
interval = "1s"
alert_command = ["$w/alert.sh"]
[node]
name = "n1"
roles = ["storage"]
target_dbroot = "$w/tdb"
portals = ["127.0.0.1:3260"]
[group]
name = "lab"
iqn_prefix = "$prefix"
[pool.default]
vg = "sanpool"
devices = ["/dev/vda"]
thin_pool_size = "20%"
warn_at = "60%"
critical_at = "97%"
[server.me]
iqn = "$me"
[volume.thin1]
size = "64M"
servers = ["me"]
[volume.full1]
size = "32M"
provisioning = "full"
servers = ["me"]
CONF
apply() { "$sanctl" apply --direct --config-dir $conf; }
check "the config is valid" "$sanctl" config check --config-dir $conf
check "apply makes the pool and exports a thin and a full volume" bash -c "$(declare -f apply); sanctl=$sanctl conf=$conf; apply > $w/apply1.txt 2>&1; tail -1 $w/apply1.txt | grep -q '^ok:' && [[ -e $t/core/iblock_57/thin1 && -e $t/core/iblock_57/full1 ]]"
cat $w/apply1.txt | tail -3 | sed 's/^/# /'

login() { iscsiadm -m node -T $prefix:lab:$1 -p 127.0.0.1 --login; }
logout() { iscsiadm -m node -T $prefix:lab:$1 -p 127.0.0.1 --logout; }
disk_of() { iscsiadm -m session -P 3 2> /dev/null | awk -v t="$prefix:lab:$1" '$1 == "Target:" {on = ($2 == t)} on && /Attached scsi disk/ {print $4; exit}'; }
check "discovery and login to both" bash -c "iscsiadm -m discovery -t st -p 127.0.0.1 > /dev/null && $(declare -f login); prefix=$prefix; login thin1 && login full1"
check "the LUNs appear as disks" wait_for 20 bash -c "$(declare -f disk_of); prefix=$prefix; [[ -n \$(disk_of thin1) && -n \$(disk_of full1) ]]"
thin=/dev/$(disk_of thin1)
full=/dev/$(disk_of full1)

# Pool use in bytes: data% of the thin pool's size.
used() { lvs --noheadings --units b --nosuffix -o lv_size,data_percent sanpool/thin | awk '{printf "%d\n", $1 * $2 / 100}'; }
head -c $((32 * MiB)) /dev/urandom > $w/big.bin
before=$(used)
check "the full volume is written and read back through iSCSI" bash -c "head -c $((8 * MiB)) $w/big.bin | dd of=$full bs=1M oflag=direct status=none && cmp <(dd if=$full bs=1M count=8 iflag=direct status=none) <(head -c $((8 * MiB)) $w/big.bin)"
check "the thin volume is written and read back through iSCSI" bash -c "dd if=$w/big.bin of=$thin bs=1M oflag=direct status=none && cmp <(dd if=$thin bs=1M count=32 iflag=direct status=none) $w/big.bin"
grown=$(($(used) - before))
echo "# thin pool use grew by $grown bytes for 32 MiB written"
check "the thin pool's data% grew by what was written" bash -c "(( $grown >= 31 * $MiB && $grown <= 34 * $MiB ))"
check "the initiator's disk offers UNMAP" bash -c "(( \$(cat /sys/block/${thin#/dev/}/queue/discard_max_bytes) > 0 ))"
check "blkdiscard on the initiator gives the space back" bash -c "blkdiscard -o 0 -l $((32 * MiB)) $thin && sync"
freed=$(( before + grown - $(used) ))
echo "# $freed bytes given back"
check "the pool's data% fell by it" bash -c "(( $freed >= 31 * $MiB ))"
check "the discarded range reads zeros" bash -c "cmp -n $((32 * MiB)) $thin /dev/zero"

# Rollback.
head -c $((4 * MiB)) /dev/urandom > $w/a.bin
head -c $((4 * MiB)) /dev/urandom > $w/b.bin
serial=$(cat $t/core/iblock_57/thin1/wwn/vpd_unit_serial)
check "pattern A written through iSCSI" dd if=$w/a.bin of=$thin bs=1M oflag=direct status=none
check "a snapshot of it" "$sanctl" snapshot create thin1 a --config-dir $conf
check "pattern B written over it" dd if=$w/b.bin of=$thin bs=1M oflag=direct status=none
check "rollback is refused while the initiator is logged in" bash -c "! '$sanctl' snapshot rollback thin1 a --config-dir $conf 2> $w/rb.err; cat $w/rb.err; grep -q 'initiators are logged in to $prefix:lab:thin1: $me' $w/rb.err"
check "and changed nothing" bash -c "cmp -n $((4 * MiB)) <(dd if=$thin bs=1M count=4 iflag=direct status=none) $w/b.bin && [[ -e $t/core/iblock_57/thin1 ]] && ! lvs sanpool/thin1+_rollback 2> /dev/null"
check "logout" bash -c "$(declare -f logout); prefix=$prefix; logout thin1"
check "rollback" bash -c "'$sanctl' snapshot rollback thin1 a --config-dir $conf"
check "the snapshot is kept and no helper LV is left" bash -c "lvs sanpool/thin1+a > /dev/null && ! lvs sanpool/thin1+_rollback 2> /dev/null && '$sanctl' snapshot list thin1 --config-dir $conf | grep -q '^thin1  a  sanpool/thin1+a'"
check "the kept snapshot still holds pattern A" bash -c "lvchange -ay -K sanpool/thin1+a && cmp -n $((4 * MiB)) /dev/sanpool/thin1+a $w/a.bin && lvchange -an sanpool/thin1+a"
check "the target is back with the same serial" bash -c "[[ \$(cat $t/iscsi/$prefix:lab:thin1/tpgt_1/enable) == 1 && \$(cat $t/core/iblock_57/thin1/wwn/vpd_unit_serial) == '$serial' ]]"
check "login again" bash -c "$(declare -f login); prefix=$prefix; login thin1"
check "the LUN appears" wait_for 20 bash -c "$(declare -f disk_of); prefix=$prefix; [[ -n \$(disk_of thin1) ]]"
thin=/dev/$(disk_of thin1)
check "pattern A reads back byte for byte through iSCSI" bash -c "cmp -n $((4 * MiB)) <(dd if=$thin bs=1M count=4 iflag=direct status=none) $w/a.bin"
check "a second apply changes nothing" bash -c "$(declare -f apply); sanctl=$sanctl conf=$conf; apply | tail -1 | grep -qx 'ok: 0 change(s)'"
check "rollback --force while logged in drops the session and rolls back" bash -c "dd if=$w/b.bin of=$thin bs=1M oflag=direct status=none && '$sanctl' snapshot rollback thin1 a --force --config-dir $conf > $w/force.out 2>&1; cat $w/force.out; grep -q 'dropping the sessions of $me' $w/force.out && cmp -n $((4 * MiB)) /dev/sanpool/thin1 $w/a.bin"
readback() { cmp -n $((4 * MiB)) <(dd if=$thin bs=1M count=4 iflag=direct status=none) $w/a.bin; }
check "the dropped initiator logs in again by itself and reads pattern A" wait_for 120 bash -c "$(declare -f readback); thin=$thin MiB=$MiB w=$w; readback"
iscsiadm -m node --logoutall=all > /dev/null 2>&1

# sanagentd: alarms and schedules.
cat > $conf/conf.d/40-daemon.conf << CONF
[volume.big]
size = "512M"
[volume.sched1]
size = "16M"
snapshots = { every = "2s", keep = 2 }
CONF
check "volumes for the daemon's checks" bash -c "$(declare -f apply); sanctl=$sanctl conf=$conf; apply | tail -1 | grep -q '^ok:'"
check "a manual snapshot of the scheduled volume" "$sanctl" snapshot create sched1 manual --config-dir $conf
"$bin/sanagentd" --config-dir $conf 2> $w/daemon.log &
pid=$!
passes() { grep -c 'reconcile (' $w/daemon.log; }
check "the daemon runs passes" wait_for 60 bash -c "(( \$(grep -c 'reconcile (' $w/daemon.log) >= 2 ))"
check "no alert while the pool is below warn_at" bash -c "[[ ! -s $w/alerts.txt ]]"
size=$(lvs --noheadings --units m --nosuffix -o lv_size sanpool/thin | awk '{printf "%d\n", $1}')
check "filling the pool past warn_at" bash -c "dd if=/dev/urandom of=/dev/sanpool/big bs=1M count=$((size * 70 / 100)) oflag=direct status=none"
check "the alert command runs" wait_for 60 test -s $w/alerts.txt
n=$(passes)
check "more passes go by" wait_for 90 bash -c "(( \$(grep -c 'reconcile (' $w/daemon.log) >= $n + 4 ))"
check "the alert ran exactly once, with the details" bash -c "cat $w/alerts.txt; [[ \$(wc -l < $w/alerts.txt) == 1 ]] && grep -Eq '^default warning data [0-9.]+ 60.0$' $w/alerts.txt"
check "the crossing is logged once" bash -c "[[ \$(grep -c 'crossed warning threshold' $w/daemon.log) == 1 ]]"
autos() { lvs --noheadings -o lv_name,lv_tags sanpool | grep 'sched1+auto-' | grep -c 'sanagent-auto'; }
check "scheduled snapshots are taken and pruned" wait_for 90 bash -c "(( \$(grep -c 'pruned automatic snapshot' $w/daemon.log) >= 2 ))"
kill $pid
wait $pid
check "at most keep = 2 automatic snapshots remain" bash -c "$(declare -f autos); n=\$(autos); (( n >= 1 && n <= 2 ))"
check "the manual snapshot stays" lvs sanpool/sched1+manual
grep -E 'alarm|snapshot' $w/daemon.log | head -8 | sed 's/^/# /'
finish
