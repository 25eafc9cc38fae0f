/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* What every tcptape program shares: maps, filters, flow parsing, and the submit path.
 *
 * An event is built on the stack, checked against the filters (set before load as
 * `const volatile` globals, so the verifier removes the checks that are off), counted per stage,
 * sampled by flow, and copied into the ring buffer. Only TCP is ever recorded. */
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

/* Filter limits; recorder/src/filters.rs refuses more. */
#define MAX_PORTS 8
#define MAX_CIDRS 4
#define MAX_PIDS 8
#define MAX_NETNS 4
#define MAX_IFACES 8

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
/* Interface indexes are per network namespace: the namespace the names were resolved in. */
const volatile __u32 targ_ifindex_netns = 0;
/* Keep 1 flow in `targ_sample` (1 = all). */
const volatile __u32 targ_sample = 1;
/* Wake the reader once this many bytes wait in the ring (the reader also polls on a timer). */
const volatile __u64 wake_bytes = 1 << 20;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} EVENTS SEC(".maps");

/* Events seen per stage (after filters, before sampling), per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ST_MAX);
	__type(key, __u32);
	__type(value, __u64);
} SEEN SEC(".maps");

/* Ring-buffer reserve failures, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} LOST SEC(".maps");

/* Flows admitted by the pid or interface filter: events that carry no pid or interface pass when
 * their flow was admitted by one that does. Keyed by the symmetric flow hash. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u8);
} FLOW_MARKS SEC(".maps");

/* The tcp_sendmsg_locked tracepoint fires once per skb a sendmsg call fills; the last call seen
 * on each CPU, so that only its first event is recorded (see on_sendmsg_locked). */
struct sendmsg_call {
	__u64 sk;
	__u64 msg;
	__u64 left;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sendmsg_call);
} SENDMSG_CALL SEC(".maps");

/* Per socket, the kernel's count of retransmitted segments (tcp_sock.total_retrans) at its last
 * retransmit event; see on_retransmit. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u32);
} RETRANS_SEEN SEC(".maps");

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Where a packet's network header is: at skb->data (receive path, before the stack resets
 * network_header) or at head + network_header (transmit path and later). */
enum hdr_base {
	BASE_DATA = 0,
	BASE_NETWORK = 1,
};

/* Reads p->f: a plain load where the verifier knows p's BTF type (arguments of tp_btf programs
 * and pointers reached from them), a probe read elsewhere (classic tracepoints, kprobes). `direct`
 * is a constant at every call site, so only one branch is compiled into each program. */
#define RD(direct, p, f) ((direct) ? (p)->f : BPF_CORE_READ(p, f))

static __always_inline void event_init(struct tcptape_event *e, __u8 kind)
{
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = bpf_ktime_get_ns();
	e->cpu = bpf_get_smp_processor_id();
	e->kind = kind;
}

static __always_inline void event_task(struct tcptape_event *e)
{
	__u64 id = bpf_get_current_pid_tgid();
	if ((__u32)id == 0) /* the idle task or softirq on it: no process to name */
		return;
	e->pid = id >> 32;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->valid |= V_PID;
}

static __always_inline void event_dev(struct tcptape_event *e, struct net_device *dev, bool direct)
{
	if (!dev)
		return;
	e->ifindex = RD(direct, dev, ifindex);
	e->valid |= V_IFINDEX;
	struct net *net = RD(direct, dev, nd_net.net);
	if (net) {
		e->netns = RD(direct, net, ns.inum);
		e->valid |= V_NETNS;
	}
}

static __always_inline __u64 sock_cookie_read(struct sock *sk, bool direct)
{
	return RD(direct, sk, __sk_common.skc_cookie.counter);
}

/* Fills the flow, namespace and cookie from a TCP socket; false if `sk` is not an inet TCP
 * socket. `cookie` is the flavor's cookie (0: read the one the socket already has). */
