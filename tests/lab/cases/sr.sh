# The hypervisor host side, as an admin meets it, on two guests:
#   sanlab1 (192.168.77.11) is a storage node exporting two LUNs over iSCSI
#     with CHAP: vm1 (its empty disk /dev/vda) and used (a small disk holding ext4);
#   sanlab2 (192.168.77.12) is a host: it probes the portal in stages, makes an
#     SR and a VDI with `sanctl apply --direct`, writes data through the VDI,
#     detaches and attaches the SR, is refused it while its MGT names another
#     host (simulated) until attach --force, snapshots, clones, resizes and deletes VDIs,
#     brings the SR back after a simulated reboot, and is refused an ext4 LUN
#     and a wrong CHAP secret;
#   then multipath: the storage node's second address 192.168.77.21 is a second
#     portal of a third LUN (mp); with multipathd running the host logs in to
#     both, uses the multipath map, and keeps doing I/O when one portal's
#     address is taken away.
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
    # A second portal address on the same segment: two paths to one LUN.
    check "a second address, 192.168.77.21" ip addr add 192.168.77.21/24 dev eth0
    check "a small disk for the multipath LUN" bash -c "truncate -s 128M /run/lab/sr/mp.img && losetup /dev/loop6 /run/lab/sr/mp.img"
    export_two() {
        cat > /run/lab/sr/mp.json << JSON
{"iqn": "$prefix:mp",
 "storage": {"plugin": "iblock", "name": "mp", "device": "/dev/loop6", "serial": "7c2d5e6f70819203", "thin": false},
 "portals": ["${SANLAB_ADDR%/*}:3260", "192.168.77.21:3260"],
 "acls": [{"iqn": "$host_iqn", "chap": {"userid": "sanlab2", "password": "$secret"}}]}
JSON
        "$SANAGENT_LIO" apply /run/lab/sr/mp.json
    }
    check "the mp volume is exported on both portals" export_two
    touch $shared/ready
    # A path goes down when the host asks: the second portal's address goes away.
    check "the host asked for a path to go down" wait_for 500 test -e $shared/drop-path -o -e $shared/host-done
    check "192.168.77.21 is taken away" ip addr del 192.168.77.21/24 dev eth0
    touch $shared/path-dropped
    # Serve until the host is done (bounded by the lab's own timeout).
    check "the host finished" wait_for 500 test -e $shared/host-done
    losetup -d /dev/loop5 /dev/loop6 2> /dev/null
}

