# The local source of `make run` (included by the Makefile). See README "The local source".
.PHONY: postgres-deps capture-bench

postgres-deps: ## Install PostgreSQL 15 and libfaketime (Debian packages) when missing
	bash tools/ensure_postgres.sh

capture-bench: setup postgres-deps ## Capture throughput on a throwaway PostgreSQL (changes/s, full-load rows/s)
	$(RUN) python -m capture.bench
