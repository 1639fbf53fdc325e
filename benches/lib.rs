//! Criterion benchmarks of the engine's hot paths; see `benches/`.
