"""Estimators: BTYD baselines, personas, churn and CLV models."""
