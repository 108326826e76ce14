//! One module per subcommand.

pub mod args;
pub mod bench_node;
pub mod demo;
pub mod experiment;
pub mod video;
pub mod sim;
pub mod loadgen;
pub mod node;
pub mod source;
