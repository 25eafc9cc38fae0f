/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The few kernel types tcptape reads, declared with only the fields it uses.
 *
 * Every struct is `preserve_access_index`: clang records each field access as a CO-RE relocation
 * and the loader rewrites the offset for the running kernel's BTF, so these declarations do not
 * have to match any kernel's layout. Field *names* must exist in the target kernel (or be guarded
 * with bpf_core_field_exists, see core_fixes.bpf.h). Wire formats (IP and TCP headers) are ABI
 * and declared plainly. */
#ifndef TCPTAPE_KERNEL_TYPES_H
#define TCPTAPE_KERNEL_TYPES_H
/* Tells bpf_tracing.h that pt_regs has the kernel's field names (di, si, ...). */
#define __VMLINUX_H__

typedef unsigned char __u8;
typedef signed char __s8;
typedef unsigned short __u16;
typedef signed short __s16;
typedef unsigned int __u32;
typedef signed int __s32;
typedef unsigned long long __u64;
typedef signed long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
#define true 1
#define false 0
#define NULL ((void *)0)

/* Map and program type constants used by the BPF helper headers (UAPI, stable values). */
enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_ARRAY_OF_MAPS = 12,
	BPF_MAP_TYPE_RINGBUF = 27,
};

enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
	BPF_EXIST = 2,
};

enum {
	BPF_RB_NO_WAKEUP = 1,
	BPF_RB_FORCE_WAKEUP = 2,
};

enum {
	BPF_RB_AVAIL_DATA = 0,
	BPF_RB_RING_SIZE = 1,
	BPF_RB_CONS_POS = 2,
	BPF_RB_PROD_POS = 3,
};

/* One page fragment: a page (or, low bit set, a net_iov), its length and offset. The same 16
 * bytes as struct bio_vec (6.1) and struct skb_frag (netmem, 6.12+); read whole, as bytes, so it
 * is declared before the CO-RE records below (a relocation on it would find no kernel type). */
struct skb_frag_bytes {
	__u64 page;
	__u32 len;
	__u32 offset;
};

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct ns_common {
	unsigned int inum;
};

struct net {
	struct ns_common ns;
};

typedef struct {
	struct net *net;
} possible_net_t;

struct net_device {
	/* A plain field on 6.1, a bitfield on 6.18: read with BPF_CORE_READ_BITFIELD. */
	unsigned long priv_flags : 32;
	int ifindex;
	possible_net_t nd_net;
};

struct in6_addr {
	union {
		__u8 u6_addr8[16];
		__be32 u6_addr32[4];
	} in6_u;
};

struct sock_common {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	volatile unsigned char skc_state;
	possible_net_t skc_net;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
	struct {
		__s64 counter;
	} skc_cookie;
};

/* cgroup v2: a cgroup's id is its kernfs node's id, the inode number of its directory. */
struct kernfs_node {
	__u64 id;
};

struct cgroup {
	struct kernfs_node *kn;
	int level;
	/* Since v6.0 (commit 7f203bc89eb6 "cgroup: Replace cgroup->ancestor_ids[] with
	 * ->ancestors[]"): the cgroup at each depth from the root down to itself. */
	struct cgroup *ancestors[];
};

/* Before v6.0: the ids of the ancestors, at each depth. */
struct cgroup___old {
	int level;
	__u64 ancestor_ids[];
};

/* Since v5.15 a plain pointer to the socket's cgroup v2 (before, a union with v1 data that
 * capture.bpf.h leaves alone: the field check fails and the cgroup filter admits by flow). */
struct sock_cgroup_data {
	struct cgroup *cgroup;
};

struct sock {
	struct sock_common __sk_common;
	struct sock_cgroup_data sk_cgrp_data;
	__u16 sk_protocol;
	int sk_rcvbuf;
	int sk_sndbuf;
	int sk_wmem_queued;
	/* `sk_rmem_alloc` is a macro for sk_backlog.rmem_alloc. */
	struct {
		struct {
			int counter;
		} rmem_alloc;
	} sk_backlog;
};

/* Before v5.6 (commit bf9765145b85 "sock: Make sk_protocol a 16-bit value") sk_protocol was an
 * 8-bit bitfield; core_fixes.bpf.h reads whichever exists. */
struct sock___old {
	unsigned int __sk_flags_offset[0];
	unsigned int sk_padding : 1, sk_kern_sock : 1, sk_no_check_tx : 1, sk_no_check_rx : 1,
		sk_userlocks : 4, sk_protocol : 8, sk_type : 16;
};

