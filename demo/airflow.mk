# A real local Airflow 3.0.6 on the local target (included by the Makefile). README: "make airflow".
.PHONY: airflow airflow-stop airflow-status airflow-cli

AIRFLOW_PORT ?= 8080
AIRFLOW_ARGS ?=
ARGS ?=
_LOCAL_AIRFLOW := $(RUN) python -m demo.localairflow --config $(CONFIG)

airflow: setup postgres-deps ## Start a local Airflow 3.0.6 (UI/REST on 127.0.0.1:8080, AIRFLOW_PORT) on a live PostgreSQL source; wipes the local lake
	$(_LOCAL_AIRFLOW) start --port $(AIRFLOW_PORT) $(AIRFLOW_ARGS)

airflow-stop: ## Stop exactly what `make airflow` started (the lake and logs stay)
	$(_LOCAL_AIRFLOW) stop

airflow-status: ## What `make airflow` runs, its URL and login
	$(_LOCAL_AIRFLOW) status

airflow-cli: ## The airflow CLI with the local Airflow's settings: make airflow-cli ARGS="dags list"
	$(_LOCAL_AIRFLOW) airflow $(ARGS)
