"""Airflow adapters for HyperAI notifications."""
