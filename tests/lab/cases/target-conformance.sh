# libiscsi's SCSI conformance suite against a volume exported by sanctl: a
# thin fileio volume assigned to two servers (the suite logs in as both to
# test reservations). The pass count is recorded in docs/target.md; the check
# asks only that nothing regresses below it.
. "$SANLAB_SRC/tests/lab/lib.sh"
sanctl=$SANLAB_BUILD/agent/sanctl
conf=/run/lab/cconf
prefix=iqn.2026-11.org.sanagent.lab
iqn=$prefix:lab:cu
mkdir -p $conf /run/lab/data
check "configfs and LIO" bash -c "$(declare -f mount_configfs load_modules); mount_configfs && load_modules target_core_mod iscsi_target_mod target_core_file"
cat > $conf/sanagent.conf << CONF
[agent]
state_dir = "/run/lab/cstate"
[node]
roles = ["storage"]
target_dbroot = "/run/lab/cdb"
portals = ["127.0.0.1"]
[group]
name = "lab"
iqn_prefix = "$prefix"
[server.cu1]
iqn = "$prefix:cu1"
[server.cu2]
iqn = "$prefix:cu2"
[volume.cu]
size = "256M"
backstore = "fileio"
device = "/run/lab/data/cu.img"
servers = ["cu1", "cu2"]
CONF
check "sanctl apply exports the volume" bash -c "'$sanctl' apply --direct --config-dir $conf | tail -1 | grep -q '^ok:'"
iscsi-test-cu -i $prefix:cu1 -I $prefix:cu2 iscsi://127.0.0.1/$iqn/0 > /run/lab/cu.txt 2>&1
grep -E 'FAILED|Run Summary|^ *(suites|tests|asserts) ' /run/lab/cu.txt | sed 's/^/# /'
passed=$(awk '$1 == "tests" {print $4}' /run/lab/cu.txt)
total=$(awk '$1 == "tests" {print $2}' /run/lab/cu.txt)
echo "# conformance: $passed of $total tests passed"
check "the conformance suite ran" test -n "$passed"
check "at least 550 tests pass (556 of 615 recorded in docs/target.md)" test "${passed:-0}" -ge 550
finish
