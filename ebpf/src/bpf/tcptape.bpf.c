// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcptape's eBPF programs: one handler per stage (capture.bpf.h), and here the flavors that feed
 * it, one program each. The recorder's attach plan (recorder/src/attach_plan.rs) names these
 * programs; a program is named `<stage>__<mechanism>__<kernel point>`.
 *
 * Flavors, in the order the recorder tries them:
 *   fentry      BTF-typed function entry (needs BPF trampolines; the cheapest)
 *   kprobe      function entry through kprobes (needs CONFIG_KPROBES)
 *   tp_btf      BTF-typed tracepoint (BPF_PROG_TYPE_TRACING)
 *   tracepoint  classic tracepoint record (works without BTF trampolines)
 * Socket cookies: tracing programs (fentry, tp_btf) ask the kernel for the cookie, which creates
 * it; kprobe and classic tracepoint programs read the one the socket already has. */
#include "capture.bpf.h"
#include <bpf/bpf_tracing.h>

#define CTX_SKB(ctx) ((struct sk_buff *)(ctx)->skbaddr)

/* ---------------------------------------------------------------- RX ---------------------- */

/* rx_tcp_est events carry the socket's congestion snapshot: `tcp_probe` fires first thing in
 * tcp_rcv_established, so one event serves as the packet's hop and as the snapshot (older
 * recordings have a second program's `tcp_sample` event for it). */

SEC("tp_btf/napi_gro_receive_entry")
int BPF_PROG(rx_driver__tp_btf__napi_gro_receive_entry, struct sk_buff *skb)
{
	return on_packet(ST_RX_DRIVER, skb, BASE_DATA, true);
}

SEC("tp_btf/netif_rx")
int BPF_PROG(rx_driver__tp_btf__netif_rx, struct sk_buff *skb)
{
	return on_packet(ST_RX_DRIVER, skb, BASE_DATA, true);
}

SEC("tracepoint/net/napi_gro_receive_entry")
int rx_driver__tracepoint__napi_gro_receive_entry(
	struct trace_event_raw_net_dev_rx_verbose_template *ctx)
{
	return on_packet(ST_RX_DRIVER, (struct sk_buff *)ctx->skbaddr, BASE_DATA, false);
}

SEC("tracepoint/net/netif_rx")
int rx_driver__tracepoint__netif_rx(struct trace_event_raw_net_dev_template *ctx)
{
	return on_packet(ST_RX_DRIVER, CTX_SKB(ctx), BASE_DATA, false);
}

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(rx_netif__tp_btf__netif_receive_skb, struct sk_buff *skb)
{
	return on_packet(ST_RX_NETIF, skb, BASE_DATA, true);
}

SEC("tracepoint/net/netif_receive_skb")
int rx_netif__tracepoint__netif_receive_skb(struct trace_event_raw_net_dev_template *ctx)
{
	return on_packet(ST_RX_NETIF, CTX_SKB(ctx), BASE_DATA, false);
}

SEC("fentry/ip_rcv")
int BPF_PROG(rx_ip__fentry__ip_rcv, struct sk_buff *skb)
{
	return on_packet(ST_RX_IP, skb, BASE_DATA, false);
}

SEC("fentry/ipv6_rcv")
int BPF_PROG(rx_ip__fentry__ipv6_rcv, struct sk_buff *skb)
{
	return on_packet(ST_RX_IP, skb, BASE_DATA, false);
}

SEC("kprobe/ip_rcv")
int BPF_KPROBE(rx_ip__kprobe__ip_rcv, struct sk_buff *skb)
{
	return on_packet(ST_RX_IP, skb, BASE_DATA, false);
}

SEC("kprobe/ipv6_rcv")
int BPF_KPROBE(rx_ip__kprobe__ipv6_rcv, struct sk_buff *skb)
{
	return on_packet(ST_RX_IP, skb, BASE_DATA, false);
}

SEC("fentry/tcp_v4_rcv")
int BPF_PROG(rx_tcp__fentry__tcp_v4_rcv, struct sk_buff *skb)
{
	return on_packet(ST_RX_TCP, skb, BASE_NETWORK, false);
}

SEC("fentry/tcp_v6_rcv")
int BPF_PROG(rx_tcp__fentry__tcp_v6_rcv, struct sk_buff *skb)
{
	return on_packet(ST_RX_TCP, skb, BASE_NETWORK, false);
}

