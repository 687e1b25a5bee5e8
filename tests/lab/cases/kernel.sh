# The lab itself, proven against the real kernel in one boot: configfs and the
# modules sanagent drives load, and an iSCSI target made by hand with plain
# mkdir/echo/ln in configfs takes an open-iscsi login, with its ACL enforced.
. "$SANLAB_SRC/tests/lab/lib.sh"

check "configfs mounts" mount_configfs
for m in target_core_mod iscsi_target_mod target_core_iblock target_core_file bonding dm_thin_pool nbd; do
    check "module $m loads" load_modules "$m"
done

iqn=iqn.2026-11.org.sanagent.lab:handmade
check "iscsid starts" start_iscsid
me=$(sed -n 's/^InitiatorName=//p' /etc/iscsi/initiatorname.iscsi)
check "a hand-made fileio target is accepted by configfs" make_fileio_target $iqn $me
check "SendTargets discovery lists the target" bash -c "iscsiadm -m discovery -t st -p 127.0.0.1 | grep -q $iqn"
check "open-iscsi logs in" iscsiadm -m node -T $iqn -p 127.0.0.1 --login
lun_disk() { iscsiadm -m session -P 3 | grep -q 'Attached scsi disk sd'; }
check "the LUN shows up as a SCSI disk" wait_for 15 lun_disk
check "a wrong initiator is refused by the ACL" bash -c "! iscsi-inq -i iqn.2026-11.org.sanagent.lab:intruder iscsi://127.0.0.1/$iqn/0"
check "open-iscsi logs out" iscsiadm -m node -T $iqn -p 127.0.0.1 --logout
finish
