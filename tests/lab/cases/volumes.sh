# Pools and volumes as an admin meets them: sanctl apply on a storage node's
# config makes the VG, the thin pool and thin / full / cloned volumes on the
# guest's disk; refuses a disk that holds a file system; grows, refuses to
# shrink; keeps a volume dropped from the config; and a full thin pool fails
# writes at once instead of hanging them.
. "$SANLAB_SRC/tests/lab/lib.sh"
sanctl=$SANLAB_BUILD/agent/sanctl
conf=/run/lab/volumes/conf
mkdir -p $conf/conf.d /run/lab/volumes
MiB=1048576
base_err=/run/lab/volumes/err.txt

check "device-mapper thin and udev" bash -c "$(declare -f load_modules start_udev); load_modules dm_thin_pool && start_udev"
check "a second disk with a file system on it" bash -c "modprobe loop && truncate -s 64M /run/lab/volumes/used.img && mkfs.ext4 -q -L backup /run/lab/volumes/used.img && losetup /dev/loop7 /run/lab/volumes/used.img"

cat > $conf/sanagent.conf << CONF
[agent]
state_dir = "/run/lab/volumes/state"
control_socket = "/run/lab/volumes/control.sock"
[node]
name = "node1"
roles = ["storage"]
[group]
name = "lab"
iqn_prefix = "iqn.2026-11.org.sanagent.lab"
[pool.default]
vg = "sanpool"
devices = ["/dev/vda"]
thin_pool_size = "10%"
[volume.golden]
size = "64M"
pool = "default"
[volume.db]
pool = "default"
size = "32M"
provisioning = "full"
CONF
apply() { "$sanctl" apply --direct --config-dir $conf; }
check "the config is valid" "$sanctl" config check --config-dir $conf
check "apply makes the pool and two volumes" apply
check "lvs shows them tagged, thin and full" bash -c "
    lvs --noheadings -o lv_name,lv_attr,lv_tags sanpool > /run/lab/volumes/lvs.txt &&
    grep -Eq 'golden +V.*sanagent' /run/lab/volumes/lvs.txt && grep -Eq 'db +-wi-a.*sanagent' /run/lab/volumes/lvs.txt &&
    grep -Eq 'thin +twi' /run/lab/volumes/lvs.txt"
check "the thin pool errors when full instead of queueing" bash -c "lvs --noheadings -o lv_when_full sanpool/thin | grep -q error"
check "a second apply changes nothing" bash -c "apply() { '$sanctl' apply --direct --config-dir $conf; }; apply | tail -1 | grep -qx 'ok: 0 change(s)'"

check "a golden image gets content" bash -c "head -c $((8 * MiB)) /dev/urandom > /run/lab/volumes/golden.bin && dd if=/run/lab/volumes/golden.bin of=/dev/sanpool/golden bs=1M oflag=direct status=none"
cat >> $conf/sanagent.conf << CONF
[volume.vm1]
size = "64M"
pool = "default"
clone = { from = "golden" }
CONF
check "a SmartClone of it is made" apply
check "the clone reads the golden image byte for byte" cmp -n $((8 * MiB)) /dev/sanpool/vm1 /run/lab/volumes/golden.bin
check "writing the clone leaves the golden image alone" bash -c "head -c $MiB /dev/zero | dd of=/dev/sanpool/vm1 bs=1M oflag=direct status=none && cmp -n $((8 * MiB)) /dev/sanpool/golden /run/lab/volumes/golden.bin"

sed -i '/^\[volume.db\]/,/^provisioning/ s/size = "32M"/size = "48M"/' $conf/sanagent.conf
check "growing db in the config grows the LV" bash -c "apply() { '$sanctl' apply --direct --config-dir $conf; }; apply > /dev/null && [[ \$(lvs --noheadings --units b --nosuffix -o lv_size sanpool/db | tr -d ' ') == $((48 * MiB)) ]]"
sed -i 's/size = "48M"/size = "16M"/' $conf/sanagent.conf
check "shrinking is refused with the reason" bash -c "! '$sanctl' apply --direct --config-dir $conf > /run/lab/volumes/shrink.out 2>&1; grep -q 'would lose the data past 16' /run/lab/volumes/shrink.out"
check "and the LV kept its size" bash -c "[[ \$(lvs --noheadings --units b --nosuffix -o lv_size sanpool/db | tr -d ' ') == $((48 * MiB)) ]]"
sed -i 's/size = "16M"/size = "48M"/' $conf/sanagent.conf

