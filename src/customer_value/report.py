"""The run report: one self-contained HTML page (images embedded) from tables and figures.

Sections: data summary and validation, persona cards, model cards (metrics against baselines,
charts), SHAP, and the configuration. Built from data only; the pipeline decides where it goes.
"""

from __future__ import annotations

import base64
import html
import io as _io
import json

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from customer_value.redaction import redact_tree

__all__ = ["figure_png", "png_data_uri", "render_report", "render_targeting", "render_monitor"]

_CSS = " ".join(
    [
        "body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#1f2933}",
        "h2{border-bottom:2px solid #3b6ea5;padding-bottom:.2rem;margin-top:2.2rem}",
        "table{border-collapse:collapse;font-size:.85rem;margin:.6rem 0}",
        "th,td{border:1px solid #d9e2ec;padding:.25rem .5rem;text-align:right}",
        "th{background:#f0f4f8} td:first-child,th:first-child{text-align:left}",
        ".cards{display:flex;flex-wrap:wrap;gap:.8rem}",
        ".card{border:1px solid #d9e2ec;border-radius:8px;padding:.7rem 1rem;width:320px}",
        ".card h3{margin:.1rem 0 .4rem} .muted{color:#627d98;font-size:.85rem}",
        "img{max-width:100%;border:1px solid #e4e7eb;margin:.4rem 0}",
        ".grid{display:grid;grid-template-columns:1fr 1fr;gap:.8rem}",
        "pre{background:#f5f7fa;padding:.8rem;overflow-x:auto;font-size:.8rem}",
    ]
)


def figure_png(fig: Figure) -> bytes:
    """A matplotlib figure rendered once as PNG bytes."""
    buf = _io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return buf.getvalue()


