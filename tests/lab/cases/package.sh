# The package as an admin meets it, with systemd as init: dpkg -i the .deb,
# load the modules it lists, drop a file into conf.d, enable --now; the unit
# is active (running) through sd_notify, sanctl answers, reload applies an
# edit, a broken drop-in on reload keeps the old config with the error in
# `systemctl status`, sanrepd.service serves every volume of its file, and
# dpkg --purge leaves nothing behind. The .rpm's file
# list is compared with the .deb's. The packages come from ctest's
# lab.package-build fixture (cpack into $SANLAB_BUILD/lab-packages).
. "$SANLAB_SRC/tests/lab/lib.sh"
pkgs=$SANLAB_BUILD/lab-packages
deb=$(ls -t "$pkgs"/sanagent_*_amd64.deb | head -n 1)
rpm=$(ls -t "$pkgs"/sanagent-*.x86_64.rpm 2> /dev/null | head -n 1)
dropin=/etc/sanagent/conf.d/50-lab.conf

check "dpkg -i installs the .deb (its dependencies are already here)" dpkg -i "$deb"
check "the binaries are in place" test -x /usr/sbin/sanagentd -a -x /usr/sbin/sanrepd -a -x /usr/bin/sanctl
check "sanagent.conf is a conffile" bash -c "dpkg-query -W -f='\${Conffiles}' sanagent | grep -q '/etc/sanagent/sanagent.conf '"
check "conf.d/ is there and empty" bash -c '[[ -d /etc/sanagent/conf.d && -z $(ls -A /etc/sanagent/conf.d) ]]'
check "man pages for all four" bash -c 'for p in man8/sanagentd.8 man8/sanrepd.8 man8/sanctl.8 man5/sanagent.conf.5; do test -s /usr/share/man/$p.gz || exit 1; done'
check "bash completion completes sanctl's commands" bash -c '. /usr/share/bash-completion/bash_completion; . /usr/share/bash-completion/completions/sanctl;
    COMP_WORDS=(sanctl st); COMP_CWORD=1; COMP_LINE="sanctl st"; COMP_POINT=9; _sanctl; [[ ${COMPREPLY[*]} == status ]]'
check "and the replica commands" bash -c '. /usr/share/bash-completion/bash_completion; . /usr/share/bash-completion/completions/sanctl;
    COMP_WORDS=(sanctl replica ""); COMP_CWORD=2; COMP_LINE="sanctl replica "; COMP_POINT=15; _sanctl; [[ ${COMPREPLY[*]} == "status verify resolve" ]]'
check "the unit is installed disabled" bash -c '[[ $(systemctl is-enabled sanagentd.service) == disabled ]]'
check "and nothing started it" bash -c '! systemctl is-active -q sanagentd.service'
check "sanrepd@ without its .env is skipped, not failed" bash -c 'systemctl start sanrepd@vol1.service;
    [[ $(systemctl show -P ConditionResult sanrepd@vol1.service) == no && $(systemctl show -P ActiveState sanrepd@vol1.service) == inactive ]]'
check "sanrepd.service without replicator.toml is skipped, not failed" bash -c 'systemctl start sanrepd.service;
    [[ $(systemctl show -P ConditionResult sanrepd.service) == no && $(systemctl show -P ActiveState sanrepd.service) == inactive ]]'
# One sanrepd for the node: two (standalone) volumes from one file, each with
# its own control socket, file replicas in the unit's state directory.
cat > /etc/sanagent/replicator.toml << 'CONF'
[sanrepd]
node = "lab"
threads = 4

[volume.pk1]
replica = "/var/lib/sanagent/replicator/pk1.img"
size = "16M"

[volume.pk2]
replica = "/var/lib/sanagent/replicator/pk2.img"
size = "16M"
CONF
check "systemctl start sanrepd serves every volume of replicator.toml" systemctl start sanrepd.service
check "each volume has its control socket" wait_for 30 test -S /run/sanrepd/pk1.ctl -a -S /run/sanrepd/pk2.ctl
check "sanctl replica status lists both" bash -c '[[ $(sanctl replica status | grep -c ": primary, replica up-to-date, peer standalone") == 2 ]]'
check "systemctl stop sanrepd ends it cleanly" bash -c 'systemctl stop sanrepd.service && [[ $(systemctl show -P Result sanrepd.service) == success ]]'
rm -f /etc/sanagent/replicator.toml /var/lib/sanagent/replicator/pk*

