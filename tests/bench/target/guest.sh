# Inside one lab guest: sanagent converges 1 / 100 / 1000 volumes (fileio on
# sparse files, two servers with CHAP each) from empty and again with nothing
# to do; then targetcli restores the saveconfig.json it wrote of the same tree.
# Prints "BENCH n full_s nochange_s targetcli_s" lines for the host to tabulate.
. "$SANLAB_SRC/tests/lab/lib.sh"
sanctl=$SANLAB_BUILD/agent/sanctl
clear_lio="python3 $SANLAB_SRC/tests/lab/tools/lio_clear.py"
b=/run/lab/bench
mkdir -p $b/conf $b/data $b/secrets /run/dbus
chmod 700 $b/secrets
printf 'server-a-secret-01\n' > $b/secrets/a && printf 'server-b-secret-01\n' > $b/secrets/b && chmod 600 $b/secrets/*
mount_configfs && load_modules target_core_mod iscsi_target_mod target_core_file
dbus-daemon --system --fork 2> /dev/null
now() { date +%s.%N; }
for n in 1 100 1000; do
    $clear_lio
    rm -rf $b/state $b/data/*
    python3 - "$n" "$b" << 'PY'
import sys
n, b = int(sys.argv[1]), sys.argv[2]
out = [f'[agent]\nstate_dir = "{b}/state"\n[node]\nroles = ["storage"]\ntarget_dbroot = "{b}/db"\nportals = ["127.0.0.1"]\n'
       f'[group]\nname = "bench"\niqn_prefix = "iqn.2026-11.org.sanagent.bench"\n']
for s in "ab":
    out.append(f'[server.{s}]\niqn = "iqn.2026-11.org.sanagent.bench:{s}"\nchap_user = "{s}"\nchap_secret_file = "{b}/secrets/{s}"\n')
for i in range(n):
    open(f"{b}/data/v{i}.img", "w").truncate(64 << 20)
    out.append(f'[volume.v{i}]\nsize = "64M"\nbackstore = "fileio"\ndevice = "{b}/data/v{i}.img"\nservers = ["a", "b"]\n')
open(f"{b}/conf/sanagent.conf", "w").write("".join(out))
PY
    t0=$(now); "$sanctl" apply --direct --config-dir $b/conf > $b/apply.txt; t1=$(now)
    "$sanctl" apply --direct --config-dir $b/conf > $b/again.txt; t2=$(now)
    tail -1 $b/apply.txt | sed 's/^/# full: /'
    tail -1 $b/again.txt | sed 's/^/# no change: /'
    targetcli saveconfig $b/save.json > /dev/null 2>&1
    $clear_lio
    t3=$(now); timeout 900 targetcli restoreconfig $b/save.json > /dev/null 2>&1; rc=$?; t4=$(now)
    [[ $rc == 0 ]] || echo "# targetcli restoreconfig exited $rc (124: stopped at 900 s, a lower bound)"
    echo "BENCH $n $(echo "$t1 - $t0" | bc) $(echo "$t2 - $t1" | bc) $(echo "$t4 - $t3" | bc)"
done
finish
