"""The only module that reads and writes files.

Sources are read through their :class:`~customer_value.config.SourceConfig`: format, column mapping,
derived columns and the cancellation rule, so a user's own log loads through configuration alone.
Writes are atomic: a temporary file in the target folder is renamed into place, so a crash leaves the
old file or the new one, never half of one.
"""

from __future__ import annotations

import ast
import contextlib
import gzip
import operator
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from customer_value.config import SourceConfig
from customer_value.errors import DataValidationError, UserError
from customer_value.processes import pid_alive

__all__ = [
    "atomic_path",
    "check_database_url",
    "check_writable",
    "current_umask",
    "detect_format",
    "read_source",
    "write_frame",
    "write_text",
    "evaluate_expression",
]


def detect_format(path: Path, declared: str = "auto") -> str:
    """Return ``csv``, ``parquet`` or ``whitespace`` for a path, honouring a declared format."""
    if declared != "auto":
        return declared
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz")):
        return "csv"
    if name.endswith((".txt", ".txt.gz", ".tsv", ".dat", ".dat.gz")):
        return "whitespace"
    raise DataValidationError(
        "cannot tell the file format from its name",
        file=str(path),
        hint="set 'format' in the source config to csv, parquet or whitespace",
    )


def _first_undecodable_line(path: Path, encoding: str) -> int | str:
    """1-based number of the first line that does not decode (only called on the error path)."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            for number, line in enumerate(fh, start=1):
                try:
                    line.decode(encoding)
                except UnicodeDecodeError:
                    return number
    except OSError:
        pass
    return "?"


def _read_raw(source: SourceConfig) -> pd.DataFrame:
    path = Path(source.path)
    if not path.exists():
        raise DataValidationError(
            "file not found",
            file=str(path),
            hint="check the 'path' of this source in the config (relative paths resolve against "
            "the config file's folder)",
        )
    if not (path.is_file() or path.is_dir()):
        # /dev/zero or a named pipe would be read forever (or block): only files and folders.
        raise DataValidationError(
            "is a device, pipe or socket, not a data file",
            file=str(path),
            hint="point the source's 'path' in the config at a csv or parquet file",
        )
    if path.is_file() and path.stat().st_size == 0:
        raise DataValidationError("the file is empty", file=str(path), hint="supply a file with data")
    fmt = detect_format(path, source.format)
    if path.is_dir() and fmt != "parquet":
        # A folder is fine for parquet (a partitioned dataset), never for a text file; without this
        # the reader's "Is a directory" came out as a hint about truncated files.
        raise DataValidationError(
            f"is a folder, not a {fmt} file",
            file=str(path),
            hint="point the source's 'path' in the config at the file itself",
        )
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = _read_text(path, source, fmt)
    except UnicodeDecodeError:
        raise DataValidationError(
            f"line {_first_undecodable_line(path, source.encoding)}: bytes that are not valid "
            f"{source.encoding}",
            file=str(path),
            hint="set 'encoding' in the source config (e.g. latin-1) or re-save the file as UTF-8",
        ) from None
    except pd.errors.EmptyDataError:
        raise DataValidationError("the file has no data", file=str(path)) from None
    except pd.errors.ParserError as exc:
        raise DataValidationError(
            f"cannot parse the file as {fmt}: {str(exc).strip()}",
            file=str(path),
            hint="check 'delimiter' and 'format' in the source config; a field that contains the "
            "delimiter must be in double quotes in the file",
        ) from None
    except (OSError, ValueError) as exc:
        # pyarrow raises ArrowInvalid (a ValueError) or OSError for truncated/corrupt parquet.
        raise DataValidationError(
            f"cannot read the file as {fmt}: {str(exc).strip().splitlines()[0]}",
            file=str(path),
            hint="the file may be truncated or not of the declared format; re-export it",
        ) from None
    if frame.empty:
        raise DataValidationError(
            "the file has a header but no rows" if len(frame.columns) else "the file has no data",
            file=str(path),
            hint="supply a file with at least one row",
        )
    frame.columns = [str(c).strip() for c in frame.columns]
    _check_unique(
        list(frame.columns), str(path), "the file's header" if fmt != "parquet" else "the file"
    )
    return frame


def _text_kwargs(source: SourceConfig, fmt: str) -> dict:
    sep = {"sep": r"\s+", "engine": "c"} if fmt == "whitespace" else {"sep": source.delimiter}
    return dict(sep, dtype=str, keep_default_na=False, na_values=[""], encoding=source.encoding)


def _read_text(path: Path, source: SourceConfig, fmt: str) -> pd.DataFrame:
    """A csv or whitespace file as text columns, refusing rows wider than the header.

    pandas silently turns the extra leading fields of wider rows into the index, shifting every
    column by one (a later message then blames the wrong column); ``index_col=False`` makes it
    warn instead, and the warning becomes an error naming the first such line. The header's raw
    names are read first: pandas renames a repeated name (``amount``, ``amount.1``), which would
    hide the repeat.
    """
    import warnings

    kwargs = _text_kwargs(source, fmt)
    if source.header:
        raw = pd.read_csv(path, header=None, nrows=1, **kwargs)
        _check_unique([str(c).strip() for c in raw.iloc[0].tolist()], str(path), "the file's header")
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ParserWarning)
        try:
            return pd.read_csv(
                path, header=0 if source.header else None, names=source.names, index_col=False, **kwargs
            )
        except pd.errors.ParserWarning:
            width = len(source.names) if source.names else len(raw.columns)
            line = _first_wider_line(path, source, fmt, width)
            what = f"'names' lists {width}" if source.names else f"the header has {width}"
            raise DataValidationError(
                f"line {line} has more fields than the columns: {what}",
                file=str(path),
                hint="check 'delimiter' in the source config and that 'names' lists every column in "
                "order; a field that contains the delimiter must be in double quotes",
            ) from None


def _first_wider_line(path: Path, source: SourceConfig, fmt: str, width: int) -> int | str:
    """The 1-based line number of the first row with more than ``width`` fields ('?' if none)."""
    import csv
    import gzip

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding=source.encoding, newline="") as fh:
        if fmt == "whitespace":
            rows = ((i, line.split()) for i, line in enumerate(fh, start=1))
        else:
            reader = csv.reader(fh, delimiter=source.delimiter)
            rows = ((reader.line_num, row) for row in reader)
        for line, fields in rows:
            if len(fields) > width:
                return line
    return "?"


def _check_unique(names: list[str], file: str, what: str) -> None:
    """Two columns with one name: which one is used would be an accident of the code path."""
    seen: dict[str, int] = {}
    for i, name in enumerate(names, start=1):
        if name in seen:
            raise DataValidationError(
                f"{what} has the column '{name}' twice (columns {seen[name]} and {i})",
                file=file,
                hint="rename or remove one of them (names are compared without surrounding spaces)",
            )
        seen[name] = i


# --------------------------------------------------------------------------------------------------
# Derived columns: a tiny arithmetic language, evaluated without eval() so a config cannot run code.

_BINOPS: dict[type, Callable] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def evaluate_expression(expr: str, frame: pd.DataFrame, *, file: str = "") -> pd.Series:
    """Evaluate ``+ - * /`` arithmetic over numeric columns of ``frame``.

    Parameters
    ----------
    expr : str
        E.g. ``"Quantity * UnitPrice"``. Names are column names; backquotes allow names with spaces
        (```Unit Price` * 2``). Only numbers, columns, parentheses and the four operators are allowed.
    frame : DataFrame
        The columns the expression may use.
    file : str
        Source file, for error messages.

    Returns
    -------
    Series
        Float values; a non-numeric cell in a used column is an error.

    Examples
    --------
    >>> df = pd.DataFrame({"Quantity": ["2", "3"], "UnitPrice": ["1.5", "2"]})
    >>> evaluate_expression("Quantity * UnitPrice", df).tolist()
    [3.0, 6.0]
    """
    from customer_value.expressions import ALLOWED, ExpressionError, parse

    try:
        parsed = parse(expr)
    except ExpressionError as exc:
        raise DataValidationError(
            f"cannot use derived-column expression {str(expr)[:80]!r}: {exc}",
            file=file,
            hint=f"in the source's 'derive', use {ALLOWED}",
        ) from None
    tree, names = parsed.tree, parsed.names

    def _column(name: str) -> pd.Series:
        col = names.get(name, name)
        if col not in frame.columns:
            raise DataValidationError(
                f"expression {expr!r} uses column '{col}', which the file does not have",
                file=file,
                hint=f"available columns: {', '.join(map(str, frame.columns))}",
            )
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = values.isna() & frame[col].notna()
        if bad.any():
            raise DataValidationError(
                f"non-numeric values used in expression {expr!r}",
                file=file,
                column=col,
                examples=frame.loc[bad, col].unique()[:5],
                hint="clean the column or map a numeric column instead",
            )
        return values.astype("float64")

    def _eval(node: ast.AST):
        if isinstance(node, ast.Expression):
            return _eval(node.body)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](_eval(node.left), _eval(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            value = _eval(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return np.float64(node.value)
        if isinstance(node, ast.Name):
            return _column(node.id)
        raise DataValidationError(
            f"expression {expr!r} uses something other than columns, numbers and + - * /",
            file=file,
            hint="in the source's 'derive', use column names, numbers, parentheses and + - * / only",
        )

    # float64 arithmetic throughout: 1/0 is inf (checked below), never a ZeroDivisionError.
    with np.errstate(all="ignore"):
        result = _eval(tree)
    if not isinstance(result, pd.Series):
        result = pd.Series(np.full(len(frame), result, dtype="float64"), index=frame.index)
    inputs_ok = pd.Series(True, index=frame.index)
    for col in parsed.columns():
        inputs_ok &= pd.to_numeric(frame[col], errors="coerce").notna()
    bad = ~np.isfinite(result.to_numpy(dtype="float64", na_value=np.nan)) & inputs_ok.to_numpy()
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DataValidationError(
            f"expression {expr!r} gives a non-finite value (a division by zero or an overflow) "
            f"on {len(rows):,} row(s), e.g. data row(s) {', '.join(str(r + 1) for r in rows[:5])}",
            file=file,
            hint="guard the divisor (filter those rows out of the file) or change the expression",
        )
    return result


def _check_mapping(columns: list[str], source: SourceConfig, file: str) -> None:
    """After renaming: a mapped name the file already had means two columns claim one role."""
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            sources = [k for k, v in source.columns.items() if v == name]
            raise DataValidationError(
                f"two columns are named '{name}' after mapping: the file has its own '{name}' and "
                f"the mapping renames {sources} to it",
                file=file,
                hint=f"map only one column to '{name}' (or rename the file's own column)",
            )
        seen.add(name)


def read_source(source: SourceConfig) -> pd.DataFrame:
    """Read one source and map it onto the contract vocabulary.

    Derived columns are computed from the source's own column names first, then columns are renamed
    by ``columns``; the cancellation rule adds a boolean ``is_return``. Types are not checked here:
    :mod:`customer_value.validate` does that and reports what it changed.

    Parameters
    ----------
    source : SourceConfig
        File, format and mapping.

    Returns
    -------
    DataFrame
        Raw values under contract names (and any unmapped source columns).
    """
    frame = _read_raw(source)
    file = str(source.path)
    missing_sources = [c for c in source.columns if c not in frame.columns]
    if missing_sources:
        raise DataValidationError(
            f"column mapping names source column(s) {missing_sources} that the file does not have",
            file=file,
            hint=f"the file's columns are: {', '.join(map(str, frame.columns))}",
        )
    derived = {name: evaluate_expression(expr, frame, file=file) for name, expr in source.derive.items()}
    frame = frame.rename(columns=source.columns)
    _check_mapping(list(frame.columns), source, file)
    clash = [n for n in derived if n in frame.columns]
    if clash:
        raise DataValidationError(
            f"derived column(s) {clash} already exist in the file (after mapping): the file's "
            "values would be silently replaced",
            file=file,
            hint="derive under another name, or map the file's column to another name",
        )
    for name, values in derived.items():
        frame[name] = values
    if source.cancellation is not None:
        col = source.cancellation.column
        if col not in frame.columns:
            raise DataValidationError(
                f"the cancellation rule uses column '{col}', which is not in the file after mapping",
                file=file,
                hint="map a source column to it under 'columns' or fix 'cancellation.column'",
            )
        frame["is_return"] = (
            frame[col].astype("string").str.startswith(source.cancellation.prefix).fillna(False)
        ).astype(bool)
    return frame


# --------------------------------------------------------------------------------------------------
# Atomic writes


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only on success.

    The temporary file lives in the same folder so the final ``os.replace`` is atomic on POSIX. On
    any exception the temporary file is removed and ``target`` is left as it was. The new file keeps
    an existing target's permission bits; a new target gets ``0o666`` less the process umask, as
    ``open()`` would have created it.
    """
    target = Path(target)
    _refuse_special(target, "the output")  # also for writers that had no preflight
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_orphans(target)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent
        )
    except OSError as exc:  # a writer without a preflight, or a folder that changed since
        raise DataValidationError(
            f"cannot write {target.name} there: {exc.strerror or exc}",
            file=str(target),
            hint="choose another output path, in a folder you can write to",
        ) from None
    try:
        # mkstemp creates 0600; the rename would hand that to the target, hiding a shared output
        # from its readers. Keep what the target had, or what a plain open() would have created.
        os.fchmod(fd, _mode_for(target))
    finally:
        os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        # Fault injection for the crash tests: hold the finished temp file before the rename.
        pause = os.environ.get("CUSTOMER_VALUE_FAULT_PAUSE_BEFORE_RENAME_S")
        if pause:
            time.sleep(float(pause))
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _mode_for(target: Path) -> int:
    """Permission bits for a new version of ``target``: its current ones, else ``0o666 & ~umask``."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        return 0o666 & ~current_umask()


def current_umask() -> int:
    """The process umask, read without changing it where the system allows.

    Linux (4.7+) shows it in ``/proc/self/status``. Elsewhere the only way is to set it and put it
    back, which another thread creating a file in between would see; writes here are not threaded.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def _remove_orphans(target: Path) -> None:
    """Delete temp files of ``target`` left by writers that were killed (their pid is gone)."""
    for tmp in orphaned_temp_files(target.parent, target.name):
        tmp.unlink(missing_ok=True)


