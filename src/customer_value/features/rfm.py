"""RFM features with units in the names, and their rate-normalised versions.

Conventions (METRICS.md): a purchase day is a customer-day with net amount > 0; ``frequency`` =
purchase days − 1; ``recency_days`` = last − first purchase day; ``tenure_days`` (T) = as_of − first
purchase day. A customer whose rows up to ``as_of`` are all returns has no purchase day: frequency 0,
recency 0, T counted from the first row, monetary means missing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from customer_value.features.events import Events, per_customer

__all__ = ["rfm_features", "rfm_summary", "first_last"]


def first_last(
    codes: np.ndarray, values: np.ndarray, n: int, bounds=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First and last value per customer of rows sorted by customer (NaN where a customer has none).

    ``bounds`` = (starts, ends) of each customer's rows when already known (``Events.p_bounds``).
    """
    if bounds is None:
        starts = np.searchsorted(codes, np.arange(n), side="left")
        ends = np.searchsorted(codes, np.arange(n), side="right")
    else:
        starts, ends = bounds
    has = ends > starts
    first = np.full(n, np.nan)
    last = np.full(n, np.nan)
    first[has] = values[starts[has]]
    last[has] = values[ends[has] - 1]
    return first, last, has


def rfm_summary(ev: Events) -> pd.DataFrame:
    """The BTYD summary only: frequency, recency_days, tenure_days, monetary_repeat_mean.

    The subset that ``lifetimes.utils.summary_data_from_transaction_data`` computes (its
    ``monetary_value`` is the mean over repeat purchase days too); the benchmark compares the two.
    """
    full = _rfm_core(ev)
    return full[["frequency", "recency_days", "tenure_days", "monetary_repeat_mean"]]


def _rfm_core(ev: Events) -> pd.DataFrame:
    n = ev.n
    n_pdays = ev.purchase_days
    first_p, last_p, has_p = first_last(ev.p_code, ev.p_day.astype(float), n, ev.p_bounds)
    first_seen = _first_seen(ev)
    first = np.where(has_p, first_p, first_seen)
    last = np.where(has_p, last_p, first_seen)
    frequency = np.maximum(n_pdays - 1, 0)
    tenure = ev.as_of_day - first
    p_total = per_customer(ev.p_code, n, ev.p_net)
    first_net, _, _ = first_last(ev.p_code, ev.p_net, n, ev.p_bounds)
    with np.errstate(divide="ignore", invalid="ignore"):
        monetary_mean = np.where(n_pdays > 0, p_total / n_pdays, np.nan)
        monetary_repeat_mean = np.where(frequency > 0, (p_total - first_net) / frequency, np.nan)
    return pd.DataFrame(
        {
            "recency_days": last - first,
            "frequency": frequency,
            "tenure_days": tenure,
            "days_since_last_purchase": ev.as_of_day - last,
            "purchase_days": n_pdays,
            "monetary_mean": monetary_mean,
            "monetary_repeat_mean": monetary_repeat_mean,
        },
        index=ev.customer_ids,
        copy=False,  # the arrays as they are, one block each (see behaviour_features)
    )


def _first_seen(ev: Events) -> np.ndarray:
    """Day of each customer's first row: the first of their customer-days (sorted by customer)."""
    n = ev.n
    d_code = ev.d_code
    if len(d_code):
        start = np.empty(len(d_code), dtype=bool)
        start[0] = True
        np.not_equal(d_code[1:], d_code[:-1], out=start[1:])
        # Every customer has a row, so the run starts are customers 0 .. n-1 in order; checked.
        if start.sum() == n and np.array_equal(d_code[start], np.arange(n)):
            return ev.d_day[start].astype(float)
    first_seen, _, _ = first_last(d_code, ev.d_day.astype(float), n)
    return first_seen