SEC("kprobe/tcp_v4_rcv")
int BPF_KPROBE(rx_tcp__kprobe__tcp_v4_rcv, struct sk_buff *skb)
{
	return on_packet(ST_RX_TCP, skb, BASE_NETWORK, false);
}

SEC("kprobe/tcp_v6_rcv")
int BPF_KPROBE(rx_tcp__kprobe__tcp_v6_rcv, struct sk_buff *skb)
{
	return on_packet(ST_RX_TCP, skb, BASE_NETWORK, false);
}

SEC("fentry/tcp_rcv_established")
int BPF_PROG(rx_tcp_est__fentry__tcp_rcv_established, struct sock *sk, struct sk_buff *skb)
{
	return on_sock_skb(ST_RX_TCP_EST, sk, skb, COOKIE_HELPER, true, false, false);
}

SEC("kprobe/tcp_rcv_established")
int BPF_KPROBE(rx_tcp_est__kprobe__tcp_rcv_established, struct sock *sk, struct sk_buff *skb)
{
	return on_sock_skb(ST_RX_TCP_EST, sk, skb, COOKIE_READ, true, false, false);
}

SEC("tp_btf/tcp_probe")
int BPF_PROG(rx_tcp_est__tp_btf__tcp_probe, struct sock *sk, struct sk_buff *skb)
{
	return on_sock_skb(ST_RX_TCP_EST, sk, skb, COOKIE_HELPER, true, false, true);
}

SEC("tracepoint/tcp/tcp_probe")
int rx_tcp_est__tracepoint__tcp_probe(struct trace_event_raw_tcp_probe *ctx)
{
	return on_sock_skb(ST_RX_TCP_EST, (struct sock *)ctx->skaddr, CTX_SKB(ctx), COOKIE_READ,
			   true, false, false);
}

SEC("tp_btf/skb_copy_datagram_iovec")
int BPF_PROG(rx_app__tp_btf__skb_copy_datagram_iovec, struct sk_buff *skb, int len)
{
	return on_rx_app(skb, len, true);
}

SEC("tracepoint/skb/skb_copy_datagram_iovec")
int rx_app__tracepoint__skb_copy_datagram_iovec(
	struct trace_event_raw_skb_copy_datagram_iovec *ctx)
{
	return on_rx_app(CTX_SKB(ctx), ctx->len, false);
}

/* ---------------------------------------------------------------- TX ---------------------- */

/* tcp_sendmsg: its entry opens the call, its return ends it with the bytes written (a write on a
 * non-blocking socket may write less than it asked for). */
SEC("fentry/tcp_sendmsg")
int BPF_PROG(tx_sendmsg__fentry__tcp_sendmsg, struct sock *sk, struct msghdr *msg, __u64 size)
{
	return on_sendmsg_open(sk, 0, false);
}

SEC("fexit/tcp_sendmsg")
int BPF_PROG(tx_sendmsg__fentry__tcp_sendmsg_return, struct sock *sk, struct msghdr *msg,
	     __u64 size, int ret)
{
	return on_sendmsg_return(sk, COOKIE_HELPER, ret, false);
}

SEC("kprobe/tcp_sendmsg")
int BPF_KPROBE(tx_sendmsg__kprobe__tcp_sendmsg, struct sock *sk, struct msghdr *msg, __u64 size)
{
	return on_sendmsg_open(sk, 0, false);
}

SEC("kretprobe/tcp_sendmsg")
int BPF_KRETPROBE(tx_sendmsg__kprobe__tcp_sendmsg_return, int ret)
{
	return on_sendmsg_return_any(ret);
}

/* tcp_sendmsg_locked fires once per skb the loop fills and again after the call slept: the first
 * one opens the call. sock_send_length ends it with the bytes written, and writes the event. */