static __always_inline bool event_sock_(struct tcptape_event *e, struct sock *sk, __u64 cookie,
					bool direct)
{
	if (!sk)
		return false;
	__u16 family = RD(direct, sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return false;
	if (sk_protocol_of(sk, direct) != IPPROTO_TCP)
		return false;
	e->family = family;
	if (family == AF_INET) {
		__be32 s = RD(direct, sk, __sk_common.skc_rcv_saddr);
		__be32 d = RD(direct, sk, __sk_common.skc_daddr);
		__builtin_memcpy(e->saddr, &s, 4);
		__builtin_memcpy(e->daddr, &d, 4);
	} else if (direct) {
		__builtin_memcpy(e->saddr, sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8, 16);
		__builtin_memcpy(e->daddr, sk->__sk_common.skc_v6_daddr.in6_u.u6_addr8, 16);
	} else {
		BPF_CORE_READ_INTO(&e->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&e->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
	e->sport = RD(direct, sk, __sk_common.skc_num);
	e->dport = bpf_ntohs(RD(direct, sk, __sk_common.skc_dport));
	e->valid |= V_FLOW;
	struct net *net = RD(direct, sk, __sk_common.skc_net.net);
	if (net) {
		e->netns = RD(direct, net, ns.inum);
		e->valid |= V_NETNS;
	}
	if (!cookie)
		cookie = sock_cookie_read(sk, direct);
	if (cookie) {
		e->sock = cookie;
		e->valid |= V_SOCK;
	}
	return true;
}

static __always_inline bool event_sock(struct tcptape_event *e, struct sock *sk, __u64 cookie)
{
	return event_sock_(e, sk, cookie, false);
}

/* The congestion-control snapshot of a TCP socket. */
static __always_inline void event_tcp(struct tcptape_event *e, struct sock *sk)
{
	struct tcp_sock *tp = (void *)sk;
	struct inet_connection_sock *icsk = (void *)sk;
	e->cwnd = BPF_CORE_READ(tp, snd_cwnd);
	e->ssthresh = BPF_CORE_READ(tp, snd_ssthresh);
	e->srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3;
	e->rttvar_us = tcp_rttvar_us(tp);
	e->snd_wnd = BPF_CORE_READ(tp, snd_wnd);
	e->rcv_wnd = BPF_CORE_READ(tp, rcv_wnd);
	e->packets_out = BPF_CORE_READ(tp, packets_out);
	e->retrans_out = BPF_CORE_READ(tp, retrans_out);
	e->ca_state = BPF_CORE_READ_BITFIELD_PROBED(icsk, icsk_ca_state);
	e->valid |= V_TCP | V_CA_STATE;
}

/* Sequence range and segment count from the TCP control block of a queued skb. */
static __always_inline void event_tcp_cb(struct tcptape_event *e, struct sk_buff *skb, bool segs)
{
	struct tcp_skb_cb *cb = (void *)skb->cb;
	__u32 seq = BPF_CORE_READ(cb, seq);
	__u32 end = BPF_CORE_READ(cb, end_seq);
	e->seq = seq;
	e->len = end - seq;
	e->valid |= V_SEQ | V_LEN;
	if (segs) {
		__u16 n = BPF_CORE_READ(cb, tcp_gso_segs);
		e->segs = n ? n : 1;
		e->valid |= V_SEGS;
	}
}

/* Parses the IP and TCP headers of a packet: flow, sequence number and TCP payload length.
 * False when the packet is not TCP over IPv4/IPv6 or the headers cannot be read. */
static __always_inline bool event_packet(struct tcptape_event *e, struct sk_buff *skb,
					 enum hdr_base base, bool direct)
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
	__u32 ip_len;
	if (proto == ETH_P_IP) {
		struct iphdr ip;
		if (bpf_probe_read_kernel(&ip, sizeof(ip), nh))
			return false;
		if (ip.version != 4 || ip.protocol != IPPROTO_TCP || ip.ihl < 5)
			return false;
		e->family = AF_INET;
		__builtin_memcpy(e->saddr, &ip.saddr, 4);
		__builtin_memcpy(e->daddr, &ip.daddr, 4);
		ip_len = ip.ihl * 4;
	} else {
		struct ipv6hdr ip6;
		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), nh))
			return false;
		/* Extension headers before TCP are rare for TCP; such packets are not recorded. */
		if (ip6.version != 6 || ip6.nexthdr != IPPROTO_TCP)
			return false;
		e->family = AF_INET6;
		__builtin_memcpy(e->saddr, ip6.saddr, 16);
		__builtin_memcpy(e->daddr, ip6.daddr, 16);
		ip_len = sizeof(ip6);
	}
	struct tcphdr th;
	if (bpf_probe_read_kernel(&th, sizeof(th), nh + ip_len))
		return false;
	e->sport = bpf_ntohs(th.source);
	e->dport = bpf_ntohs(th.dest);
	e->seq = bpf_ntohl(th.seq);
	e->valid |= V_FLOW | V_SEQ;
	/* Payload = skb bytes after the TCP header; skb->len counts from skb->data. */
	__u32 hdr = (__u32)(nh - data) + ip_len + th.doff * 4;
	__u32 len = RD(direct, skb, len);
	e->len = len > hdr ? len - hdr : 0;
	e->valid |= V_LEN;
	return true;
}

