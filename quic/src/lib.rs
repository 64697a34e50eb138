//! QUIC endpoint configuration for mediatord, work in progress.