host() {
    local sanctl=$SANLAB_BUILD/agent/sanctl conf=/run/lab/sr/conf
    check "iscsid, device-mapper and udev" bash -c "$(declare -f start_iscsid start_udev wait_for); start_iscsid && modprobe dm_mod && start_udev"
    check "the storage node is ready" wait_for 120 test -e $shared/ready
    mkdir -p $conf /run/lab/sr/secrets
    (umask 077 && echo "$secret" > /run/lab/sr/secrets/chap && echo wrong-secret-0000 > /run/lab/sr/secrets/wrong)
    probe() { "$sanctl" sr probe 192.168.77.11 --chap-user sanlab2 --chap-secret-file /run/lab/sr/secrets/chap "$@"; }
    # Stage 1: the portal alone gives the target IQNs (discovery only).
    check "probe lists the targets" bash -c "$(declare -f probe); sanctl=$sanctl; probe > /run/lab/sr/probe1.txt && grep -q '^target $prefix:vm1 ' /run/lab/sr/probe1.txt && grep -q '^target $prefix:used ' /run/lab/sr/probe1.txt && ! grep -q 'lun 0' /run/lab/sr/probe1.txt"
    cat /run/lab/sr/probe1.txt
    # Stage 2: a target gives its LUNs.
    check "probe says the vm1 LUN is empty, with its serial and size" bash -c "$(declare -f probe); sanctl=$sanctl; probe --target $prefix:vm1 | grep -E 'serial 5a0b3c4d5e6f7081, scsi id 36001405.*1073741824 bytes.*: empty$'"
    check "probe says the used LUN holds ext4" bash -c "$(declare -f probe); sanctl=$sanctl; probe --target $prefix:used | grep -q 'holds ext4 (filesystem)'"
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
    # Stage 3: a SCSI id gives the SRs on that LUN.
    check "probe by SCSI id names the SR, its uuid and VG" bash -c "$(declare -f probe); sanctl=$sanctl;
        id=\$(grep -o 'scsi id [0-9a-f]*' /run/lab/sr/probe2.txt | cut -d' ' -f3) &&
        probe --scsi-id \$id > /run/lab/sr/probe3.txt; cat /run/lab/sr/probe3.txt;
        grep -Eq '^sr vm1  uuid [0-9a-f-]{36}  vg VG_XenStorage-[0-9a-f-]{36} \(uuid ' /run/lab/sr/probe3.txt"
    sed 's/^/# /' /run/lab/sr/probe3.txt
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
    # One host at a time: MGT names the host that has the SR attached; another
    # host (simulated by rewriting that name) is refused, --force takes over.
    local mgt_lv
    mgt_lv=$(dirname "$vdi")/MGT
    check "the MGT names this host as the one that has the SR attached" bash -c "
        head -c 65536 '$mgt_lv' | tr -d '\\0' | grep -q '\"attached_host\": \"sanlab2\"'"
    check "another host recorded in MGT (simulated)" bash -c "
        head -c 65536 '$mgt_lv' | tr -d '\\0' | sed 's/\"attached_host\": \"sanlab2\"/\"attached_host\": \"xs-other\"/' > /run/lab/sr/mgt-other &&
        dd if=/run/lab/sr/mgt-other of='$mgt_lv' conv=notrunc,fsync status=none && grep -q xs-other /run/lab/sr/mgt-other"
    check "a VDI change is refused while MGT names another host" bash -c "
        ! '$sanctl' vdi snapshot vm1 vm1-x --config-dir $conf 2> /run/lab/sr/other.txt; cat /run/lab/sr/other.txt; grep -q 'SR vm1 is attached on host xs-other' /run/lab/sr/other.txt"
    sed 's/^/# /' /run/lab/sr/other.txt
    check "detach leaves another host's record alone" "$sanctl" sr detach vm1 --config-dir $conf
    check "attach is refused too, leaving no session and the VDI inactive" bash -c "
        ! '$sanctl' sr attach vm1 --config-dir $conf 2> /run/lab/sr/other2.txt; cat /run/lab/sr/other2.txt;
        grep -q 'sanctl sr attach vm1 --force' /run/lab/sr/other2.txt && ! iscsiadm -m session > /dev/null 2>&1 && [[ ! -e '$vdi' ]]"
    check "attach --force takes the SR over, data intact, MGT names this host again" bash -c "
        '$sanctl' sr attach vm1 --force --config-dir $conf && udevadm settle --timeout=10 && cmp -n 4194304 '$vdi' /run/lab/sr/pattern &&
        head -c 65536 '$mgt_lv' | tr -d '\\0' | grep -q '\"attached_host\": \"sanlab2\"'"
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

    check "status warns: iSCSI on the management network" bash -c "'$sanctl' status --direct --config-dir $conf | grep '^ok  sr/vm1' | grep -q 'is not on a dedicated storage network'"

    # VDI operations: snapshot, clone, create, resize, delete; data compared byte for byte.
    vdicmd() { "$sanctl" vdi "$@" --config-dir $conf; }
    pattern() { head -c 4194304 /dev/urandom > /run/lab/sr/$1; }
    pattern p2 && pattern p3 && pattern p4
    check "vdi snapshot makes a read-only LVM snapshot, tagged" bash -c "$(declare -f vdicmd); sanctl=$sanctl conf=$conf;
        vdicmd snapshot vm1 vm1-before && lvs --noheadings -o lv_attr,lv_tags | grep 'vdi_name=vm1-before' | grep -Eq '^ *sr.*snapshot_of=vm1'"
    snap=$("$sanctl" vdi path vm1-before --config-dir $conf)
    check "after new writes to the VDI, the snapshot still reads the old data" bash -c "
        dd if=/run/lab/sr/p2 of='$vdi' bs=1M oflag=direct status=none && cmp -n 4194304 '$vdi' /run/lab/sr/p2 &&
        cmp -n 4194304 '$snap' /run/lab/sr/pattern"
    check "the snapshot refuses writes" bash -c "! dd if=/run/lab/sr/p3 of='$snap' bs=1M count=1 oflag=direct status=none"
    check "vdi clone makes a writable copy that reads the VDI's data" bash -c "$(declare -f vdicmd); sanctl=$sanctl conf=$conf;
        vdicmd clone vm1 vm1-copy && c=\$(vdicmd path vm1-copy) && cmp -n 4194304 \$c /run/lab/sr/p2"
    clone=$("$sanctl" vdi path vm1-copy --config-dir $conf)
    check "writes to the clone stay in the clone" bash -c "
        dd if=/run/lab/sr/p3 of='$clone' bs=1M oflag=direct status=none && cmp -n 4194304 '$clone' /run/lab/sr/p3 &&
        cmp -n 4194304 '$vdi' /run/lab/sr/p2 && cmp -n 4194304 '$snap' /run/lab/sr/pattern"
    check "vdi create makes a VDI the config does not list" bash -c "$(declare -f vdicmd); sanctl=$sanctl conf=$conf;
        vdicmd create extra --sr vm1 --size 16M && e=\$(vdicmd path extra) && dd if=/run/lab/sr/p4 of=\$e bs=1M oflag=direct status=none"
    extra=$("$sanctl" vdi path extra --config-dir $conf)
    check "vdi resize grows it, data intact" bash -c "$(declare -f vdicmd); sanctl=$sanctl conf=$conf;
        vdicmd resize extra 32M && [[ \$(lvs --noheadings --units b --nosuffix -o lv_size '$extra' | tr -d ' ') == 33554432 ]] &&
        cmp -n 4194304 '$extra' /run/lab/sr/p4"
    check "vdi resize refuses to shrink without --force" bash -c "$(declare -f vdicmd); sanctl=$sanctl conf=$conf;
        ! vdicmd resize extra 8M 2> /run/lab/sr/shrink.txt && grep -q 'loses the data past the new end' /run/lab/sr/shrink.txt &&
        [[ \$(lvs --noheadings --units b --nosuffix -o lv_size '$extra' | tr -d ' ') == 33554432 ]]"
    check "vdi resize refuses a configured VDI" bash -c "$(declare -f vdicmd); sanctl=$sanctl conf=$conf;
        ! vdicmd resize vm1 200M 2> /run/lab/sr/conf-resize.txt && grep -q 'change it there' /run/lab/sr/conf-resize.txt"
    check "a second apply leaves the VDIs the config does not list alone" bash -c "$(declare -f apply); sanctl=$sanctl conf=$conf; apply | tail -1 | grep -qx 'ok: 0 change(s)'"
    check "vdi delete wants --yes-destroy-data" bash -c "$(declare -f vdicmd); sanctl=$sanctl conf=$conf;
        ! vdicmd delete extra 2> /run/lab/sr/noflag.txt && grep -q 'yes-destroy-data' /run/lab/sr/noflag.txt && [[ -b '$extra' ]]"
    check "vdi delete refuses an open VDI" bash -c "$(declare -f vdicmd); sanctl=$sanctl conf=$conf;
        exec 3< '$extra'; ! vdicmd delete extra --yes-destroy-data 2> /run/lab/sr/open.txt; grep -q 'is open' /run/lab/sr/open.txt && [[ -b '$extra' ]]"
    check "vdi delete refuses a configured VDI" bash -c "$(declare -f vdicmd); sanctl=$sanctl conf=$conf;
        ! vdicmd delete vm1 --yes-destroy-data 2> /run/lab/sr/confdel.txt && grep -q 'still in the config' /run/lab/sr/confdel.txt"
    check "vdi delete removes the clone, the snapshot and the extra VDI" bash -c "$(declare -f vdicmd); sanctl=$sanctl conf=$conf;
        vdicmd delete vm1-copy --yes-destroy-data && vdicmd delete vm1-before --yes-destroy-data && vdicmd delete extra --yes-destroy-data &&
        ! lvs --noheadings -o lv_tags | grep -Eq 'vdi_name=(vm1-copy|vm1-before|extra)' && cmp -n 4194304 '$vdi' /run/lab/sr/p2"

    # Reboot persistence, simulated (not a real reboot of the guest: the lab
    # boots each guest once): sessions logged out, iscsid stopped, the VG
    # deactivated; then iscsid again and `iscsiadm -m node --loginall=automatic`,
    # as open-iscsi's iscsi.service does at boot from the node records, and an apply.
    check "simulated reboot: VG off, sessions out, iscsid stopped" bash -c "$(declare -f wait_for);
        vgchange -an \$(vgs --noheadings -o vg_name | grep -o 'VG_XenStorage-[0-9a-f-]*') > /dev/null &&
        iscsiadm -m node --logoutall=all > /dev/null && kill \$(pgrep -x iscsid) && wait_for 20 bash -c '! pgrep -x iscsid' &&
        [[ ! -e '$vdi' ]] && ! iscsiadm -m session > /dev/null 2>&1"
    check "boot: iscsid and the automatic node records log in again" bash -c "$(declare -f start_iscsid wait_for); start_iscsid &&
        iscsiadm -m node --loginall=automatic && iscsiadm -m session | grep -q '$prefix:vm1'"
    check "apply brings the SR back with the VDI's data intact" bash -c "$(declare -f apply); sanctl=$sanctl conf=$conf;
        udevadm settle --timeout=10; apply > /run/lab/sr/boot.txt; cat /run/lab/sr/boot.txt;
        [[ \$('$sanctl' vdi path vm1 --config-dir $conf) == '$vdi' ]] && cmp -n 4194304 '$vdi' /run/lab/sr/p2"

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
    check "the LUN was named by its SCSI id, not /dev/sdX" grep -q '(/dev/disk/by-id/scsi-36001405' /run/lab/sr/ext4.txt

    # Multipath: two portals of one storage node, two sessions, one map.
    mkdir -p /etc/multipath
    cat > /etc/multipath.conf << 'MPCONF'
defaults {
    user_friendly_names no
    find_multipaths strict
}
devices {
    device {
        vendor "LIO-ORG"
        product ".*"
        path_grouping_policy multibus
        path_checker tur
        no_path_retry 12
    }
}
MPCONF
    check "multipathd runs" bash -c "$(declare -f wait_for); modprobe dm_multipath && (multipathd -d -s > /run/lab/multipathd.log 2>&1 &) && wait_for 20 multipathd show daemon"
    cat >> $conf/sanagent.conf << CONF
[sr.mp]
target = "$prefix:mp"
portals = ["192.168.77.11", "192.168.77.21"]
chap_user = "sanlab2"
chap_secret_file = "/run/lab/sr/secrets/chap"
[vdi.mp]
sr = "mp"
size = "32M"
CONF
    check "apply with multipathd logs in to both portals and makes the SR" bash -c "$(declare -f apply); sanctl=$sanctl conf=$conf;
        apply > /run/lab/sr/mp.txt 2>&1; rc=\$?; cat /run/lab/sr/mp.txt; ((rc == 0)) && grep -q '192.168.77.11:3260, 192.168.77.21:3260' /run/lab/sr/mp.txt"
    sed 's/^/# /' /run/lab/sr/mp.txt
    check "two sessions, one per portal" bash -c "[[ \$(iscsiadm -m session | grep -c '$prefix:mp ') == 2 ]]"
    check "multipath -ll shows one map with two paths" bash -c "
        multipath -ll > /run/lab/sr/mpll.txt 2>&1; cat /run/lab/sr/mpll.txt; [[ \$(grep -c 'LIO-ORG' /run/lab/sr/mpll.txt) == 1 ]] &&
        [[ \$(grep -Ec '[0-9]+:[0-9]+:[0-9]+:[0-9]+ +sd[a-z]+ .*active ready' /run/lab/sr/mpll.txt) == 2 ]]"
    sed 's/^/# /' /run/lab/sr/mpll.txt
    check "the SR's PV is the multipath map" bash -c "pvs --noheadings -o pv_name,vg_tags | grep 'sr_name=mp' | grep -q '/dev/mapper/36001405'"
    check "replacement_timeout is 15 s with multipath" bash -c "
        iscsiadm -m node -T $prefix:mp -p 192.168.77.21 | grep -qx 'node.session.timeo.replacement_timeout = 15'"
    check "status shows two paths" bash -c "'$sanctl' status --direct --config-dir $conf | grep '^ok  sr/mp' | grep -q 'multipath: 2 path(s)'"
    check "vm1, attached before multipathd ran, stays on its one disk, and status says how to switch" bash -c "
        '$sanctl' status --direct --config-dir $conf | grep '^ok  sr/vm1' | grep -q \"multipathd runs but the SR uses one path's disk (/dev/sd\" &&
        pvs --noheadings -o pv_name,vg_tags | grep 'sr_name=vm1' | grep -q '/dev/sd'"
    mpvdi=$("$sanctl" vdi path mp --config-dir $conf)
    check "I/O through the multipath map" bash -c "
        dd if=/run/lab/sr/p3 of='$mpvdi' bs=1M oflag=direct status=none && cmp -n 4194304 '$mpvdi' /run/lab/sr/p3"
    touch $shared/drop-path
    check "the storage node took the second portal's address away" wait_for 60 test -e $shared/path-dropped
    check "I/O goes on through the remaining path" bash -c "
        timeout 150 dd if=/run/lab/sr/p4 of='$mpvdi' bs=1M oflag=direct status=none && timeout 60 cmp -n 4194304 '$mpvdi' /run/lab/sr/p4"
    check "multipath -ll shows the dead path failed" bash -c "$(declare -f wait_for);
        wait_for 90 bash -c 'multipath -ll | grep -Eq \"(failed|faulty)\"'; multipath -ll > /run/lab/sr/mpll2.txt 2>&1; grep -Eq '(failed|faulty)' /run/lab/sr/mpll2.txt"
    sed 's/^/# /' /run/lab/sr/mpll2.txt
    check "detach flushes the multipath map and logs out of both paths" bash -c "
        '$sanctl' sr detach mp --config-dir $conf && ! multipath -ll 2> /dev/null | grep -q LIO-ORG &&
        ! iscsiadm -m session 2> /dev/null | grep -q '$prefix:mp '"
    check "attach with one portal gone plugs the SR through the other, data intact" bash -c "
        '$sanctl' sr attach mp --config-dir $conf && [[ \$(iscsiadm -m session | grep -c '$prefix:mp ') == 1 ]] &&
        multipath -ll | grep -q LIO-ORG && cmp -n 4194304 '$mpvdi' /run/lab/sr/p4"
    check "status: the SR is degraded, one of two paths" bash -c "
        '$sanctl' status --direct --config-dir $conf > /run/lab/sr/status-mp.txt; cat /run/lab/sr/status-mp.txt; grep -E '^degraded +sr/mp' /run/lab/sr/status-mp.txt | grep -q 'only 1 of 2 paths are logged in'"
    grep 'sr/mp' /run/lab/sr/status-mp.txt | sed 's/^/# /'
    touch $shared/host-done
}

if [[ $SANLAB_INDEX == 1 ]]; then storage_node; else host; fi
finish
