"""Real components for the demo, tests and benchmarks: livekit-server and generated publishers."""
