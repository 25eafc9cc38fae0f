/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* What every tcptape program shares: maps, filters, flow parsing, and the submit path.
 *
 * A handler first reads only the event's flow (from the socket or the packet headers), checks it
 * against the filters (set before load as `const volatile` globals, so the verifier removes the
 * checks that are off), counts it per stage and samples it by flow. Only an admitted event is
 * read in full, straight into ring-buffer memory. Only TCP is ever recorded. */
#ifndef TCPTAPE_CAPTURE_BPF_H
#define TCPTAPE_CAPTURE_BPF_H

#include "kernel_types.h"
#include "event.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "core_fixes.bpf.h"

#define AF_INET 2
#define AF_INET6 10
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP 6
#define TCP_CLOSE 7
#define TCP_LISTEN 10

/* Filter limits; recorder/src/filters.rs refuses more. */
#define MAX_PORTS 8
#define MAX_CIDRS 4
#define MAX_PIDS 8
#define MAX_NETNS 4
#define MAX_IFACES 8
#define MAX_CGROUPS 8

/* Filters, set by the loader (EbpfLoader::override_global). Zero counts mean "no filter". */
const volatile __u32 targ_nports = 0;
const volatile __u16 targ_ports[MAX_PORTS] = {};
const volatile __u32 targ_ncidrs = 0;
const volatile __u16 targ_cidr_family[MAX_CIDRS] = {};
const volatile __u8 targ_cidr_addr[MAX_CIDRS][16] = {};
const volatile __u8 targ_cidr_mask[MAX_CIDRS][16] = {};
const volatile __u32 targ_npids = 0;
const volatile __u32 targ_pids[MAX_PIDS] = {};
const volatile __u32 targ_nnetns = 0;
const volatile __u32 targ_netns[MAX_NETNS] = {};
const volatile __u32 targ_nifindex = 0;
const volatile __u32 targ_ifindex[MAX_IFACES] = {};
/* `--cgroup`: cgroup v2 ids (directory inode numbers) and their depth below the root. */
const volatile __u32 targ_ncgroups = 0;
const volatile __u64 targ_cgroup_ids[MAX_CGROUPS] = {};
const volatile __u32 targ_cgroup_levels[MAX_CGROUPS] = {};
/* Interface indexes are per network namespace: the namespace the names were resolved in. */
const volatile __u32 targ_ifindex_netns = 0;
/* The stages whose events are kept (`--stage`): bit 1 << stage code. The programs of other
 * stages are attached only when `--pid` or `--iface` needs their events to admit flows; theirs
 * are dropped after that, before they are counted. */
const volatile __u32 targ_stages = ~0U;
/* Keep 1 flow in `targ_sample` (1 = all). */
const volatile __u32 targ_sample = 1;
/* Non-zero when the recorder adjusts the sampling while it runs (`--budget`): the threshold is
 * then read from KEEP_BELOW on every event instead of being fixed at load. */
const volatile __u32 targ_adaptive = 0;
/* Wake the reader once this many bytes wait in a CPU's ring (the reader also polls on a timer). */
const volatile __u64 wake_bytes = 1 << 20;

/* One ring buffer per CPU: a program reserves in its own CPU's ring, so CPUs never contend for
 * a ring's lock or move its positions between their caches. The loader sizes this array to the
 * possible CPUs and puts a ring at each online CPU's index; the inner definition only gives the
 * type. A CPU without a ring counts its events as lost. */
struct cpu_ring {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct cpu_ring);
} RINGS SEC(".maps");

/* Events seen per stage (after filters, before sampling), per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ST_MAX);
	__type(key, __u32);
	__type(value, __u64);
} SEEN SEC(".maps");

/* The flows kept while `targ_adaptive`: those whose flow hash is below this value (1 << 32 keeps
 * every flow). A threshold rather than a modulus, so that the flows kept at a lower rate are a
 * subset of those kept at a higher one and a flow keeps its place as the rate changes. Written by
 * the recorder only. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} KEEP_BELOW SEC(".maps");

/* Each CPU's staged events (see struct tcptape_batches in event.h). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tcptape_batches);
} BATCHES SEC(".maps");

/* A partly filled batch is written once its first event is this old, so that a CPU with little
 * traffic does not hold its events back for long. */
#define BATCH_MAX_AGE_NS (50 * 1000 * 1000ULL)

/* Events lost because the CPU's ring was full or missing (or, rarely, programs nested deeper than
 * TCPTAPE_BATCH_LEVELS), per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} LOST SEC(".maps");

/* Flows admitted by the pid or interface filter: events that carry no pid or interface pass when
 * their flow was admitted by one that does. Keyed by the symmetric flow hash; the value says which
 * filter admitted it (MARK_*). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u8);
} FLOW_MARKS SEC(".maps");

/* A flow admitted through `--pid`: its events pass whatever task they run in. A socket's state
 * changes and its packets are often handled in softirq, in the context of whichever task was
 * interrupted (on veth and loopback, the peer that sent the packet): that task's pid says nothing
 * of whose flow it is. */
#define MARK_PID 1
/* A flow admitted through `--iface`. */
#define MARK_IFACE 2
/* A flow admitted through `--cgroup`: a socket of it belongs to one of the cgroups. */
#define MARK_CGROUP 4

/* Sockets an event with a matching pid came from (`--pid`), by address: their later events and
 * their packets pass although they carry no pid, before any event of their flow was admitted.
 * A connection's handshake needs it: the connecting call's state change comes before the port is
 * chosen, so its flow is not yet the connection's. Cleared when the socket closes. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u8);
} SOCK_MARKS SEC(".maps");

/* Ports the `--pid` processes listen on, by network namespace (key: listen_key): a packet
 * arriving at one, and the flow from then on, pass. The kernel completes a server's handshake
 * before the server's process touches the new socket, so nothing else would admit it. Filled by
 * the recorder (listeners open at the start) and by on_state (listeners opened later). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u8);
} LISTEN_PORTS SEC(".maps");

/* The LISTEN_PORTS key of a port in a namespace: recorder/src/listening_sockets.rs. */
static __always_inline __u64 listen_key(__u32 netns, __u16 port)
{
	return ((__u64)netns << 16) | port;
}

/* A sendmsg call in progress on a thread, from its start (tcp_sendmsg's entry, or the first
 * tcp_sendmsg_locked event, which fires once per skb the call fills and again after the call
 * slept for memory, possibly on another CPU) to its end (tcp_sendmsg's return, or
 * sock_send_length), which says what it wrote. Keyed by thread: one thread
 * makes one call at a time, and several writers on one socket are several threads. */
struct sendmsg_call {
	__u64 sk;
	__u64 msg;	/* the call's msghdr (0 for the classic tracepoint flavor) */
	__u64 ts_ns;	/* when the call reached TCP */
	__u32 seq;	/* write_seq then: where its bytes start */
	__u32 has_seq;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct sendmsg_call);
} SENDMSG_CALLS SEC(".maps");

