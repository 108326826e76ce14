//! LayerP2P engine: the sans-IO protocol core and its drivers.

pub mod time;
pub mod wire;

pub use time::Time;
