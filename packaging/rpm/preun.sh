# %preun: on erase ($1 = 0) stop the agent; sanrepd and sanrepd@ instances keep serving
# their volumes until the admin stops them.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl stop sanagentd.service > /dev/null 2>&1 || :
fi
