# %postun: forget removed units; on upgrade ($1 >= 1) restart a running agent
# into the new binary (a restart never touches volumes).
if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload > /dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart sanagentd.service > /dev/null 2>&1 || :
    fi
fi
