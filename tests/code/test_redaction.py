"""The one redactor: every userinfo form a user can type, query secrets, decoded passwords."""

from __future__ import annotations

import pytest

from customer_value.redaction import redact, redact_url, scrub, url_password
from customer_value.tracking import redact as tracking_redact

SECRET = "s3c"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://alice:s3c@db:5432/cv", "postgresql://alice:***@db:5432/cv"),
        ("https://alice:s3c/ret@host/x", "https://alice:***@host/x"),  # "/" in the password
        ("https://alice:s3c@ret@host", "https://alice:***@host"),  # "@" in the password
        ("https://:s3cToken@host", "https://:***@host"),  # token with an empty user
        ("https://s3cToken@host/api", "https://***@host/api"),  # token as the user name
        ("https://alice:@host", "https://alice:***@host"),  # empty password: still masked
        ("mysql+pymysql://bob:s3c%40x%2Fy@10.0.0.1/p", "mysql+pymysql://bob:***@10.0.0.1/p"),
        ("https://alice:s3c:more@host", "https://alice:***@host"),  # ":" in the password
        ("https://host/api?token=s3c&x=1", "https://host/api?token=***&x=1"),
        ("https://host/api?X=1&Password=s3c", "https://host/api?X=1&Password=***"),
        ("s3://AKIA:s3c+key/abc@bucket/tx.parquet", "s3://AKIA:***@bucket/tx.parquet"),
    ],
)
def test_every_userinfo_form_is_hidden(url, shown):
    assert redact_url(url) == shown
    assert SECRET not in redact(f"cannot reach '{url}': refused")
    assert tracking_redact(url) == shown  # tracking uses the same redactor


@pytest.mark.parametrize(
    "text",
    [
        "sqlite:///mlflow.db",
        "sqlite:////abs/path/a@b.db",  # empty authority: an "@" in a path is no password
        "file:///data/a@b.csv",
        "http://127.0.0.1:5000",
        "no url here, user:pass@host is not a URL",
    ],
)
def test_text_without_secrets_is_unchanged(text):
    assert redact(text) == text


def test_several_urls_in_one_message():
    text = "copy postgresql://a:p1xx@h1/db to https://b:p2yy@h2/x, then https://h3"
    out = redact(text)
    assert "p1xx" not in out and "p2yy" not in out
    assert out == "copy postgresql://a:***@h1/db to https://b:***@h2/x, then https://h3"


def test_scrub_hides_the_decoded_password_quoted_alone():
    url = "postgresql://alice:s3c%40cret@db/cv"
    assert url_password(url) == ["s3c%40cret", "s3c@cret"]
    driver = 'FATAL: password "s3c@cret" rejected for postgresql://alice:s3c%40cret@db/cv'
    out = scrub(driver, url)
    assert "s3c" not in out and "cret" not in out
    assert out.startswith('FATAL: password "***" rejected for postgresql://alice:***@db/cv')
