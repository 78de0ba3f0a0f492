"""The column vocabulary of the data contract (DESIGN.md §4).

Names carry units where they have one. Validated frames hold exactly these columns, with these dtypes;
optional columns are present only when the source had them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TABLES", "TableSchema", "INTERACTION_KINDS"]

INTERACTION_KINDS = ("nps", "csat", "support_ticket")


@dataclass(frozen=True)
class TableSchema:
    """Required and optional columns of one contract table, with their logical types."""

    name: str
    required: dict[str, str]
    optional: dict[str, str]

    @property
    def columns(self) -> dict[str, str]:
        """All contract columns, required first."""
        return {**self.required, **self.optional}


TRANSACTIONS = TableSchema(
    name="transactions",
    required={"customer_id": "string", "timestamp": "datetime", "amount": "float"},
    optional={
        "order_id": "string",
        "quantity": "float",
        "product_id": "string",
        "category": "string",
        "channel": "string",
        "cost": "float",
        "discount": "float",
        "is_return": "bool",
    },
)

CUSTOMERS = TableSchema(
    name="customers",
    required={"customer_id": "string"},
    optional={
        "signup_date": "datetime",
        "acquisition_channel": "string",
        "acquisition_cost": "float",
        "referred_by": "string",
    },
)

INTERACTIONS = TableSchema(
    name="interactions",
    required={"customer_id": "string", "timestamp": "datetime", "kind": "string"},
    optional={"score": "float"},
)

TABLES: dict[str, TableSchema] = {t.name: t for t in (TRANSACTIONS, CUSTOMERS, INTERACTIONS)}