SEC("tp_btf/tcp_sendmsg_locked")
int BPF_PROG(tx_sendmsg__tp_btf__tcp_sendmsg_locked, struct sock *sk, struct msghdr *msg,
	     struct sk_buff *skb, int size_goal)
{
	return on_sendmsg_open(sk, (__u64)msg, true);
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(tx_sendmsg__tp_btf__sock_send_length, struct sock *sk, int ret, int flags)
{
	return on_sendmsg_return(sk, COOKIE_HELPER, ret, true);
}

/* The classic record names no socket (its skb, the write queue's tail, has none either): the
 * call opens without one, and sock_send_length, which names it, ends it. */
SEC("tracepoint/tcp/tcp_sendmsg_locked")
int tx_sendmsg__tracepoint__tcp_sendmsg_locked(struct trace_event_raw_tcp_sendmsg_locked *ctx)
{
	return on_sendmsg_open(NULL, 0, false);
}

SEC("tracepoint/sock/sock_send_length")
int tx_sendmsg__tracepoint__sock_send_length(struct trace_event_raw_sock_msg_length *ctx)
{
	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	return on_sendmsg_return((struct sock *)ctx->sk, COOKIE_READ, ctx->ret, false);
}

SEC("fentry/__tcp_transmit_skb")
int BPF_PROG(tx_tcp_xmit__fentry____tcp_transmit_skb, struct sock *sk, struct sk_buff *skb)
{
	return on_sock_skb(ST_TX_TCP_XMIT, sk, skb, COOKIE_HELPER, false, true, false);
}

SEC("kprobe/__tcp_transmit_skb")
int BPF_KPROBE(tx_tcp_xmit__kprobe____tcp_transmit_skb, struct sock *sk, struct sk_buff *skb)
{
	return on_sock_skb(ST_TX_TCP_XMIT, sk, skb, COOKIE_READ, false, true, false);
}

SEC("tp_btf/net_dev_queue")
int BPF_PROG(tx_dev_queue__tp_btf__net_dev_queue, struct sk_buff *skb)
{
	return on_packet(ST_TX_DEV_QUEUE, skb, BASE_NETWORK, true);
}

SEC("tracepoint/net/net_dev_queue")
int tx_dev_queue__tracepoint__net_dev_queue(struct trace_event_raw_net_dev_template *ctx)
{
	return on_packet(ST_TX_DEV_QUEUE, CTX_SKB(ctx), BASE_NETWORK, false);
}

SEC("tp_btf/qdisc_enqueue")
int BPF_PROG(tx_qdisc_enq__tp_btf__qdisc_enqueue, struct Qdisc *q, struct netdev_queue *txq,
	     struct sk_buff *skb)
{
	return on_packet(ST_TX_QDISC_ENQ, skb, BASE_NETWORK, true);
}

SEC("tracepoint/qdisc/qdisc_enqueue")
int tx_qdisc_enq__tracepoint__qdisc_enqueue(struct trace_event_raw_qdisc_enqueue *ctx)
{
	return on_packet(ST_TX_QDISC_ENQ, CTX_SKB(ctx), BASE_NETWORK, false);
}

/* qdisc_dequeue fires once per dequeue with the first skb of what left and how many (and also
 * with packets = 0 and no skb). */
SEC("tp_btf/qdisc_dequeue")
int BPF_PROG(tx_qdisc_deq__tp_btf__qdisc_dequeue, struct Qdisc *q, struct netdev_queue *txq,
	     int packets, struct sk_buff *skb)
{
	return on_dequeue(skb, packets, true);
}

SEC("tracepoint/qdisc/qdisc_dequeue")
int tx_qdisc_deq__tracepoint__qdisc_dequeue(struct trace_event_raw_qdisc_dequeue *ctx)
{
	return on_dequeue(CTX_SKB(ctx), ctx->packets, false);
}

SEC("tp_btf/net_dev_start_xmit")
int BPF_PROG(tx_driver__tp_btf__net_dev_start_xmit, struct sk_buff *skb)
{
	return on_packet(ST_TX_DRIVER, skb, BASE_NETWORK, true);
}

SEC("tracepoint/net/net_dev_start_xmit")
int tx_driver__tracepoint__net_dev_start_xmit(struct trace_event_raw_net_dev_start_xmit *ctx)
{
	return on_packet(ST_TX_DRIVER, (struct sk_buff *)ctx->skbaddr, BASE_NETWORK, false);
}

SEC("tp_btf/consume_skb")
int BPF_PROG(tx_done__tp_btf__consume_skb, struct sk_buff *skb)
{
	return on_tx_done(skb, true);
}

SEC("tracepoint/skb/consume_skb")
int tx_done__tracepoint__consume_skb(struct trace_event_raw_consume_skb *ctx)
{
	return on_tx_done(CTX_SKB(ctx), false);
}

/* ---------------------------------------------------------------- TCP --------------------- */

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(retransmit__tp_btf__tcp_retransmit_skb, struct sock *sk, struct sk_buff *skb)
{
	int err = 0;
	if (retransmit_has_err())
		err = (int)ctx[2];
	return on_retransmit(sk, skb, COOKIE_HELPER, err);
}

SEC("tracepoint/tcp/tcp_retransmit_skb")
int retransmit__tracepoint__tcp_retransmit_skb(struct trace_event_raw_tcp_retransmit_skb *ctx)
{
	int err = 0;
	if (retransmit_has_err())
		err = ctx->err;
	return on_retransmit((struct sock *)ctx->skaddr, CTX_SKB(ctx), COOKIE_READ, err);
}

SEC("tp_btf/tcp_cong_state_set")
int BPF_PROG(cong_state__tp_btf__tcp_cong_state_set, struct sock *sk, __u8 ca_state)
{
	return on_cong_state(sk, COOKIE_HELPER, ca_state);
}

SEC("tracepoint/tcp/tcp_cong_state_set")
int cong_state__tracepoint__tcp_cong_state_set(struct trace_event_raw_tcp_cong_state_set *ctx)
{
	return on_cong_state((struct sock *)ctx->skaddr, COOKIE_READ, ctx->cong_state);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(state__tp_btf__inet_sock_set_state, struct sock *sk, int oldstate, int newstate)
{
	return on_state(sk, COOKIE_HELPER, oldstate, newstate);
}

SEC("tracepoint/sock/inet_sock_set_state")
int state__tracepoint__inet_sock_set_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	return on_state((struct sock *)ctx->skaddr, COOKIE_READ, ctx->oldstate, ctx->newstate);
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(drop__tp_btf__kfree_skb, struct sk_buff *skb, void *location)
{
	__u32 reason = 0;
	bool has = kfree_skb_has_reason();
	if (has)
		reason = (__u32)ctx[2];
	return on_drop(skb, reason, has);
}

SEC("tracepoint/skb/kfree_skb")
int drop__tracepoint__kfree_skb(struct trace_event_raw_kfree_skb *ctx)
{
	__u32 reason = 0;
	bool has = kfree_skb_has_reason();
	if (has)
		reason = ctx->reason;
	return on_drop(CTX_SKB(ctx), reason, has);
}

/* Buffer pressure has no classic flavor: the classic records carry no socket, so the protocol
 * and flow of the event are unknown. */
SEC("tp_btf/sock_rcvqueue_full")
int BPF_PROG(buffer__tp_btf__sock_rcvqueue_full, struct sock *sk, struct sk_buff *skb)
{
	return on_buffer(sk, COOKIE_HELPER, 0,
			 BPF_CORE_READ(sk, sk_backlog.rmem_alloc.counter));
}

SEC("tp_btf/sock_exceed_buf_limit")
int BPF_PROG(buffer__tp_btf__sock_exceed_buf_limit, struct sock *sk, struct proto *prot,
	     long allocated, int kind)
{
	return on_buffer(sk, COOKIE_HELPER, 1 + kind,
			 BPF_CORE_READ(sk, sk_wmem_queued));
}

/* ---------------------------------------------------------------- context ----------------- */

/* Whether a CPU serves a softirq, for the pid of the events that may run there (see IN_SOFTIRQ).
 * Softirqs do not nest on a CPU, so a flag is enough. */
SEC("tp_btf/softirq_entry")
int BPF_PROG(context__tp_btf__softirq_entry, unsigned int vec)
{
	set_in_softirq(1);
	return 0;
}

SEC("tp_btf/softirq_exit")
int BPF_PROG(context__tp_btf__softirq_exit, unsigned int vec)
{
	set_in_softirq(0);
	return 0;
}

SEC("tracepoint/irq/softirq_entry")
int context__tracepoint__softirq_entry(void *ctx)
{
	set_in_softirq(1);
	return 0;
}

SEC("tracepoint/irq/softirq_exit")
int context__tracepoint__softirq_exit(void *ctx)
{
	set_in_softirq(0);
	return 0;
}
