# The hypervisor host side, as an admin meets it, on two guests:
#   sanlab1 (192.168.77.11) is a storage node exporting two LUNs over iSCSI
#     with CHAP: vm1 (its empty disk /dev/vda) and used (a small disk holding ext4);
#   sanlab2 (192.168.77.12) is a host: it probes the portal, makes an SR and a
#     VDI with `sanctl apply --direct`, writes data through the VDI, detaches
#     and attaches the SR, and is refused an ext4 LUN and a wrong CHAP secret.
# The storage side's targets are made by the configfs library's driver
# (tests/lab/tools/lio_apply) until the target module is merged.
. "$SANLAB_SRC/tests/lab/lib.sh"
shared=/lab/shared
prefix=iqn.2026-11.org.sanagent.lab:g
host_iqn=iqn.2026-11.org.sanagent.lab:sanlab2
secret=lab-secret-0123456
mkdir -p /run/lab/sr

storage_node() {
    local lio=$SANLAB_BUILD/tests/lio_apply
    check "configfs and the target modules" bash -c "$(declare -f mount_configfs load_modules); mount_configfs && load_modules target_core_mod iscsi_target_mod target_core_iblock loop"
    check "a small disk with ext4 on it" bash -c "truncate -s 64M /run/lab/sr/used.img && mkfs.ext4 -q -L old-data /run/lab/sr/used.img && losetup /dev/loop5 /run/lab/sr/used.img"
    export_lun() {  # export_lun NAME DEVICE SERIAL
        cat > /run/lab/sr/$1.json << JSON
{"iqn": "$prefix:$1",
 "storage": {"plugin": "iblock", "name": "$1", "device": "$2", "serial": "$3", "thin": false},
 "portals": ["${SANLAB_ADDR%/*}:3260"],
 "acls": [{"iqn": "$host_iqn", "chap": {"userid": "sanlab2", "password": "$secret"}}]}
JSON
        "$SANAGENT_LIO" apply /run/lab/sr/$1.json
    }
    SANAGENT_LIO=$lio
    check "the vm1 volume is exported" export_lun vm1 /dev/vda 5a0b3c4d5e6f7081
    check "the used volume is exported" export_lun used /dev/loop5 6b1c4d5e6f708192
    touch $shared/ready
    # Serve until the host is done (bounded by the lab's own timeout).
    check "the host finished" wait_for 280 test -e $shared/host-done
    losetup -d /dev/loop5 2> /dev/null
}

