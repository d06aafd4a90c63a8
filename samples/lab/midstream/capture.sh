#!/bin/bash
# Scenario 11: the log starts mid-connection. c1 172.29.0.2:40060 connects to peer
# 10.88.0.2:9060 (MASQUERADE) BEFORE the capture starts; during the capture the peer (server)
# speaks first ("hello"), c1 answers, the peer closes. Truth: orig = c1 -> peer (conntrack).
. "$(dirname "$0")"/lab.sh
TAG=s11
lab_up; load_rules $TAG
ip netns exec $NS_P python3 -c '
import socket,time
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0",9060)); s.listen(1)
c,a=s.accept(); time.sleep(2); c.sendall(b"hello"); c.recv(10); time.sleep(0.2); c.close()' & S=$!
sleep 0.3
ip netns exec $NS_C1 python3 -c '
import socket,time
s=socket.socket(); s.bind(("0.0.0.0",40060)); s.connect(("10.88.0.2",9060))
d=s.recv(10); s.sendall(b"hi:"+d); time.sleep(0.5); s.close()' & C=$!
sleep 1
cap_start $TAG
wait $S $C
hx conntrack -L 2>/dev/null > $LAB/$TAG.conntrack || true
cap_stop
