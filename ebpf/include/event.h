/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The kernel->user event of tcptape: mirror of `RawEvent` in common/src/event.rs.
 * Fixed-width fields ordered by alignment, so there is no padding. Both sides assert the same
 * size and offsets, and a test compiles this header and compares every offset with Rust's. */
#ifndef TCPTAPE_EVENT_H
#define TCPTAPE_EVENT_H

#ifndef __bpf__
#include <stddef.h>
#include <linux/types.h>
#endif

/* Stage codes: common/src/stage.rs. Never renumber. */
enum tcptape_stage {
	ST_RX_DRIVER = 1,
	ST_RX_NETIF = 2,
	ST_RX_IP = 3,
	ST_RX_TCP = 4,
	ST_RX_TCP_EST = 5,
	ST_RX_APP = 6,
	ST_TX_SENDMSG = 7,
	ST_TX_TCP_XMIT = 8,
	ST_TX_DEV_QUEUE = 9,
	ST_TX_QDISC_ENQ = 10,
	ST_TX_QDISC_DEQ = 11,
	ST_TX_DRIVER = 12,
	ST_TX_DONE = 13,
	ST_RETRANSMIT = 14,
	ST_TCP_SAMPLE = 15,
	ST_CONG_STATE = 16,
	ST_STATE = 17,
	ST_DROP = 18,
	ST_BUFFER = 19,
	ST_MAX = 20,
};

/* Bits of `valid`: common/src/event.rs `valid`. */
#define V_SKB (1u << 0)
#define V_SOCK (1u << 1)
#define V_PID (1u << 2)
#define V_NETNS (1u << 3)
#define V_IFINDEX (1u << 4)
#define V_FLOW (1u << 5)
#define V_LEN (1u << 6)
#define V_SEQ (1u << 7)
#define V_TCP (1u << 8)
#define V_STATE (1u << 9)
#define V_CA_STATE (1u << 10)
#define V_DROP (1u << 11)
#define V_ERR (1u << 12)
#define V_SEGS (1u << 13)
#define V_CGROUP (1u << 14)
#define V_TASK_CGROUP (1u << 15)
#define V_TCP_HDR (1u << 16)

struct tcptape_event {
	__u64 ts_ns;
	__u64 skb;
	__u64 sock;
	__u8 saddr[16];
	__u8 daddr[16];
	char comm[16];
	__u32 seq;
	__u32 len;
	__u32 pid;
	__u32 netns;
	__u32 ifindex;
	__u32 cpu;
	__u32 cwnd;
	__u32 ssthresh;
	__u32 srtt_us;
	__u32 rttvar_us;
	__u32 snd_wnd;
	__u32 rcv_wnd;
	__u32 packets_out;
	__u32 retrans_out;
	__u32 drop_reason;
	__s32 err;
	__u32 valid;
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u16 segs;
	__u8 kind;
	__u8 state;
	__u8 old_state;
	__u8 ca_state;
	__u64 cgroup;
	__u64 task_cgroup;
	__u32 ack;
	__u16 window;
	__u8 tcp_flags;
	__u8 tcp_hlen;
};

#define TCPTAPE_EVENT_SIZE 176
_Static_assert(sizeof(struct tcptape_event) == TCPTAPE_EVENT_SIZE, "event size");
_Static_assert(__builtin_offsetof(struct tcptape_event, saddr) == 24, "saddr offset");
_Static_assert(__builtin_offsetof(struct tcptape_event, comm) == 56, "comm offset");
_Static_assert(__builtin_offsetof(struct tcptape_event, seq) == 72, "seq offset");
_Static_assert(__builtin_offsetof(struct tcptape_event, err) == 132, "err offset");
_Static_assert(__builtin_offsetof(struct tcptape_event, valid) == 136, "valid offset");
_Static_assert(__builtin_offsetof(struct tcptape_event, sport) == 140, "sport offset");
_Static_assert(__builtin_offsetof(struct tcptape_event, kind) == 148, "kind offset");
_Static_assert(__builtin_offsetof(struct tcptape_event, ca_state) == 151, "ca_state offset");
_Static_assert(__builtin_offsetof(struct tcptape_event, cgroup) == 152, "cgroup offset");
_Static_assert(__builtin_offsetof(struct tcptape_event, ack) == 168, "ack offset");
_Static_assert(__builtin_offsetof(struct tcptape_event, tcp_hlen) == 175, "tcp_hlen offset");

/* Events are staged per CPU and written into the CPU's ring TCPTAPE_BATCH_EVENTS at a time, as
 * one record: the ring's reserve and commit (a lock, atomics, the reader's position) are then paid
 * once per batch. A program that interrupts another one on the same CPU (a softirq arriving while
 * a program runs in process context) stages at the next level, so the two never share a slot.
 * Mirror: `RawBatches` in common/src/event.rs; the recorder reads what is still staged at the end. */
#define TCPTAPE_BATCH_EVENTS 16
#define TCPTAPE_BATCH_LEVELS 3

struct tcptape_batch {
	__u64 first_ns;
	__u32 count;
	__u32 pad;
	struct tcptape_event events[TCPTAPE_BATCH_EVENTS];
};

struct tcptape_batches {
	__u32 depth;
	__u32 pad;
	struct tcptape_batch level[TCPTAPE_BATCH_LEVELS];
};

#define TCPTAPE_BATCH_SIZE 2832
#define TCPTAPE_BATCHES_SIZE 8504
_Static_assert(sizeof(struct tcptape_batch) == TCPTAPE_BATCH_SIZE, "batch size");
_Static_assert(__builtin_offsetof(struct tcptape_batch, events) == 16, "batch events offset");
_Static_assert(sizeof(struct tcptape_batches) == TCPTAPE_BATCHES_SIZE, "batches size");
_Static_assert(__builtin_offsetof(struct tcptape_batches, level) == 8, "batches level offset");

#endif /* TCPTAPE_EVENT_H */