def _order_count(ev: Events) -> np.ndarray:
    """Distinct orders with a sales line (amount > 0), per customer.

    Fast path (Arrow text, rows sorted by customer, ids of at most 64 bytes): see
    :func:`_order_count_runs`. The fallback is the plain hash-based count; both give the same
    integers.
    """
    fast = _order_count_runs(ev, ev.tx["order_id"])
    if fast is not None:
        return fast
    order_codes = np.asarray(pd.factorize(ev.tx["order_id"])[0], dtype=np.int64)[ev.sales]
    width = order_codes.max(initial=0) + 1
    pairs = pd.unique(ev.sales_code * width + order_codes)  # hash-based, no sort
    return per_customer(pairs // width, ev.n)


def _arrow_text(values: pd.Series):
    """The column as a pyarrow ChunkedArray of (large) strings without nulls, or None."""
    if not hasattr(values.array, "__arrow_array__"):
        return None
    try:
        import pyarrow as pa

        arr = values.array.__arrow_array__()
    except (ImportError, TypeError, ValueError):
        return None
    if isinstance(arr, pa.Array):
        arr = pa.chunked_array([arr])
    if not isinstance(arr, pa.ChunkedArray):
        return None
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return None
    return arr if arr.null_count == 0 else None


#: Rows per piece of the order-id column, and per block of whole customers: the temporaries of a
#: piece or block (a few MB) are reused by the allocator, where column-length temporaries would be
#: fresh memory, i.e. page faults, every time.
_PIECE = 1 << 17
_BLOCK = 1 << 18
#: Masks keeping the first 0..8 bytes of a little-endian uint64 word.
_BYTE_MASKS = np.array([(1 << (8 * i)) - 1 for i in range(8)] + [(1 << 64) - 1], dtype=np.uint64)


class _TextKeys:
    """Exact integer keys of the strings of one Arrow string array (a chunk or a slice of one).

    A string's key is its byte length and ``n_words`` little-endian uint64 words of its bytes,
    zero-filled past its end: two strings are equal exactly when their keys are.
    """

    def __init__(self, array, large: bool):
        k = len(array)
        offset_type = np.int64 if large else np.int32
        self.offsets = np.frombuffer(array.buffers()[1], dtype=offset_type)[
            array.offset : array.offset + k + 1
        ]
        buf = array.buffers()[2]
        self.data = np.zeros(0, np.uint8) if buf is None else np.frombuffer(buf, dtype=np.uint8)

    def longest(self) -> int:
        return int(np.diff(self.offsets).max(initial=0))

    def at(self, idx: np.ndarray, n_words: int) -> tuple[np.ndarray, np.ndarray]:
        """(byte lengths, words) of the strings at positions ``idx``."""
        starts = self.offsets[idx].astype(np.int64)
        lens = self.offsets[idx + 1].astype(np.int64) - starts
        words = np.empty((len(starts), n_words), dtype=np.uint64)
        if len(starts) == 0:
            return lens, words
        lo, hi = int(starts.min()), int((starts + lens).max())
        # The bytes in use, followed by zeros so that every 8-byte load stays inside.
        padded = np.zeros(hi - lo + 8 * n_words + 8, dtype=np.uint8)
        padded[: hi - lo] = self.data[lo:hi]
        loads = np.ndarray((len(padded) - 7,), dtype="<u8", buffer=padded, strides=(1,))
        first = starts - lo
        for j in range(n_words):
            np.bitwise_and(
                loads[first + 8 * j], _BYTE_MASKS[np.clip(lens - 8 * j, 0, 8)], out=words[:, j]
            )
        return lens, words


def _order_count_runs(ev: Events, orders: pd.Series) -> np.ndarray | None:
    """Distinct orders with a sales line per customer, for Arrow text sorted by customer.

    Only the first row of each run of rows with equal (customer, order id, sales) can bring a new
    (customer, order) pair, so pairs are counted over those run starts (about one per order, not
    one per line). Runs are found piece by piece (Arrow string comparisons of neighbours); then,
    over blocks of whole customers, the run starts' order ids get exact integer keys
    (:class:`_TextKeys`) and are sorted by (customer, hash of the key); rows with equal hashes
    must have equal keys, or this returns None (a collision, vanishingly rare) and the caller
    counts exactly another way. No string hash table over every row, no column-length
    temporaries. None also when the rows are not sorted by customer or ids exceed 64 bytes.
    """
    arr = _arrow_text(orders)
    m, n = len(ev.code), ev.n
    if arr is None or m < 2 or len(arr) != m or not ev.sorted_by_customer:
        return None
    import pyarrow as pa
    import pyarrow.compute as pc

    large = pa.types.is_large_string(arr.type)
    code, sales = ev.code, ev.sales
    # 1. Run starts: the customer, the sales flag or the order id changes from the previous row.
    work = ev.workspace(bool, 2 * m)
    start, changed = work[:m], work[m : 2 * m - 1]
    start[0] = True
    np.not_equal(code[1:], code[:-1], out=start[1:])
    start[1:] |= np.not_equal(sales[1:], sales[:-1], out=changed)
    pieces: list[_TextKeys] = []
    firsts: list[int] = []
    longest = 0
    previous = None
    pos = 0
    for chunk in arr.chunks:
        for a in range(0, len(chunk), _PIECE):
            piece = chunk.slice(a, _PIECE)
            k = len(piece)
            if k == 0:
                continue
            if k > 1:
                differs = pc.not_equal(piece[1:], piece[:-1])
                start[pos + 1 : pos + k] |= differs.to_numpy(zero_copy_only=False)
            if previous is not None and piece[0].as_py() != previous:
                start[pos] = True
            previous = piece[k - 1].as_py()
            pieces.append(_TextKeys(piece, large))
            firsts.append(pos)
            longest = max(longest, pieces[-1].longest())
            pos += k
    n_words = max(1, -(-longest // 8))
    if n_words > 8:
        return None
    start &= sales
    piece_first = np.array(firsts, dtype=np.int64)

    # 2. Distinct ids per customer, over blocks of whole customers.
    counts = np.zeros(n)
    a = 0
    while a < m:
        b = min(a + _BLOCK, m)
        if b < m:  # extend to the last row of the block's last customer
            b = int(np.searchsorted(code, code[b - 1], side="right"))
        rows = a + np.flatnonzero(start[a:b])
        a = b
        if len(rows) == 0:
            continue
        which = np.searchsorted(piece_first, rows, side="right") - 1
        cuts = np.flatnonzero(np.diff(which)) + 1
        parts = [
            pieces[which[i]].at(seg - piece_first[which[i]], n_words)
            for i, seg in zip(np.r_[0, cuts], np.split(rows, cuts), strict=True)
        ]
        lens = np.concatenate([lp for lp, _ in parts])
        words = np.concatenate([wp for _, wp in parts])
        run_code = code[rows]
        c0 = int(run_code[0])
        size = int(run_code[-1]) - c0 + 1
        counted = _distinct_keys((run_code - c0).astype(np.uint64), lens, words, size)
        if counted is None:
            return None
        counts[c0 : c0 + size] = counted
    return counts


def _distinct_keys(local: np.ndarray, lens: np.ndarray, words: np.ndarray, size: int):
    """Per local customer code (0 .. size-1), the number of distinct (lens, words) keys.

    Sorts one int64 per row, (customer, hash of the key), and checks that rows with equal values
    have equal keys; returns None on a hash collision.
    """
    code_bits = max(int(size - 1).bit_length(), 1)
    hash_bits = 63 - code_bits
    if hash_bits < 24:
        return None
    with np.errstate(over="ignore"):
        h = lens.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        for j in range(words.shape[1]):
            h ^= words[:, j]
            h *= np.uint64(0xBF58476D1CE4E5B9)
            h ^= h >> np.uint64(31)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(29)
    key = ((local << np.uint64(hash_bits)) | (h >> np.uint64(64 - hash_bits))).view(np.int64)
    order = np.argsort(key)
    key = key[order]
    same = key[1:] == key[:-1]
    if same.any():
        a, b = order[1:][same], order[:-1][same]
        if not (np.array_equal(lens[a], lens[b]) and np.array_equal(words[a], words[b])):
            return None
    first = np.empty(len(key), dtype=bool)
    first[:1] = True
    np.logical_not(same, out=first[1:])
    return np.bincount(key[first] >> hash_bits, minlength=size).astype(float)


def rfm_features(ev: Events, rate_floor_days: int = 30) -> pd.DataFrame:
    """Recency, frequency, tenure, monetary, orders and per-year rates at ``ev.as_of_day``."""
    n = ev.n
    tx = ev.tx
    core = _rfm_core(ev)
    n_pdays = core["purchase_days"].to_numpy()
    frequency = core["frequency"].to_numpy()
    tenure = core["tenure_days"].to_numpy()
    recency = core["recency_days"].to_numpy()
    if "order_id" in tx.columns:
        order_count = _order_count(ev)
    else:
        order_count = n_pdays
    if "quantity" in tx.columns:
        qty = ev.sales_sums()["quantity"]
        with np.errstate(divide="ignore", invalid="ignore"):
            items_per_order = np.where(order_count > 0, qty / order_count, np.nan)
    else:
        items_per_order = np.full(n, np.nan)

    years = np.maximum(tenure, rate_floor_days) / 365.0
    monetary_total = ev.revenue
    with np.errstate(divide="ignore", invalid="ignore"):
        recency_share = np.where(tenure > 0, recency / tenure, np.nan)
    return core.assign(
        monetary_total=monetary_total,
        order_count=order_count,
        items_per_order=items_per_order,
        frequency_per_year=frequency / years,
        orders_per_year=order_count / years,
        revenue_per_year=monetary_total / years,
        recency_share=recency_share,
    )
