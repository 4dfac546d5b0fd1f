#!/usr/bin/env bash
# Hand-made two-node overlay lab in the shape of Shoal's (see bench/overlay.sh, dataplane/src/lab.rs,
# dataplane/src/net/kernel.rs):
#   fp-sw                 underlay switch: bridge fp-sw0, one veth port per node
#   fp-n1, fp-n2          nodes: fp-eth0 (192.168.250.1/.2), the VXLAN UDP socket lives here
#   fp-x1, fp-x2          the network's namespace on each node: bridge fp-br (gateway 10.250.0.1),
#                         VXLAN device fp-vx (created in fp-nN, moved here), task port fp-pN
#   fp-t1, fp-t2          tasks: fp-e0 10.250.0.2 (node 1) / 10.250.0.3 (node 2)
# Source it, then: lab_up; ...; lab_down.  Knobs (env):
#   MTU=1500|9000   underlay MTU; overlay MTU = MTU-50
#   MODE=shoal      bridge + VXLAN (FDB entries, proxy ARP, no learning), as Shoal builds it
#   MODE=fdb        same devices + tc eBPF bridge bypass: task port -> VXLAN dev (FDB), VXLAN -> task
#   MODE=md         external (collect_md) VXLAN device + tc eBPF (set_tunnel_key), bridge only slow path
#   MODE=encap-node VXLAN encap/decap in tc eBPF (fp_encap.c), task host ends in the node namespace,
#                   no VXLAN device, no bridge, no network namespace (Cilium-like layout)
#   MODE=encap-net  same programs, Shoal's layout kept: host ends in the network namespace (bridge +
#                   kernel VXLAN device stay as the slow path); a veth "uplink" fp-u/fp-ux between
#                   node and network namespace carries the fast path with bpf_redirect_peer both ways
#   MODE=route      control experiment: encap-node's layout and programs with FP_NOENCAP (no VXLAN,
#                   task frames routed natively over the underlay): the ceiling for a task behind a veth
#   MODE=macvlan    no eBPF, no veth, no bridge: the task's interface is a macvlan (bridge mode) of the
#                   network's VXLAN device (FDB + proxy ARP as in shoal), moved into the task namespace
#   RXPEER=1|0      fast path RX: bpf_redirect_peer (1) or bpf_redirect to the host end (0)
#   BRNF=1|0        net.bridge.bridge-nf-call-{ip,ip6,arp}tables in fp-x* (kernel default 1)
#   SWBRNF=1|0      same in the underlay switch namespace (affects both paths)
#   UDPCSUM=0|1     outer UDP checksum (shoal/fdb: vxlan [no]udpcsum; md: BPF_F_ZERO_CSUM_TX unless 1)
#   VETHGRO=0|1     ethtool -K gro on for every veth (veth NAPI path)
#   XDP=0|1         XDP_PASS program on every veth (veth NAPI + GRO)
#   GROLIST=0|1     ethtool -K rx-gro-list on + rx-udp-gro-forwarding on the node's fp-eth0
#   TNLSEG=1|0      tx-udp_tnl-segmentation on the nodes' fp-eth0 (0: the stack segments tunnel GSO
#                   packets in software before the underlay, as with a NIC that lacks the offload)
#   VXGRO=1|0       GRO on the VXLAN device (0: ethtool -K fp-vx gro off -> gro_cells hand to netif_rx)
#   TSQ=            net.ipv4.tcp_limit_output_bytes in both task and node namespaces (empty: default)
set -u
FP=${FP:-/tmp/fastpath}
OBJ=${OBJ:-$FP/bpf/fp.o}
EOBJ=$FP/bpf/fp_encap.o
BPFFS=/sys/fs/bpf
MTU=${MTU:-1500}; MODE=${MODE:-shoal}; RXPEER=${RXPEER:-1}; BRNF=${BRNF:-1}; SWBRNF=${SWBRNF:-1}
UDPCSUM=${UDPCSUM:-0}; VETHGRO=${VETHGRO:-0}; XDP=${XDP:-0}; GROLIST=${GROLIST:-0}
VXGRO=${VXGRO:-1}; TSQ=${TSQ:-}; TNLSEG=${TNLSEG:-1}
VNI=4096
U1=192.168.250.1; U2=192.168.250.2
GW=10.250.0.1; T1=10.250.0.2; T2=10.250.0.3
GWMAC=02:fa:00:00:00:01; M1=02:fa:00:00:00:02; M2=02:fa:00:00:00:03
NSS="fp-t1 fp-t2 fp-x1 fp-x2 fp-n1 fp-n2 fp-sw"

