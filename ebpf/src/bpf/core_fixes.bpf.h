/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Every difference between kernel versions that tcptape's programs bridge, one helper each, with
 * the kernel change (version and commit subject) that introduced it. The loader resolves the
 * `bpf_core_*` checks against the running kernel's BTF before verification, so the branch not
 * taken is never verified. */
#ifndef TCPTAPE_CORE_FIXES_BPF_H
#define TCPTAPE_CORE_FIXES_BPF_H

#include "kernel_types.h"
#include <bpf/bpf_core_read.h>

/* v5.6, "sock: Make sk_protocol a 16-bit value": sk_protocol moved out of a bitfield (8 bits,
 * shared with sk_type) into its own u16. */
static __always_inline __u16 sk_protocol_of(struct sock *sk, bool direct)
{
	if (bpf_core_field_exists(sk->sk_protocol) && bpf_core_field_size(sk->sk_protocol) == 2)
		return direct ? sk->sk_protocol : BPF_CORE_READ(sk, sk_protocol);
	struct sock___old *old = (void *)sk;
	return BPF_CORE_READ_BITFIELD_PROBED(old, sk_protocol);
}

/* v4.10, "tcp: switch rtt estimations to usec resolution": the RTT variance became `mdev_us`
 * (scaled by 4, as tcp_info's rttvar reports it). Older kernels report no variance here. */
static __always_inline __u32 tcp_rttvar_us(struct tcp_sock *tp, bool direct)
{
	if (bpf_core_field_exists(tp->mdev_us))
		return (direct ? tp->mdev_us : BPF_CORE_READ(tp, mdev_us)) >> 2;
	return 0;
}

/* v5.17, "net: skb: introduce kfree_skb_reason()": the kfree_skb tracepoint gained its `reason`
 * argument and `enum skb_drop_reason` appeared. Older kernels report no reason. */
static __always_inline bool kfree_skb_has_reason(void)
{
	return bpf_core_type_exists(enum skb_drop_reason);
}

/* The tcp_retransmit_skb tracepoint gained an `err` argument in a recent kernel (present in
 * 6.18); before that change it had two arguments. The classic record and the BTF prototype changed
 * together, so the record's field tells whether the BTF tracepoint has the argument. */
static __always_inline bool retransmit_has_err(void)
{
	return bpf_core_field_exists(((struct trace_event_raw_tcp_retransmit_skb *)0)->err);
}

#endif /* TCPTAPE_CORE_FIXES_BPF_H */
