"""MODELMGR_STORAGE=s3://...: parsed loudly, with the endpoint and region from the environment."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from modelmgr.s3_settings import parse_storage_url, s3_artifact_storage


def test_bucket_and_prefix_come_from_the_url():
    assert parse_storage_url("s3://models") == ("models", "")
    assert parse_storage_url("s3://models/team/a/") == ("models", "team/a")


@pytest.mark.parametrize("url", ["s3:/models", "s3://", "http://models/x", "s3://m/x?y=1"])
def test_a_malformed_storage_url_is_refused_naming_it(url):
    with pytest.raises(ImproperlyConfigured, match="MODELMGR_STORAGE"):
        parse_storage_url(url)


def test_endpoint_region_and_addressing_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("MODELMGR_S3_ENDPOINT_URL", "http://127.0.0.1:8333")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    monkeypatch.delenv("MODELMGR_S3_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    options = s3_artifact_storage("s3://models/p")["OPTIONS"]
    assert options["bucket_name"] == "models" and options["location"] == "p"
    assert options["endpoint_url"] == "http://127.0.0.1:8333"
    assert options["region_name"] == "eu-west-3"
    assert options["client_config"].s3 == {"addressing_style": "path"}
    assert "access_key" not in options  # credentials stay with boto3's own chain
    monkeypatch.setenv("MODELMGR_S3_ADDRESSING_STYLE", "sideways")
    with pytest.raises(ImproperlyConfigured, match="MODELMGR_S3_ADDRESSING_STYLE"):
        s3_artifact_storage("s3://models/p")
