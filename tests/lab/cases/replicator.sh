# sanrepd across two guests over a faulty network, as an admin would run it:
# one sanrepd per node, from a config file naming two volumes, vol and vol2;
#   sanlab1 (192.168.77.11) is their primary, serving them over NBD;
#   sanlab2 (192.168.77.12) holds the secondary replicas, both on one port.
# The two authenticate with a pre-shared key (root-owned 0600 file on each).
# The primary's link gets 5% loss and 50 ms delay (tc netem): writes go on and
# stay replicated (with 5% loss TCP moves well under 100 KB/s at this round
# trip, so that phase writes 64 KiB pieces and the ack timeout is generous).
# Then the link goes down: the peer turns out-of-sync, writes go on and are
# recorded in the bitmap. Link up, the loss gone but the delay kept: the peer
# is resynced. At the
# end the two replica files have the same checksum (compared through the
# shared directory), every acknowledged write reads back, and an online verify
# over the lossy link finds no mismatch. vol2 is written once, rides through
# the same faults idle, then switches over with no restart: sanlab1 demotes
# it (`sanctl replica demote`), sanlab2 promotes it, writes to it and
# replicates back to sanlab1; its two replicas end with equal checksums too.
# Before the end, the kernel's nbd driver attaches vol on sanlab1 and puts an
# ext4 file system on it (kernel_client below).
. "$SANLAB_SRC/tests/lab/lib.sh"
shared=/lab/shared
sanrepd=$SANLAB_BUILD/replicator/sanrepd
sanctl=$SANLAB_BUILD/agent/sanctl
run=/run/lab/rep
mkdir -p $run

# The peer's state from `sanctl replica status VOLUME` ("  peer ADDR: STATE (mode)").
peer_state() { "$sanctl" replica status "${1:-vol}" --control "$run/${1:-vol}.ctl" | sed -n 's/^  peer [^ ]*: \([a-z-]*\).*/\1/p'; }
is_state() { [[ $(peer_state "${2:-vol}") == "$1" ]]; }

# node_config NODE ROLE: the node's sanrepd.toml, vol (64M) and vol2 (8M).
# Both nodes know both addresses, as a pair that can switch roles must: their
# own listen address (the secondaries share it) and the other's.
node_config() {
    local me=192.168.77.11:7789 other=192.168.77.12:7789
    [[ $2 == secondary ]] && { me=192.168.77.12:7789; other=192.168.77.11:7789; }
    printf '[sanrepd]\nnode = "%s"\npsk_file = "%s"\nlisten = "%s"\n' "$1" $run/peer.psk $me
    local v size
    for v in vol vol2; do
        size=64M
        [[ $v == vol2 ]] && size=8M
        printf '\n[volume.%s]\nrole = "%s"\nreplica = "%s"\nsize = "%s"\ncontrol = "%s"\n' \
            $v "$2" $run/$v.img $size $run/$v.ctl
        printf 'nbd_socket = "%s"\nack_timeout_ms = 20000\n[volume.%s.peer]\naddress = "%s"\n' $run/$v.nbd $v $other
    done
    return 0
}
# role VOLUME: this node's role for it, from `sanctl replica status`.
role() { "$sanctl" replica status "$1" --control "$run/$1.ctl" | sed -n '1s/^volume [^ ]* on [^ ]*: \([a-z]*\),.*/\1/p'; }
is_role() { [[ $(role "$1") == "$2" ]]; }
# stop_daemon PID: SIGTERM, then its exit status (0 = clean), bounded: a child
# that has exited is a zombie until waited for, so look at /proc, not kill -0.
# Not inside `check`: that runs in a subshell, which cannot wait for our child.
exited() { [[ ! -e /proc/$1 ]] || grep -q '^State:.*Z' /proc/$1/status 2> /dev/null; }
stop_daemon() {
    kill -TERM "$1"
    wait_for 30 exited "$1" || kill -KILL "$1"
    wait "$1"
}

# The cluster's pre-shared key: made by the secondary, handed over through the
# shared directory, and installed root-owned 0600 on each node.
install_key() { install -m 0600 -o root $shared/cluster.psk $run/peer.psk; }

