# The agent as an admin meets it: sanagentd runs with a config dir, sets LIO's
# dbroot in the real kernel, answers `sanctl status` over its socket, follows a
# config edit on SIGHUP, and a second apply changes nothing.
. "$SANLAB_SRC/tests/lab/lib.sh"
bin=$SANLAB_BUILD/agent
conf=/run/lab/agent/conf
sock=/run/lab/agent/control.sock
mkdir -p $conf/conf.d

check "configfs and target_core_mod" bash -c "$(declare -f mount_configfs load_modules); mount_configfs && load_modules target_core_mod"
cat > $conf/sanagent.conf << CONF
[agent]
interval = "60s"
state_dir = "/run/lab/agent/state"
control_socket = "$sock"

[node]
roles = ["storage"]
target_dbroot = "/run/lab/agent/db1"
CONF
check "the config is valid" "$bin/sanctl" config check --config-dir $conf
check "sanctl plan (no daemon) shows the dbroot write" bash -c "'$bin/sanctl' plan --config-dir $conf | grep -q 'set LIO dbroot to /run/lab/agent/db1'"

"$bin/sanagentd" --config-dir $conf 2> /run/lab/agent/daemon.log &
pid=$!
check "the daemon opens its socket" wait_for 20 test -S $sock
check "the socket is 0600" bash -c "[[ \$(stat -c %a $sock) == 600 ]]"
status() { "$bin/sanctl" status --config-dir $conf; }
check "sanctl status answers over the socket" bash -c "$(declare -f status); bin=$bin conf=$conf; status | grep -q '^sanagentd .*last run ok'"
check "the kernel's dbroot is the configured one" bash -c "[[ \$(cat /sys/kernel/config/target/dbroot) == /run/lab/agent/db1 ]]"
check "status says ok for dbroot" bash -c "$(declare -f status); bin=$bin conf=$conf; status | grep -q '^ok  dbroot/lio  desired /run/lab/agent/db1  actual /run/lab/agent/db1'"

sed -i 's|/run/lab/agent/db1|/run/lab/agent/db2|' $conf/sanagent.conf
kill -HUP $pid
check "after SIGHUP the kernel follows the edit" wait_for 20 bash -c "[[ \$(cat /sys/kernel/config/target/dbroot) == /run/lab/agent/db2 ]]"
check "and status shows the new value" bash -c "$(declare -f status); bin=$bin conf=$conf; status | grep -q 'desired /run/lab/agent/db2  actual /run/lab/agent/db2'"
check "a second apply makes no changes" bash -c "'$bin/sanctl' apply --config-dir $conf | tail -1 | grep -qx 'ok: 0 change(s)'"
check "plan is empty" bash -c "'$bin/sanctl' plan --config-dir $conf | grep -qx 'no changes: the machine matches the config'"

reply=$(python3 -c "
import socket; s = socket.socket(socket.AF_UNIX); s.connect('$sock'); s.sendall(b'{\"request\": \"rm -rf\"}\n'); print(s.recv(4096).decode().strip())")
check "a malformed request gets an error reply" test "$reply" = '{"error":"unknown request; expected status, plan, apply or reload","ok":false}'
reply=$(python3 -c "
import socket; s = socket.socket(socket.AF_UNIX); s.connect('$sock'); s.sendall(b'x' * 70000); print(s.recv(4096).decode().strip())")
check "an oversized request gets an error reply" test "$reply" = '{"error":"message larger than 65536 bytes","ok":false}'
check "the daemon still answers" bash -c "$(declare -f status); bin=$bin conf=$conf; status | grep -q '^ok  dbroot/lio'"

echo "broken = 1" > $conf/conf.d/99-broken.conf
kill -HUP $pid
check "a broken config on SIGHUP is refused and logged" wait_for 10 grep -q "99-broken.conf:1: \[broken\]: unknown section" /run/lab/agent/daemon.log
check "the daemon keeps the previous config" bash -c "$(declare -f status); bin=$bin conf=$conf; status | grep -q 'desired /run/lab/agent/db2'"

kill -TERM $pid
# Bounded: a daemon that ignores SIGTERM is killed after 10 s (and fails the check).
(sleep 10 && kill -KILL $pid 2> /dev/null) &
watchdog=$!
wait $pid
rc=$?
kill $watchdog 2> /dev/null
check "SIGTERM stops it cleanly (exit 0)" test $rc -eq 0
check "and removes the socket" test ! -e $sock
sed 's/^/# daemon: /' /run/lab/agent/daemon.log
finish
