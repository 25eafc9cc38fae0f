//! The stages a packet passes through, with stable names and codes.
//!
//! The code is what the eBPF programs write into [`crate::event::RawEvent::kind`]; the name is what
//! a recording stores in its `kind` column. Both are part of the file format: never renumber or
//! rename a stage, only append.

use std::fmt;
use std::str::FromStr;

/// Which side of the stack a stage belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Path {
    /// Receive path: driver to application.
    Rx,
    /// Transmit path: application to driver.
    Tx,
    /// Per-connection TCP events that are not a hop of one packet.
    Tcp,
}

macro_rules! stages {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal, $name:literal, $path:ident; )*) => {
        /// One kernel point (or group of equivalent points) that tcptape records.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Stage {
            $( $(#[$doc])* $variant = $code, )*
        }

        impl Stage {
            /// Every stage, in code order (which is also packet order within a path).
            pub const ALL: &'static [Stage] = &[$(Stage::$variant),*];

            /// The stable name stored in recordings.
            pub const fn name(self) -> &'static str {
                match self { $(Stage::$variant => $name,)* }
            }

            /// The stable code the eBPF programs emit.
            pub const fn code(self) -> u8 {
                self as u8
            }

            /// The stage with this code, if any.
            pub const fn from_code(code: u8) -> Option<Stage> {
                match code { $($code => Some(Stage::$variant),)* _ => None }
            }

            /// RX, TX or per-connection TCP.
            pub const fn path(self) -> Path {
                match self { $(Stage::$variant => Path::$path,)* }
            }
        }
    };
}

stages! {
    /// The driver hands the packet to the stack (`napi_gro_receive_entry` / `netif_rx`).
    RxDriver = 1, "rx_driver", Rx;
    /// The core receive path takes it (`netif_receive_skb`).
    RxNetif = 2, "rx_netif", Rx;
    /// IP receive (`ip_rcv` / `ipv6_rcv`, fentry or kprobe only).
    RxIp = 3, "rx_ip", Rx;
    /// TCP receive (`tcp_v4_rcv` / `tcp_v6_rcv`, fentry or kprobe only).
    RxTcp = 4, "rx_tcp", Rx;
    /// Established-socket processing (`tcp_rcv_established`, or the `tcp_probe` tracepoint).
    RxTcpEst = 5, "rx_tcp_est", Rx;
    /// Data copied to the application (`skb_copy_datagram_iovec`).
    RxApp = 6, "rx_app", Rx;
    /// The application hands data to TCP (`tcp_sendmsg`, or `tcp_sendmsg_locked`).
    TxSendmsg = 7, "tx_sendmsg", Tx;
    /// TCP builds and transmits a segment (`__tcp_transmit_skb`).
    TxTcpXmit = 8, "tx_tcp_xmit", Tx;
    /// The packet enters the device layer (`net_dev_queue`).
    TxDevQueue = 9, "tx_dev_queue", Tx;
    /// Enqueued on a qdisc (`qdisc_enqueue`).
    TxQdiscEnq = 10, "tx_qdisc_enq", Tx;
    /// Dequeued from a qdisc (`qdisc_dequeue`).
    TxQdiscDeq = 11, "tx_qdisc_deq", Tx;
    /// Handed to the driver (`net_dev_start_xmit`).
    TxDriver = 12, "tx_driver", Tx;
    /// Freed after transmit completion (`consume_skb`).
    TxDone = 13, "tx_done", Tx;
    /// A retransmission attempt (`tcp_retransmit_skb`), including failed ones.
    Retransmit = 14, "retransmit", Tcp;
    /// A snapshot of the congestion state on receive (`tcp_probe`), in older recordings: the
    /// `rx_tcp_est` events carry it now (see [`Stage::is_recorded`]).
    TcpSample = 15, "tcp_sample", Tcp;
    /// Congestion-avoidance state change (`tcp_cong_state_set`).
    CongState = 16, "cong_state", Tcp;
    /// Socket state change (`inet_sock_set_state`).
    State = 17, "state", Tcp;
    /// A TCP packet dropped, with the kernel's reason (`kfree_skb`).
    Drop = 18, "drop", Tcp;
    /// Buffer pressure (`sock_exceed_buf_limit`, `sock_rcvqueue_full`).
    Buffer = 19, "buffer", Tcp;
}

impl Stage {
    /// True for stages that are hops of one packet's journey (RX or TX).
    pub const fn is_hop(self) -> bool {
        !matches!(self.path(), Path::Tcp)
    }

    /// True for the stages the recorder records. `tcp_sample` is read, not written: its
    /// snapshot came from the same tracepoint as `rx_tcp_est`, whose events now carry it, so a
    /// second program and a second event per received packet bought nothing.
    pub const fn is_recorded(self) -> bool {
        !matches!(self, Stage::TcpSample)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error for a stage name that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown stage '{0}' (known: {list})", list = Stage::ALL.iter().map(|s| s.name()).collect::<Vec<_>>().join(", "))]
pub struct UnknownStage(pub String);

impl FromStr for Stage {
    type Err = UnknownStage;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stage::ALL
            .iter()
            .copied()
            .find(|st| st.name() == s)
            .ok_or_else(|| UnknownStage(s.to_string()))
    }
}

impl serde::Serialize for Stage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Stage {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_round_trip() {
        for &s in Stage::ALL {
            assert_eq!(Stage::from_code(s.code()), Some(s));
            assert_eq!(s.name().parse::<Stage>(), Ok(s));
        }
        assert_eq!(Stage::from_code(0), None);
        assert_eq!(Stage::from_code(200), None);
        assert!("rx_nope".parse::<Stage>().is_err());
    }

    #[test]
    fn names_are_the_documented_ones() {
        let names: Vec<_> = Stage::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "rx_driver",
                "rx_netif",
                "rx_ip",
                "rx_tcp",
                "rx_tcp_est",
                "rx_app",
                "tx_sendmsg",
                "tx_tcp_xmit",
                "tx_dev_queue",
                "tx_qdisc_enq",
                "tx_qdisc_deq",
                "tx_driver",
                "tx_done",
                "retransmit",
                "tcp_sample",
                "cong_state",
                "state",
                "drop",
                "buffer"
            ]
        );
    }
}
