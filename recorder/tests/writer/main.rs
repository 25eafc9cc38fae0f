//! The recorder's writer and command line without the kernel (segment writer, write pipeline,
//! a killed writer, a full disk); one test binary, so the build links the recorder once.

mod disk_full;
mod killed_writer;
mod segment_writer;
mod shell_integration;
mod write_pipeline;
