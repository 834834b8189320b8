"""The benchmark suite behind benchmarks/compiler.py, by role.

- workloads: problem sizes (full and --quick), the fixed batches, the chain's constants;
- measure: timing (medians of time-boxed samples, CPU use) and the worker's RESULT lines;
- systems: numpy (hand-written), tensorforge (interp, llvm), torch (eager, torch.compile), jax;
- peers: the two closest graph compilers, PyTensor and tinygrad;
- worker: one system on one thread count, answering "measure WORKLOAD" requests;
- runner: the parent: workers with pinned threads, interleaved rounds, median and spread;
- report: docs/performance.md (tables, targets met or missed).
"""