def png_data_uri(png: bytes) -> str:
    """A PNG data URI (so the page needs no network and no files)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _table(frame: pd.DataFrame, digits: int = 4) -> str:
    return frame.to_html(
        index=False, float_format=lambda v: f"{v:,.{digits}f}", na_rep="", border=0, escape=True
    )


def _esc(value) -> str:
    return html.escape(str(value))


def _img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{html.escape(alt)}">'


def render_report(
    title: str,
    summary: dict,
    validation: pd.DataFrame,
    personas: pd.DataFrame,
    comparison: pd.DataFrame,
    metrics: pd.DataFrame,
    figures: dict[str, str],
    shap_tables: dict[str, pd.DataFrame],
    config: dict,
    sections: list[tuple[str, str]] = (),
    migration: pd.DataFrame | None = None,
    migration_title: str = "",
    identity: pd.DataFrame | None = None,
) -> str:
    """The whole report as an HTML string.

    Parameters
    ----------
    title : str
        Page title.
    summary : dict
        Data facts and run tags shown first.
    validation : DataFrame
        The validation report (rows per rule).
    personas : DataFrame
        The persona profile table (one card per row).
    comparison : DataFrame
        Ours against the best baseline per metric.
    metrics : DataFrame
        Tidy out-of-time metrics (task, model, metric, value).
    figures : dict
        Name -> PNG data URI; names start with their section (a task's name, ``shap/``,
        ``personas/``).
    shap_tables : dict
        Title -> SHAP table.
    config : dict
        The resolved configuration.
    sections : list of (str, str)
        One section per model task: its name (the figures' prefix and the metrics' ``task``) and
        its heading.
    migration : DataFrame, optional
        :func:`customer_value.tasks.personas.migration_matrix` between two dates.
    migration_title : str
        The migration's heading (its dates).
    identity : DataFrame, optional
        The personas against the previous champion's (kept, renamed, appeared, vanished).
    """

    def figs(prefix: str) -> str:
        items = [(k, v) for k, v in figures.items() if k.startswith(prefix)]
        return '<div class="grid">' + "".join(_img(v, k) for k, v in items) + "</div>"

    cards = [_persona_card(p) for _, p in personas.iterrows()]
    facts = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in summary.items()
    )
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        '<section id="data"><h2>Data</h2>',
        f"<table>{facts}</table>",
        "<h3>Validation report</h3>",
        _table(validation, 0),
        "</section>",
        '<section id="personas"><h2>Personas</h2>',
        f'<div class="cards">{"".join(cards)}</div>',
        figs("personas/"),
        _migration_section(migration, migration_title),
        _identity_section(identity),
        "</section>",
        *[
            part
            for name, title in sections
            for part in (
                f'<section id="{html.escape(name)}"><h2>{html.escape(title)}</h2>',
                _table(
                    metrics[metrics["task"] == name]
                    .pivot(index="model", columns="metric", values="value")
                    .reset_index()
                ),
                figs(f"{name}/"),
                "</section>",
            )
        ],
        '<section id="comparison"><h2>Against the baselines</h2>',
        _table(comparison),
        "</section>",
        '<section id="shap"><h2>SHAP drivers</h2>',
        figs("shap/"),
        *[f"<h3>{html.escape(k)}</h3>{_table(v)}" for k, v in shap_tables.items()],
        "</section>",
        '<section id="config"><h2>Configuration</h2>',
        f"<pre>{html.escape(json.dumps(redact_tree(config), indent=2, default=str))}</pre></section>",
        "</body></html>",
    ]
    return "\n".join(parts)


def _money(v) -> str:
    return "n/a" if pd.isna(v) else f"{v:,.0f}"


def _persona_card(p: pd.Series) -> str:
    """One persona: size, churn, and its value as benefits − costs."""
    nps = "" if pd.isna(p["mean_nps"]) else f"{p['mean_nps']:.1f}"
    churn = f"{p['churn_rate_actual']:.0%} (predicted {p['churn_probability_mean']:.0%})"
    ratio = "n/a" if pd.isna(p.get("clv_to_cac")) else f"{p['clv_to_cac']:.1f}"
    pid = f"#{int(p['persona_id'])} " if "persona_id" in p and pd.notna(p["persona_id"]) else ""
    value = (
        f"CLV {_money(p.get('predicted_clv_total'))} − cost to serve "
        f"{_money(p.get('cost_to_serve_total'))} + referrals {_money(p.get('referral_value_total'))}"
        f" − acquisition {_money(p.get('acquisition_cost_total'))} = "
        f"<b>{_money(p['net_value_total'])}</b> ({p['net_value_mean']:,.2f} each)"
    )
    return (
        f'<div class="card persona"><h3>{_esc(p["persona"])}</h3>'
        f'<div class="muted">{pid}{int(p["customers"]):,} customers ({p["share"]:.0%})</div>'
        f"<p>churn rate {churn}<br>predicted CLV {p['predicted_clv_mean']:,.2f} each<br>"
        f"net value: {value}<br>CLV:CAC {ratio}<br>"
        f"value at risk {_money(p.get('value_at_risk_total'))}"
        f" ({p.get('value_at_risk_share', float('nan')):.0%} of the base's)<br>NPS {nps}</p>"
        f'<div class="muted">churn drivers: {_esc(p.get("top_churn_drivers", ""))}</div>'
        f'<div class="muted">CLV drivers: {_esc(p.get("top_clv_drivers", ""))}</div></div>'
    )


def _migration_section(migration: pd.DataFrame | None, title: str) -> str:
    if migration is None or migration.empty:
        return ""
    moved = migration[migration["from_id"].isna() | (migration["from_id"] != migration["to_id"])]
    stayed = int(migration.loc[migration["from_id"] == migration["to_id"], "customers"].sum())
    total = int(migration["customers"].sum())
    top = moved.head(12)[
        ["from_persona", "to_persona", "customers", "share_of_from", "predicted_clv", "value_at_risk"]
    ]
    return (
        f'<div id="migration"><h3>{html.escape(title or "Migration")}</h3>'
        f'<p class="muted">{stayed:,} of {total:,} customers stayed in their persona; the largest '
        "moves, with the CLV and value at risk they carry now:</p>"
        f"{_table(top, 2)}</div>"
    )


def _identity_section(identity: pd.DataFrame | None) -> str:
    if identity is None or identity.empty:
        return ""
    return (
        '<div id="identity"><h3>Against the previous champion\'s personas</h3>'
        '<p class="muted">Matched one to one by centroid distance in the champion\'s own space '
        "(a match must fall inside the champion persona's region); a persona keeps its id, and "
        "its name while the name's claims still hold. Jaccard: the overlap of their members.</p>"
        f"{_table(identity, 2)}</div>"
    )


def render_targeting(
    title: str, summary: dict, personas: pd.DataFrame, top: pd.DataFrame, curve_uri: str
) -> str:
    """The targeting report: one page with the plan, the return curve and the list's head.

    Parameters
    ----------
    title : str
        Page title.
    summary : dict
        :attr:`customer_value.modeling.targeting.TargetingPlan.summary` plus where the inputs and
        the list are (shown as given).
    personas : DataFrame
        The plan's per-persona table.
    top : DataFrame
        The first rows of the contact list.
    curve_uri : str
        The return-curve figure as a PNG data URI.
    """
    s = summary
    headline = (
        f"Contact <b>{s['contacts']:,}</b> customers for <b>{_money(s['cost'])}</b> "
        f"(budget {_money(s['budget'])} at {s['contact_cost']:,.2f} per contact): expected saved "
        f"value <b>{_money(s['expected_saved_value'])}</b>, expected net return "
        f"<b>{_money(s['expected_net_gain'])}</b>. "
        + (
            "The budget is the limit: more contacts would still pay."
            if s["limited_by"] == "budget"
            else "The gain is the limit: every further contact is expected to lose money, so "
            "part of the budget is left unspent."
        )
        + f" Break-even depth: {s['break_even_depth']:,} customers; best depth "
        f"{s['best_depth']:,}."
    )
    parts = [
        '<section id="targeting"><h2>Retention targeting under a budget</h2>',
        f"<p>{headline}</p>",
        '<p class="muted">Expected net gain per customer = P(churn) &times; CLV &times; save rate '
        "&minus; contact cost. "
        + (
            "Save rates come from the uplift learned on a campaign (max(uplift, 0) / P(churn), "
            "capped at 1), so the saved value is uplift &times; CLV.</p>"
            if str(s.get("save rates", "config")).startswith("learned")
            else "Save rates are assumptions from the config (targeting.save_rate, "
            "targeting.save_rates), not measured effects.</p>"
        ),
        _img(curve_uri, "cumulative expected return"),
        "<h3>Per persona</h3>",
        _table(personas, 2),
        "<h3>First customers to contact</h3>",
        _table(top, 2),
        "<h3>Inputs</h3>",
        _facts(summary),
        "</section>",
    ]
    return _page(title, parts)


def _fmt_fact(v) -> str:
    return f"{v:,.2f}" if isinstance(v, float) else str(v)


def render_monitor(title: str, facts: dict, alerts: list[str], tables: dict[str, pd.DataFrame]) -> str:
    """The monitoring report: alerts first, then one table per check (title -> table)."""
    alert_html = (
        "<ul>" + "".join(f"<li>{html.escape(a)}</li>" for a in alerts) + "</ul>"
        if alerts
        else "<p>No threshold passed: nothing to alert on.</p>"
    )
    parts = [
        '<section id="monitoring"><h2>Monitoring</h2>',
        _facts(facts),
        "<h3>Alerts</h3>",
        alert_html,
        *[f"<h3>{html.escape(k)}</h3>{_table(v, 3)}" for k, v in tables.items() if v is not None],
        "</section>",
    ]
    return _page(title, parts)


def render_uplift(
    title: str, facts: dict, deciles: pd.DataFrame, notes: list[str], qini_uri: str
) -> str:
    """The uplift report: the held-out Qini curve, the effect per decile of predicted uplift.

    Parameters
    ----------
    title : str
        Page title.
    facts : dict
        The learner, windows, campaign dates and held-out metrics (shown as given).
    deciles : DataFrame
        Observed effect (difference in response rates, with its 95 % interval) per decile of
        predicted uplift, highest first.
    notes : list of str
        What was left out and why.
    qini_uri : str
        The Qini figure as a PNG data URI.
    """
    note_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    parts = [
        '<section id="uplift"><h2>Who the campaign changed</h2>',
        '<p class="muted">Uplift = P(buys in the window | contacted) &minus; P(buys | not '
        "contacted), learned on one part of a randomized campaign and checked on the held-out "
        "rest: a good model puts the customers whose observed effect is largest in its first "
        "deciles.</p>",
        _img(qini_uri, "held-out Qini curve"),
        "<h3>Observed effect per decile of predicted uplift (held out)</h3>",
        _table(deciles, 3),
        "<h3>Run</h3>",
        _facts(facts),
        f"<h3>Notes</h3><ul>{note_html}</ul>" if notes else "",
        "</section>",
    ]
    return _page(title, parts)


def _facts(facts: dict) -> str:
    """A two-column table of named facts."""
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt_fact(v))}</td></tr>"
        for k, v in facts.items()
    )
    return f"<table>{rows}</table>"


def _page(title: str, body: list[str]) -> str:
    """A whole self-contained page: the shared style, the title, then ``body``."""
    head = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body>"
    )
    return "\n".join([head, f"<h1>{html.escape(title)}</h1>", *body, "</body></html>"])
