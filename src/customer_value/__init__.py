"""customer_value: what each customer is worth, and why."""

__version__ = "0.1.0"
