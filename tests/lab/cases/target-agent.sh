# The target module as an admin meets it: three volumes on LVs, `sanctl apply`
# exports them; this guest's initiator discovers (with discovery CHAP) only the
# volumes assigned to it, logs in with mutual CHAP, reads and writes; wrong
# secrets and unassigned initiators are refused; changing one volume's servers
# leaves other sessions alone; a re-apply writes nothing; a target made by hand
# with a volume's IQN is left alone and reported; targetcli sees what the config
# says; after the kernel's target modules are reloaded the same targets with the
# same serials come back.
. "$SANLAB_SRC/tests/lab/lib.sh"
sanctl=$SANLAB_BUILD/agent/sanctl
t=/sys/kernel/config/target
conf=/run/lab/tconf
prefix=iqn.2026-11.org.sanagent.lab
me=$prefix:$(hostname)
other=$prefix:host2
mkdir -p $conf/conf.d /run/lab/secrets
chmod 700 /run/lab/secrets
secret() { printf '%s\n' "$2" > /run/lab/secrets/$1 && chmod 600 /run/lab/secrets/$1; }
secret me me-secret-01234
secret me-mutual target-answer-0123
secret other other-secret-0123
secret disc discovery-secret-01

check "configfs, LIO, dm and udev" bash -c "$(declare -f mount_configfs load_modules start_udev); mount_configfs && load_modules target_core_mod iscsi_target_mod target_core_iblock target_core_file dm_mod && start_udev"
check "iscsid starts" start_iscsid
check "three LVs on the guest's disk" bash -c "pvcreate -q /dev/vda && vgcreate -q sanpool /dev/vda && for v in vol1 vol2 vol3; do lvcreate -q -L 64M -n \$v sanpool || exit 1; done"

