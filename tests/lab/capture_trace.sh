#!/bin/bash
# A genuine iptables-legacy TRACE capture between two namespaces of our own (prefix lptr).
set -e
OUT=${1:?usage: tests/lab/capture_trace.sh OUTDIR (as root)}
A=lptr-a; B=lptr-b
ip netns del $A 2>/dev/null || true; ip netns del $B 2>/dev/null || true
ip netns add $A; ip netns add $B
ip link add lptra0 netns $A type veth peer name lptrb0 netns $B
ip -n $A addr add 10.99.0.1/24 dev lptra0; ip -n $B addr add 10.99.0.2/24 dev lptrb0
for ns in $A $B; do ip -n $ns link set lo up; done
ip -n $A link set lptra0 up; ip -n $B link set lptrb0 up
modprobe nf_log_syslog 2>/dev/null || true
ip netns exec $B sh -c 'echo nf_log_ipv4 > /proc/sys/net/netfilter/nf_log/2' || true
ip netns exec $B iptables-legacy-restore <<'RULES'
*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p tcp -m tcp --dport 7300 -j TRACE
COMMIT
*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:lptrchain - [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -p tcp -j lptrchain
-A INPUT -p tcp -m tcp --dport 7300 -m conntrack --ctstate NEW,ESTABLISHED -j ACCEPT
-A lptrchain -s 10.0.0.0/8 -p udp -j RETURN
COMMIT
RULES
ip netns exec $B iptables-legacy-save > "$OUT/trace-legacy.rules"
start=$(awk '{print $1}' /proc/uptime)
ip netns exec $B python3 -c '
import socket
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0",7300)); s.listen(1); s.settimeout(5)
c,_=s.accept(); c.recv(10); c.sendall(b"pong"); c.close()' &
sleep 0.5
ip netns exec $A python3 -c '
import socket
s=socket.create_connection(("10.99.0.2",7300),timeout=5); s.sendall(b"ping"); s.recv(10); s.close()'
wait
sleep 0.5
dmesg | grep "TRACE: " | grep "IN=lptrb0 " > "$OUT/trace-legacy.dmesg" || true
ip netns del $A; ip netns del $B
wc -l "$OUT/trace-legacy.dmesg"