# A replica on a file system without RENAME_NOREPLACE: 9p (the lab's
# /lab/out) refuses the flag with EINVAL, as NFS and some FUSE file systems
# do, and sanrepd creates the metadata file with a hard link instead (which
# never overwrites either). Run on the secondary while it waits.
replica_on_9p() {
    local dir=/lab/out/rep-9p
    mkdir -p $dir
    rm -f $dir/*
    touch $dir/probe
    check "9p refuses RENAME_NOREPLACE (EINVAL)" python3 -c '
import ctypes, errno, sys
libc = ctypes.CDLL(None, use_errno=True)
rc = libc.renameat2(-100, sys.argv[1].encode(), -100, sys.argv[2].encode(), 1)
sys.exit(0 if rc < 0 and ctypes.get_errno() == errno.EINVAL else 1)' $dir/probe $dir/probe2
    local start=("$sanrepd" --volume ninep --role primary --replica $dir/v.img --size 8M
        --nbd-socket $run/ninep.nbd --control $run/ninep.ctl)
    "${start[@]}" > $run/ninep.log 2>&1 &
    local pid=$!
    check "a replica on 9p starts" wait_for 30 test -S $run/ninep.ctl
    check "its metadata file is in place, no .new left" bash -c "test -s $dir/v.img.meta && ! test -e $dir/v.img.meta.new"
    check "it serves a write" qemu-io -f raw "nbd+unix:///ninep?socket=$run/ninep.nbd" -c "write -P 0x5a 1M 1M" -c flush
    stop_daemon $pid
    check "it stops cleanly" test $? -eq 0
    rm -f $run/ninep.ctl $run/ninep.nbd
    "${start[@]}" >> $run/ninep.log 2>&1 &
    pid=$!
    check "it starts again on the same metadata" wait_for 30 test -S $run/ninep.ctl
    check "and reads the write back" qemu-io -f raw "nbd+unix:///ninep?socket=$run/ninep.nbd" -c "read -P 0x5a 1M 1M"
    stop_daemon $pid
    check "and stops cleanly" test $? -eq 0
    sed 's/^/# /' $run/ninep.log | tail -n 6
    rm -rf $dir
}

secondary() {
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > $shared/cluster.psk
    check "the key is installed 0600" install_key
    node_config sanlab2 secondary > $run/sanrepd.toml
    "$sanrepd" --config $run/sanrepd.toml > $run/sanrepd.log 2>&1 &
    local pid=$!
    check "the secondary listens" wait_for 30 test -S $run/vol.ctl -a -S $run/vol2.ctl
    touch $shared/peer-ready
    # Debian's kernel gives the peer session its io_uring (an anon inode
    # among the daemon's descriptors once the primary is connected).
    check "the peer session writes through io_uring" wait_for 120 bash -c "ls -l /proc/$pid/fd | grep -q io_uring"
    # vol2's switchover: sanlab1 demoted it; promote it here, no restart.
    check "sanlab1 demoted vol2" wait_for 500 test -e $shared/vol2-demoted
    check "vol2 is promoted here" "$sanctl" replica promote vol2 --control $run/vol2.ctl
    check "vol2 is primary here" is_role vol2 primary
    check "and in sync with sanlab1, now its secondary" wait_for 120 is_state in-sync vol2
    check "a write to vol2 on its new primary" qemu-io -f raw "nbd+unix:///vol2?socket=$run/vol2.nbd" \
        -c "write -P 0x77 2M 1M" -c flush
    check "vol still has its secondary here" is_role vol secondary
    touch $shared/vol2-switched
    replica_on_9p
    check "the primary finished" wait_for 500 test -e $shared/primary-done
    stop_daemon $pid
    check "the secondary stops cleanly" test $? -eq 0
    sha256sum < $run/vol2.img | cut -d' ' -f1 > $shared/secondary2.sum
    sha256sum < $run/vol.img | cut -d' ' -f1 > $shared/secondary.sum
    sed 's/^/# /' $run/sanrepd.log | tail -n 20
}

# The kernel's nbd driver as sanrepd's client, as LIO's iblock will use it:
# two connections (sanrepd offers CAN_MULTI_CONN), the flags the driver must
# see, fio's random writes checked by reading back, ext4 made with discards, a file written, synced, trimmed and read back
# from the device after the page cache is dropped. All of it is replicated:
# the replicas' final checksums cover it.
kernel_client() {
    local dev=/dev/nbd0 mnt=$run/mnt q=/sys/block/nbd0/queue
    check "the nbd module loads" modprobe nbd nbds_max=2
    check "nbd-client attaches vol with two connections" \
        nbd-client -unix $run/vol.nbd $dev -N vol -connections 2 -block-size 4096
    check "the device has vol's size" test "$(blockdev --getsize64 $dev)" -eq $((64 << 20))
    # SEND_FLUSH: without it the driver would take the device as write-through.
    check "the driver sends flushes" grep -qx "write back" $q/write_cache
    check "and FUA" grep -qx 1 $q/fua
    check "and discards" test "$(cat $q/discard_max_bytes)" -gt 0
    sed 's/^/# write_zeroes_max_bytes: /' $q/write_zeroes_max_bytes
    # Random writes of mixed sizes at queue depth 16 over both connections,
    # then every block read back and checked (the headers hold the offset).
    check "fio verify=crc32c through the device" fio --name=kernel-nbd --filename=$dev --direct=1 \
        --ioengine=libaio --iodepth=16 --rw=randwrite --bsrange=4k-256k --size=24M --verify=crc32c \
        --verify_fatal=1 --randrepeat=0 --output=$run/fio.txt
    grep -E 'IOPS|err=' $run/fio.txt | sed 's/^/# /'
    check "mkfs.ext4 on it, with discards" mkfs.ext4 -q -F -E discard $dev
    mkdir -p $mnt
    check "it mounts" mount -t ext4 $dev $mnt
    head -c 12M /dev/urandom > $run/blob
    check "a 12 MiB file is written and synced" bash -c "cp $run/blob $mnt/blob && sync -f $mnt/blob"
    check "a 4 MiB file is written and removed" bash -c "head -c 4M /dev/zero > $mnt/gone && sync && rm $mnt/gone"
    check "fstrim trims the free space" fstrim $mnt
    check "it unmounts" umount $mnt
    # Debian 12's driver sends no WRITE_ZEROES (write_zeroes_max_bytes 0): the
    # block layer writes zeroes instead.
    check "zeroing a range (blkdiscard -z)" blkdiscard -f -z -o $((60 << 20)) -l $((1 << 20)) $dev
    check "the page cache is dropped" bash -c "blockdev --flushbufs $dev && echo 3 > /proc/sys/vm/drop_caches"
    check "the file reads back from the device" bash -c \
        "mount -t ext4 -o ro $dev $mnt && cmp $run/blob $mnt/blob; rc=\$?; umount $mnt; exit \$rc"
    check "e2fsck finds the file system clean" e2fsck -fn $dev
    check "nbd-client detaches" nbd-client -d $dev
    check "the peer stayed in sync" is_state in-sync
    check "sanrepd closed no connection on a bad request" bash -c "! grep -q 'closing:' $run/sanrepd.log"
}

primary() {
    local uri="nbd+unix:///vol?socket=$run/vol.nbd"
    check "netem is available" modprobe sch_netem
    check "the secondary is up" wait_for 120 test -e $shared/peer-ready
    check "the key is installed 0600" install_key
    node_config sanlab1 primary > $run/sanrepd.toml
    "$sanrepd" --config $run/sanrepd.toml > $run/sanrepd.log 2>&1 &
    local pid=$!
    check "the primary is in sync with the secondary" wait_for 120 is_state in-sync
    check "and so is vol2, over the same port" wait_for 120 is_state in-sync vol2
    check "sanctl replica status lists both volumes" bash -c \
        "[[ \$('$sanctl' replica status --control-dir $run | grep -c ': primary, replica up-to-date, peer in-sync') == 2 ]]"
    check "a write to vol2" qemu-io -f raw "nbd+unix:///vol2?socket=$run/vol2.nbd" -c "write -P 0x66 1M 1M" -c flush
    # Acknowledged writes: a pattern per piece, logged only when qemu-io says done.
    : > $run/acked
    write_piece() {  # write_piece OFFSET LENGTH PATTERN
        qemu-io -f raw "$uri" -c "write -P $3 $1 $2" > /dev/null && echo "$1 $2 $3" >> $run/acked
    }
    write_range() {  # write_range FIRST_MIB LAST_MIB PATTERN: 1 MiB pieces
        local m
        for ((m = $1; m <= $2; m++)); do write_piece $((m << 20)) 1M $3 || return 1; done
    }
    write_small() {  # write_small MIB PATTERN: 64 KiB pieces, 8 of them, in that MiB
        local i
        for ((i = 0; i < 8; i++)); do write_piece $((($1 << 20) + i * 131072)) 64k $2 || return 1; done
    }
    check "a full write under no faults" write_range 0 3 0x11

    check "5% loss and 50 ms delay on the link" tc qdisc add dev eth0 root netem loss 5% delay 50ms
    lossy_writes() { write_small 4 0x22 && write_small 5 0x23; }
    check "writes go on over the lossy link" lossy_writes
    check "and the peer stays in sync" is_state in-sync
    check "an online verify over the lossy link is clean" bash -c \
        "'$sanctl' replica verify vol --control $run/vol.ctl --timeout 300 > $run/verify1.txt"
    sed 's/^/# /' $run/verify1.txt

    check "link down" ip link set eth0 down
    check "writes go on with the link down" write_range 16 19 0x33
    check "the peer goes out of sync" wait_for 120 is_state out-of-sync
    check "writes go on while it is away" write_range 32 35 0x44
    "$sanctl" replica status vol --control $run/vol.ctl | sed 's/^/# /'
    check "the away writes are recorded dirty" bash -c \
        "'$sanctl' replica status vol --control $run/vol.ctl --json | grep -q '\"dirty_bytes\": [1-9]'"

    check "link up, delay kept, loss gone" bash -c "tc qdisc change dev eth0 root netem delay 50ms && ip link set eth0 up"
    check "the peer is resynced" wait_for 300 is_state in-sync
    "$sanctl" replica status vol --control $run/vol.ctl | sed 's/^/# /'
    check "writes go on after the resync" write_range 40 43 0x55
    check "a flush reaches both replicas" qemu-io -f raw "$uri" -c flush
    check "every acknowledged write reads back" bash -c "
        while read -r o l p; do qemu-io -f raw '$uri' -c \"read -P \$p \$o \$l\" | grep -q 'Pattern verification failed' && exit 1; done < $run/acked; true"
    check "32 writes were acknowledged" test "$(wc -l < $run/acked)" -eq 32
    check "a second verify is clean" bash -c \
        "'$sanctl' replica verify vol --control $run/vol.ctl --timeout 300 > $run/verify2.txt"
    sed 's/^/# /' $run/verify2.txt
    check "vol2 is in sync again" wait_for 120 is_state in-sync vol2
    check "vol2 refuses to be demoted while a client uses it" bash -c "
        qemu-io -f raw 'nbd+unix:///vol2?socket=$run/vol2.nbd' -c 'sleep 4000' -c 'read 0 4k' > /dev/null &
        sleep 1; ! '$sanctl' replica demote vol2 --control $run/vol2.ctl 2> $run/demote.err; rc=\$?; wait; exit \$rc"
    check "and says why" grep -q "NBD client(s) connected" $run/demote.err
    check "vol2 is demoted once the client left" "$sanctl" replica demote vol2 --control $run/vol2.ctl
    check "vol2 is secondary here" is_role vol2 secondary
    touch $shared/vol2-demoted
    check "sanlab2 promoted vol2 and wrote to it" wait_for 120 test -e $shared/vol2-switched
    check "vol2 here is the in-sync secondary of sanlab2" is_state in-sync vol2
    tc qdisc del dev eth0 root 2> /dev/null
    kernel_client
    # Every NBD connection above had its ring: a fallback is logged.
    check "NBD reads and writes went through io_uring" bash -c "! grep -q 'no io_uring' $run/sanrepd.log"
    stop_daemon $pid
    check "the primary stops cleanly" test $? -eq 0
    sha256sum < $run/vol.img | cut -d' ' -f1 > $run/primary.sum
    sha256sum < $run/vol2.img | cut -d' ' -f1 > $run/primary2.sum
    touch $shared/primary-done
    check "the secondary reported its checksum" wait_for 60 test -s $shared/secondary.sum
    check "the replicas are identical" cmp $run/primary.sum $shared/secondary.sum
    check "vol2's replicas are identical" cmp $run/primary2.sum $shared/secondary2.sum
    grep -E 'peer:|verify' $run/sanrepd.log | sed 's/^/# /' | tail -n 30
}

if [[ $SANLAB_INDEX == 1 ]]; then primary; else secondary; fi
finish
