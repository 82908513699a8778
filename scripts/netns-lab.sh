#!/usr/bin/env bash
# Three "machines" on this one, for trying remote workers (README: "Actors on other
# machines"): network namespaces va-sup (10.77.1.1, holds the bridge), va-w1 (10.77.1.2)
# and va-w2 (10.77.1.3), each worker joined to the bridge by a veth pair.
#
#   sudo scripts/netns-lab.sh up      # make them
#   sudo scripts/netns-lab.sh cut w1  # take w1's link down (restore: sudo ... restore w1)
#   sudo scripts/netns-lab.sh down    # remove them (and the veth pairs with them)
#
# Needs root and iproute2. The test suite builds its own labs (tests/remote/netlab.py).
set -euo pipefail

up() {
  ip netns add va-sup
  ip -n va-sup link set lo up
  ip -n va-sup link add br0 type bridge
  ip -n va-sup addr add 10.77.1.1/24 dev br0
  ip -n va-sup link set br0 up
  local i=2
  for w in w1 w2; do
    ip netns add "va-$w"
    ip -n "va-$w" link set lo up
    ip link add "va-$w-h" type veth peer name "va-$w-p"
    ip link set "va-$w-h" netns va-sup
    ip link set "va-$w-p" netns "va-$w"
    ip -n va-sup link set "va-$w-h" master br0 up
    ip -n "va-$w" addr add "10.77.1.$i/24" dev "va-$w-p"
    ip -n "va-$w" link set "va-$w-p" up
    i=$((i + 1))
  done
  echo "va-sup 10.77.1.1, va-w1 10.77.1.2, va-w2 10.77.1.3"
}

down() {
  for ns in va-w2 va-w1 va-sup; do
    ip netns del "$ns" 2>/dev/null || true
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  cut) ip -n va-sup link set "va-${2:?which worker}-h" down ;;
  restore) ip -n va-sup link set "va-${2:?which worker}-h" up ;;
  *) echo "usage: $0 up|down|cut WORKER|restore WORKER" >&2; exit 2 ;;
esac
