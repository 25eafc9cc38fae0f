//! The `tcptape` command line on synthetic and sample recordings, one module per command or
//! concern; one test binary, so the build links the analyzer once for all of them.

mod anonymize;
mod cgroups;
mod diff;
mod export;
mod hostile_claims;
mod info;
mod journeys;
mod replay;
mod report;
mod shell_integration;