/* A hash of the flow that is the same in both directions, so both ends of a connection and every
 * stage of its packets are sampled alike. */
static __always_inline __u32 flow_hash(const struct tcptape_event *e)
{
	__u32 h = 0x9e3779b9u ^ e->family;
	const __u32 *s = (const void *)e->saddr;
	const __u32 *d = (const void *)e->daddr;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		h ^= (s[i] ^ d[i]) + (s[i] + d[i]) * 0x85ebca6bu;
		h = (h << 13) | (h >> 19);
		h = h * 5 + 0xe6546b64u;
	}
	h ^= ((__u32)(e->sport ^ e->dport) << 16) | (__u16)(e->sport + e->dport);
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

static __always_inline bool port_match(const struct tcptape_event *e)
{
	if (!targ_nports)
		return true;
#pragma unroll
	for (int i = 0; i < MAX_PORTS; i++) {
		if (i >= targ_nports)
			break;
		if (targ_ports[i] == e->sport || targ_ports[i] == e->dport)
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

static __always_inline bool addr_match(const struct tcptape_event *e)
{
	if (!targ_ncidrs)
		return true;
	int n = e->family == AF_INET ? 4 : 16;
	for (int i = 0; i < MAX_CIDRS; i++) {
		if (i >= targ_ncidrs)
			break;
		if (targ_cidr_family[i] != e->family)
			continue;
		if (cidr_has(i, e->saddr, n) || cidr_has(i, e->daddr, n))
			return true;
	}
	return false;
}

static __always_inline bool netns_match(const struct tcptape_event *e)
{
	if (!targ_nnetns)
		return true;
	if (!(e->valid & V_NETNS))
		return false;
#pragma unroll
	for (int i = 0; i < MAX_NETNS; i++) {
		if (i >= targ_nnetns)
			break;
		if (targ_netns[i] == e->netns)
			return true;
	}
	return false;
}

/* 1: the event's own pid/interface matches; 0: it carries none; -1: it carries one that does not
 * match. */
static __always_inline int pid_iface_verdict(const struct tcptape_event *e)
{
	int verdict = 0;
	if (targ_npids && (e->valid & V_PID)) {
		bool ok = false;
#pragma unroll
		for (int i = 0; i < MAX_PIDS; i++) {
			if (i < targ_npids && targ_pids[i] == e->pid)
				ok = true;
		}
		if (!ok)
			return -1;
		verdict = 1;
	}
	if (targ_nifindex && (e->valid & V_IFINDEX)) {
		bool ok = false;
#pragma unroll
		for (int i = 0; i < MAX_IFACES; i++) {
			if (i < targ_nifindex && targ_ifindex[i] == e->ifindex)
				ok = true;
		}
		if (targ_ifindex_netns && (!(e->valid & V_NETNS) || e->netns != targ_ifindex_netns))
			ok = false;
		if (!ok)
			return -1;
		verdict = 1;
	}
	return verdict;
}

static __always_inline void count(void *map, __u32 key)
{
	__u64 *n = bpf_map_lookup_elem(map, &key);
	if (n)
		*n += 1;
}

/* Filters, counts, samples and emits an event that has its flow filled in. */
static __always_inline int submit(struct tcptape_event *e)
{
	if (!(e->valid & V_FLOW))
		return 0;
	if (!port_match(e) || !addr_match(e) || !netns_match(e))
		return 0;
	__u32 h = flow_hash(e);
	if (targ_npids || targ_nifindex) {
		int v = pid_iface_verdict(e);
		if (v < 0)
			return 0;
		if (v > 0) {
			__u8 one = 1;
			bpf_map_update_elem(&FLOW_MARKS, &h, &one, BPF_ANY);
		} else if (!bpf_map_lookup_elem(&FLOW_MARKS, &h)) {
			return 0;
		}
	}
	count(&SEEN, e->kind);
	if (targ_sample > 1 && h % targ_sample != 0)
		return 0;
	__u64 avail = bpf_ringbuf_query(&EVENTS, BPF_RB_AVAIL_DATA);
	__u64 flags = avail + sizeof(*e) >= wake_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_output(&EVENTS, e, sizeof(*e), flags))
		count(&LOST, 0);
	return 0;
}

/* ---- One handler per stage; the flavors in tcptape.bpf.c only extract their arguments. ---- */

/* A packet at a hop of the RX or TX path. */
static __always_inline int on_packet(__u8 kind, struct sk_buff *skb, enum hdr_base base,
				     bool direct)
{
	if (!skb)
		return 0;
	struct tcptape_event e;
	event_init(&e, kind);
	if (!event_packet(&e, skb, base, direct))
		return 0;
	e.skb = (__u64)skb;
	e.valid |= V_SKB;
	event_dev(&e, RD(direct, skb, dev), direct);
	struct sock *sk = RD(direct, skb, sk);
	if (sk) {
		__u64 c = sock_cookie_read(sk, direct);
		if (c) {
			e.sock = c;
			e.valid |= V_SOCK;
		}
	}
	return submit(&e);
}

/* tx_done: a transmitted skb freed after completion. Only skbs still owned by a TCP socket
 * (transmit clones) qualify; received skbs are orphaned before they are freed. */
static __always_inline int on_tx_done(struct sk_buff *skb)
{
	if (!skb)
		return 0;
	struct sock *sk = BPF_CORE_READ(skb, sk);
	if (!sk || sk_protocol_of(sk, false) != IPPROTO_TCP)
		return 0;
	return on_packet(ST_TX_DONE, skb, BASE_NETWORK, false);
}

/* A TCP socket with an skb whose control block holds the sequence range (rx_tcp_est,
 * tx_tcp_xmit, retransmit, tcp_sample). */
static __always_inline int on_sock_skb(__u8 kind, struct sock *sk, struct sk_buff *skb,
				       __u64 cookie, bool tcp, bool segs, bool direct)
{
	struct tcptape_event e;
	event_init(&e, kind);
	if (!event_sock_(&e, sk, cookie, direct))
		return 0;
	if (skb) {
		e.skb = (__u64)skb;
		e.valid |= V_SKB;
		event_tcp_cb(&e, skb, segs);
	}
	if (tcp)
		event_tcp(&e, sk);
	return submit(&e);
}

static __always_inline int on_retransmit(struct sock *sk, struct sk_buff *skb, __u64 cookie,
					 int err)
{
	struct tcptape_event e;
	event_init(&e, ST_RETRANSMIT);
	if (!event_sock(&e, sk, cookie))
		return 0;
	if (skb) {
		e.skb = (__u64)skb;
		e.valid |= V_SKB;
		event_tcp_cb(&e, skb, true);
	}
	event_tcp(&e, sk);
	e.err = err;
	e.valid |= V_ERR;
	/* The kernel adds the skb's segment count to its counters before transmitting, and the skb
	 * can shrink before the tracepoint reports it (observed on 6.18: the counter grew by 17 while
	 * the reported skb had 4 segments). The socket's own total is counted at the same place, so
	 * its growth since the socket's previous event is what the kernel counted for this attempt. */
	__u64 key = (__u64)sk;
	__u32 total = BPF_CORE_READ((struct tcp_sock *)sk, total_retrans);
	__u32 *last = bpf_map_lookup_elem(&RETRANS_SEEN, &key);
	if (last && err >= 0) {
		__u32 grew = total - *last;
		if (grew > 0 && grew <= 0xffff)
			e.segs = grew;
	}
	bpf_map_update_elem(&RETRANS_SEEN, &key, &total, BPF_ANY);
	return submit(&e);
}

/* rx_app: data copied to the application. */
static __always_inline int on_rx_app(struct sk_buff *skb, int len, bool direct)
{
	if (!skb || len <= 0)
		return 0;
	struct sock *sk = RD(direct, skb, sk);
	struct tcptape_event e;
	event_init(&e, ST_RX_APP);
	if (!event_sock_(&e, sk, 0, direct))
		return 0;
	e.skb = (__u64)skb;
	e.valid |= V_SKB;
	event_tcp_cb(&e, skb, false);
	e.len = len;
	event_task(&e);
	return submit(&e);
}

/* tx_sendmsg: the application hands `len` bytes to TCP; seq is where they start. */
static __always_inline int on_sendmsg(struct sock *sk, __u64 cookie, __u32 len)
{
	struct tcptape_event e;
	event_init(&e, ST_TX_SENDMSG);
	if (!event_sock(&e, sk, cookie))
		return 0;
	struct tcp_sock *tp = (void *)sk;
	e.seq = BPF_CORE_READ(tp, write_seq);
	e.len = len;
	e.valid |= V_SEQ | V_LEN;
	event_task(&e);
	return submit(&e);
}

/* tx_sendmsg from the tcp_sendmsg_locked tracepoint: `left` (bytes still to copy) only shrinks
 * within one call, so an event on the same socket and message with less left is the same call and
 * is not recorded again. The first event of a call has left = the call's size. `msg` is 0 where
 * the flavor has no message pointer (classic tracepoint): then a new call smaller than what the
 * previous call on that CPU had left is taken for the same call. */
static __always_inline int on_sendmsg_locked(struct sock *sk, __u64 cookie, __u64 msg, __u64 left)
{
	__u32 zero = 0;
	struct sendmsg_call *last = bpf_map_lookup_elem(&SENDMSG_CALL, &zero);
	if (last) {
		bool same = last->sk == (__u64)sk && last->msg == msg && left < last->left;
		last->sk = (__u64)sk;
		last->msg = msg;
		last->left = left;
		if (same)
			return 0;
	}
	return on_sendmsg(sk, cookie, left);
}

static __always_inline int on_cong_state(struct sock *sk, __u64 cookie, __u8 ca_state)
{
	struct tcptape_event e;
	event_init(&e, ST_CONG_STATE);
	if (!event_sock(&e, sk, cookie))
		return 0;
	event_tcp(&e, sk);
	e.ca_state = ca_state; /* the new state: the socket still holds the old one */
	return submit(&e);
}

static __always_inline int on_state(struct sock *sk, __u64 cookie, int oldstate, int newstate)
{
	struct tcptape_event e;
	event_init(&e, ST_STATE);
	if (!event_sock(&e, sk, cookie))
		return 0;
	e.state = newstate;
	e.old_state = oldstate;
	e.valid |= V_STATE;
	event_task(&e);
	return submit(&e);
}

/* drop: a TCP packet freed with a reason. The reason value is raw; its name comes from the
 * recording host's BTF, in user space. */
static __always_inline int on_drop(struct sk_buff *skb, __u32 reason, bool has_reason)
{
	if (!skb)
		return 0;
	struct tcptape_event e;
	event_init(&e, ST_DROP);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	if (!event_packet(&e, skb, nh == (__u16)~0U ? BASE_DATA : BASE_NETWORK, false))
		return 0;
	e.skb = (__u64)skb;
	e.valid |= V_SKB;
	event_dev(&e, BPF_CORE_READ(skb, dev), false);
	if (has_reason) {
		e.drop_reason = reason;
		e.valid |= V_DROP;
	}
	return submit(&e);
}

/* buffer: memory pressure on a TCP socket. `err` says which: 0 = receive queue full,
 * 1 + kind = protocol memory limit exceeded (kind 0 = send, 1 = receive). */
static __always_inline int on_buffer(struct sock *sk, __u64 cookie, int which, __u32 bytes)
{
	struct tcptape_event e;
	event_init(&e, ST_BUFFER);
	if (!event_sock(&e, sk, cookie))
		return 0;
	e.err = which;
	e.len = bytes;
	e.valid |= V_ERR | V_LEN;
	event_task(&e);
	return submit(&e);
}

#endif /* TCPTAPE_CAPTURE_BPF_H */
