# One time source, as an admin sets it up: a chronyd in its own network
# namespace serves its local clock (local stratum 8, allow), the agent writes
# the client's chrony drop-in pointing at it, the client's chronyd selects it
# and `sanctl status` says synchronised; pointed at a server nobody answers,
# status turns to unsynchronised with the reason.
#
# Also records the `chronyc -c` outputs the unit tests replay
# (tests/fixtures/chrony/README.md).
. "$SANLAB_SRC/tests/lab/lib.sh"
bin=$SANLAB_BUILD/agent
lab=/run/lab/time
fix=/lab/out/fixtures
mkdir -p $lab/conf/conf.d $lab/state $fix
install -d -m 0700 $lab/srv

# The wire: the client (this namespace) 10.77.0.2, the server's namespace 10.77.0.1.
ip link set lo up
ip netns add ntpsrv
ip link add veth-cl type veth peer name veth-srv
ip link set veth-srv netns ntpsrv
ip addr add 10.77.0.2/24 dev veth-cl
ip link set veth-cl up
ip -n ntpsrv link set lo up
ip -n ntpsrv addr add 10.77.0.1/24 dev veth-srv
ip -n ntpsrv link set veth-srv up

# The server never steers the clock (-x): both chronyds share this kernel's clock.
cat > $lab/srv/chrony.conf << CONF
local stratum 8
allow 10.77.0.0/24
cmdport 0
bindcmdaddress $lab/srv/chronyd.sock
pidfile $lab/srv/chronyd.pid
CONF
check "the server's chronyd starts in its namespace" ip netns exec ntpsrv chronyd -x -u root -f $lab/srv/chrony.conf
srvc() { chronyc -h $lab/srv/chronyd.sock "$@"; }
check "the server serves its local clock at stratum 8" wait_for 10 bash -c "$(declare -f srvc); lab=$lab; srvc -c tracking | grep -q ',8,.*,Normal$'"

# The client: Debian's chrony.conf as installed (confdir, sourcedir), no sources it can reach.
check "the client's chronyd starts with Debian's chrony.conf" chronyd -F 1
check "chronyc answers" wait_for 10 chronyc -n -c tracking
chronyc -n -c tracking > $fix/tracking-unsynchronised.csv
chronyc -n -c sources > $fix/sources-empty.csv

cat > $lab/conf/sanagent.conf << CONF
[agent]
state_dir = "$lab/state"

[node]
roles = ["host"]

[time]
servers = ["10.77.0.1"]
minpoll = 0
maxpoll = 2
timezone = "Europe/Paris"
max_offset = "100ms"
CONF
check "the config is valid" "$bin/sanctl" config check --config-dir $lab/conf
check "plan writes the sources drop-in and reloads" bash -c "'$bin/sanctl' plan --direct --config-dir $lab/conf | grep -q 'chronyc reload sources'"
check "apply succeeds" "$bin/sanctl" apply --direct --config-dir $lab/conf
check "the drop-in names the server" grep -qx 'server 10.77.0.1 iburst minpoll 0 maxpoll 2' /etc/chrony/sources.d/sanagent.sources
check "no temp file is left behind" bash -c "! ls -A /etc/chrony/sources.d | grep -q '^\.'"
check "the time zone link" bash -c "[[ \$(readlink /etc/localtime) == /usr/share/zoneinfo/Europe/Paris ]]"
check "chronyc sources lists the server" bash -c "chronyc -n -c sources | grep -q '^\^,.,10.77.0.1,'"
check "chronyd selects it" wait_for 40 bash -c "chronyc -n -c sources | grep -q '^\^,\*,10.77.0.1,'"
check "tracking says stratum 9, leap normal" wait_for 10 bash -c "chronyc -n -c tracking | grep -q '^[0-9A-F]*,10.77.0.1,9,.*,Normal$'"
chronyc -n -c tracking > $fix/tracking-synchronised.csv
chronyc -n -c sources > $fix/sources-synchronised.csv
chronyc tracking | sed 's/^/# /'
st() { "$bin/sanctl" status --direct --config-dir $lab/conf; }
check "sanctl status says synchronised" bash -c "$(declare -f st); bin=$bin lab=$lab; st | grep -q '^ok  time/sync  .*actual synchronised to 10.77.0.1 stratum 9'"
st | sed 's/^/# status: /'
check "a second apply changes nothing" bash -c "'$bin/sanctl' apply --direct --config-dir $lab/conf | tail -1 | grep -qx 'ok: 0 change(s)'"

# A server nobody answers: the sources change is a reload, and status says why it is unsynchronised.
sed -i 's/10.77.0.1"/10.77.0.99"/' $lab/conf/sanagent.conf
check "apply the unreachable server" "$bin/sanctl" apply --direct --config-dir $lab/conf
check "chronyd no longer has a selected source" wait_for 10 bash -c "! chronyc -n -c sources | grep -q '^\^,\*'"
chronyc -n -c tracking > $fix/tracking-unreachable.csv
chronyc -n -c sources > $fix/sources-unreachable.csv
check "sanctl status says unsynchronised, degraded, with the reason" bash -c "$(declare -f st); bin=$bin lab=$lab; st | grep '^degraded  time/sync  .*actual unsynchronised' | grep -q 'no selected source'"
st | sed 's/^/# status: /'

# Bad input: nothing applied.
printf '[time]\nservers = ["bad host!"]\n' > $lab/conf/conf.d/99-bad.conf
check "a bad server name is refused with file:line" bash -c "'$bin/sanctl' config check --config-dir $lab/conf 2>&1 | grep -q '99-bad.conf:2: \[time\] servers:'"
check "and apply changes nothing" bash -c "! '$bin/sanctl' apply --direct --config-dir $lab/conf && grep -q 10.77.0.99 /etc/chrony/sources.d/sanagent.sources"

kill "$(cat $lab/srv/chronyd.pid)" "$(cat /run/chrony/chronyd.pid)" 2> /dev/null
finish
