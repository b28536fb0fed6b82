"""Per-environment files load, and refuse account ids, unknown keys and plaintext TLS."""

from __future__ import annotations

import pytest
import yaml

from infra.envconf import ENV_DIR, EnvConfigError, load_env, parse_env


@pytest.mark.parametrize("name", ["dev", "prod"])
def test_shipped_envs_load(name):
    env = load_env(name)
    assert env.name == name
    assert env.buckets.raw_root == f"s3://{env.bucket_prefix}-raw/dms"
    assert env.buckets.curated_root == f"s3://{env.bucket_prefix}-curated/lake"


def base() -> dict:
    return yaml.safe_load((ENV_DIR / "dev.yaml").read_text())


def test_unknown_setting_is_named():
    data = base()
    data["emr"]["max_cpus"] = "1 vCPU"
    with pytest.raises(EnvConfigError, match=r"emr: unknown setting\(s\) \['max_cpus'\]"):
        parse_env(data)


def test_tls_is_required_for_the_source():
    data = base()
    data["source"]["ssl_mode"] = "none"
    with pytest.raises(EnvConfigError, match="TLS is required"):
        parse_env(data)


def test_account_ids_are_refused(tmp_path):
    text = (ENV_DIR / "dev.yaml").read_text() + '\nextra: "123456789012"\n'
    (tmp_path / "x.yaml").write_text(text)
    with pytest.raises(EnvConfigError, match="account id"):
        load_env("x", env_dir=tmp_path)


def test_lob_settings_are_checked():
    data = base()
    data["dms"].update(lob_max_size_kb=256, full_lob_tables=["s.big"])
    env = parse_env(data)
    assert (env.dms.lob_max_size_kb, env.dms.full_lob_tables) == (256, ("s.big",))
    data["dms"]["lob_max_size_kb"] = 200_000
    with pytest.raises(EnvConfigError, match=r"dms.lob_max_size_kb: 200000 \(1..102400"):
        parse_env(data)
    data["dms"].update(lob_max_size_kb=64, full_lob_tables="s.big")
    with pytest.raises(EnvConfigError, match="full_lob_tables: a list of 'schema.table'"):
        parse_env(data)
