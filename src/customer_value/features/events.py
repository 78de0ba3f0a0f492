"""The point-in-time view of the transaction log that every feature family reads.

:func:`prepare_events` keeps only events on or before ``as_of`` and encodes customers, days and
customer-days as integers once, so that each family is a handful of ``np.bincount`` calls: no Python
loop per customer, no repeated group-by on strings.

Speed (issue 13): on 10M rows, every fresh row-length array costs a page fault per page (system
time, much of the wall clock on a shared machine) besides its arithmetic. So the families share
what they used to recompute (the sales mask, sums over sales rows, each text column encoded once,
to small integer codes), select rows by sending the other rows to a spare ``np.bincount`` bin
instead of copying columns, and build their row-length keys in one reused work buffer
(:meth:`Events.workspace`). Every sum is still ``np.bincount`` over the same rows in the same
order, so every feature is bit-for-bit what it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["Events", "prepare_events", "to_day", "per_customer"]


_PER_DAY = {
    "D": 1,
    "h": 24,
    "m": 1440,
    "s": 86_400,
    "ms": 86_400_000,
    "us": 86_400_000_000,
    "ns": 86_400_000_000_000,
}


def to_day(values) -> np.ndarray:
    """Datetimes -> int64 days since 1970-01-01 (the calendar day, time of day dropped)."""
    arr = np.asarray(values)
    if arr.dtype.kind != "M":
        arr = arr.astype("datetime64[ns]")
    unit, count = np.datetime_data(arr.dtype)
    if unit in _PER_DAY and count == 1:
        # Floor division of the raw ticks: no intermediate datetime copies.
        return arr.view(np.int64) // _PER_DAY[unit]
    return arr.astype("datetime64[D]").astype(np.int64)


def _days32(values: np.ndarray) -> np.ndarray:
    """:func:`to_day`, as int32 where the days fit (half the memory of int64)."""
    arr = np.asarray(values)
    if arr.dtype.kind == "M" and len(arr):
        unit, count = np.datetime_data(arr.dtype)
        if unit in _PER_DAY and count == 1 and _PER_DAY[unit] > 1:
            ticks = arr.view(np.int64)
            per_day = _PER_DAY[unit]
            limit = np.iinfo(np.int32)
            if limit.min < ticks.min() // per_day and ticks.max() // per_day < limit.max:
                # int64 floor division, cast to int32 on the fly: no int64 intermediate array.
                out = np.empty(arr.shape, dtype=np.int32)
                return np.floor_divide(ticks, per_day, out=out, casting="unsafe")
    return to_day(arr)


def per_customer(codes: np.ndarray, n: int, weights=None) -> np.ndarray:
    """Sum ``weights`` (or count rows) per customer code."""
    # With weights bincount already returns float64: no second copy.
    return np.bincount(codes, weights=weights, minlength=n).astype(float, copy=False)


@dataclass(frozen=True)
class Events:
    """Transactions on or before ``as_of``, integer-encoded.

    Attributes
    ----------
    as_of_day : int
        The cutoff as days since the epoch; events on this day are included.
    customer_ids : Index
        Sorted ids of customers first seen on or before ``as_of`` (the output rows).
    tx : DataFrame
        Transaction rows on or before ``as_of`` (validated columns).
    code, day : ndarray
        Per row: customer code (position in ``customer_ids``, int64) and day (int32 where the
        days fit).
    d_code, d_day, d_net : ndarray
        Customer-days sorted by (customer, day) with the day's net amount.
    p_code, p_day, p_net : ndarray
        Purchase days (net amount > 0), sorted by (customer, day).
    """

    as_of_day: int
    customer_ids: pd.Index
    tx: pd.DataFrame
    code: np.ndarray
    day: np.ndarray
    d_code: np.ndarray
    d_day: np.ndarray
    d_net: np.ndarray
    p_code: np.ndarray
    p_day: np.ndarray
    p_net: np.ndarray
    #: Arrays derived once and shared by the families (see the accessors below); not an argument,
    #: so ``dataclasses.replace`` gives a copy with an empty cache.
    cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def n(self) -> int:
        """Number of customers."""
        return len(self.customer_ids)

    def _cached(self, key, compute):
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]

    @property
    def sorted_by_customer(self) -> bool:
        """Whether the rows are sorted by customer (as validated frames are)."""
        return self._cached("sorted_by_customer", lambda: bool(np.all(self.code[1:] >= self.code[:-1])))

    @property
    def amount(self) -> np.ndarray:
        """Per row: the amount as float64 (a view of the column where it already is one)."""
        return self._cached("amount", lambda: self.tx["amount"].to_numpy(dtype=float))

    @property
    def sales(self) -> np.ndarray:
        """Per row: amount > 0."""
        return self._cached("sales", lambda: self.amount > 0)

    @property
    def not_sales(self) -> np.ndarray:
        """Per row: not a sales row (returns, zero amounts)."""
        return self._cached("not_sales", lambda: ~self.sales)

    def sales_sums(self) -> dict[str, np.ndarray]:
        """Per customer, sums over their sales rows in row order: amount, quantity, discount.

        ``amount`` is gross sales; ``quantity`` and ``discount`` are there when the log has them.
        One key per row in the work buffer, the customer code on sales rows and ``n`` (a spare
        bin) on the others: ``np.bincount(key, weights=column)[:n]`` then adds each customer's
        sales rows in row order, exactly as ``per_customer(code[sales], n, column[sales])``
        does, without copying any column.
        """

        def compute():
            n = self.n
            key = self.workspace(np.int64, len(self.code))
            np.copyto(key, self.code)
            np.copyto(key, n, where=self.not_sales)
            names = [c for c in ("amount", "quantity", "discount") if c in self.tx.columns]
            return {c: np.bincount(key, weights=self.column(c), minlength=n + 1)[:n] for c in names}

        return self._cached("sales_sums", compute)

    @property
    def sales_code(self) -> np.ndarray:
        """Customer code of the sales rows (amount > 0), in row order."""
        return self._cached("sales_code", lambda: self.code[self.sales])

    @property
    def revenue(self) -> np.ndarray:
        """Per customer: net amount of all rows (returns included)."""
        return self._cached("revenue", lambda: per_customer(self.code, self.n, self.amount))

    @property
    def gross(self) -> np.ndarray:
        """Per customer: amount of the sales rows."""
        return self.sales_sums()["amount"]

    @property
    def purchase_days(self) -> np.ndarray:
        """Per customer: number of purchase days (float)."""
        return self._cached("purchase_days", lambda: per_customer(self.p_code, self.n))

    @property
    def p_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Per customer: (start, end) of their rows in the purchase-day arrays (sorted by customer).

        The same positions as ``searchsorted(p_code, arange(n), 'left'/'right')``, from the counts.
        """

        def compute():
            ends = np.cumsum(np.bincount(self.p_code, minlength=self.n))
            return ends - np.bincount(self.p_code, minlength=self.n), ends

        return self._cached("p_bounds", compute)

    def column(self, name: str) -> np.ndarray:
        """Per row: a numeric column as float64 (a view where it already is one)."""
        return self.tx[name].to_numpy(dtype=float)

    def codes(self, column: str) -> tuple[np.ndarray, np.ndarray, bool]:
        """A text column encoded once: (per-row codes, unique values, complete).

        Codes are positions among the unique values (-1 = missing; ``complete`` = none missing) in
        the smallest integer type that holds them. Arrow-backed text is dictionary-encoded chunk by
        chunk (no 10M-row intermediates); anything else goes through ``pd.factorize``.
        """

        def compute():
            fast = _dictionary_codes(self.tx[column])
            if fast is not None:
                return fast
            codes, uniques = pd.factorize(self.tx[column])
            codes = np.asarray(codes, dtype=np.int64)
            return codes, np.asarray(uniques, dtype=object), bool((codes >= 0).all())

        return self._cached(("codes", column), compute)

    def workspace(self, dtype, size: int) -> np.ndarray:
        """A work buffer of ``size`` elements of ``dtype``: one block of memory for everybody.

        The families build their row-length bincount keys, sort keys and weights here, in turn
        (prepare_events hands over its spent row-length int64 buffer), rather than in fresh arrays:
        memory the process already holds is reused without page faults, where every fresh
        10M-row array costs a page fault per page, most of issue 13's system time. The contents
        are valid until the next call.
        """
        nbytes = np.dtype(dtype).itemsize * size
        buf = self.cache.get("workspace")
        if buf is None or buf.nbytes < nbytes:
            buf = self.cache["workspace"] = np.empty(-(-nbytes // 8), dtype=np.int64)
        return buf.view(np.uint8)[:nbytes].view(dtype)


def _dictionary_codes(values: pd.Series):
    """(codes, uniques, complete) of Arrow-backed text, or None for other columns.

    Chunk by chunk: each chunk is dictionary-encoded on its own and its codes mapped to the
    global ones (values numbered in order of first appearance, as pd.factorize numbers them), so
    no column-length intermediate is allocated; columns with many distinct values take one
    dictionary encoding of the whole column instead.
    """
    if not hasattr(values.array, "__arrow_array__"):
        return None
    try:
        import pyarrow as pa
        import pyarrow.compute as pc

        arr = values.array.__arrow_array__()
    except (ImportError, TypeError, ValueError):
        return None
    if isinstance(arr, pa.Array):
        arr = pa.chunked_array([arr])
    if not isinstance(arr, pa.ChunkedArray) or not (
        pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)
    ):
        return None
    numbering: dict[str, int] = {}
    out = np.empty(len(arr), dtype=np.int8)
    pos = 0
    for chunk in arr.chunks:
        k = len(chunk)
        encoded = pc.dictionary_encode(chunk)
        if len(encoded.dictionary) > 4096:  # many distinct values: one encoding of the column
            return _dictionary_codes_whole(arr)
        to_global = np.array(
            [numbering.setdefault(v, len(numbering)) for v in encoded.dictionary.to_pylist()],
            dtype=np.int64,
        )
        if len(numbering) - 1 > np.iinfo(out.dtype).max:  # widen what is written so far
            out = out.astype(np.int16 if len(numbering) <= 2**15 else np.int32)
        indices = encoded.indices
        raw = np.frombuffer(indices.buffers()[1], dtype=np.int32)[indices.offset : indices.offset + k]
        part = to_global[raw] if len(to_global) else np.zeros(k, dtype=np.int64)
        if chunk.null_count:
            part[~chunk.is_valid().to_numpy(zero_copy_only=False)] = -1
        out[pos : pos + k] = part
        pos += k
    uniques = np.asarray(list(numbering), dtype=object)
    return out, uniques, arr.null_count == 0


def _dictionary_codes_whole(arr):
    import pyarrow.compute as pc

    # One memo table across chunks: every chunk carries the same (final) dictionary.
    encoded = pc.dictionary_encode(arr)
    dictionary = encoded.chunk(encoded.num_chunks - 1).dictionary
    out = np.empty(len(arr), dtype=np.int32)
    pos = 0
    for chunk in encoded.chunks:
        k = len(chunk)
        indices = chunk.indices
        raw = np.frombuffer(indices.buffers()[1], dtype=np.int32)[indices.offset : indices.offset + k]
        out[pos : pos + k] = raw
        if chunk.null_count:
            out[pos : pos + k][~chunk.is_valid().to_numpy(zero_copy_only=False)] = -1
        pos += k
    return out, np.asarray(dictionary.to_pylist(), dtype=object), arr.null_count == 0


def prepare_events(transactions: pd.DataFrame, as_of) -> Events:
    """Encode the events on or before ``as_of`` (a date; its whole day is included)."""
    as_of_day = int(to_day([pd.Timestamp(as_of)])[0])
    day_all = _days32(transactions["timestamp"].to_numpy())
    keep = day_all <= as_of_day
    if keep.all():  # no copies when every row is in (the log ends on or before as_of)
        tx, day = transactions, day_all
    else:
        tx, day = transactions[keep], day_all[keep]
    del day_all, keep
    customer_ids, code = _encode(tx["customer_id"])
    n = len(customer_ids)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Events(
            as_of_day=as_of_day,
            customer_ids=customer_ids,
            tx=tx,
            code=empty,
            day=empty,
            d_code=empty,
            d_day=empty,
            d_net=np.zeros(0),
            p_code=empty,
            p_day=empty,
            p_net=np.zeros(0),
        )
    day_min = int(day.min())
    span = as_of_day - day_min + 1
    # In place: one 10M-row temporary instead of four.
    key = code * span
    key += day
    key -= day_min
    if len(key) and np.all(key[1:] >= key[:-1]):
        # Validated frames are sorted by (customer, time): customer-days without a sort. Their
        # (customer, day) are those of each run's first row (= uniq // span, uniq % span + day_min).
        start = np.empty(len(key), dtype=bool)
        start[0] = True
        np.not_equal(key[1:], key[:-1], out=start[1:])
        d_code = code[start]
        d_day = day[start].astype(np.int64)
        inverse = np.cumsum(start, out=key)  # reuses key's memory (no fresh 10M-row array)
        inverse -= 1
        n_days = len(d_code)
        del start
    else:
        uniq, inverse = np.unique(key, return_inverse=True)
        del key
        d_code = (uniq // span).astype(np.int64)
        d_day = (uniq % span + day_min).astype(np.int64)
        n_days = len(uniq)
        del uniq
    d_net = np.bincount(inverse, weights=tx["amount"].to_numpy(dtype=float), minlength=n_days)
    # A sale and its same-day return net to float dust (1e-13), not to a purchase: the day's
    # net is rounded to 6 decimals first (as protocol R's scorer does).
    d_net = np.round(d_net, 6)
    purchase = d_net > 0
    events = Events(
        as_of_day=as_of_day,
        customer_ids=customer_ids,
        tx=tx,
        code=code,
        day=day,
        d_code=d_code,
        d_day=d_day,
        d_net=d_net,
        p_code=d_code[purchase],
        p_day=d_day[purchase],
        p_net=d_net[purchase],
    )
    # The row-length int64 buffer is spent: the families reuse it as their work buffer.
    events.cache["workspace"] = inverse
    return events


def _encode(ids: pd.Series) -> tuple[pd.Index, np.ndarray]:
    """Sorted unique ids and each row's position among them.

    Validated frames are sorted by customer id, so the codes are a running count of id changes
    (one vectorised comparison, via Arrow when the strings are Arrow-backed); other frames fall back
    to a sorted factorize.
    """
    if len(ids) > 1:
        try:
            import pyarrow as pa
            import pyarrow.compute as pc

            arr = pa.array(ids.array) if hasattr(ids.array, "__arrow_array__") else None
        except (ImportError, TypeError, pa.ArrowInvalid):
            arr = None
        if (
            arr is not None
            and pa.types.is_string(arr.type)
            or (arr is not None and pa.types.is_large_string(arr.type))
        ):
            if arr.null_count == 0:
                change = pc.not_equal(arr[1:], arr[:-1]).to_numpy(zero_copy_only=False)
                starts = np.concatenate([[0], np.flatnonzero(change) + 1])
                uniques = arr.take(pa.array(starts))
                if isinstance(uniques, pa.ChunkedArray):
                    uniques = uniques.combine_chunks()
                # Sorted when every id is less than the next distinct one: the same test as on
                # every pair of neighbours (equal neighbours pass it), on the ids alone.
                if not pc.any(pc.less(uniques[1:], uniques[:-1])).as_py():
                    codes = np.empty(len(ids), dtype=np.int64)
                    codes[0] = 0
                    np.cumsum(change, out=codes[1:])
                    return _text_index(uniques), codes
    codes, uniques = pd.factorize(ids, sort=True)
    return pd.Index(uniques.astype(str), name="customer_id"), codes.astype(np.int64)


def _text_index(values) -> pd.Index:
    """The customer index of a pyarrow string array: ``pd.Index(ids, dtype=str)``.

    Built from the Arrow data directly where ``str`` is Arrow-backed (pandas 3), not through a list
    of Python strings.
    """
    dtype = pd.Index([], dtype=str).dtype
    if isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow":
        return pd.Index(pd.array(values, dtype=dtype), name="customer_id")
    return pd.Index(values.to_pylist(), dtype=str, name="customer_id")
