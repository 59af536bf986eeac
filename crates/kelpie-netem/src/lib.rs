//! A userspace link emulator for Kelpie's tests and benchmark (the kernel here has no `netem`
//! qdisc). The binary joins two network namespaces through a TUN device in each and copies
//! packets both ways through a [`pipeline::Pipeline`] per direction: loss (independent or
//! Gilbert–Elliott bursts), a rate-limited bottleneck with a bounded drop-tail queue, delay
//! and jitter, and outages. The pure parts (this library) take time as an argument; only
//! `tun` and `forward` in the binary do I/O. Not shipped in the package.
pub mod control;
pub mod loss;
pub mod pipeline;
pub mod rng;