/* Per CPU, 1 while the CPU serves a softirq (set by the softirq_entry/exit programs). A stage
 * that runs in softirq (a packet received, a timer) interrupted whatever task was on the CPU:
 * that task's pid says nothing about the socket, so such events carry no pid. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} IN_SOFTIRQ SEC(".maps");

static __always_inline void set_in_softirq(__u32 on)
{
	__u32 zero = 0;
	__u32 *v = bpf_map_lookup_elem(&IN_SOFTIRQ, &zero);
	if (v)
		*v = on;
}

static __always_inline bool in_softirq_now(void)
{
	__u32 zero = 0;
	__u32 *v = bpf_map_lookup_elem(&IN_SOFTIRQ, &zero);
	return v && *v;
}

/* IFF_NO_QUEUE of this kernel's enum netdev_priv_flags, read from its BTF by the recorder
 * (recorder/src/drop_reasons.rs); 0 when unknown, and then no device is taken for one without a
 * queue. */
const volatile __u32 targ_iff_no_queue = 0;

/* True for a device without a queue of its own (IFF_NO_QUEUE: loopback, veth, and the virtual
 * devices that hand an skb on, vlan, macvlan, bonds). Loopback and veth give the sender's skb to
 * the receive path, so there is no driver completion to record; the others hand it to a lower
 * device, whose own tx_driver notes it. Nothing of theirs goes into TX_SENT, and tx_done does
 * not look a freed skb of theirs up: on veth and loopback that was a hash-map insert, lookup and
 * delete per packet for no event. */
static __always_inline bool dev_has_no_queue(struct net_device *dev, bool direct)
{
	if (!dev || !targ_iff_no_queue)
		return false;
	__u64 flags = direct ? BPF_CORE_READ_BITFIELD(dev, priv_flags)
			     : BPF_CORE_READ_BITFIELD_PROBED(dev, priv_flags);
	return flags & targ_iff_no_queue;
}

/* Skbs handed to a driver (tx_driver) and not yet freed: the device they came in on (0 for a
 * locally made one) and their TCP sequence, so that tx_done records the driver's completion of
 * exactly these, not the free of a GSO skb the stack replaced by its segments, nor of an skb that
 * veth or loopback handed to the receive path. See on_tx_done. */
struct tx_sent {
	__s32 iif;
	__u32 seq;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct tx_sent);
} TX_SENT SEC(".maps");

/* Per socket, the kernel's count of retransmitted segments (tcp_sock.total_retrans) at its last
 * retransmit event, and which connection the socket then had: a socket freed and another one
 * allocated at the same address must not inherit the count. See on_retransmit. */
struct retrans_seen {
	__u32 total;
	__u32 flow_id; /* flow_hash of the socket's addresses and ports */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct retrans_seen);
} RETRANS_SEEN SEC(".maps");

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Where a packet's network header is: at skb->data (receive path, before the stack resets
 * network_header) or at head + network_header (transmit path and later). */
enum hdr_base {
	BASE_DATA = 0,
	BASE_NETWORK = 1,
};

/* Where a socket's cookie comes from, as the flavor allows (see tcptape.bpf.c). Only admitted
 * events ask for it. */
enum cookie_src {
	COOKIE_READ = 0,
	COOKIE_HELPER = 1,
};

/* Reads p->f: a plain load where the verifier knows p's BTF type (arguments of tp_btf programs
 * and pointers reached from them), a probe read elsewhere (classic tracepoints, kprobes). `direct`
 * is a constant at every call site, so only one branch is compiled into each program. */
#define RD(direct, p, f) ((direct) ? (p)->f : BPF_CORE_READ(p, f))

/* What the filters and the sampling decide on. Read first, so that an event that is filtered or
 * sampled out costs no more than this. Aligned so that copying the addresses is word-sized. */
struct flow {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u16 family;
} __attribute__((aligned(8)));

/* A packet's flow and what its headers say besides: TCP sequence number and payload length. */
struct packet {
	struct flow flow;
	__u32 seq;
	__u32 len;
	__u32 ack;
	__u16 window;
	__u8 flags;
	__u8 hlen;
};

/* Namespace, interface and task of an event (bits V_NETNS, V_IFINDEX, V_PID in `valid`). */
struct scope {
	__u32 netns;
	__u32 ifindex;
	__u32 pid;
	__u32 valid;
};

static __always_inline __u64 sock_cookie(struct sock *sk, enum cookie_src src, bool direct)
{
	if (src == COOKIE_HELPER)
		return bpf_get_socket_cookie(sk);
	return RD(direct, sk, __sk_common.skc_cookie.counter);
}

/* True for an IPv4-mapped IPv6 address (::ffff:a.b.c.d). */
static __always_inline bool v4_mapped(const __u8 *a)
{
	const __u32 *w = (const void *)a;
	return w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0x0000ffff);
}

/* An IPv6 socket that talks IPv4 (a dual-stack server's connection from an IPv4 client) sends
 * and receives IPv4 packets: its flow is given as IPv4, as the packets' headers give it, so that
 * the socket's events and its packets' events are one flow to the filters, the sampling and the
 * analyzer. */
static __always_inline void flow_unmap(struct flow *f)
{
	__u32 *s = (void *)f->saddr;
	__u32 *d = (void *)f->daddr;
	s[0] = s[3];
	d[0] = d[3];
	s[1] = s[2] = s[3] = 0;
	d[1] = d[2] = d[3] = 0;
	f->family = AF_INET;
}