host() {
    local sanctl=$SANLAB_BUILD/agent/sanctl conf=/run/lab/sr/conf
    check "iscsid, device-mapper and udev" bash -c "$(declare -f start_iscsid start_udev wait_for); start_iscsid && modprobe dm_mod && start_udev"
    check "the storage node is ready" wait_for 120 test -e $shared/ready
    mkdir -p $conf /run/lab/sr/secrets
    (umask 077 && echo "$secret" > /run/lab/sr/secrets/chap && echo wrong-secret-0000 > /run/lab/sr/secrets/wrong)
    probe() { "$sanctl" sr probe 192.168.77.11 --chap-user sanlab2 --chap-secret-file /run/lab/sr/secrets/chap "$@"; }
    check "probe lists both targets" bash -c "$(declare -f probe); sanctl=$sanctl; probe > /run/lab/sr/probe1.txt && grep -q 'target $prefix:vm1' /run/lab/sr/probe1.txt && grep -q 'target $prefix:used' /run/lab/sr/probe1.txt"
    cat /run/lab/sr/probe1.txt
    check "probe says the vm1 LUN is empty, with its serial and size" bash -c "grep -A1 'target $prefix:vm1' /run/lab/sr/probe1.txt | grep -E 'serial 5a0b3c4d5e6f7081, scsi id 36001405.*1073741824 bytes.*: empty$'"
    check "probe says the used LUN holds ext4" bash -c "grep -A1 'target $prefix:used' /run/lab/sr/probe1.txt | grep -q 'holds ext4 (filesystem)'"
    check "probe made no kernel session" bash -c "! iscsiadm -m session > /dev/null 2>&1"

    cat > $conf/sanagent.conf << CONF
[agent]
state_dir = "/run/lab/sr/state"
control_socket = "/run/lab/sr/control.sock"
[node]
name = "sanlab2"
roles = ["host"]
[sr.vm1]
target = "$prefix:vm1"
portals = ["192.168.77.11"]
chap_user = "sanlab2"
chap_secret_file = "/run/lab/sr/secrets/chap"
[vdi.vm1]
sr = "vm1"
size = "64M"
CONF
    apply() { "$sanctl" apply --direct --config-dir "${1:-$conf}"; }
    check "the config is valid" "$sanctl" config check --config-dir $conf
    check "apply makes the SR and the VDI" apply
    check "the SR is VG_XenStorage-<uuid> tagged with its name and uuid" bash -c "
        vgs --noheadings -o vg_name,vg_tags > /run/lab/sr/vgs.txt &&
        grep -Eq 'VG_XenStorage-([0-9a-f-]{36}) +sanagent,sr_name=vm1,sr_uuid=' /run/lab/sr/vgs.txt"
    cat /run/lab/sr/vgs.txt
    check "the VDI is LV-<uuid> tagged with its name, beside MGT" bash -c "
        lvs --noheadings -o lv_name,lv_tags,lv_size --units m > /run/lab/sr/lvs.txt &&
        grep -Eq 'LV-[0-9a-f-]{36} +sanagent,vdi_name=vm1 +64.00m' /run/lab/sr/lvs.txt && grep -q ' MGT ' /run/lab/sr/lvs.txt"
    check "the node record logs in at boot, with CHAP, secret not on any argv" bash -c "
        iscsiadm -m node -T $prefix:vm1 -p 192.168.77.11 | grep -qx 'node.startup = automatic' &&
        iscsiadm -m node -T $prefix:vm1 -p 192.168.77.11 | grep -qx 'node.session.auth.authmethod = CHAP' &&
        iscsiadm -m node -T $prefix:vm1 -p 192.168.77.11 | grep -qx 'node.session.timeo.replacement_timeout = 120'"
    check "the MGT volume records the SR and the VDI" bash -c "vg=\$(vgs --noheadings -o vg_name | grep -o 'VG_XenStorage-[0-9a-f-]*'); head -c 4096 /dev/\$vg/MGT | tr -d '\\0' | grep -q '\"name\": \"vm1\"'"
    check "probe now shows the SR on the LUN" bash -c "$(declare -f probe); sanctl=$sanctl; probe --target $prefix:vm1 > /run/lab/sr/probe2.txt 2>&1; cat /run/lab/sr/probe2.txt; grep -q 'LVM PV of SR vm1/' /run/lab/sr/probe2.txt"
    sed 's/^/# /' /run/lab/sr/probe2.txt
    sr_disk() { ls /sys/class/iscsi_session/session*/device/target*/*/block/ | head -1; }
    # The start of a real SR LUN (PV label, metadata area header, VG text), kept
    # beside the console log for the unit tests' fixtures.
    check "the SR LUN's first 64 KiB are kept" bash -c "$(declare -f sr_disk); dd if=/dev/\$(sr_disk) bs=64k count=1 iflag=direct status=none of=/lab/out/sr-head.bin"
    vdi=$("$sanctl" vdi path vm1 --config-dir $conf)
    check "vdi path names the VDI's device" bash -c "[[ '$vdi' == /dev/VG_XenStorage-*/LV-* && -b '$vdi' ]]"
    check "data written through the VDI reads back" bash -c "
        head -c 4194304 /dev/urandom > /run/lab/sr/pattern &&
        dd if=/run/lab/sr/pattern of='$vdi' bs=1M oflag=direct status=none &&
        cmp -n 4194304 '$vdi' /run/lab/sr/pattern"
    check "a second apply changes nothing" bash -c "$(declare -f apply); sanctl=$sanctl conf=$conf; apply | tail -1 | grep -qx 'ok: 0 change(s)'"
    "$sanctl" status --direct --config-dir $conf

    check "detach refuses while the VDI is open, naming it" bash -c "
        exec 3< '$vdi'; ! '$sanctl' sr detach vm1 --config-dir $conf 2> /run/lab/sr/busy.txt; grep -q 'VDI vm1' /run/lab/sr/busy.txt"
    sed 's/^/# /' /run/lab/sr/busy.txt
    check "detach deactivates and logs out" bash -c "'$sanctl' sr detach vm1 --config-dir $conf && ! iscsiadm -m session > /dev/null 2>&1 && [[ ! -e '$vdi' ]]"
    check "apply leaves a detached SR alone" bash -c "$(declare -f apply); sanctl=$sanctl conf=$conf; apply | tail -1 | grep -qx 'ok: 0 change(s)' && ! iscsiadm -m session > /dev/null 2>&1"
    check "attach brings it back with the same VDI and data" bash -c "
        '$sanctl' sr attach vm1 --config-dir $conf && [[ \$('$sanctl' vdi path vm1 --config-dir $conf) == '$vdi' ]] &&
        udevadm settle --timeout=10; cmp -n 4194304 '$vdi' /run/lab/sr/pattern"
    check "and a second apply still changes nothing" bash -c "$(declare -f apply); sanctl=$sanctl conf=$conf; apply | tail -1 | grep -qx 'ok: 0 change(s)'"
    sed -i 's/size = "64M"/size = "96M"/' $conf/sanagent.conf
    cat >> $conf/sanagent.conf << CONF
