"""One adapter per transport, each behind shmring.bench.transport's interface."""
