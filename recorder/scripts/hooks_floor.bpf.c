/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The overhead floor of recording on a host: a program at each tracepoint tcptape-record attaches
 * on a kernel without fentry and kprobes, each returning at once. What the traffic loses with
 * these attached is what any tracer pays to be called there, before it does any work.
 * Built and loaded by recorder/scripts/overhead.sh (OVERHEAD_FLOOR=1), through
 * recorder/examples/hooks_floor.rs. */
#define SEC(name) __attribute__((section(name), used))

#define HOOK(tp)                                 \
	SEC("tp_btf/" #tp) int tp(void *ctx)     \
	{                                        \
		return 0;                        \
	}

HOOK(napi_gro_receive_entry)
HOOK(netif_rx)
HOOK(netif_receive_skb)
HOOK(tcp_probe)
HOOK(skb_copy_datagram_iovec)
HOOK(tcp_sendmsg_locked)
HOOK(net_dev_queue)
HOOK(qdisc_enqueue)
HOOK(qdisc_dequeue)
HOOK(net_dev_start_xmit)
HOOK(consume_skb)
HOOK(tcp_retransmit_skb)
HOOK(tcp_cong_state_set)
HOOK(inet_sock_set_state)
HOOK(kfree_skb)
HOOK(sock_rcvqueue_full)
HOOK(sock_exceed_buf_limit)

char LICENSE[] SEC("license") = "Dual BSD/GPL";