/* The flow of a TCP socket; false if `sk` is not an inet TCP socket. */
static __always_inline bool flow_of_sock(struct flow *f, struct sock *sk, bool direct)
{
	if (!sk)
		return false;
	__u16 family = RD(direct, sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return false;
	if (sk_protocol_of(sk, direct) != IPPROTO_TCP)
		return false;
	f->family = family;
	if (family == AF_INET) {
		__be32 s = RD(direct, sk, __sk_common.skc_rcv_saddr);
		__be32 d = RD(direct, sk, __sk_common.skc_daddr);
		__builtin_memcpy(f->saddr, &s, 4);
		__builtin_memcpy(f->daddr, &d, 4);
	} else if (direct) {
		__builtin_memcpy(f->saddr, sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8, 16);
		__builtin_memcpy(f->daddr, sk->__sk_common.skc_v6_daddr.in6_u.u6_addr8, 16);
	} else {
		BPF_CORE_READ_INTO(&f->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&f->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
	f->sport = RD(direct, sk, __sk_common.skc_num);
	/* A socket that gives its port back on the way to CLOSE (inet_put_port, before the state
	 * change is traced) still has it as inet_sport: its last state change keeps its flow. */
	if (!f->sport)
		f->sport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	f->dport = bpf_ntohs(RD(direct, sk, __sk_common.skc_dport));
	if (family == AF_INET6 && v4_mapped(f->saddr) && v4_mapped(f->daddr))
		flow_unmap(f);
	return true;
}

#define IPPROTO_HOPOPTS 0
#define IPPROTO_ROUTING 43
#define IPPROTO_FRAGMENT 44
#define IPPROTO_AH 51
#define IPPROTO_DSTOPTS 60
/* Extension headers walked before TCP; more than this and the packet is not recorded. */
#define IPV6_EXT_MAX 4

/* The length of an IPv6 header and the extension headers after it, when TCP follows them
 * (`next` is the fixed header's next-header field); 0 otherwise. A fragment other than the
 * first has no TCP header. */
static __always_inline __u32 ipv6_ext_len(unsigned char *nh, __u8 next)
{
	__u32 off = sizeof(struct ipv6hdr);
#pragma unroll
	for (int i = 0; i < IPV6_EXT_MAX; i++) {
		/* next header, length; for a fragment, the offset and flags */
		__u8 ext[4];
		if (next == IPPROTO_TCP)
			return off;
		if (next != IPPROTO_HOPOPTS && next != IPPROTO_ROUTING && next != IPPROTO_FRAGMENT &&
		    next != IPPROTO_AH && next != IPPROTO_DSTOPTS)
			return 0;
		if (bpf_probe_read_kernel(ext, sizeof(ext), nh + off))
			return 0;
		if (next == IPPROTO_FRAGMENT) {
			if (((ext[2] << 8 | ext[3]) & ~7) != 0)
				return 0; /* not the first fragment */
			off += 8;
		} else if (next == IPPROTO_AH) {
			off += (ext[1] + 2) * 4;
		} else {
			off += (ext[1] + 1) * 8;
		}
		next = ext[0];
	}
	return next == IPPROTO_TCP ? off : 0;
}

/* Where the kernel keeps the bases of its direct map and of its page array (x86-64, randomized at
 * boot): the addresses of `page_offset_base` and `vmemmap_base`, from /proc/kallsyms; 0 when
 * unknown, and then headers in page fragments are not read. */
const volatile __u64 targ_page_offset_base_at = 0;
const volatile __u64 targ_vmemmap_base_at = 0;

#define PAGE_SHIFT_X86 12
#define STRUCT_PAGE_SHIFT 6 /* sizeof(struct page) = 64 on x86-64 */

/* The first bytes of an skb's first page fragment, when its linear data holds none of the packet
 * (virtio-net leaves the headers of a frame it did not copy in a page for GRO to pull): NULL when
 * there is no page fragment or where it is cannot be known. */
static __always_inline unsigned char *frag0_data(struct sk_buff *skb)
{
	if (!targ_page_offset_base_at || !targ_vmemmap_base_at)
		return NULL;
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u32 end = BPF_CORE_READ(skb, end);
	struct skb_shared_info *sh = (void *)(head + end);
	if (!BPF_CORE_READ(sh, nr_frags))
		return NULL;
	struct skb_frag_bytes f;
	if (bpf_probe_read_kernel(&f, sizeof(f), &sh->frags[0]) || (f.page & 1) || !f.page)
		return NULL;
	__u64 page_offset_base, vmemmap_base;
	if (bpf_probe_read_kernel(&page_offset_base, 8, (void *)targ_page_offset_base_at) ||
	    bpf_probe_read_kernel(&vmemmap_base, 8, (void *)targ_vmemmap_base_at) ||
	    f.page < vmemmap_base)
		return NULL;
	__u64 pfn = (f.page - vmemmap_base) >> STRUCT_PAGE_SHIFT;
	return (unsigned char *)(page_offset_base + (pfn << PAGE_SHIFT_X86) + f.offset);
}

/* Parses the IP and TCP headers of a packet: flow, sequence number and TCP payload length.
 * False when the packet is not TCP over IPv4/IPv6 or the headers cannot be read. */
static __always_inline bool packet_read(struct packet *p, struct sk_buff *skb, enum hdr_base base,
					bool direct)
{
	__u16 proto = bpf_ntohs(RD(direct, skb, protocol));
	if (proto != ETH_P_IP && proto != ETH_P_IPV6)
		return false;
	unsigned char *head = RD(direct, skb, head);
	unsigned char *data = RD(direct, skb, data);
	unsigned char *nh = data;
	if (base == BASE_NETWORK) {
		__u16 off = RD(direct, skb, network_header);
		if (off == (__u16)~0U)
			return false;
		nh = head + off;
	}
	/* Bytes of skb->len before the network header. */
	__u32 before = (__u32)(nh - data);
	__u32 all = RD(direct, skb, len), frags = RD(direct, skb, data_len);
	if (frags && all - frags < before + sizeof(struct iphdr)) {
		/* Headers in a page fragment (a driver left them there for GRO or IP to pull): only
		 * when the linear data ends where the network header starts. */
		if (all - frags != before)
			return false;
		nh = frag0_data(skb);
		if (!nh)
			return false;
	}
	struct flow *f = &p->flow;
	/* One read for the common case, the network header without options and the TCP header
	 * after it; IPv4 options take a second read of the TCP header. */
	union {
		struct iphdr ip;
		struct ipv6hdr ip6;
		__u8 raw[sizeof(struct ipv6hdr) + sizeof(struct tcphdr)];
	} h;
	if (bpf_probe_read_kernel(&h, sizeof(h), nh))
		return false;
	__u32 ip_len;
	struct tcphdr th;
	if (proto == ETH_P_IP) {
		if (h.ip.version != 4 || h.ip.protocol != IPPROTO_TCP || h.ip.ihl < 5)
			return false;
		f->family = AF_INET;
		__builtin_memcpy(f->saddr, &h.ip.saddr, 4);
		__builtin_memcpy(f->daddr, &h.ip.daddr, 4);
		ip_len = h.ip.ihl * 4;
		if (ip_len == sizeof(struct iphdr))
			__builtin_memcpy(&th, h.raw + sizeof(struct iphdr), sizeof(th));
		else if (bpf_probe_read_kernel(&th, sizeof(th), nh + ip_len))
			return false;
	} else {
		if (h.ip6.version != 6)
			return false;
		f->family = AF_INET6;
		__builtin_memcpy(f->saddr, h.ip6.saddr, 16);
		__builtin_memcpy(f->daddr, h.ip6.daddr, 16);
		if (h.ip6.nexthdr == IPPROTO_TCP) {
			ip_len = sizeof(struct ipv6hdr);
			__builtin_memcpy(&th, h.raw + sizeof(struct ipv6hdr), sizeof(th));
		} else {
			ip_len = ipv6_ext_len(nh, h.ip6.nexthdr);
			if (!ip_len || bpf_probe_read_kernel(&th, sizeof(th), nh + ip_len))
				return false;
		}
	}
	f->sport = bpf_ntohs(th.source);
	f->dport = bpf_ntohs(th.dest);
	p->seq = bpf_ntohl(th.seq);
	p->ack = bpf_ntohl(th.ack_seq);
	p->window = bpf_ntohs(th.window);
	/* The flags are the byte after doff/res1 (byte 13 of the header). */
	p->flags = ((__u8 *)&th)[13];
	p->hlen = th.doff * 4;
	/* Payload = skb bytes after the TCP header; skb->len counts from skb->data. */
	__u32 hdr = before + ip_len + th.doff * 4;
	p->len = all > hdr ? all - hdr : 0;
	return true;
}

/* Namespace and interface from a device, namespace from a socket, pid from the current task
 * (`task`: the stage may run in the task that causes it; never in softirq), into a zeroed `sc`. */
static __always_inline void scope_read(struct scope *sc, struct sock *sk, struct net_device *dev,
				       bool task, bool direct)
{
	struct net *net = NULL;
	if (dev) {
		sc->ifindex = RD(direct, dev, ifindex);
		sc->valid |= V_IFINDEX;
		net = RD(direct, dev, nd_net.net);
	} else if (sk) {
		net = RD(direct, sk, __sk_common.skc_net.net);
	}
	if (net) {
		sc->netns = RD(direct, net, ns.inum);
		sc->valid |= V_NETNS;
	}
	if (task && !in_softirq_now()) {
		__u64 id = bpf_get_current_pid_tgid();
		if ((__u32)id != 0) { /* else the idle task or softirq on it: no process to name */
			sc->pid = id >> 32;
			sc->valid |= V_PID;
		}
	}
}

/* A hash of the flow that is the same in both directions, so both ends of a connection and every
 * stage of its packets are sampled alike. */
static __always_inline __u32 flow_hash(const struct flow *f)
{
	__u32 h = 0x9e3779b9u ^ f->family;
	const __u32 *s = (const void *)f->saddr;
	const __u32 *d = (const void *)f->daddr;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		h ^= (s[i] ^ d[i]) + (s[i] + d[i]) * 0x85ebca6bu;
		h = (h << 13) | (h >> 19);
		h = h * 5 + 0xe6546b64u;
	}
	h ^= ((__u32)(f->sport ^ f->dport) << 16) | (__u16)(f->sport + f->dport);
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

static __always_inline bool port_match(const struct flow *f)
{
	if (!targ_nports)
		return true;
#pragma unroll
	for (int i = 0; i < MAX_PORTS; i++) {
		if (i >= targ_nports)
			break;
		if (targ_ports[i] == f->sport || targ_ports[i] == f->dport)
			return true;
	}
	return false;
}

static __always_inline bool cidr_has(int i, const __u8 *addr, int n)
{
	for (int b = 0; b < 16; b++) {
		if (b >= n)
			break;
		if ((addr[b] & targ_cidr_mask[i][b]) != targ_cidr_addr[i][b])
			return false;
	}
	return true;
}

static __always_inline bool addr_match(const struct flow *f)
{
	if (!targ_ncidrs)
		return true;
	int n = f->family == AF_INET ? 4 : 16;
	for (int i = 0; i < MAX_CIDRS; i++) {
		if (i >= targ_ncidrs)
			break;
		if (targ_cidr_family[i] != f->family)
			continue;
		if (cidr_has(i, f->saddr, n) || cidr_has(i, f->daddr, n))
			return true;
	}
	return false;
}

static __always_inline bool netns_match(const struct scope *sc)
{
	if (!targ_nnetns)
		return true;
	if (!(sc->valid & V_NETNS))
		return false;
#pragma unroll
	for (int i = 0; i < MAX_NETNS; i++) {
		if (i >= targ_nnetns)
			break;
		if (targ_netns[i] == sc->netns)
			return true;
	}
	return false;
}

/* 1: the event's own pid matches `--pid`; 0: it carries none (or the filter is off); -1: it
 * carries one that does not match. */
static __always_inline int pid_verdict(const struct scope *sc)
{
	if (!targ_npids || !(sc->valid & V_PID))
		return 0;
#pragma unroll
	for (int i = 0; i < MAX_PIDS; i++) {
		if (i < targ_npids && targ_pids[i] == sc->pid)
			return 1;
	}
	return -1;
}

/* The same for the event's interface and `--iface`. */
static __always_inline int iface_verdict(const struct scope *sc)
{
	if (!targ_nifindex || !(sc->valid & V_IFINDEX))
		return 0;
	if (targ_ifindex_netns && (!(sc->valid & V_NETNS) || sc->netns != targ_ifindex_netns))
		return -1;
#pragma unroll
	for (int i = 0; i < MAX_IFACES; i++) {
		if (i < targ_nifindex && targ_ifindex[i] == sc->ifindex)
			return 1;
	}
	return -1;
}

/* True when the event belongs to a port a `--pid` process listens on, in the event's namespace:
 * the destination of a received packet read from its headers, the local port otherwise (a
 * socket's flow, a transmitted packet). Never the other side's port: a connection of another
 * process to a remote port that happens to be listened on here stays out. */
static __always_inline bool to_listener(__u8 kind, const struct flow *f, const struct scope *sc)
{
	if (!targ_npids || !(sc->valid & V_NETNS))
		return false;
	bool received = kind == ST_RX_DRIVER || kind == ST_RX_NETIF || kind == ST_RX_IP ||
			kind == ST_RX_TCP || kind == ST_DROP;
	__u64 key = listen_key(sc->netns, received ? f->dport : f->sport);
	return bpf_map_lookup_elem(&LISTEN_PORTS, &key) != NULL;
}

/* True when the current task is one `--pid` names (and not serving a softirq). */
static __always_inline bool task_is_targeted(bool direct)
{
	struct scope sc = {};
	scope_read(&sc, NULL, NULL, true, direct);
	return pid_verdict(&sc) > 0;
}

/* The pid and interface filters: an event that matches one admits its flow; one that carries
 * neither passes in an admitted flow, and otherwise when its socket or a listening port of a
 * `--pid` process admits it. */
static __always_inline bool scope_admit(__u8 kind, const struct flow *f, const struct scope *sc,
					__u32 h, struct sock *owner)
{
	int pv = pid_verdict(sc);
	int iv = iface_verdict(sc);
	if (iv < 0)
		return false;
	__u8 *marked = bpf_map_lookup_elem(&FLOW_MARKS, &h);
	__u8 mark = marked ? *marked : 0;
	if (pv < 0)
		return mark & MARK_PID;
	__u64 key = (__u64)owner;
	__u8 add = (pv > 0 ? MARK_PID : 0) | (iv > 0 ? MARK_IFACE : 0);
	if (add) {
		__u8 one = 1;
		if (owner)
			bpf_map_update_elem(&SOCK_MARKS, &key, &one, BPF_ANY);
	} else if (mark) {
		return true;
	} else if ((owner && bpf_map_lookup_elem(&SOCK_MARKS, &key)) || to_listener(kind, f, sc)) {
		add = MARK_PID;
	} else {
		return false;
	}
	if ((mark | add) != mark) {
		__u8 m = mark | add;
		bpf_map_update_elem(&FLOW_MARKS, &h, &m, BPF_ANY);
	}
	return true;
}

#define TCP_TIME_WAIT 6
#define TCP_NEW_SYN_RECV 12

/* The socket's own cgroup v2; NULL when the socket is not a full one (a request or time-wait
 * socket has no cgroup) or this kernel keeps the cgroup otherwise. Plain loads where the socket
 * is a BTF pointer (`direct`): probe reads cost a socket stage about 25 ns a run. */
static __always_inline struct cgroup *sock_cgroup(struct sock *sk, bool direct)
{
	if (!bpf_core_field_exists(sk->sk_cgrp_data.cgroup))
		return NULL;
	__u8 state = RD(direct, sk, __sk_common.skc_state);
	if (state == TCP_TIME_WAIT || state == TCP_NEW_SYN_RECV)
		return NULL;
	return RD(direct, sk, sk_cgrp_data.cgroup);
}

/* The id of the socket's cgroup v2 ancestor at depth `level` (itself at its own depth); 0 when
 * the socket's cgroup is shallower or sock_cgroup() has none. */
static __always_inline __u64 sock_cgroup_at(struct sock *sk, __u32 level)
{
	if (level > 64)
		return 0;
	struct cgroup *cg = sock_cgroup(sk, false);
	if (!cg || BPF_CORE_READ(cg, level) < (int)level)
		return 0;
	if (bpf_core_field_exists(cg->ancestors)) {
		struct cgroup *anc = NULL;
		void *at = (void *)cg + bpf_core_field_offset(cg->ancestors) + level * sizeof(anc);
		if (bpf_probe_read_kernel(&anc, sizeof(anc), at) || !anc)
			return 0;
		return BPF_CORE_READ(anc, kn, id);
	}
	struct cgroup___old *old = (void *)cg;
	if (bpf_core_field_exists(old->ancestor_ids)) {
		__u64 id = 0;
		void *at = (void *)cg + bpf_core_field_offset(old->ancestor_ids) + level * sizeof(id);
		bpf_probe_read_kernel(&id, sizeof(id), at);
		return id;
	}
	return 0;
}

/* The id of the socket's own cgroup v2; 0 when sock_cgroup() has none. */
static __always_inline __u64 sock_cgroup_own(struct sock *sk, bool direct)
{
	struct cgroup *cg = sock_cgroup(sk, direct);
	if (!cg)
		return 0;
	struct kernfs_node *kn = RD(direct, cg, kn);
	return kn ? RD(direct, kn, id) : 0;
}

/* The `--cgroup` filter: an event whose socket is in one of the cgroups (or below) admits its
 * flow; any other event passes when its flow was admitted, so a kept flow is kept whole (its
 * packets before their socket is known, the peer's socket on this host). */
static __always_inline bool cgroup_admit(__u32 h, struct sock *sk)
{
	bool in = false;
	if (sk) {
#pragma unroll
		for (int i = 0; i < MAX_CGROUPS; i++) {
			if (i < targ_ncgroups && !in && targ_cgroup_ids[i] &&
			    sock_cgroup_at(sk, targ_cgroup_levels[i]) == targ_cgroup_ids[i])
				in = true;
		}
	}
	__u8 *marked = bpf_map_lookup_elem(&FLOW_MARKS, &h);
	__u8 mark = marked ? *marked : 0;
	if (!in)
		return mark & MARK_CGROUP;
	if (!(mark & MARK_CGROUP)) {
		__u8 m = mark | MARK_CGROUP;
		bpf_map_update_elem(&FLOW_MARKS, &h, &m, BPF_ANY);
	}
	return true;
}

/* Adds `n` to entry `key` of a per-CPU counter map. */
static __always_inline void count(void *map, __u32 key, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(map, &key);
	if (v)
		*v += n;
}

/* True when the sampling in force keeps the flow of hash `h` (every flow without sampling). */
static __always_inline bool hash_kept(__u32 h)
{
	if (targ_adaptive) {
		__u32 zero = 0;
		__u64 *below = bpf_map_lookup_elem(&KEEP_BELOW, &zero);
		return !below || (__u64)h < *below;
	}
	/* h * N / 2^32 is uniform in [0, N) like h % N, without a division on every event. */
	return targ_sample <= 1 || ((__u64)h * targ_sample) >> 32 == 0;
}

/* The same for a flow, hashing it only when some flows are left out: for work done before
 * admit() decides (a transmitted packet noted for tx_done), which a flow sampled out does not
 * need. */
static __always_inline bool flow_kept(const struct flow *f)
{
	if (targ_adaptive) {
		__u32 zero = 0;
		__u64 *below = bpf_map_lookup_elem(&KEEP_BELOW, &zero);
		if (!below || *below > 0xffffffffULL)
			return true;
		return (__u64)flow_hash(f) < *below;
	}
	return targ_sample <= 1 || hash_kept(flow_hash(f));
}

/* Filters, counts and samples an event of stage `kind` by its flow, before anything else of the
 * event is read. The scope is read before the decision only when a filter looks at it, and after
 * it otherwise; either way `sc` holds it when this returns true. `owner` is the socket the event
 * belongs to, when known (the pid filter admits the events of a socket it admitted before). */
static __always_inline bool admit(__u8 kind, const struct flow *f, struct scope *sc,
				  struct sock *sk, struct net_device *dev, bool task, bool direct,
				  struct sock *owner)
{
	/* Zeroed first: clang would otherwise leave the fields unset on the path where they are read
	 * after the decision, and the verifier refuses the uninitialized registers it spills. */
	__builtin_memset(sc, 0, sizeof(*sc));
	if (!port_match(f) || !addr_match(f))
		return false;
	bool scoped = targ_nnetns || targ_npids || targ_nifindex;
	if (scoped) {
		scope_read(sc, sk, dev, task, direct);
		if (!netns_match(sc))
			return false;
	}
	__u32 h = flow_hash(f);
	if ((targ_npids || targ_nifindex) && !scope_admit(kind, f, sc, h, owner))
		return false;
	if (targ_ncgroups && !cgroup_admit(h, owner ? owner : sk))
		return false;
	if (kind >= 32 || !(targ_stages & (1U << kind)))
		return false;
	count(&SEEN, kind, 1);
	if (!hash_kept(h))
		return false;
	if (!scoped)
		scope_read(sc, sk, dev, task, direct);
	return true;
}

/* This CPU's ring (programs do not migrate while they run); NULL if it has none. */
static __always_inline void *cpu_ring(void)
{
	__u32 cpu = bpf_get_smp_processor_id();
	return bpf_map_lookup_elem(&RINGS, &cpu);
}

/* An admitted event, in this CPU's staging memory, with its flow and scope filled in; NULL
 * (counted in LOST) when nothing can take it. Every path after a successful reserve ends in
 * event_submit, which gives the nesting level back. */
static __always_inline struct tcptape_event *event_reserve(__u8 kind, const struct flow *f,
							   const struct scope *sc)
{
	__u32 zero = 0;
	struct tcptape_batches *bs = bpf_map_lookup_elem(&BATCHES, &zero);
	if (!bs) {
		count(&LOST, 0, 1);
		return NULL;
	}
	__u32 depth = bs->depth;
	if (depth >= TCPTAPE_BATCH_LEVELS) {
		count(&LOST, 0, 1);
		return NULL;
	}
	/* Taken before the slot is chosen: a program interrupting this one from here on stages at
	 * the next level, and one that ran before this store has finished with the slot. */
	bs->depth = depth + 1;
	asm volatile("" ::: "memory");
	struct tcptape_batch *b = &bs->level[depth];
	__u32 n = b->count;
	if (n >= TCPTAPE_BATCH_EVENTS)
		n = 0; /* never: a full batch is written at once */
	struct tcptape_event *e = &b->events[n];
	/* Staging memory is reused: fields an event does not carry must still read as 0. */
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = bpf_ktime_get_ns();
	e->cpu = bpf_get_smp_processor_id();
	e->kind = kind;
	__builtin_memcpy(e->saddr, f->saddr, 16);
	__builtin_memcpy(e->daddr, f->daddr, 16);
	e->sport = f->sport;
	e->dport = f->dport;
	e->family = f->family;
	e->netns = sc->netns;
	e->ifindex = sc->ifindex;
	e->pid = sc->pid;
	e->valid = V_FLOW | sc->valid;
	if (sc->valid & V_PID) {
		bpf_get_current_comm(e->comm, sizeof(e->comm));
		e->task_cgroup = bpf_get_current_cgroup_id();
		e->valid |= V_TASK_CGROUP;
	}
	return e;
}

/* Writes the first `n` events of a batch into this CPU's ring as one record (counted in LOST if
 * the ring has no room), and empties the batch. Wakes the reader when `wake_bytes` come to wait
 * in the ring. */
static __always_inline void batch_write(struct tcptape_batch *b, __u32 n)
{
	__u64 bytes = (__u64)n * sizeof(struct tcptape_event);
	/* Kept from clang's folding, so that the verifier sees the bound at the call. */
	asm volatile("" : "+r"(bytes));
	if (bytes > sizeof(b->events)) {
		b->count = 0; /* never: n <= TCPTAPE_BATCH_EVENTS */
		return;
	}
	void *ring = cpu_ring();
	if (!ring) {
		count(&LOST, 0, n);
	} else {
		/* Only the batch that takes the ring past `wake_bytes` wakes the reader: a wakeup
		 * is an interrupt to this CPU (an exit in a virtual machine), and one per batch
		 * while the woken reader caught up cost about 18 ns per event. The reader drains
		 * the ring empty once woken, so the next crossing comes after it caught up. */
		__u64 before = bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA);
		bool crossing = before < wake_bytes && before + bytes >= wake_bytes;
		__u64 flags = crossing ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
		if (bytes && bpf_ringbuf_output(ring, b->events, bytes, flags))
			count(&LOST, 0, n);
	}
	b->count = 0;
}

/* Commits the event to its batch; a full batch, or one whose first event is old enough, goes
 * into the ring. */
static __always_inline int event_submit(struct tcptape_event *e)
{
	__u32 zero = 0;
	struct tcptape_batches *bs = bpf_map_lookup_elem(&BATCHES, &zero);
	if (!bs)
		return 0;
	/* Programs that interrupted this one have given their levels back: the top is this one's. */
	__u32 level = bs->depth - 1;
	if (level >= TCPTAPE_BATCH_LEVELS)
		return 0; /* never: event_reserve took it */
	struct tcptape_batch *b = &bs->level[level];
	__u32 n = b->count + 1;
	if (n == 1)
		b->first_ns = e->ts_ns;
	if (n >= TCPTAPE_BATCH_EVENTS || e->ts_ns - b->first_ns >= BATCH_MAX_AGE_NS)
		batch_write(b, n);
	else
		b->count = n;
	asm volatile("" ::: "memory");
	bs->depth = level;
	return 0;
}

static __always_inline void event_cookie(struct tcptape_event *e, struct sock *sk,
					 enum cookie_src src, bool direct)
{
	__u64 cookie = sock_cookie(sk, src, direct);
	if (cookie) {
		e->sock = cookie;
		e->valid |= V_SOCK;
	}
}

/* The socket of a socket stage: its cookie, and its cgroup, which attributes the flow (softirq
 * events included, where the current task is whichever was interrupted). */
static __always_inline void event_socket(struct tcptape_event *e, struct sock *sk,
					 enum cookie_src src, bool direct)
{
	event_cookie(e, sk, src, direct);
	e->cgroup = sock_cgroup_own(sk, direct);
	if (e->cgroup)
		e->valid |= V_CGROUP;
}

/* The tcp_sock of a TCP socket. Direct reads need the helper: the verifier allows no access past
 * struct sock through a struct sock pointer. NULL for sockets that are not full TCP sockets. */
static __always_inline struct tcp_sock *tcp_sock_of(struct sock *sk, bool direct)
{
	return direct ? bpf_skc_to_tcp_sock(sk) : (struct tcp_sock *)sk;
}

/* The congestion-control snapshot of a TCP socket. */
static __always_inline void event_tcp(struct tcptape_event *e, struct sock *sk, bool direct)
{
	struct tcp_sock *tp = tcp_sock_of(sk, direct);
	if (!tp)
		return;
	struct inet_connection_sock *icsk = (void *)tp;
	e->cwnd = RD(direct, tp, snd_cwnd);
	e->ssthresh = RD(direct, tp, snd_ssthresh);
	e->srtt_us = RD(direct, tp, srtt_us) >> 3;
	e->rttvar_us = tcp_rttvar_us(tp, direct);
	e->snd_wnd = RD(direct, tp, snd_wnd);
	e->rcv_wnd = RD(direct, tp, rcv_wnd);
	e->packets_out = RD(direct, tp, packets_out);
	e->retrans_out = RD(direct, tp, retrans_out);
	e->ca_state = direct ? BPF_CORE_READ_BITFIELD(icsk, icsk_ca_state)
			     : BPF_CORE_READ_BITFIELD_PROBED(icsk, icsk_ca_state);
	e->valid |= V_TCP | V_CA_STATE;
}

/* Sequence range and segment count from the TCP control block of a queued skb. */
static __always_inline void event_tcp_cb(struct tcptape_event *e, struct sk_buff *skb, bool segs,
					 bool direct)
{
	struct tcp_skb_cb *cb = (void *)skb->cb;
	__u32 seq = RD(direct, cb, seq);
	__u32 end = RD(direct, cb, end_seq);
	e->seq = seq;
	e->len = end - seq;
	e->valid |= V_SEQ | V_LEN;
	if (segs) {
		__u16 n = RD(direct, cb, tcp_gso_segs);
		e->segs = n ? n : 1;
		e->valid |= V_SEGS;
	}
}

/* ---- One handler per stage; the flavors in tcptape.bpf.c only extract their arguments. ---- */

/* A packet at a hop of the RX or TX path; with `seq`, only if its sequence number is that one. */
static __always_inline int on_packet_seq(__u8 kind, struct sk_buff *skb, enum hdr_base base,
					 bool direct, const __u32 *seq)
{
	if (!skb)
		return 0;
	struct packet p = {};
	if (!packet_read(&p, skb, base, direct))
		return 0;
	if (seq && p.seq != *seq)
		return 0;
	struct net_device *dev = RD(direct, skb, dev);
	/* What the driver is handed, for tx_done (only when tx_done is recorded: targ_stages is
	 * constant, so the verifier drops this otherwise). */
	if (kind == ST_TX_DRIVER && (targ_stages & (1U << ST_TX_DONE)) && port_match(&p.flow) &&
	    addr_match(&p.flow) && !dev_has_no_queue(dev, direct) && flow_kept(&p.flow)) {
		__u64 key = (__u64)skb;
		struct tx_sent sent = { .iif = RD(direct, skb, skb_iif), .seq = p.seq };
		bpf_map_update_elem(&TX_SENT, &key, &sent, BPF_ANY);
	}
	/* A transmitted packet's socket, for the pid and cgroup filters (received packets have none
	 * yet). */
	struct sock *owner = (targ_npids || targ_ncgroups) ? RD(direct, skb, sk) : NULL;
	struct scope sc;
	if (!admit(kind, &p.flow, &sc, NULL, dev, false, direct, owner))
		return 0;
	struct tcptape_event *e = event_reserve(kind, &p.flow, &sc);
	if (!e)
		return 0;
	e->seq = p.seq;
	e->len = p.len;
	e->skb = (__u64)skb;
	e->ack = p.ack;
	e->window = p.window;
	e->tcp_flags = p.flags;
	e->tcp_hlen = p.hlen;
	e->valid |= V_SEQ | V_LEN | V_SKB | V_TCP_HDR;
	struct sock *sk = RD(direct, skb, sk);
	if (sk)
		event_cookie(e, sk, COOKIE_READ, direct);
	return event_submit(e);
}

static __always_inline int on_packet(__u8 kind, struct sk_buff *skb, enum hdr_base base,
				     bool direct)
{
	return on_packet_seq(kind, skb, base, direct, NULL);
}

/* Most skbs one dequeue hands on at once (a bulk dequeue chains them through skb->next); the
 * kernel's own limits are BQL's byte budget and 8 for qdiscs that cannot bulk. */
#define DEQ_MAX 16

/* tx_qdisc_deq: every skb of a dequeue, not only the first (`packets` is how many left). */
static __always_inline int on_dequeue(struct sk_buff *skb, int packets, bool direct)
{
#pragma clang loop unroll(disable)
	for (int i = 0; i < DEQ_MAX; i++) {
		if (!skb || i >= packets)
			break;
		on_packet(ST_TX_QDISC_DEQ, skb, BASE_NETWORK, direct);
		skb = RD(direct, skb, next);
	}
	return 0;
}

/* tx_done: the driver's completion of an skb it was handed (consume_skb once the device has
 * sent it): one event per wire packet with software GSO, per TSO skb with TSO. Only skbs seen at
 * tx_driver qualify, still as they were there: received since (veth and loopback hand the
 * sender's skb to the receive path, which sets skb_iif) or another packet at the same address
 * (another sequence number) do not. */
static __always_inline int on_tx_done(struct sk_buff *skb, bool direct)
{
	if (!skb)
		return 0;
	__u16 proto = bpf_ntohs(RD(direct, skb, protocol));
	if (proto != ETH_P_IP && proto != ETH_P_IPV6)
		return 0;
	if (dev_has_no_queue(RD(direct, skb, dev), direct))
		return 0;
	__u64 key = (__u64)skb;
	struct tx_sent *found = bpf_map_lookup_elem(&TX_SENT, &key);
	if (!found)
		return 0;
	struct tx_sent sent = *found;
	bpf_map_delete_elem(&TX_SENT, &key);
	if (RD(direct, skb, skb_iif) != sent.iif)
		return 0;
	return on_packet_seq(ST_TX_DONE, skb, BASE_NETWORK, direct, &sent.seq);
}

/* The event of a socket stage: the flow from the socket, the filters and sampling decided on
 * it, then reserved in the ring with its scope and cookie filled. NULL when filtered out,
 * sampled out or the ring is full. */
static __always_inline struct tcptape_event *sock_event(__u8 kind, struct sock *sk,
							enum cookie_src src, bool task, bool direct)
{
	struct flow f = {};
	if (!flow_of_sock(&f, sk, direct))
		return NULL;
	struct scope sc;
	if (!admit(kind, &f, &sc, sk, NULL, task, direct, sk))
		return NULL;
	struct tcptape_event *e = event_reserve(kind, &f, &sc);
	if (!e)
		return NULL;
	event_socket(e, sk, src, direct);
	return e;
}

/* A TCP socket with an skb whose control block holds the sequence range (rx_tcp_est,
 * tx_tcp_xmit), and with `tcp` its congestion snapshot. */
static __always_inline int on_sock_skb(__u8 kind, struct sock *sk, struct sk_buff *skb,
				       enum cookie_src src, bool tcp, bool segs, bool direct)
{
	struct tcptape_event *e = sock_event(kind, sk, src, false, direct);
	if (!e)
		return 0;
	if (skb) {
		e->skb = (__u64)skb;
		e->valid |= V_SKB;
		event_tcp_cb(e, skb, segs, direct);
	}
	if (tcp)
		event_tcp(e, sk, direct);
	return event_submit(e);
}

static __always_inline int on_retransmit(struct sock *sk, struct sk_buff *skb, enum cookie_src src,
					 int err)
{
	struct flow f = {};
	if (!flow_of_sock(&f, sk, false))
		return 0;
	/* The kernel adds the skb's segment count to its counters before transmitting, and the skb
	 * can shrink before the tracepoint reports it (observed on 6.18: the counter grew by 17 while
	 * the reported skb had 4 segments). The socket's own total is counted at the same place, so
	 * its growth since the socket's previous event is what the kernel counted for this attempt.
	 * Tracked for every socket, admitted or not, so that the first admitted event already has
	 * its previous total. */
	__u64 key = (__u64)sk;
	struct retrans_seen now = {
		.total = BPF_CORE_READ((struct tcp_sock *)sk, total_retrans),
		.flow_id = flow_hash(&f),
	};
	struct retrans_seen *last = bpf_map_lookup_elem(&RETRANS_SEEN, &key);
	__u16 grew_segs = 0;
	if (last && last->flow_id == now.flow_id && err >= 0) {
		__u32 grew = now.total - last->total;
		if (grew > 0 && grew <= 0xffff)
			grew_segs = grew;
	}
	bpf_map_update_elem(&RETRANS_SEEN, &key, &now, BPF_ANY);
	struct scope sc;
	if (!admit(ST_RETRANSMIT, &f, &sc, sk, NULL, false, false, sk))
		return 0;
	struct tcptape_event *e = event_reserve(ST_RETRANSMIT, &f, &sc);
	if (!e)
		return 0;
	event_socket(e, sk, src, false);
	if (skb) {
		e->skb = (__u64)skb;
		e->valid |= V_SKB;
		event_tcp_cb(e, skb, true, false);
	}
	if (grew_segs)
		e->segs = grew_segs;
	event_tcp(e, sk, false);
	e->err = err;
	e->valid |= V_ERR;
	return event_submit(e);
}

/* rx_app: data copied to the application. */
static __always_inline int on_rx_app(struct sk_buff *skb, int len, bool direct)
{
	if (!skb || len <= 0)
		return 0;
	struct sock *sk = RD(direct, skb, sk);
	struct tcptape_event *e = sock_event(ST_RX_APP, sk, COOKIE_READ, true, direct);
	if (!e)
		return 0;
	e->skb = (__u64)skb;
	e->valid |= V_SKB;
	event_tcp_cb(e, skb, false, direct);
	e->len = len;
	return event_submit(e);
}

/* tx_sendmsg: the application hands `len` bytes to TCP; seq is where they start. `ts_ns`, when
 * not 0, is when the call started (the event is written when it ends); without `seq`, the
 * socket's write_seq then less `len` (`at_end`) or now. */
static __always_inline int on_sendmsg(struct sock *sk, enum cookie_src src, __u32 len, bool direct,
				      __u64 ts_ns, const __u32 *seq, bool at_end)
{
	struct tcptape_event *e = sock_event(ST_TX_SENDMSG, sk, src, true, direct);
	if (!e)
		return 0;
	if (ts_ns)
		e->ts_ns = ts_ns;
	if (seq) {
		e->seq = *seq;
		e->valid |= V_SEQ;
	} else {
		struct tcp_sock *tp = tcp_sock_of(sk, direct);
		if (tp) {
			e->seq = RD(direct, tp, write_seq) - (at_end ? len : 0);
			e->valid |= V_SEQ;
		}
	}
	e->len = len;
	e->valid |= V_LEN;
	return event_submit(e);
}

/* Opens a call: the first event of it on this thread (tcp_sendmsg's entry, or the first
 * tcp_sendmsg_locked of a call, which fires again for every skb the call fills and after it
 * slept) keeps its start time and sequence until the call ends. With `--pid`, a matching caller
 * marks its socket at once, so the packets the call sends are kept. */
static __always_inline int on_sendmsg_open(struct sock *sk, __u64 msg, bool direct)
{
	__u64 tid = bpf_get_current_pid_tgid();
	struct sendmsg_call *open = bpf_map_lookup_elem(&SENDMSG_CALLS, &tid);
	if (open && open->sk == (__u64)sk && open->msg == msg)
		return 0;
	struct sendmsg_call call = {
		.sk = (__u64)sk,
		.msg = msg,
		.ts_ns = bpf_ktime_get_ns(),
	};
	struct tcp_sock *tp = tcp_sock_of(sk, direct);
	if (tp) {
		call.seq = RD(direct, tp, write_seq);
		call.has_seq = 1;
	}
	bpf_map_update_elem(&SENDMSG_CALLS, &tid, &call, BPF_ANY);
	if (targ_npids && sk && task_is_targeted(direct)) {
		__u64 key = (__u64)sk;
		__u8 one = 1;
		bpf_map_update_elem(&SOCK_MARKS, &key, &one, BPF_ANY);
	}
	return 0;
}

/* Takes this thread's open call off the table: true (with `*call`) when there was one. */
static __always_inline bool sendmsg_close(struct sendmsg_call *call)
{
	__u64 tid = bpf_get_current_pid_tgid();
	struct sendmsg_call *open = bpf_map_lookup_elem(&SENDMSG_CALLS, &tid);
	if (!open)
		return false;
	*call = *open;
	bpf_map_delete_elem(&SENDMSG_CALLS, &tid);
	return true;
}

/* Ends this thread's open call on `sk` having written `ret` bytes (an error or 0: nothing): one
 * event per call, with the bytes the application was told were written. A call opened without
 * its socket (the classic tcp_sendmsg_locked record names none) takes this one, and its bytes
 * are taken to end at the socket's write_seq (exact unless another thread wrote meanwhile). */
static __always_inline int on_sendmsg_return(struct sock *sk, enum cookie_src src, int ret,
					     bool direct)
{
	struct sendmsg_call call;
	if (!sendmsg_close(&call) || (call.sk && call.sk != (__u64)sk) || ret <= 0)
		return 0;
	return on_sendmsg(sk, src, ret, direct, call.ts_ns, call.has_seq ? &call.seq : NULL, true);
}

/* The same where the end does not name the socket (kretprobe): the call's own, read without
 * helpers that need a typed pointer. */
static __always_inline int on_sendmsg_return_any(int ret)
{
	struct sendmsg_call call;
	if (!sendmsg_close(&call) || ret <= 0)
		return 0;
	return on_sendmsg((struct sock *)call.sk, COOKIE_READ, ret, false, call.ts_ns,
			  call.has_seq ? &call.seq : NULL, true);
}

static __always_inline int on_cong_state(struct sock *sk, enum cookie_src src, __u8 ca_state)
{
	struct tcptape_event *e = sock_event(ST_CONG_STATE, sk, src, false, false);
	if (!e)
		return 0;
	event_tcp(e, sk, false);
	e->ca_state = ca_state; /* the new state: the socket still holds the old one */
	return event_submit(e);
}

static __always_inline int on_state_event(struct sock *sk, enum cookie_src src, int oldstate,
					  int newstate)
{
	struct tcptape_event *e = sock_event(ST_STATE, sk, src, true, false);
	if (!e)
		return 0;
	e->state = newstate;
	e->old_state = oldstate;
	e->valid |= V_STATE;
	return event_submit(e);
}

/* A `--pid` process's socket starts listening: its port goes into LISTEN_PORTS; a listener
 * closes: its port leaves. */
static __always_inline void listener_track(struct sock *sk, int oldstate, int newstate)
{
	if (!targ_npids || (newstate != TCP_LISTEN && oldstate != TCP_LISTEN))
		return;
	struct net *net = BPF_CORE_READ(sk, __sk_common.skc_net.net);
	__u64 key = listen_key(BPF_CORE_READ(net, ns.inum), BPF_CORE_READ(sk, __sk_common.skc_num));
	if (newstate != TCP_LISTEN) {
		bpf_map_delete_elem(&LISTEN_PORTS, &key);
		return;
	}
	__u8 one = 1;
	if (task_is_targeted(false))
		bpf_map_update_elem(&LISTEN_PORTS, &key, &one, BPF_ANY);
}

static __always_inline int on_state(struct sock *sk, enum cookie_src src, int oldstate,
				    int newstate)
{
	listener_track(sk, oldstate, newstate);
	int ret = on_state_event(sk, src, oldstate, newstate);
	/* After the closing event is recorded: a later socket at this address starts unmarked. */
	if (targ_npids && newstate == TCP_CLOSE) {
		__u64 key = (__u64)sk;
		bpf_map_delete_elem(&SOCK_MARKS, &key);
	}
	return ret;
}

/* drop: a TCP packet freed with a reason. The reason value is raw; its name comes from the
 * recording host's BTF, in user space. */
static __always_inline int on_drop(struct sk_buff *skb, __u32 reason, bool has_reason)
{
	if (!skb)
		return 0;
	struct packet p = {};
	__u16 nh = BPF_CORE_READ(skb, network_header);
	if (!packet_read(&p, skb, nh == (__u16)~0U ? BASE_DATA : BASE_NETWORK, false))
		return 0;
	struct net_device *dev = BPF_CORE_READ(skb, dev);
	struct scope sc;
	if (!admit(ST_DROP, &p.flow, &sc, NULL, dev, false, false, NULL))
		return 0;
	struct tcptape_event *e = event_reserve(ST_DROP, &p.flow, &sc);
	if (!e)
		return 0;
	e->seq = p.seq;
	e->len = p.len;
	e->skb = (__u64)skb;
	e->ack = p.ack;
	e->window = p.window;
	e->tcp_flags = p.flags;
	e->tcp_hlen = p.hlen;
	e->valid |= V_SEQ | V_LEN | V_SKB | V_TCP_HDR;
	if (has_reason) {
		e->drop_reason = reason;
		e->valid |= V_DROP;
	}
	return event_submit(e);
}

/* buffer: memory pressure on a TCP socket. `err` says which: 0 = receive queue full,
 * 1 + kind = protocol memory limit exceeded (kind 0 = send, 1 = receive). */
static __always_inline int on_buffer(struct sock *sk, enum cookie_src src, int which, __u32 bytes)
{
	struct tcptape_event *e = sock_event(ST_BUFFER, sk, src, true, false);
	if (!e)
		return 0;
	e->err = which;
	e->len = bytes;
	e->valid |= V_ERR | V_LEN;
	return event_submit(e);
}

#endif /* TCPTAPE_CAPTURE_BPF_H */
