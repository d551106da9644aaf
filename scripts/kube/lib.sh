# Shared settings of scripts/kube-{build,up,down,check}. Sourced, not run.
#
# The cluster's node is a network namespace of this machine (like the project's test servers):
# containerd, kubelet, kube-proxy, kube-router, etcd and the control plane all run in it, so their
# ports, iptables rules, ipsets and sysctls stay out of the host's network stack. The host reaches
# it over one veth pair and two routes (pods, services). One cluster per machine at a time: the
# addresses below are fixed (kube-up refuses to start a second one).

KUBE_VERSION=v1.34.4          # scripts/kube/k8s/go.mod requires it; the staging modules are v0.34.4
KUBE_LINK_HOST=10.169.0.1     # host end of the veth (10.169.0.0/30)
KUBE_NODE_IP=10.169.0.2       # the node's address: API server, kubelet
KUBE_POD_CIDR=10.170.0.0/16   # cluster CIDR; the node gets 10.170.0.0/24
KUBE_NODE_POD_CIDR=10.170.0.0/24
KUBE_SVC_CIDR=10.171.0.0/16
KUBE_API_SVC_IP=10.171.0.1    # the `kubernetes` Service
KUBE_DNS_IP=10.171.0.10       # CoreDNS' Service (kube-system/kube-dns)
KUBE_NODE_NAME=wm-node

KUBE_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)     # scripts/kube
KUBE_CACHE_ROOT=${WIDEMESH_KUBE_CACHE:-/var/cache/widemesh/kube}

# The build cache key: the Kubernetes version and a hash of everything that decides the binaries
# and images (the three modules and the build script).
kube_cache_key() {
  local h
  h=$(cd "$KUBE_SRC" && cat k8s/go.mod k8s/go.sum coredns/go.mod coredns/go.sum \
        kube-router/go.mod kube-router/go.sum build mkimage | sha256sum | cut -c1-12)
  echo "$KUBE_VERSION-$h"
}
kube_cache_dir() { echo "$KUBE_CACHE_ROOT/$(kube_cache_key)"; }

# Names on the host, keyed by DIR so leftovers say whose they are.
kube_names() {
  local dir=$1
  KUBE_DIR=$(realpath -m "$dir")
  KUBE_ID=$(printf %s "$KUBE_DIR" | sha256sum | cut -c1-6)
  KUBE_NETNS=wmk-$KUBE_ID                # the node's network namespace
  KUBE_VETH=wmk-${KUBE_ID}h              # host end of the veth pair (the node end is eth0)
  KUBE_CGROUP=wmk-$KUBE_ID               # cgroup (v1 hierarchies: kubelet's --cgroup-root; v2: process tracker)
  KUBE_TRACK=/sys/fs/cgroup/unified/$KUBE_CGROUP
}

# Runs "$@" in the node's network namespace (only the network: the mount namespace is the host's,
# so kubelet's volume mounts are the ones containerd sees).
in_node() { nsenter --net="/run/netns/$KUBE_NETNS" -- "$@"; }

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

# Go: the machines have it in /usr/local/go (scripts/install-kube-deps checks).
command -v go >/dev/null 2>&1 || PATH=$PATH:/usr/local/go/bin