cat > $conf/sanagent.conf << CONF
[agent]
state_dir = "/run/lab/tstate"
[node]
name = "n1"
roles = ["storage"]
target_dbroot = "/run/lab/tdb"
portals = ["127.0.0.1:3260"]
[group]
name = "lab"
iqn_prefix = "$prefix"
discovery_chap_user = "disc"
discovery_chap_secret_file = "/run/lab/secrets/disc"
[pool.default]
vg = "sanpool"
[server.me]
iqn = "$me"
chap_user = "me"
chap_secret_file = "/run/lab/secrets/me"
mutual_chap_user = "target"
mutual_chap_secret_file = "/run/lab/secrets/me-mutual"
[server.other]
iqn = "$other"
chap_user = "other"
chap_secret_file = "/run/lab/secrets/other"
CONF
volumes() {  # volumes "vol1:me" "vol2:me,other" ...
    : > $conf/conf.d/30-volumes.conf
    local spec name servers
    for spec in "$@"; do
        name=${spec%%:*}
        servers=${spec#*:}
        servers=\"${servers//,/\", \"}\"
        printf '[volume.%s]\nsize = "64M"\nprovisioning = "full"\nservers = [%s]\n' "$name" "$servers" >> $conf/conf.d/30-volumes.conf
    done
}
volumes vol1:me vol2:me,other vol3:other
apply() { "$sanctl" apply --direct --config-dir $conf; }
check "the config is valid" "$sanctl" config check --config-dir $conf
check "sanctl plan shows secrets as (secret), never their text" bash -c "'$sanctl' plan --direct --config-dir $conf > /run/lab/plan.txt && grep -q '(secret)' /run/lab/plan.txt && ! grep -q -e me-secret -e target-answer -e other-secret -e discovery-secret /run/lab/plan.txt"
check "sanctl apply exports the volumes" bash -c "$(declare -f apply); sanctl=$sanctl conf=$conf; apply > /run/lab/apply1.txt; tail -1 /run/lab/apply1.txt | grep -q '^ok:'"
check "three targets, enabled, serials from the volume" bash -c "for v in vol1 vol2 vol3; do [[ \$(cat $t/iscsi/$prefix:lab:\$v/tpgt_1/enable) == 1 ]] || exit 1; done; grep -qE '[0-9a-f]{32}' $t/core/iblock_57/vol1/wwn/vpd_unit_serial"
check "a second apply changes nothing" bash -c "$(declare -f apply); sanctl=$sanctl conf=$conf; apply | tail -1 | grep -qx 'ok: 0 change(s)'"
check "status: every volume ok" bash -c "'$sanctl' status --direct --config-dir $conf > /run/lab/status1.txt; grep -c '^ok  target/vol' /run/lab/status1.txt | grep -qx 3"

disc() {  # disc SECRET: SendTargets with discovery CHAP, prints target names
    iscsiadm -m discoverydb -t st -p 127.0.0.1 -o delete > /dev/null 2>&1
    iscsiadm -m discoverydb -t st -p 127.0.0.1 -o new > /dev/null &&
        iscsiadm -m discoverydb -t st -p 127.0.0.1 -o update -n discovery.sendtargets.auth.authmethod -v CHAP &&
        iscsiadm -m discoverydb -t st -p 127.0.0.1 -o update -n discovery.sendtargets.auth.username -v disc &&
        iscsiadm -m discoverydb -t st -p 127.0.0.1 -o update -n discovery.sendtargets.auth.password -v "$1" &&
        local found &&
        found=$(iscsiadm -m discoverydb -t st -p 127.0.0.1 --discover) &&
        awk '{print $2}' <<< "$found" | sort
}
check "discovery with a wrong discovery secret is refused" bash -c "$(declare -f disc); ! disc wrong-secret-0000"
check "discovery lists only the volumes assigned to this initiator" bash -c "$(declare -f disc); [[ \$(disc discovery-secret-01 | tr '\n' ' ') == '$prefix:lab:vol1 $prefix:lab:vol2 ' ]]"

login() {  # login VOLUME SECRET [MUTUAL_SECRET]
    local iqn=$prefix:lab:$1
    iscsiadm -m node -T $iqn -p 127.0.0.1 -o new > /dev/null 2>&1
    iscsiadm -m node -T $iqn -p 127.0.0.1 -o update -n node.session.auth.authmethod -v CHAP &&
        iscsiadm -m node -T $iqn -p 127.0.0.1 -o update -n node.session.auth.username -v me &&
        iscsiadm -m node -T $iqn -p 127.0.0.1 -o update -n node.session.auth.password -v "$2" &&
        iscsiadm -m node -T $iqn -p 127.0.0.1 -o update -n node.session.auth.username_in -v target &&
        iscsiadm -m node -T $iqn -p 127.0.0.1 -o update -n node.session.auth.password_in -v "${3:-target-answer-0123}" &&
        iscsiadm -m node -T $iqn -p 127.0.0.1 --login
}
disk_of() { iscsiadm -m session -P 3 | awk -v t="$prefix:lab:$1" '$1 == "Target:" {on = ($2 == t)} on && /Attached scsi disk/ {print $4; exit}'; }
check "a wrong CHAP secret is refused" bash -c "$(declare -f login); prefix=$prefix; ! login vol1 wrong-secret-00000"
check "a target that answers with the wrong mutual secret is refused" bash -c "$(declare -f login); prefix=$prefix; ! login vol1 me-secret-01234 not-the-target-0000"
check "mutual CHAP login to vol1 and vol2" bash -c "$(declare -f login); prefix=$prefix; login vol1 me-secret-01234 && login vol2 me-secret-01234"
check "the LUNs appear as disks" wait_for 15 bash -c "$(declare -f disk_of); prefix=$prefix; [[ -n \$(disk_of vol1) && -n \$(disk_of vol2) ]]"
d1=/dev/$(disk_of vol1)
d2=/dev/$(disk_of vol2)
check "data written through iSCSI lands on the LV" bash -c "
    head -c 1048576 /dev/urandom > /run/lab/pattern
    dd if=/run/lab/pattern of=$d1 bs=64k oflag=direct status=none &&
    cmp <(head -c 1048576 /dev/sanpool/vol1) /run/lab/pattern"
check "the initiator sees the volume's serial" bash -c "grep -qi \$(cat $t/core/iblock_57/vol1/wwn/vpd_unit_serial | sed 's/.*: //') <(sg_inq -p 0x80 $d1 2>/dev/null; cat /sys/block/${d1#/dev/}/device/vpd_pg80 2>/dev/null)"
check "an unassigned initiator is refused" bash -c "! iscsi-inq -i $prefix:intruder iscsi://127.0.0.1/$prefix:lab:vol1/0"
# Growing a volume (the volume module's lvextend) reaches a logged-in
# initiator: LIO's iblock reads the device's size at each READ CAPACITY, so a
# rescan shows it, with no logout and the data in place.
grown() { [[ $(blockdev --getsize64 "$1") == 100663296 ]]; }
check "a grown LV shows its new size to the logged-in initiator after a rescan" bash -c "$(declare -f grown wait_for); lvextend -q -L 96M sanpool/vol1 && iscsiadm -m session -R > /dev/null && wait_for 15 grown $d1"
check "and what was written before is still there" bash -c "cmp <(dd if=$d1 bs=64k count=16 iflag=direct status=none) /run/lab/pattern"

# Assign vol3 to this node too and take host2 off vol2: only those two change.
volumes vol1:me vol2:me vol3:other,me
check "changing servers changes only those volumes' ACLs" bash -c "'$sanctl' plan --direct --config-dir $conf > /run/lab/plan2.txt; ! grep -E '^ *(mkdir|rmdir|unlink|ln|write)' /run/lab/plan2.txt | grep -v -e 'lab:vol2/tpgt_1/acls/$other' -e 'lab:vol3/tpgt_1/acls/$me'"
check "and applies" bash -c "$(declare -f apply); sanctl=$sanctl conf=$conf; apply | tail -1 | grep -q '^ok:'"
check "the ACLs follow the config" bash -c "[[ ! -e $t/iscsi/$prefix:lab:vol2/tpgt_1/acls/$other && -e $t/iscsi/$prefix:lab:vol3/tpgt_1/acls/$me/lun_0/map ]]"
check "the sessions to vol1 and vol2 kept working" bash -c "dd if=$d1 of=/dev/null bs=4k count=16 iflag=direct status=none && dd if=$d2 of=/dev/null bs=4k count=16 iflag=direct status=none && [[ \$(iscsiadm -m session | wc -l) == 2 ]]"

# A target made by hand with the IQN the config will give vol4.
check "a target made by hand" bash -c "$(declare -f make_fileio_target); make_fileio_target $prefix:lab:vol4 $other"
check "an LV for vol4" lvcreate -q -L 64M -n vol4 sanpool
volumes vol1:me vol2:me vol3:other,me vol4:me
check "apply leaves the foreign target alone" bash -c "$(declare -f apply); sanctl=$sanctl conf=$conf; apply > /run/lab/apply4.txt; ! grep -q 'target/vol4' /run/lab/apply4.txt && [[ ! -e $t/core/iblock_57/vol4 && -e $t/iscsi/$prefix:lab:vol4/tpgt_1/acls/$other && \$(cat $t/iscsi/$prefix:lab:vol4/tpgt_1/attrib/authentication) == 0 ]]"
check "and status reports it foreign" bash -c "'$sanctl' status --direct --config-dir $conf | grep -q '^foreign  target/vol4'"
check "a volume taken out of the config stays, orphaned" bash -c "$(declare -f volumes apply); sanctl=$sanctl conf=$conf; volumes vol1:me vol2:me vol4:me; apply > /dev/null; [[ -e $t/iscsi/$prefix:lab:vol3 ]] && '$sanctl' status --direct --config-dir $conf | grep -q '^orphaned  target/vol3'"
volumes vol1:me vol2:me vol3:other,me vol4:me
check "zero configfs changes on the next apply" bash -c "$(declare -f apply); sanctl=$sanctl conf=$conf; apply | tail -1 | grep -qx 'ok: 0 change(s)'"

# targetcli (rtslib-fb) reads the same tree.
mkdir -p /run/dbus /etc/target
dbus-daemon --system --fork 2> /dev/null
check "targetcli ls lists the volumes' targets and backstores" bash -c "targetcli ls > /run/lab/targetcli-ls.txt && for v in vol1 vol2 vol3; do grep -q \"$prefix:lab:\$v\" /run/lab/targetcli-ls.txt && grep -q \"o- \$v .*\[/dev/sanpool/\$v\" /run/lab/targetcli-ls.txt || exit 1; done"
sed 's/^/# /' /run/lab/targetcli-ls.txt
check "targetcli saveconfig has the objects of the config" bash -c "targetcli saveconfig /run/lab/saveconfig.json > /dev/null && python3 -c '
import json, sys
c = json.load(open(\"/run/lab/saveconfig.json\"))
sos = {s[\"name\"]: s for s in c[\"storage_objects\"]}
assert {\"vol1\", \"vol2\", \"vol3\"} <= set(sos), sos.keys()
assert sos[\"vol1\"][\"wwn\"].replace(\"-\", \"\") == open(\"$t/core/iblock_57/vol1/wwn/vpd_unit_serial\").read().split(\": \")[1].strip()
acls = {t[\"wwn\"].split(\":\")[-1]: sorted(a[\"node_wwn\"] for a in t[\"tpgs\"][0][\"node_acls\"]) for t in c[\"targets\"]}
assert acls[\"vol1\"] == [\"$me\"] and acls[\"vol2\"] == [\"$me\"] and acls[\"vol3\"] == sorted([\"$me\", \"$other\"]), acls
'"

# Changes made behind sanagent's back with targetcli (an ACL deleted, a CHAP
# secret, a TPG attribute, a mapped LUN) are seen by the next pass, which
# observes only what the plan compares, and put back.
v3=$prefix:lab:vol3
check "targetcli changes vol3 behind sanagent's back" bash -c "targetcli /iscsi/$v3/tpg1/acls delete $other > /dev/null &&
    targetcli /iscsi/$v3/tpg1/acls/$me set auth password=changed-by-hand-01 > /dev/null &&
    targetcli /iscsi/$v3/tpg1/acls/$me delete 0 > /dev/null &&
    targetcli /iscsi/$v3/tpg1 set attribute demo_mode_discovery=1 > /dev/null"
check "the next plan puts each of them back" bash -c "'$sanctl' plan --direct --config-dir $conf > /run/lab/plan-drift.txt; cat /run/lab/plan-drift.txt;
    grep -q 'mkdir iscsi/$v3/tpgt_1/acls/$other ' /run/lab/plan-drift.txt &&
    grep -q 'write iscsi/$v3/tpgt_1/acls/$me/auth/password = (secret)' /run/lab/plan-drift.txt &&
    grep -q 'ln -s iscsi/$v3/tpgt_1/lun/lun_0 iscsi/$v3/tpgt_1/acls/$me/lun_0/map' /run/lab/plan-drift.txt &&
    grep -q 'write iscsi/$v3/tpgt_1/attrib/demo_mode_discovery = \"0\"' /run/lab/plan-drift.txt"
check "and apply repairs them, then has nothing left to do" bash -c "$(declare -f apply); sanctl=$sanctl conf=$conf; apply | tail -1 | grep -q '^ok:' &&
    [[ -e $t/iscsi/$v3/tpgt_1/acls/$other/lun_0/map && \$(cat $t/iscsi/$v3/tpgt_1/attrib/demo_mode_discovery) == 0 ]] &&
    apply | tail -1 | grep -qx 'ok: 0 change(s)'"

# A second LUN mapped by hand in a server's ACL: taking that server off the
# volume must unmap it first (configfs refuses rmdir of an ACL that still has
# a mapped LUN), not fail the volume's apply.
acl=$t/iscsi/$v3/tpgt_1/acls/$other
check "a LUN mapped by hand in vol3's ACL of $other" bash -c "mkdir $acl/lun_1 && ln -s $t/iscsi/$v3/tpgt_1/lun/lun_0 $acl/lun_1/by-hand"
volumes vol1:me vol2:me vol3:me vol4:me
check "taking $other off vol3 removes that ACL whole" bash -c "$(declare -f apply); sanctl=$sanctl conf=$conf; apply > /run/lab/apply-acl.txt 2>&1; cat /run/lab/apply-acl.txt; tail -1 /run/lab/apply-acl.txt | grep -q '^ok:' && [[ ! -e $acl ]]"
volumes vol1:me vol2:me vol3:other,me vol4:me
check "and giving it back makes it again" bash -c "$(declare -f apply); sanctl=$sanctl conf=$conf; apply | tail -1 | grep -q '^ok:' && [[ -e $acl/lun_0/map ]]"

# "Reboot": sessions out, the tree cleared, the modules reloaded, apply again.
serials_before=$(cat $t/core/iblock_57/vol{1,2,3}/wwn/vpd_unit_serial | md5sum)
check "logout" iscsiadm -m node --logoutall=all
check "the kernel's LIO state cleared and its modules reloaded" bash -c "$(declare -f load_modules); python3 $SANLAB_SRC/tests/lab/tools/lio_clear.py && for m in iscsi_target_mod target_core_iblock target_core_file target_core_pscsi target_core_user target_core_mod; do [[ ! -d /sys/module/\$m ]] || rmmod \$m || exit 1; done && load_modules target_core_mod iscsi_target_mod target_core_iblock target_core_file"
check "apply recreates the targets" bash -c "$(declare -f apply); sanctl=$sanctl conf=$conf; apply > /run/lab/apply5.txt 2>&1; cat /run/lab/apply5.txt; tail -1 /run/lab/apply5.txt | grep -q '^ok:'"
check "with the same serials" bash -c "[[ \$(cat $t/core/iblock_57/vol{1,2,3}/wwn/vpd_unit_serial | md5sum) == '$serials_before' ]]"
check "and the initiator logs in again" bash -c "$(declare -f login); prefix=$prefix; login vol1 me-secret-01234 && iscsiadm -m node --logoutall=all"
finish
