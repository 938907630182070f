"""Benchmarks: each module's `main()` prints its figure beside a limit measured in the same run."""