nsx() { local ns=$1; shift; nsenter --net=/run/netns/"$ns" "$@"; }
# hex bytes of an IPv4 address (network order) / a little-endian u32 / a MAC
iphex() { local IFS=.; set -- $1; printf '%02x %02x %02x %02x' "$1" "$2" "$3" "$4"; }
u32hex() { printf '%02x %02x %02x %02x' $(($1 & 255)) $((($1 >> 8) & 255)) $((($1 >> 16) & 255)) $((($1 >> 24) & 255)); }
machex() { echo "$1" | tr ':' ' '; }
ifidx() { ip -n "$1" -o link show dev "$2" | cut -d: -f1; }

lab_down() {
  local ns
  for ns in $NSS; do
    if [ -e /run/netns/$ns ]; then
      # processes we started in it (iperf3)
      local p; for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null; done
      ip netns del "$ns" 2>/dev/null
    fi
  done
  rm -rf "$BPFFS"/fp-x1 "$BPFFS"/fp-x2 "$BPFFS"/fp-n1 "$BPFFS"/fp-n2
}

set_brnf() { # ns value
  local k; for k in iptables ip6tables arptables; do
    ip netns exec "$1" sh -c "echo $2 > /proc/sys/net/bridge/bridge-nf-call-$k" || return 1
  done
}