def _refuse_special(target: Path, option: str) -> None:
    """An existing target that is a device, a pipe or a socket is never replaced by a file.

    The atomic rename would swap a regular file in for ``/dev/null`` or a named pipe (as root, for
    every process on the machine).
    """
    if target.exists() and not (target.is_file() or target.is_dir()):
        raise DataValidationError(
            "is a device, pipe or socket, not a file",
            file=str(target),
            hint=f"give {option} the path of a regular file",
        )


def check_writable(target: str | Path, option: str = "the output path", folder_ok: bool = False) -> None:
    """Fail early, before any work, when ``target`` cannot be created.

    A job that computes for minutes and then cannot write its output wastes the run; worse, the
    folder creation in :func:`atomic_path` would fail with a bare ``FileExistsError``. The nearest
    existing ancestor must be a writable folder (missing folders below it are created on write).

    Parameters
    ----------
    target : str or Path
        The file to be written.
    option : str
        How the user named it (e.g. ``--output``), for the hint.
    folder_ok : bool
        The writer replaces a folder (Spark writes parquet as a folder of parts).

    Raises
    ------
    DataValidationError
        An ancestor is a file, or the folder is not writable.
    """
    target = Path(target)
    if target.is_dir() and not folder_ok:
        raise DataValidationError(
            "is a folder, not a file", file=str(target), hint=f"give {option} a file name"
        )
    _refuse_special(target, option)
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise DataValidationError(
            f"cannot write {target.name} there: '{parent}' is a file, not a folder",
            file=str(target),
            hint=f"choose another {option} (a path inside a folder)",
        )
    if not os.access(parent, os.W_OK | os.X_OK) or not _can_create_in(parent):
        raise DataValidationError(
            f"cannot write {target.name} there: no permission to write in '{parent}'",
            file=str(target),
            hint=f"choose another {option}, in a folder you can write to",
        )


