//! Real captures in network namespaces (root only; they skip loudly without it): one module per
//! area, one test binary, so the build links the harness once for all of them.

mod capture_anonymize;
mod capture_budget;
mod capture_cgroups;
mod capture_faults;
mod capture_filters;
mod capture_flight;
mod capture_ipv6;
mod capture_limits;
mod capture_no_fentry;
mod capture_retransmits;
mod capture_samples;
mod capture_scenario;
mod capture_scopes;
mod capture_stages;
mod capture_writes;
mod diff_gate;
mod export_pcapng;
mod report_ground_truth;