# What a reboot would do: systemd-modules-load reads the package's list.
check "modules-load.d/sanagent.conf loads every module" systemctl restart systemd-modules-load.service
check "LIO, bonding, nbd and dm_thin_pool are loaded" bash -c 'for m in target_core_mod iscsi_target_mod target_core_iblock target_core_file bonding nbd dm_thin_pool; do grep -q "^$m " /proc/modules || exit 1; done'
check "configfs is mounted" bash -c 'systemctl start sys-kernel-config.mount && mountpoint -q /sys/kernel/config'

cat > $dropin << 'CONF'
[node]
target_dbroot = "/var/lib/sanagent/db1"
CONF
check "enable --now returns once sd_notify said READY=1" timeout 60 systemctl enable --now sanagentd.service
check "systemctl status says active (running)" bash -c 'systemctl status sanagentd.service | grep -q "Active: active (running)"'
check "its STATUS= is the last run's outcome" bash -c '[[ $(systemctl show -P StatusText sanagentd.service) =~ ^last\ run\ ok,\ [1-9][0-9]*\ change ]]'
check "sanctl status answers over the socket" bash -c 'sanctl status | grep -q "^sanagentd .*last run ok"'
check "the kernel's dbroot is the drop-in's" bash -c '[[ $(cat /sys/kernel/config/target/dbroot) == /var/lib/sanagent/db1 ]]'
check "StateDirectory and RuntimeDirectory are 0700" bash -c '[[ $(stat -c %a /var/lib/sanagent) == 700 && $(stat -c %a /run/sanagent) == 700 ]]'

sed -i 's|/db1|/db2|' $dropin
check "systemctl reload" systemctl reload sanagentd.service
check "the reload applied the edited drop-in" wait_for 20 bash -c '[[ $(cat /sys/kernel/config/target/dbroot) == /var/lib/sanagent/db2 ]]'
check "sanctl status shows it" wait_for 10 bash -c 'sanctl status | grep -q "^ok  dbroot/lio  desired /var/lib/sanagent/db2  actual /var/lib/sanagent/db2"'

echo "broken = 1" > /etc/sanagent/conf.d/99-broken.conf
check "systemctl reload with a broken drop-in" systemctl reload sanagentd.service
check "the error is in the journal" wait_for 20 bash -c 'journalctl -u sanagentd.service -o cat | grep -q "99-broken.conf:1: \[broken\]: unknown section"'
check "and in systemctl status" bash -c 'systemctl status -n 20 sanagentd.service | grep -q "99-broken.conf:1"'
check "the daemon is still active (running)" bash -c 'systemctl status sanagentd.service | grep -q "Active: active (running)"'
check "with the previous config" bash -c 'sanctl status | grep -q "desired /var/lib/sanagent/db2"'
rm /etc/sanagent/conf.d/99-broken.conf

check "systemctl stop ends it cleanly" bash -c 'systemctl stop sanagentd.service && [[ $(systemctl show -P Result sanagentd.service) == success ]]'
check "the socket is gone" test ! -e /run/sanagent/control.sock
echo "# $(systemd-analyze security --no-pager sanagentd.service 2> /dev/null | tail -n 1)"

check "dpkg --purge" dpkg --purge sanagent
check "no package left" bash -c '! dpkg-query -W -f="\${Status}" sanagent 2> /dev/null | grep -q installed'
check "no unit, binary or enable link left" bash -c '! systemctl cat sanagentd.service > /dev/null 2>&1 && test ! -e /usr/sbin/sanagentd &&
    [[ -z $(find /etc/systemd/system /usr/lib/systemd/system -name "sanagentd*" -o -name "sanrepd*") ]]'
check "no config left" test ! -e /etc/sanagent
check "no state left (the empty dbroot dirs went too)" test ! -e /var/lib/sanagent

# The .rpm ships the same files as the .deb, except Debian's own changelog.
if [[ -n $rpm ]]; then
    files_deb() { dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {print substr($6, 2)}' | grep -v '^/usr/share/doc/sanagent/changelog.gz$' | sort; }
    files_rpm() { rpm -qp --nosignature --qf '[%{FILEMODES:perms} %{FILENAMES}\n]' "$rpm" 2> /dev/null | awk '$1 !~ /^d/ {print $2}' | sort; }
    check "rpm -qlp lists the .deb's files" diff <(files_deb) <(files_rpm)
    check "both own /etc/sanagent/conf.d" bash -c "rpm -qlp '$rpm' 2> /dev/null | grep -qx /etc/sanagent/conf.d && dpkg-deb -c '$deb' | grep -q ' ./etc/sanagent/conf.d/\$'"
else
    check "an .rpm was built" false
fi
finish
