# libiscsi's SCSI conformance suite against a volume exported by sanctl: a
# thin fileio volume assigned to two servers (the suite logs in as both to
# test reservations), writes and persistent reservations included. The pass
# count and the cause of every failure are in docs/target.md; the check asks
# only that nothing regresses below it.
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
# --dataloss: the volume is a scratch file, and without it libiscsi skips every
# write and persistent-reservation OUT command yet counts the PR tests that
# needed them as failed ("--dataloss flag is not set in. Skipping PROUT").
iscsi-test-cu --dataloss -i $prefix:cu1 -I $prefix:cu2 iscsi://127.0.0.1/$iqn/0 > /run/lab/cu.txt 2>&1
# The whole report, with the name of every failing test, for docs/target.md.
cp /run/lab/cu.txt /lab/out/iscsi-test-cu.txt 2> /dev/null || true
grep -E 'FAILED|Run Summary|^ *(suites|tests|asserts) ' /run/lab/cu.txt | sed 's/^/# /'
passed=$(awk '$1 == "tests" {print $4}' /run/lab/cu.txt)
total=$(awk '$1 == "tests" {print $2}' /run/lab/cu.txt)
echo "# conformance: $passed of $total tests passed"
check "the conformance suite ran" test -n "$passed"
# Every PERSISTENT RESERVE OUT rewrites <dbroot>/pr/aptpl_<serial>; the dbroot
# module made pr/ (without it each PR OUT failed: 36 tests).
check "persistent reservations wrote their metadata under dbroot/pr" bash -c "ls /run/lab/cdb/pr/aptpl_* > /dev/null"
check "at least 565 tests pass (573 of 615 recorded in docs/target.md)" test "${passed:-0}" -ge 565
finish
