//! Journeys: each packet's path through the stack, from hop events to the rows every command
//! reads. The data flow, in order:
//!
//! - [`hop_table`] holds what journeys are built from as plain columns: the hop events, the
//!   first hops' columns and the writes, which [`crate::queries::journey_input`] reads from a
//!   recording (polars stays there);
//! - [`radix`] sorts them by packet id and time, [`segment`] cuts each id's hops into journeys
//!   (a reused skb, another flow or sequence number starts a new one);
//! - [`clone_link`] and [`gso_link`] join a clone to its original and a software-GSO segment to
//!   the skb it was cut from; [`journey`] builds the journeys and the stage-to-stage rows;
//! - [`per_packet`] hands the journeys to `report`, `diff`, `replay --journeys` and `export`;
//! - [`cross_host`] joins the journeys of two hosts over the wire and estimates their clock
//!   offset (from the edge events [`crate::queries::edge_events`] reads).

pub mod clone_link;
pub mod cross_host;
pub mod gso_link;
pub mod hop_table;
pub mod journey;
pub mod per_packet;
pub mod radix;
pub mod segment;