node_up() { # i  (1|2)
  local i=$1 u l r lm rm mtu=$((MTU - 50))
  if [ "$i" = 1 ]; then u=$U1; r=$U2; l=$T1; lm=$M1; rm=$M2; else u=$U2; r=$U1; l=$T2; lm=$M2; rm=$M1; fi
  local rt=$([ "$i" = 1 ] && echo $T2 || echo $T1)
  local n=fp-n$i x=fp-x$i t=fp-t$i
  ip netns add $n && ip netns add $t || return 1
  ip -n $n link set lo up; ip -n $t link set lo up
  ip -n fp-sw link add fp-s$i mtu $MTU type veth peer name fp-eth0 netns $n mtu $MTU || return 1
  ip -n fp-sw link set fp-s$i master fp-sw0 up
  ip -n $n addr add $u/24 dev fp-eth0; ip -n $n link set fp-eth0 up
  if [ "$MODE" = encap-node ] || [ "$MODE" = route ]; then
    ip -n $n link add fp-p$i mtu $mtu type veth peer name fp-e0 netns $t mtu $mtu address $lm || return 1
    ip -n $n link set fp-p$i up
    ip -n $t link set fp-e0 up; ip -n $t addr add $l/24 dev fp-e0
    return 0
  fi
  ip netns add $x || return 1
  ip -n $x link set lo up
  # the network namespace: bridge with the gateway address
  ip -n $x link add fp-br mtu $mtu address $GWMAC type bridge || return 1
  ip -n $x addr add $GW/24 dev fp-br; ip -n $x link set fp-br up
  [ "$BRNF" = 1 ] || set_brnf $x 0 || return 1
  # VXLAN device created in the node's namespace (its socket stays there), moved to the network's
  local csum=noudpcsum; [ "$UDPCSUM" = 1 ] && csum=udpcsum
  if [ "$MODE" = md ]; then
    ip -n $n link add fp-vx mtu $mtu netns $x type vxlan external dstport 4789 nolearning $csum || return 1
    ip -n $x link set fp-vx up
  else
    ip -n $n link add fp-vx mtu $mtu netns $x type vxlan id $VNI local $u dstport 4789 nolearning proxy $csum || return 1
    ip -n $x link set fp-vx master fp-br up
    # cluster state -> FDB (remote task MAC -> VTEP) and neighbour (remote IP -> MAC, proxy ARP)
    ip -n $x neigh add $rt lladdr $rm dev fp-vx nud permanent || return 1
    bridge -n $x fdb add $rm dev fp-vx dst $r self permanent || return 1
  fi
  if [ "$MODE" = macvlan ]; then
    ip -n $x link set fp-vx nomaster
    ip -n $x link add fp-e0 link fp-vx address $lm mtu $mtu type macvlan mode bridge || return 1
    ip -n $x link set fp-e0 netns $t || return 1
    ip -n $t link set fp-e0 up; ip -n $t addr add $l/24 dev fp-e0
    return 0
  fi
  # the task's veth, host end on the bridge, MAC pinned as Shoal does
  ip -n $x link add fp-p$i mtu $mtu type veth peer name fp-e0 netns $t mtu $mtu address $lm || return 1
  ip -n $x link set fp-p$i master fp-br up
  bridge -n $x fdb replace $lm dev fp-p$i master static || return 1
  ip -n $t link set fp-e0 up; ip -n $t addr add $l/24 dev fp-e0; ip -n $t route add default via $GW dev fp-e0
  if [ "$MODE" = encap-net ]; then
    # the network's uplink: node side fp-u, network side fp-ux (a bridge port: slow path too)
    ip -n $n link add fp-u mtu $mtu type veth peer name fp-ux netns $x mtu $mtu || return 1
    ip -n $n link set fp-u up
    ip -n $x link set fp-ux master fp-br up
  fi
}

fast_up() { # i: load the tc programs in fp-x$i and fill their maps
  local i=$1; local x=fp-x$i pin=$BPFFS/fp-x$i lt
  local rt lm rm r
  if [ "$i" = 1 ]; then lt=$T1; rt=$T2; lm=$M1; rm=$M2; r=$U2; else lt=$T2; rt=$T1; lm=$M2; rm=$M1; r=$U1; fi
  mkdir -p $pin || return 1
  bpftool prog loadall $OBJ $pin pinmaps $pin/maps || return 1
  local vx p flags=0
  vx=$(ifidx $x fp-vx); p=$(ifidx $x fp-p$i)
  [ "$MODE" = md ] && flags=$((flags | 1))
  [ "$RXPEER" = 1 ] && flags=$((flags | 2 | 8))
  [ "$MODE" = md ] && [ "$UDPCSUM" != 1 ] && flags=$((flags | 4))
  bpftool map update pinned $pin/maps/fp_cfg key hex 00 00 00 00 value hex $(u32hex $vx) $(u32hex $flags) || return 1
  # local endpoint: ifindex of its host end; remote: VTEP, VNI
  bpftool map update pinned $pin/maps/fp_ep key hex $(iphex $lt) \
    value hex $(u32hex $p) 00 00 00 00 $(u32hex $VNI) $(machex $lm) 00 00 || return 1
  bpftool map update pinned $pin/maps/fp_ep key hex $(iphex $rt) \
    value hex 00 00 00 00 $(iphex $r) $(u32hex $VNI) $(machex $rm) 00 00 || return 1
  nsx $x tc qdisc add dev fp-p$i clsact || return 1
  nsx $x tc filter add dev fp-p$i ingress bpf da object-pinned $pin/fp_tx || return 1
  nsx $x tc qdisc add dev fp-vx clsact || return 1
  nsx $x tc filter add dev fp-vx ingress bpf da object-pinned $pin/fp_rx || return 1
}

