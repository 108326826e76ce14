//! One module per subcommand.

pub mod source;
pub mod demo;
pub mod video;
pub mod policy;
pub mod sim;
