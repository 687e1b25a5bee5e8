# What sanctl observe reads back from the real kernel and tools: a hand-made LIO
# target, a thin pool with a volume and a snapshot on the guest's disk, links.
# Also records the lvm JSON reports the unit tests replay (tests/fixtures/lvm).
. "$SANLAB_SRC/tests/lab/lib.sh"
sanctl=$SANLAB_BUILD/agent/sanctl
iqn=iqn.2026-11.org.sanagent.lab:observe
initiator=iqn.2026-11.org.sanagent.lab:host1

check "configfs and the target modules" bash -c "$(declare -f mount_configfs load_modules); mount_configfs && load_modules target_core_mod iscsi_target_mod target_core_file dm_thin_pool"
check "a hand-made fileio target" make_fileio_target $iqn $initiator
check "udevd runs" start_udev
check "a thin pool, a thin volume and a snapshot on /dev/vda" make_thin_pool /dev/vda sanpool

mkdir -p /lab/out/fixtures
lvm vgs --reportformat json --units b --nosuffix -o vg_name,vg_size,vg_free,vg_extent_size,pv_count,lv_count,vg_tags > /lab/out/fixtures/vgs.json
lvm lvs --reportformat json --units b --nosuffix -o vg_name,lv_name,lv_uuid,lv_attr,lv_size,pool_lv,origin,data_percent,metadata_percent,lv_tags,lv_when_full > /lab/out/fixtures/lvs.json

"$sanctl" observe --json > /run/lab/observe.json 2> /run/lab/observe.err
check "sanctl observe --json exits 0" test -s /run/lab/observe.json
q() { python3 -c "import json,sys; d=json.load(open('/run/lab/observe.json')); sys.exit(0 if ($1) else 1)"; }
check "it sees the loopback link" q "any(l['name']=='lo' for l in d['links'])"
check "it sees the target, its portal and LUN" q "any(t['iqn']=='$iqn' and t['tpgs'][0]['portals']==['127.0.0.1:3260'] and t['tpgs'][0]['luns'][0]['storage_object']=='fileio_0/disk0' for t in d['lio']['iscsi_targets'])"
check "it sees the ACL and its mapped LUN" q "d['lio']['iscsi_targets'][0]['tpgs'][0]['acls'][0]['initiator']=='$initiator'"
check "it sees the volume group" q "any(v['name']=='sanpool' for v in d['lvm']['volume_groups'])"
check "it sees the thin pool with its data%" q "any(l['name']=='thin' and 'data_percent' in l for l in d['lvm']['logical_volumes'])"
check "it sees the thin volume's tag" q "any(l['name']=='vol1' and l['tags']==['sanagent'] for l in d['lvm']['logical_volumes'])"
check "it sees the snapshot's origin" q "any(l['name']=='vol1-snap' and l['origin']=='vol1' for l in d['lvm']['logical_volumes'])"
"$sanctl" observe
finish