[vdi.scratch]
sr = "vm1"
size = "8M"
CONF
    check "a bigger size grows the VDI in place, a second VDI is made" bash -c "$(declare -f apply); sanctl=$sanctl conf=$conf; apply > /dev/null &&
        [[ \$(lvs --noheadings --units b --nosuffix -o lv_size '$vdi' | tr -d ' ') == 100663296 ]] && cmp -n 4194304 '$vdi' /run/lab/sr/pattern &&
        '$sanctl' vdi path scratch --config-dir $conf > /dev/null"
    check "status warns: one VDI per SR is recommended" bash -c "'$sanctl' status --direct --config-dir $conf | grep '^ok  sr/vm1' | grep -q 'one VDI per SR is recommended (2 here)'"

    # Bad input: a wrong CHAP secret, then a LUN holding a file system.
    mkdir -p /run/lab/sr/bad
    bad_conf() {  # bad_conf SECRET_FILE
        cat > /run/lab/sr/bad/sanagent.conf << CONF
[agent]
state_dir = "/run/lab/sr/bad-state"
[node]
name = "sanlab2"
roles = ["host"]
[sr.used]
target = "$prefix:used"
portals = ["192.168.77.11"]
chap_user = "sanlab2"
chap_secret_file = "$1"
CONF
    }
    bad_conf /run/lab/sr/secrets/wrong
    check "a wrong CHAP secret is refused with a clear message" bash -c "
        ! '$sanctl' apply --direct --config-dir /run/lab/sr/bad > /run/lab/sr/chap.txt 2>&1; cat /run/lab/sr/chap.txt; grep -q 'CHAP authentication failed' /run/lab/sr/chap.txt"
    sed 's/^/# /' /run/lab/sr/chap.txt
    check "and leaves no node record behind" bash -c "! iscsiadm -m node -T $prefix:used > /dev/null 2>&1"
    bad_conf /run/lab/sr/secrets/chap
    check "a LUN holding ext4 is refused without force" bash -c "
        ! '$sanctl' apply --direct --config-dir /run/lab/sr/bad > /run/lab/sr/ext4.txt 2>&1; cat /run/lab/sr/ext4.txt; grep -q 'holds ext4 (filesystem); refusing' /run/lab/sr/ext4.txt"
    sed 's/^/# /' /run/lab/sr/ext4.txt
    check "and the failed create logged out again" bash -c "! iscsiadm -m session 2> /dev/null | grep -q $prefix:used"
    check "the file system on it is intact" bash -c "'$sanctl' sr probe 192.168.77.11 --target $prefix:used --chap-user sanlab2 --chap-secret-file /run/lab/sr/secrets/chap | grep -q 'holds ext4'"
    touch $shared/host-done
}

if [[ $SANLAB_INDEX == 1 ]]; then storage_node; else host; fi
finish
