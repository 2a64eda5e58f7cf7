import pytest

from eventpipe.config import ConfigError, load_settings


def test_defaults_are_embedded(tmp_path):
    s = load_settings()
    assert s.embedded
    assert s.resolved_database_url().startswith("sqlite:///")
    assert s.resolved_kv_url().startswith(("file://", "sqlite://"))


def test_bad_env_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("EVENTPIPE_PREFETCH", "lots")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "EVENTPIPE_PREFETCH" in str(info.value)
    assert "integer" in str(info.value)


def test_broker_url_must_be_amqp(monkeypatch):
    monkeypatch.setenv("EVENTPIPE_BROKER_URL", "http://user:secret@host")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "EVENTPIPE_BROKER_URL" in str(info.value)


def test_csv_lists_and_toml_file(monkeypatch, tmp_path):
    monkeypatch.setenv("EVENTPIPE_BROKER_URLS", "amqp://a:5672, amqp://b:5673")
    (tmp_path / "ep.toml").write_text('queue_prefix = "t1."\n[pools.events]\nqueues = ["events*"]\nprocesses = 2\nthreads = 4\n')
    monkeypatch.setenv("EVENTPIPE_CONFIG", str(tmp_path / "ep.toml"))
    s = load_settings()
    assert s.broker_urls == ["amqp://a:5672", "amqp://b:5673"]
    assert s.queue_prefix == "t1."
    assert s.pools["events"].processes == 2
    assert not s.embedded


def test_env_beats_toml_and_bad_toml_is_named(monkeypatch, tmp_path):
    (tmp_path / "eventpipe.toml").write_text('queue_prefix = "fromfile."\n')
    monkeypatch.setenv("EVENTPIPE_QUEUE_PREFIX", "fromenv.")
    assert load_settings().queue_prefix == "fromenv."
    (tmp_path / "eventpipe.toml").write_text("queue_prefix = \n")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "eventpipe.toml" in str(info.value)


def test_unknown_toml_key_is_rejected(monkeypatch, tmp_path):
    (tmp_path / "eventpipe.toml").write_text('queue_prefx = "typo."\n')
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "queue_prefx" in str(info.value)


def test_errors_never_show_credentials(monkeypatch):
    monkeypatch.setenv("EVENTPIPE_BROKER_URLS", "amqp://u:hunter2@a:5672,http://u:hunter2@b")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "hunter2" not in str(info.value)
    assert "EVENTPIPE_BROKER_URLS" in str(info.value)


def test_every_eventpipe_variable_is_a_setting(monkeypatch):
    """The variables that used to be read on the side (metrics, auto-rebalance, log level, old KV
    store) are Settings fields, parsed and validated like the others."""
    monkeypatch.setenv("EVENTPIPE_METRICS_PORT", "9200")
    monkeypatch.setenv("EVENTPIPE_METRICS_LOCAL", "1")
    monkeypatch.setenv("EVENTPIPE_AUTO_REBALANCE", "true")
    monkeypatch.setenv("EVENTPIPE_LOG_LEVEL", "info")
    monkeypatch.setenv("EVENTPIPE_KV_OLD_URL", "file:///tmp/old")
    s = load_settings()
    assert (s.metrics_port, s.metrics_local, s.auto_rebalance, s.log_level, s.kv_old_url) == (
        9200, True, True, "INFO", "file:///tmp/old")
    monkeypatch.setenv("EVENTPIPE_LOG_LEVEL", "loud")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "EVENTPIPE_LOG_LEVEL" in str(info.value)


def test_pools_from_the_environment_are_json(monkeypatch):
    monkeypatch.setenv("EVENTPIPE_POOLS", '{"events": {"queues": ["events*"], "processes": 3}}')
    assert load_settings().pools["events"].processes == 3
    monkeypatch.setenv("EVENTPIPE_POOLS", "events=3")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "EVENTPIPE_POOLS" in str(info.value) and "JSON" in str(info.value)


def test_readme_lists_every_variable_the_code_reads():
    import re
    from pathlib import Path

    from eventpipe.config import Settings

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    documented = set(re.findall(r"`(EVENTPIPE_[A-Z_]+)`", readme))
    declared = {"EVENTPIPE_" + name.upper() for name in Settings.model_fields} | {"EVENTPIPE_CONFIG"}
    assert declared - documented == set()


def test_messages_are_json_never_pickle():
    import dramatiq

    from eventpipe.runtime import OrjsonEncoder  # importing the runtime sets the encoder

    assert type(dramatiq.get_encoder()) is OrjsonEncoder
    assert dramatiq.get_encoder().decode(dramatiq.get_encoder().encode({"a": [1, "x"]})) == {"a": [1, "x"]}
    from dramatiq.errors import DecodeError
    from dramatiq.message import Message

    with pytest.raises(DecodeError):
        Message.decode(b"\x80\x04\x95pickled")
