//! One module per subcommand.

pub mod source;
pub mod demo;
pub mod loadgen;
