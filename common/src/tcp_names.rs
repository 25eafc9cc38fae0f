//! Names for the kernel's TCP state and congestion-avoidance state numbers, as recordings store
//! them. These numbers are part of the kernel's user ABI (`include/net/tcp_states.h`,
//! `include/uapi/linux/tcp.h`) and do not change between kernels.

/// The name of a TCP state (`TCP_ESTABLISHED` = 1 → `"ESTABLISHED"`).
pub fn tcp_state_name(state: u8) -> &'static str {
    match state {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        12 => "NEW_SYN_RECV",
        13 => "BOUND_INACTIVE",
        _ => "UNKNOWN",
    }
}

/// The number of a TCP state name; the inverse of [`tcp_state_name`].
pub fn tcp_state_code(name: &str) -> Option<u8> {
    (1..=13).find(|&s| tcp_state_name(s) == name)
}

/// The name of a congestion-avoidance state (`TCP_CA_Loss` = 4 → `"loss"`).
pub fn ca_state_name(state: u8) -> &'static str {
    match state {
        0 => "open",
        1 => "disorder",
        2 => "cwr",
        3 => "recovery",
        4 => "loss",
        _ => "unknown",
    }
}

/// The number of a congestion-avoidance state name; the inverse of [`ca_state_name`].
pub fn ca_state_code(name: &str) -> Option<u8> {
    (0..=4).find(|&s| ca_state_name(s) == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_invert() {
        for s in 1..=13 {
            assert_eq!(tcp_state_code(tcp_state_name(s)), Some(s));
        }
        for s in 0..=4 {
            assert_eq!(ca_state_code(ca_state_name(s)), Some(s));
        }
        assert_eq!(tcp_state_name(99), "UNKNOWN");
        assert_eq!(ca_state_code("nope"), None);
    }
}
