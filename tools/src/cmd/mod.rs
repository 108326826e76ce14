//! One module per subcommand.

pub mod args;
pub mod bench_node;
pub mod config_file;
pub mod demo;
pub mod experiment;
pub mod loadgen;
pub mod node;
pub mod ops;
pub mod reproduce;
pub mod sim;
pub mod source;
pub mod video;
