"""Regenerate the two parquet files of the bad-input corpus (run once; the outputs are committed).

Usage: ``python tests/bad_inputs/make_parquet.py``. The files are binary, so this script is their
readable source: what each one holds and how it was broken.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent


def main() -> None:
    """Write ``tx.parquet`` for the truncated-file case and the amount-as-text case."""
    good = pd.DataFrame(
        {
            "customer_id": ["1", "1", "2", "3"],
            "timestamp": pd.to_datetime(["2024-01-05", "2024-02-10", "2024-01-20", "2024-01-21"]),
            "amount": [12.5, 30.0, 8.0, 4.0],
        }
    )
    # Truncated: a valid file cut in half, as an interrupted copy or download leaves it (the
    # footer, which parquet readers need first, is gone).
    target = HERE / "tx_truncated_parquet" / "tx.parquet"
    good.to_parquet(target, index=False)
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])

    # Amount as text: an export that kept the display format ("12.50 EUR") in a string column.
    text = good.assign(amount=["12.50 EUR", "30.00 EUR", "8.00 EUR", "4.00 EUR"])
    text.to_parquet(HERE / "tx_parquet_amount_as_string" / "tx.parquet", index=False)


if __name__ == "__main__":
    main()
