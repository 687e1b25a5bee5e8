#!/usr/bin/python3
# Tears down every LIO object under a configfs root in the kernel's removal
# order (what a reboot does to the kernel's state), without forking per
# object: TPGs disabled, mapped LUNs, ACLs, LUNs, portals, TPGs, targets,
# storage objects, HBAs. Lab and bench helper; not shipped.
import os
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "/sys/kernel/config/target"


def dirs(path):
    try:
        return [e.name for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def links(path):
    return [e.name for e in os.scandir(path) if e.is_symlink()]


iscsi = os.path.join(root, "iscsi")
for target in dirs(iscsi):
    if target == "discovery_auth":
        continue
    tdir = os.path.join(iscsi, target)
    for tpg in [d for d in dirs(tdir) if d.startswith("tpgt_")]:
        p = os.path.join(tdir, tpg)
        with open(os.path.join(p, "enable"), "w") as f:
            f.write("0")
        for acl in dirs(os.path.join(p, "acls")):
            a = os.path.join(p, "acls", acl)
            for m in [d for d in dirs(a) if d.startswith("lun_")]:
                for link in links(os.path.join(a, m)):
                    os.unlink(os.path.join(a, m, link))
                os.rmdir(os.path.join(a, m))
            os.rmdir(a)
        for lun in dirs(os.path.join(p, "lun")):
            for link in links(os.path.join(p, "lun", lun)):
                os.unlink(os.path.join(p, "lun", lun, link))
            os.rmdir(os.path.join(p, "lun", lun))
        for np in dirs(os.path.join(p, "np")):
            os.rmdir(os.path.join(p, "np", np))
        os.rmdir(p)
    os.rmdir(tdir)
core = os.path.join(root, "core")
for hba in dirs(core):
    if hba == "alua":
        continue
    for so in dirs(os.path.join(core, hba)):
        os.rmdir(os.path.join(core, hba, so))
    os.rmdir(os.path.join(core, hba))
# The iscsi fabric group holds a reference on iscsi_target_mod.
if os.path.isdir(iscsi):
    os.rmdir(iscsi)
