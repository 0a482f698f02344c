"""The engine: plain Python, no Airflow imports (store, storage, container runner, gear service)."""
