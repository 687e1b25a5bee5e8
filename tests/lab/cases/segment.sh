# Several guests on one private L2 segment: each reaches every other.
. "$SANLAB_SRC/tests/lab/lib.sh"
for peer in $SANLAB_PEERS; do
    check "$(hostname) reaches $peer" wait_for 30 busybox ping -c 1 -W 1 "$peer"
done
finish
