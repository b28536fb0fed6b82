# Benchmark targets (included by the Makefile). See bench/results/results.md.
BENCH_ARGS ?=

.PHONY: bench bench-quick

bench: setup ## Benchmark the hourly run (job vs blog, rewrite, delta-rs, floor) -> bench/results/
	$(RUN) python -m bench.run $(BENCH_ARGS)

bench-quick: setup ## Smoke run of the benchmark on tiny tables (numbers mean nothing)
	$(RUN) python -m bench.run --quick --out bench/work/quick-results $(BENCH_ARGS)
