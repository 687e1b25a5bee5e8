# Never ends: the lab's own test that a hung guest is killed at its bound.
echo "hanging on purpose"
sleep infinity