struct inet_sock {
	__be16 inet_sport;
};

struct inet_connection_sock {
	__u8 icsk_ca_state : 5;
};

struct tcp_sock {
	__u32 snd_cwnd;
	__u32 snd_ssthresh;
	__u32 srtt_us;
	__u32 mdev_us;
	__u32 snd_wnd;
	__u32 rcv_wnd;
	__u32 packets_out;
	__u32 retrans_out;
	__u32 snd_una;
	__u32 snd_nxt;
	__u32 write_seq;
	__u32 rcv_nxt;
	__u32 copied_seq;
	__u32 total_retrans;
};

struct sk_buff {
	struct sk_buff *next; /* in an anonymous union in the kernel: CO-RE finds it by name */
	struct sock *sk;
	struct net_device *dev;
	char cb[48];
	unsigned int len;
	unsigned int data_len; /* bytes in page fragments, not in the linear data */
	unsigned int end;      /* offset of skb_shared_info from head (64-bit kernels) */
	int skb_iif;
	__be16 protocol;
	__u16 transport_header;
	__u16 network_header;
	__u16 mac_header;
	unsigned char *head;
	unsigned char *data;
};

struct skb_shared_info {
	__u8 nr_frags;
	struct skb_frag_bytes frags[1];
};

struct tcp_skb_cb {
	__u32 seq;
	__u32 end_seq;
	__u16 tcp_gso_segs;
};

struct iov_iter {
	__u64 count;
};

struct msghdr {
	struct iov_iter msg_iter;
};

struct Qdisc;
struct netdev_queue;
struct proto;
struct request_sock;

/* Classic tracepoint records (their layouts are in the kernel's BTF too, so CO-RE applies). */
struct trace_entry {
	unsigned short type;
};

struct trace_event_raw_net_dev_template {
	void *skbaddr;
	unsigned int len;
};

struct trace_event_raw_net_dev_rx_verbose_template {
	const void *skbaddr;
	unsigned int len;
};

struct trace_event_raw_net_dev_start_xmit {
	const void *skbaddr;
	unsigned int len;
};

struct trace_event_raw_qdisc_enqueue {
	void *skbaddr;
	int ifindex;
};

struct trace_event_raw_qdisc_dequeue {
	int packets;
	void *skbaddr;
	int ifindex;
};

struct trace_event_raw_consume_skb {
	void *skbaddr;
};

/* Only its existence is checked (core_fixes.bpf.h); values come from the host's BTF. */
enum skb_drop_reason {
	SKB_DROP_REASON_NOT_SPECIFIED = 2,
};

struct trace_event_raw_kfree_skb {
	void *skbaddr;
	void *rx_sk;
	enum skb_drop_reason reason;
};

struct trace_event_raw_skb_copy_datagram_iovec {
	const void *skbaddr;
	int len;
};

struct trace_event_raw_tcp_retransmit_skb {
	const void *skbaddr;
	const void *skaddr;
	int err;
};

struct trace_event_raw_tcp_probe {
	const void *skbaddr;
	const void *skaddr;
};

struct trace_event_raw_tcp_cong_state_set {
	const void *skaddr;
	__u8 cong_state;
};

struct trace_event_raw_inet_sock_set_state {
	const void *skaddr;
	int oldstate;
	int newstate;
	__u16 protocol;
};

struct trace_event_raw_tcp_sendmsg_locked {
	const void *skb_addr;
	int skb_len;
	int msg_left;
	int size_goal;
};

struct trace_event_raw_sock_msg_length {
	void *sk;
	__u16 protocol;
	int ret;
};

struct trace_event_raw_sock_exceed_buf_limit {
	char name[32];
	long allocated;
	int kind;
};

#pragma clang attribute pop

/* Wire formats: fixed by the protocols, no relocation needed. */
struct iphdr {
	__u8 ihl : 4, version : 4;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__be32 saddr;
	__be32 daddr;
};

struct ipv6hdr {
	__u8 priority : 4, version : 4;
	__u8 flow_lbl[3];
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

struct tcphdr {
	__be16 source;
	__be16 dest;
	__be32 seq;
	__be32 ack_seq;
	__u16 res1 : 4, doff : 4, flags : 8;
	__be16 window;
	__u16 check;
	__u16 urg_ptr;
};

struct pt_regs {
	unsigned long r15, r14, r13, r12, bp, bx, r11, r10, r9, r8, ax, cx, dx, si, di, orig_ax,
		ip, cs, flags, sp, ss;
};

#endif /* TCPTAPE_KERNEL_TYPES_H */
