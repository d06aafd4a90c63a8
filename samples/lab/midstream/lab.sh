# Docker-like lab in namespaces lpz9-*; sourced by the scenario scripts.
# Layout (modelled on tests/lab/topology.py):
#   lpz9-c1 eth0 172.29.0.2 --vethc1-+
#                                    lpz9br0 172.29.0.1/24 (+ fd29::1/64) in lpz9-host
#   lpz9-c2 eth0 172.29.0.3 --vethc2-+
#   lpz9-host up0 10.88.0.1/24 (fd88::1/64) ---- lpz9-peer eth0 10.88.0.2/24 (fd88::2/64)
#   The peer has NO route to 172.29.0.0/24 (outbound needs MASQUERADE) for IPv4.
#   nat: MASQUERADE -s 172.29.0.0/24 ! -o lpz9br0 ; DNAT 10.88.0.1:8080 -> 172.29.0.2:80
set -u
LAB=${LAB:-/tmp/lab}  # where the captures are written
NS_H=lpz9-host NS_C1=lpz9-c1 NS_C2=lpz9-c2 NS_P=lpz9-peer
BRNF=${BRNF:-1}          # bridge-nf-call-iptables in the host namespace
hx() { ip netns exec $NS_H "$@"; }
lab_down() {
  for n in $NS_H $NS_C1 $NS_C2 $NS_P; do ip netns del $n 2>/dev/null; done
  [ -n "${KPID:-}" ] && kill $KPID 2>/dev/null
  return 0
}
trap 'lab_down' EXIT INT TERM
lab_up() {
  lab_down
  for n in $NS_H $NS_C1 $NS_C2 $NS_P; do ip netns add $n; ip -n $n link set lo up; done
  ip -n $NS_H link add lpz9br0 address 02:00:ac:1d:00:01 type bridge
  ip -n $NS_H addr add 172.29.0.1/24 dev lpz9br0
  ip -n $NS_H addr add fd29::1/64 dev lpz9br0 nodad
  ip -n $NS_H link set lpz9br0 up
  local i=2
  for c in c1 c2; do
    ip -n $NS_H link add veth$c address 02:00:ac:1d:01:0$i type veth peer name eth0 address 02:00:ac:1d:00:0$i netns lpz9-$c
    ip -n $NS_H link set veth$c master lpz9br0 up
    ip -n lpz9-$c addr add 172.29.0.$i/24 dev eth0
    ip -n lpz9-$c addr add fd29::$i/64 dev eth0 nodad
    ip -n lpz9-$c link set eth0 up
    ip -n lpz9-$c route add default via 172.29.0.1
    ip -n lpz9-$c -6 route add default via fd29::1
    i=$((i+1))
  done
  ip -n $NS_H link add up0 address 02:00:0a:58:00:01 type veth peer name eth0 address 02:00:0a:58:00:02 netns $NS_P
  ip -n $NS_H addr add 10.88.0.1/24 dev up0
  ip -n $NS_H addr add fd88::1/64 dev up0 nodad
  ip -n $NS_H link set up0 up
  ip -n $NS_P addr add 10.88.0.2/24 dev eth0
  ip -n $NS_P addr add fd88::2/64 dev eth0 nodad
  ip -n $NS_P link set eth0 up
  ip -n $NS_P -6 route add fd29::/64 via fd88::1    # IPv6: routed, no NAT
  hx sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
  sysctl -qw net.netfilter.nf_log_all_netns=1
  hx sysctl -qw net.bridge.bridge-nf-call-iptables=$BRNF net.bridge.bridge-nf-call-ip6tables=$BRNF
}
# LOG rule first in every chain (prefix lpz9:TAG:table:hook), then NAT; extra rules come from
# variables PRE_<table>_<CHAIN> (before the LOG rule) and POST_<table>_<CHAIN> (after it).
ruleset() {
  local tag=$1 t c v
  declare -A H=([PREROUTING]=pre [INPUT]=in [FORWARD]=fwd [OUTPUT]=out [POSTROUTING]=post)
  for t in raw mangle nat filter; do
    echo "*$t"
    case $t in raw) cs="PREROUTING OUTPUT";; mangle) cs="PREROUTING INPUT FORWARD OUTPUT POSTROUTING";;
      nat) cs="PREROUTING INPUT OUTPUT POSTROUTING";; filter) cs="INPUT FORWARD OUTPUT";; esac
    for c in $cs; do
      v=PRE_${t}_$c; [ -n "${!v:-}" ] && echo "${!v}"
      echo "-A $c -j LOG --log-prefix \"lpz9:$tag:$t:${H[$c]} \""
      v=POST_${t}_$c; [ -n "${!v:-}" ] && echo "${!v}"
    done
    if [ $t = nat ]; then
      echo "-A PREROUTING -d 10.88.0.1/32 -p tcp --dport 8080 -j DNAT --to-destination 172.29.0.2:80"
      echo "-A OUTPUT -d 10.88.0.1/32 -p tcp --dport 8080 -j DNAT --to-destination 172.29.0.2:80"
      echo "-A POSTROUTING -s 172.29.0.0/24 ! -o lpz9br0 -j MASQUERADE"
    fi
    echo COMMIT
  done
}
ruleset6() {
  local tag=$1 t c v
  declare -A H=([PREROUTING]=pre [INPUT]=in [FORWARD]=fwd [OUTPUT]=out [POSTROUTING]=post)
  for t in raw mangle filter; do
    echo "*$t"
    case $t in raw) cs="PREROUTING OUTPUT";; mangle) cs="PREROUTING INPUT FORWARD OUTPUT POSTROUTING";;
      filter) cs="INPUT FORWARD OUTPUT";; esac
    for c in $cs; do
      v=PRE6_${t}_$c; [ -n "${!v:-}" ] && echo "${!v}"
      echo "-A $c -p tcp -j LOG --log-prefix \"lpz9:$tag:$t:${H[$c]} \""
      echo "-A $c -p udp -j LOG --log-prefix \"lpz9:$tag:$t:${H[$c]} \""
      v=POST6_${t}_$c; [ -n "${!v:-}" ] && echo "${!v}"
    done
    echo COMMIT
  done
}
load_rules() {   # load_rules TAG  -> also saves $LAB/$TAG.rules
  ruleset $1 > $LAB/$1.restore
  hx iptables-restore < $LAB/$1.restore
  hx iptables-save > $LAB/$1.rules
}
load_rules6() {
  ruleset6 $1 > $LAB/$1.restore6
  hx ip6tables-restore < $LAB/$1.restore6
  hx ip6tables-save > $LAB/$1.rules6
}
cap_start() {    # cap_start TAG : read kernel lines carrying lpz9:TAG: into $LAB/TAG.log
  rm -f $LAB/.fifo.$1 $LAB/.ready.$1; mkfifo $LAB/.fifo.$1
  python3 $LAB/kmsg_reader.py "lpz9:$1:" $LAB/$1.log < $LAB/.fifo.$1 > $LAB/.ready.$1 &
  KPID=$!
  exec 7>$LAB/.fifo.$1
  while ! grep -q ready $LAB/.ready.$1 2>/dev/null; do sleep 0.05; done
  CAPTAG=$1
}
cap_stop() {
  sleep 0.5
  exec 7>&-
  wait $KPID 2>/dev/null; KPID=
  rm -f $LAB/.fifo.$CAPTAG $LAB/.ready.$CAPTAG
  echo "captured $(wc -l < $LAB/$CAPTAG.log) lines -> $LAB/$CAPTAG.log"
}
run_bg() { ip netns exec "$@" & sleep 0.4; }