mac_of() { ip -n "$1" -o link show dev "$2" | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p'; }
ecfg() { # pin out_ifindex flags vtep mac
  bpftool map update pinned $1/maps/fp_ecfg key hex 00 00 00 00 value hex $(u32hex $2) $(u32hex $3) $(iphex $4) $(machex $5) 00 00
}
encap_up() { # i: fp_encap.o in the node namespace (and in the network namespace for encap-net)
  local i=$1; local n=fp-n$i x=fp-x$i pn=$BPFFS/fp-n$i px=$BPFFS/fp-x$i
  local u r lt rt lm rm
  if [ "$i" = 1 ]; then u=$U1; r=$U2; lt=$T1; rt=$T2; lm=$M1; rm=$M2; else u=$U2; r=$U1; lt=$T2; rt=$T1; lm=$M2; rm=$M1; fi
  local o=$((3 - i))
  local eth mymac rmac
  eth=$(ifidx $n fp-eth0); mymac=$(mac_of $n fp-eth0); rmac=$(mac_of fp-n$o fp-eth0)
  mkdir -p $pn || return 1
  bpftool prog loadall $EOBJ $pn pinmaps $pn/maps || return 1
  local epns=$n pep=$pn
  if [ "$MODE" = encap-node ] || [ "$MODE" = route ]; then
    ecfg $pn $eth $([ "$MODE" = route ] && echo 4 || echo 0) $u $mymac || return 1
  else
    ecfg $pn $eth 2 $u $mymac || return 1
    bpftool map update pinned $pn/maps/fp_vni key hex $(u32hex $VNI) value hex $(u32hex $(ifidx $n fp-u)) || return 1
    nsx $n tc qdisc add dev fp-u clsact && nsx $n tc filter add dev fp-u ingress bpf da object-pinned $pn/fp_fwd || return 1
    mkdir -p $px && bpftool prog loadall $EOBJ $px pinmaps $px/maps || return 1
    ecfg $px $(ifidx $x fp-ux) 1 $u $mymac || return 1
    nsx $x tc qdisc add dev fp-ux clsact && nsx $x tc filter add dev fp-ux ingress bpf da object-pinned $px/fp_up_rx || return 1
    epns=$x pep=$px
  fi
  bpftool map update pinned $pep/maps/fp_remote key hex $(iphex $r) value hex $(machex $rmac) 00 00 || return 1
  bpftool map update pinned $pep/maps/fp_ep key hex $(iphex $lt) \
    value hex $(u32hex $(ifidx $epns fp-p$i)) 00 00 00 00 $(u32hex $VNI) $(machex $lm) 00 00 || return 1
  bpftool map update pinned $pep/maps/fp_ep key hex $(iphex $rt) \
    value hex 00 00 00 00 $(iphex $r) $(u32hex $VNI) $(machex $rm) 00 00 || return 1
  if [ "$MODE" = encap-node ] || [ "$MODE" = route ]; then  # node-namespace program decaps straight to the task
    bpftool map update pinned $pn/maps/fp_ep key hex $(iphex $lt) \
      value hex $(u32hex $(ifidx $n fp-p$i)) 00 00 00 00 $(u32hex $VNI) $(machex $lm) 00 00 || return 1
  fi
  nsx $epns tc qdisc add dev fp-p$i clsact && nsx $epns tc filter add dev fp-p$i ingress bpf da object-pinned $pep/fp_enc_tx || return 1
  nsx $n tc qdisc add dev fp-eth0 clsact && nsx $n tc filter add dev fp-eth0 ingress bpf da object-pinned $pn/fp_dec_rx || return 1
}

all_veths() { # prints "ns dev" for every veth end of the lab
  echo "fp-sw fp-s1"; echo "fp-sw fp-s2"; echo "fp-n1 fp-eth0"; echo "fp-n2 fp-eth0"
  local h1=fp-x1 h2=fp-x2; { [ "$MODE" = encap-node ] || [ "$MODE" = route ]; } && h1=fp-n1 h2=fp-n2
  echo "$h1 fp-p1"; echo "$h2 fp-p2"; echo "fp-t1 fp-e0"; echo "fp-t2 fp-e0"
  [ "$MODE" = encap-net ] && { echo "fp-n1 fp-u"; echo "fp-n2 fp-u"; echo "fp-x1 fp-ux"; echo "fp-x2 fp-ux"; }
}

lab_up() {
  lab_down
  ip netns add fp-sw || return 1
  ip -n fp-sw link set lo up
  ip -n fp-sw link add fp-sw0 mtu $MTU type bridge || return 1
  ip -n fp-sw link set fp-sw0 up
  [ "$SWBRNF" = 1 ] || set_brnf fp-sw 0 || return 1
  node_up 1 || return 1
  node_up 2 || return 1
  if [ "$MODE" = fdb ] || [ "$MODE" = md ]; then
    fast_up 1 || return 1
    fast_up 2 || return 1
  fi
  if [ "$MODE" = encap-node ] || [ "$MODE" = encap-net ] || [ "$MODE" = route ]; then
    encap_up 1 || return 1
    encap_up 2 || return 1
  fi
  local ns dev
  if [ "$VETHGRO" = 1 ]; then
    all_veths | while read -r ns dev; do nsx $ns ethtool -K $dev gro on >/dev/null || exit 1; done || return 1
  fi
  if [ "$XDP" = 1 ]; then
    mkdir -p $BPFFS/fp-x1 && { [ -e $BPFFS/fp-x1/fp_xdp_pass ] || bpftool prog loadall $OBJ $BPFFS/fp-x1 pinmaps $BPFFS/fp-x1/maps; } || return 1
    all_veths | while read -r ns dev; do nsx $ns ip link set dev $dev xdpdrv pinned $BPFFS/fp-x1/fp_xdp_pass || exit 1; done || return 1
  fi
  if [ "$GROLIST" = 1 ]; then
    for ns in fp-n1 fp-n2; do nsx $ns ethtool -K fp-eth0 gro on rx-gro-list on rx-udp-gro-forwarding on >/dev/null || return 1; done
  fi
  if [ "$VXGRO" = 0 ] && [ "$MODE" != encap-node ] && [ "$MODE" != route ]; then
    for ns in fp-x1 fp-x2; do nsx $ns ethtool -K fp-vx gro off >/dev/null || return 1; done
  fi
  if [ "$TNLSEG" = 0 ]; then
    for ns in fp-n1 fp-n2; do nsx $ns ethtool -K fp-eth0 tx-udp_tnl-segmentation off tx-udp_tnl-csum-segmentation off >/dev/null || return 1; done
  fi
  if [ -n "$TSQ" ]; then
    for ns in fp-n1 fp-n2 fp-t1 fp-t2; do ip netns exec $ns sysctl -qw net.ipv4.tcp_limit_output_bytes=$TSQ || return 1; done
  fi
  # both paths answer
  local k
  for k in $(seq 1 50); do ip netns exec fp-t1 ping -c1 -W1 $T2 >/dev/null 2>&1 && break; sleep 0.1; done
  ip netns exec fp-t1 ping -c1 -W1 $T2 >/dev/null || { echo "overlay does not answer" >&2; return 1; }
  ip netns exec fp-n1 ping -c1 -W1 $U2 >/dev/null || { echo "underlay does not answer" >&2; return 1; }
}

lab_desc() {
  echo "MODE=$MODE MTU=$MTU RXPEER=$RXPEER BRNF=$BRNF SWBRNF=$SWBRNF UDPCSUM=$UDPCSUM VETHGRO=$VETHGRO XDP=$XDP GROLIST=$GROLIST VXGRO=$VXGRO TSQ=$TSQ TNLSEG=$TNLSEG"
}