cat > $conf/conf.d/50-second-pool.conf << CONF
[pool.used]
vg = "pool2"
devices = ["/dev/loop7"]
CONF
check "a pool on a disk holding ext4 is refused with what is on it" bash -c "! '$sanctl' apply --direct --config-dir $conf > /run/lab/volumes/used.out 2>&1; grep -q '/dev/loop7 holds ext4 (filesystem)' /run/lab/volumes/used.out"
check "the file system on it is intact" bash -c "blkid -o value -s LABEL /dev/loop7 | grep -qx backup"
rm $conf/conf.d/50-second-pool.conf

sed -i '/^\[volume.vm1\]/,$d' $conf/sanagent.conf
check "a volume dropped from the config is kept" bash -c "apply() { '$sanctl' apply --direct --config-dir $conf; }; apply > /dev/null && lvs sanpool/vm1 > /dev/null"
check "and reported orphaned" bash -c "'$sanctl' status --direct --config-dir $conf | grep -q '^orphaned  volume/vm1'"
"$sanctl" status --direct --config-dir $conf
check "volume delete without the flag is refused and deletes nothing" bash -c "! '$sanctl' volume delete vm1 --config-dir $conf 2> $base_err; grep -q 'say so with --yes-destroy-data' $base_err && lvs sanpool/vm1 > /dev/null"
check "volume delete of a volume still in the config is refused" bash -c "! '$sanctl' volume delete golden --yes-destroy-data --config-dir $conf 2> $base_err; grep -q 'is still in the config' $base_err && lvs sanpool/golden > /dev/null"
check "volume delete --yes-destroy-data removes the orphan" bash -c "'$sanctl' volume delete vm1 --yes-destroy-data --config-dir $conf && ! lvs sanpool/vm1 2> /dev/null && ! '$sanctl' status --direct --config-dir $conf | grep -q 'volume/vm1'"

check "a snapshot of golden" "$sanctl" snapshot create golden before-update --config-dir $conf
check "is listed" bash -c "'$sanctl' snapshot list golden --config-dir $conf | grep -q '^golden  before-update  sanpool/golden+before-update'"
check "keeps the old content while golden changes" bash -c "head -c $MiB /dev/urandom | dd of=/dev/sanpool/golden bs=1M oflag=direct status=none && lvchange -ay -K sanpool/golden+before-update && cmp -n $((8 * MiB)) /dev/sanpool/golden+before-update /run/lab/volumes/golden.bin"
check "a second apply leaves the snapshot alone" bash -c "apply() { '$sanctl' apply --direct --config-dir $conf; }; apply | tail -1 | grep -qx 'ok: 0 change(s)' && lvs sanpool/golden+before-update > /dev/null"
check "snapshot delete" bash -c "'$sanctl' snapshot delete golden before-update --config-dir $conf && ! lvs sanpool/golden+before-update 2> /dev/null"
check "a snapshot of a full volume is refused with the reason" bash -c "! '$sanctl' snapshot create db s1 --config-dir $conf 2> $base_err; grep -q 'snapshots are thin and need a thin volume' $base_err"
head -c $MiB /run/lab/volumes/golden.bin | dd of=/dev/sanpool/golden bs=1M oflag=direct status=none

cat >> $conf/sanagent.conf << CONF
[volume.big]
size = "512M"
pool = "default"
CONF
check "a thin volume larger than its pool" apply
fill() { timeout 120 dd if=/dev/zero of=/dev/sanpool/big bs=1M count=300 oflag=direct status=none; }
check "filling the pool fails with an I/O error, not a hang" bash -c "$(declare -f fill); ! fill"
check "status says the pool is full and what to do" bash -c "'$sanctl' status --direct --config-dir $conf | grep -E '^failed  pool/default' | grep -q 'delete snapshots or volumes'"
check "data written before is intact" cmp -n $((8 * MiB)) /dev/sanpool/golden /run/lab/volumes/golden.bin
"$sanctl" status --direct --config-dir $conf | grep pool/
losetup -d /dev/loop7
finish
