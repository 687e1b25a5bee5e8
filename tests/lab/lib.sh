# Helpers for lab cases (sourced inside a guest). Each check prints one TAP-like
# line; the case's exit status is the number of failed checks (capped), so the
# runner and CTest see a failure without parsing text.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LAB_FAILED=0
LAB_CHECKS=0

# check DESCRIPTION COMMAND [ARGS...]: run the command, record ok / not ok.
check() {
    local desc=$1
    shift
    LAB_CHECKS=$((LAB_CHECKS + 1))
    local output
    if output=$("$@" 2>&1); then
        echo "ok $LAB_CHECKS - $desc"
    else
        echo "not ok $LAB_CHECKS - $desc"
        echo "$output" | tail -n 20 | sed 's/^/#   /'
        LAB_FAILED=$((LAB_FAILED + 1))
    fi
}

# wait_for SECONDS COMMAND [ARGS...]: poll until the command succeeds, bounded.
wait_for() {
    local limit=$1
    shift
    local deadline=$((SECONDS + limit))
    until "$@" > /dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# Load the crypto helper dm_thin_pool's libcrc32c needs, then modules by name.
load_modules() {
    local m
    for m in "$@"; do
        if [[ $m == dm_thin_pool ]]; then modprobe crc32c_generic 2> /dev/null || true; fi
        modprobe "$m" || return 1
    done
}

mount_configfs() {
    modprobe configfs
    mountpoint -q /sys/kernel/config || mount -t configfs configfs /sys/kernel/config
}

# A system D-Bus and udevd, for the tools that expect them (lvm, targetcli).
start_udev() {
    /lib/systemd/systemd-udevd --daemon > /dev/null 2>&1
    udevadm trigger --action=add > /dev/null 2>&1
    udevadm settle --timeout=10 > /dev/null 2>&1 || true
}

start_iscsid() {
    # Without udev nothing loads the SCSI disk driver for a new LUN.
    modprobe sd_mod
    mkdir -p /run/lock/iscsi /etc/iscsi
    # Each guest is its own initiator (the host's file is shared read-only below the overlay).
    echo "InitiatorName=iqn.2026-11.org.sanagent.lab:$(hostname)" > /etc/iscsi/initiatorname.iscsi
    # Its own session: iscsid's shutdown does killpg(0, SIGTERM), which would
    # take the case script down with it when a case stops iscsid.
    setsid iscsid -f > /run/lab/iscsid.log 2>&1 &
    wait_for 10 pgrep -x iscsid
}

finish() {
    echo "# $((LAB_CHECKS - LAB_FAILED)) of $LAB_CHECKS checks passed"
    ((LAB_FAILED == 0)) || exit $((LAB_FAILED > 100 ? 100 : LAB_FAILED))
    exit 0
}

# make_fileio_target IQN INITIATOR [FILE]: an iSCSI target made by hand with
# plain configfs operations, the way an admin without sanagent would.
make_fileio_target() {
    local iqn=$1 initiator=$2 file=${3:-/run/lab/data/lun0.img}
    local t=/sys/kernel/config/target
    mkdir -p "$(dirname "$file")"
    truncate -s 64M "$file"
    mkdir -p $t/core/fileio_0/disk0
    echo "fd_dev_name=$file,fd_dev_size=67108864" > $t/core/fileio_0/disk0/control
    echo 1 > $t/core/fileio_0/disk0/enable
    mkdir -p "$t/iscsi/$iqn/tpgt_1/lun/lun_0"
    ln -s $t/core/fileio_0/disk0 "$t/iscsi/$iqn/tpgt_1/lun/lun_0/disk0"
    mkdir "$t/iscsi/$iqn/tpgt_1/np/127.0.0.1:3260"
    mkdir -p "$t/iscsi/$iqn/tpgt_1/acls/$initiator/lun_0"
    ln -s "$t/iscsi/$iqn/tpgt_1/lun/lun_0" "$t/iscsi/$iqn/tpgt_1/acls/$initiator/lun_0/map"
    echo 0 > "$t/iscsi/$iqn/tpgt_1/attrib/authentication"
    echo 0 > "$t/iscsi/$iqn/tpgt_1/attrib/generate_node_acls"
    echo 1 > "$t/iscsi/$iqn/tpgt_1/enable"
}

# make_thin_pool DEVICE VG: a volume group with a thin pool, a thin volume and
# a thin snapshot of it, the shapes the lvm library reads back.
make_thin_pool() {
    local dev=$1 vg=$2
    pvcreate -q "$dev" && vgcreate -q "$vg" "$dev" \
        && lvcreate -q --type thin-pool -L 256M -n thin "$vg" \
        && lvchange -q --errorwhenfull y "$vg/thin" \
        && lvcreate -q -V 1G --thinpool "$vg/thin" -n vol1 "$vg" \
        && lvchange -q --addtag sanagent "$vg/vol1" \
        && lvcreate -q -s -n vol1-snap "$vg/vol1"
}
