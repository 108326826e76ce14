//! Criterion benchmarks of LayerP2P's hot paths (`benches/`). The load generator lives
//! in `layerp2p-lab`.
