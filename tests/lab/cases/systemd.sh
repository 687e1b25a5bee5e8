# A guest booted with systemd as init, for the service tests.
. "$SANLAB_SRC/tests/lab/lib.sh"
check "PID 1 is systemd" bash -c '[[ $(cat /proc/1/comm) == systemd ]]'
check "systemctl answers" systemctl show --property=Version
finish
