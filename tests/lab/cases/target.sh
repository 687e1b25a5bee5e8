# The configfs library's target planner on the real kernel: a volume exported
# as one iSCSI target with one LUN, reachable only by its assigned initiators,
# with CHAP; re-applying writes nothing; a failing step leaves nothing behind;
# removal takes it all away. Driven by tests/lab/tools/lio_apply.
. "$SANLAB_SRC/tests/lab/lib.sh"
lio=$SANLAB_BUILD/tests/lio_apply
t=/sys/kernel/config/target
iqn=iqn.2026-11.org.sanagent.lab:g:vol1
me=iqn.2026-11.org.sanagent.lab:$(hostname)
other=iqn.2026-11.org.sanagent.lab:host2
secret=lab-secret-0123456
mkdir -p /run/lab

spec() {  # spec FILE ACL_JSON...
    local file=$1
    shift
    local acls
    acls=$(IFS=,; echo "$*")
    cat > "$file" << JSON
{"iqn": "$iqn",
 "storage": {"plugin": "iblock", "name": "vol1", "device": "/dev/vda", "serial": "5a0b3c4d5e6f7081", "thin": false},
 "portals": ["127.0.0.1:3260"],
 "acls": [$acls]}
JSON
}
acl_me="{\"iqn\": \"$me\", \"chap\": {\"userid\": \"sanlab1\", \"password\": \"$secret\"}}"
acl_other="{\"iqn\": \"$other\", \"chap\": {\"userid\": \"host2\", \"password\": \"host2-secret-0123\"}}"
spec /run/lab/two.json "$acl_me" "$acl_other"
spec /run/lab/one.json "$acl_me"

check "configfs and the target modules" bash -c "$(declare -f mount_configfs load_modules); mount_configfs && load_modules target_core_mod iscsi_target_mod target_core_iblock"
check "iscsid starts" start_iscsid
check "apply builds the target" "$lio" apply /run/lab/two.json
check "the TPG is enabled, not in demo mode, with CHAP on" bash -c "
    [[ \$(cat $t/iscsi/$iqn/tpgt_1/enable) == 1 && \$(cat $t/iscsi/$iqn/tpgt_1/attrib/generate_node_acls) == 0 \
       && \$(cat $t/iscsi/$iqn/tpgt_1/attrib/authentication) == 1 ]]"
check "the serial is the one given" grep -q 5a0b3c4d5e6f7081 $t/core/iblock_57/vol1/wwn/vpd_unit_serial
check "re-applying the same spec makes no configfs write" bash -c "'$lio' apply /run/lab/two.json | grep -qx 'ops: 0, configfs writes: 0'"

login() {  # login PASSWORD
    iscsiadm -m discovery -t st -p 127.0.0.1 > /dev/null || return 1
    iscsiadm -m node -T $iqn -p 127.0.0.1 -o update -n node.session.auth.authmethod -v CHAP &&
        iscsiadm -m node -T $iqn -p 127.0.0.1 -o update -n node.session.auth.username -v sanlab1 &&
        iscsiadm -m node -T $iqn -p 127.0.0.1 -o update -n node.session.auth.password -v "$1" &&
        iscsiadm -m node -T $iqn -p 127.0.0.1 --login
}
lun_disk() { iscsiadm -m session -P 3 | sed -n 's/.*Attached scsi disk \(sd[a-z]*\).*/\1/p' | head -1; }
check "a wrong CHAP secret is refused" bash -c "$(declare -f login); ! login wrong-secret-000000"
check "the assigned initiator logs in with its CHAP secret" login "$secret"
check "the LUN appears as a disk" wait_for 15 bash -c "$(declare -f lun_disk); [[ -n \$(lun_disk) ]]"
disk=/dev/$(lun_disk)
check "data written through iSCSI reads back intact" bash -c "
    head -c 1048576 /dev/urandom > /run/lab/pattern
    dd if=/run/lab/pattern of=$disk bs=64k oflag=direct status=none &&
    cmp <(dd if=$disk bs=64k count=16 iflag=direct status=none) /run/lab/pattern &&
    cmp <(head -c 1048576 /dev/vda) /run/lab/pattern"
check "the SCSI serial seen by the initiator is the volume's" bash -c "sg_inq -p 0x80 $disk 2>/dev/null | grep -q 5a0b3c4d5e6f7081 || grep -q 5a0b3c4d5e6f7081 /sys/block/${disk#/dev/}/device/vpd_pg80"
check "an unassigned initiator is refused" bash -c "! iscsi-inq -i iqn.2026-11.org.sanagent.lab:intruder iscsi://127.0.0.1/$iqn/0"
check "unassigning host2 removes only its ACL" bash -c "'$lio' apply /run/lab/one.json > /run/lab/unassign.out && ! grep -qv host2 <(grep -E '^(mkdir|rmdir|unlink|ln|write)' /run/lab/unassign.out) && [[ ! -e $t/iscsi/$iqn/tpgt_1/acls/$other ]]"
check "the logged-in session survived the ACL change" bash -c "dd if=$disk bs=4k count=1 iflag=direct status=none of=/dev/null"
check "logout" iscsiadm -m node -T $iqn -p 127.0.0.1 --logout

sed 's|/dev/vda|/dev/no-such-disk|; s|"vol1"|"broken"|; s|g:vol1|g:broken|' /run/lab/one.json > /run/lab/broken.json
check "a failing step is reported with the path and errno" bash -c "! '$lio' apply /run/lab/broken.json 2> /run/lab/broken.err && grep -q 'core/iblock_57/broken' /run/lab/broken.err"
cat /run/lab/broken.err
check "and leaves no half-built object behind" bash -c "[[ ! -e $t/core/iblock_57/broken && ! -e $t/iscsi/iqn.2026-11.org.sanagent.lab:g:broken ]]"
check "remove takes the target and storage object away" "$lio" remove /run/lab/one.json
check "nothing of it is left" bash -c "[[ ! -e $t/iscsi/$iqn && ! -e $t/core/iblock_57/vol1 ]]"
finish