def _can_create_in(folder: Path) -> bool:
    """Whether files can be created in ``folder``, asked without writing anything there.

    ``os.access`` answers from the permission bits, which root always passes: a read-only mount
    or a kernel pseudo file system (``/proc``, ``/sys``) says "writable" and then refuses the
    write at the end of the job. A probe file would tell, but creating one changes the folder's
    modification time, and a refused command must leave everything as it was.
    """
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return False
        device = os.stat(folder).st_dev
    except OSError:
        return False
    for pseudo in ("/proc", "/sys"):
        try:
            if os.stat(pseudo).st_dev == device:
                return False
        except OSError:
            continue
    return True


_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433, "oracle": 1521}
_SQLITE_MAGIC = b"SQLite format 3\x00"


def check_database_url(
    url: str, what: str, *, create_folder: bool = False, timeout_s: float = 5.0
) -> None:
    """Fail before any work when a database URL cannot be written to. Creates nothing.

    Parameters
    ----------
    url : str
        A SQLAlchemy URL (``sqlite:///path.db``, ``postgresql://user:pw@host/db``).
    what : str
        How the user configured it (``--output``, ``tracking.uri``), for the hint.
    create_folder : bool
        The writer creates a missing SQLite folder itself (the tracking store does; SQLite does not).
    timeout_s : float
        Seconds to wait for a TCP connection to a database server.

    Raises
    ------
    UserError
        An unparseable URL, an in-memory SQLite database (it keeps nothing once the command
        ends), a driver that is not installed, a SQLite path that is a folder, not a SQLite file,
        or cannot be created, or a server that does not answer. Messages hide the password.
    """
    import socket

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    from customer_value.redaction import redact_url, scrub

    where = redact_url(url)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError, TypeError) as exc:
        raise UserError(
            f"not a database URL: {scrub(exc, url)}",
            where=where,
            hint=f"fix {what}, e.g. sqlite:///out.db",
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise UserError(
            "an in-memory SQLite database keeps nothing once the command ends",
            where=where,
            hint=f"give {what} a file, e.g. sqlite:///predictions.db (three slashes, then the path)",
        )
    try:
        parsed.get_dialect().import_dbapi()
    except (NoSuchModuleError, ImportError) as exc:
        module = getattr(exc, "name", None)
        raise UserError(
            f"no database driver for '{parsed.drivername}': {scrub(exc, url)}",
            where=where,
            hint=(
                f"install the Python package that provides '{module}' "
                if module
                else f"install the SQLAlchemy driver for {backend} "
            )
            + f"in this environment, or point {what} at a SQLite file (sqlite:///file.db)",
        ) from None
    if backend == "sqlite":
        _check_sqlite_file(Path(parsed.database).expanduser(), where, what, create_folder)
    elif parsed.host and not parsed.host.startswith("/"):
        port = parsed.port or _DEFAULT_PORTS.get(backend)
        if port is None:
            return
        try:
            socket.create_connection((parsed.host, port), timeout=timeout_s).close()
        except OSError as exc:
            raise UserError(
                f"cannot reach the database server ({exc.strerror or type(exc).__name__})",
                where=where,
                hint=f"start the database or fix the host and port in {what}",
            ) from None


def _check_sqlite_file(database: Path, where: str, what: str, create_folder: bool) -> None:
    if database.is_dir():
        raise UserError(
            "the SQLite database path is a folder", where=where, hint=f"point {what} at a .db file"
        )
    if database.is_file():
        try:
            with open(database, "rb") as fh:
                head = fh.read(len(_SQLITE_MAGIC))
        except OSError as exc:
            raise UserError(
                f"cannot read the SQLite database ({exc.strerror})",
                where=where,
                hint=f"fix the file's permissions or point {what} elsewhere",
            ) from None
        if head and head != _SQLITE_MAGIC:
            raise UserError(
                "the file exists and is not a SQLite database (it would be refused, not replaced)",
                where=where,
                hint=f"point {what} at a new or existing .db file",
            )
        if not os.access(database, os.R_OK | os.W_OK):
            raise UserError(
                "no permission to write the SQLite database",
                where=where,
                hint=f"fix the file's permissions or point {what} elsewhere",
            )
    elif not create_folder and not database.parent.is_dir():
        raise UserError(
            f"the folder '{database.parent}' does not exist (SQLite creates the database file, not "
            "its folder)",
            where=where,
            hint="create the folder or choose another path",
        )
    # SQLite writes its journal beside the file: the folder itself must be writable.
    check_writable(database, what)


def write_frame(frame: pd.DataFrame, target: str | Path) -> Path:
    """Write a frame atomically as parquet or csv (by the target's extension)."""
    target = Path(target)
    name = target.name.lower()
    with atomic_path(target) as tmp:
        if name.endswith((".parquet", ".pq")):
            frame.to_parquet(tmp, index=False)
        elif name.endswith((".csv", ".csv.gz")):
            frame.to_csv(tmp, index=False, compression="gzip" if name.endswith(".gz") else None)
        else:
            raise DataValidationError(
                "unsupported output extension",
                file=str(target),
                hint="use .parquet, .csv or .csv.gz",
            )
    return target


def write_text(text: str, target: str | Path) -> Path:
    """Write text atomically (UTF-8)."""
    target = Path(target)
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return target


def orphaned_temp_files(folder: str | Path, name: str | None = None) -> list[Path]:
    """Temp files in ``folder`` (of the target ``name``, or any) left by killed writers.

    :func:`atomic_path` names them ``.<name>.<pid>.<random>.tmp``; a file whose pid no longer runs
    belongs to a dead writer. Each write removes its own target's orphans; ``customer-value
    doctor`` cleans a whole folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    out = []
    for tmp in sorted(folder.glob(f".{name}.*.tmp" if name else ".*.tmp")):
        # The pid is the last all-digit part before the random part and "tmp".
        parts = tmp.name[1:].split(".")
        pid = next((int(p) for p in reversed(parts[:-2]) if p.isdigit()), None)
        if pid is not None and not pid_alive(pid):
            out.append(tmp)
    return out
