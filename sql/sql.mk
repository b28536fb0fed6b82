# SQL targets (included by the Makefile). See sql/README.md and "Querying the lake" in README.md.
# The lake `make run` builds is queried through Spark SQL with a local catalog (Athena's stand-in).
SQL ?=
SQL_FILE ?=
TABLES ?=
# sql/ is generated for this curated root (the dev stack's bucket, see conf/env/dev.yaml).
SQL_LOCATION_ROOT ?= s3://example-cdclake-dev-curated/lake
_TABLES_ARG = $(if $(TABLES),--tables $(TABLES),)

.PHONY: query validate spectrum-check catalog-local sql-gen sql-lint

query: setup ## Run SQL on the local lake: make query SQL="select ..." (or SQL_FILE=sql/athena/...)
	@if [ -z "$(SQL)$(SQL_FILE)" ]; then echo 'usage: make query SQL="select ..." | SQL_FILE=file.sql'; exit 2; fi
	$(RUN) python -m cdclake.cli.query --config $(CONFIG) \
	  $(if $(SQL_FILE),--file "$(SQL_FILE)",--sql "$(SQL)")

validate: setup ## Run the validation queries on the local lake (exit 1 when a check fails)
	$(RUN) python -m cdclake.cli.query --config $(CONFIG) --validate $(_TABLES_ARG) $(VALIDATE_ARGS)

spectrum-check: setup ## Check that a Spectrum-style read of the manifests equals each Delta snapshot
	$(RUN) python -m cdclake.cli.query --config $(CONFIG) --spectrum-check $(_TABLES_ARG)

sql-gen: setup ## Regenerate sql/*/ddl and sql/*/validation from the config and the local lake's schemas
	$(RUN) python -m cdclake.cli.sqlgen --config $(CONFIG) --out sql --location-root $(SQL_LOCATION_ROOT)

sql-lint: setup ## Lint sql/ with sqlfluff (athena and redshift dialects)
	cd sql && $(RUN) sqlfluff lint athena redshift
