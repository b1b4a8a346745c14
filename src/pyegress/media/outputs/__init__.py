"""Output sinks. Each module turns encoded media into one kind of output (file, segments, ...)."""
